"""Export :class:`serving.fallback.CounterLog` increments as Prometheus counters on ``/metrics``.

BentoML 1.4 serves ``/metrics`` from the ``prometheus_client`` default registry in
multiprocess mode; ``bentoml.metrics`` is deprecated in favour of ``prometheus_client``. The
client must be imported only after the worker has set ``PROMETHEUS_MULTIPROC_DIR``, so this is
called from the service's ``__init__`` (which runs in the worker), never at import time.

Exported names: ``shoprec_fallback_total{reason}``, ``shoprec_variant_total{layer,variant}``,
``shoprec_feedback_total{event_type}``.
"""

from __future__ import annotations

from collections.abc import Mapping

from serving.fallback import METRICS, Sink

DOCS = {
    "fallback": "Requests (or feature reads) served by a fallback path, by reason.",
    "variant": "Experiment assignments of /recommend requests, by layer and variant.",
    "feedback": "Feedback events stored in the landing area, by event type.",
}


def prometheus_sink(prefix: str = "shoprec") -> Sink:
    """A :data:`~serving.fallback.Sink` that increments one Prometheus counter per metric."""
    from prometheus_client import Counter

    counters = {name: Counter(f"{prefix}_{name}", DOCS[name], labelnames=list(labels))
                for name, labels in METRICS.items()}

    def sink(metric: str, labels: Mapping[str, str], amount: float) -> None:
        counters[metric].labels(**labels).inc(amount)

    return sink
