"""Closed-loop HTTP clients for the serving benchmark: each sends its next request on an answer.

One keep-alive ``http.client`` connection per client thread: the client side costs a fraction
of a millisecond per request, so on a 2-core machine almost all CPU goes to the server under
test. Pure standard library (the benchmark measures the Bento, not an HTTP library).
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse


@dataclass
class Phase:
    """What one load phase recorded.

    Attributes:
        clients: Concurrent closed-loop clients.
        seconds: Wall time of the phase.
        latencies_ms: One per answered request (2xx).
        errors: Non-2xx answers and transport failures, with a sample of their texts.
        answered_at: Monotonic completion time of each answered request (for split figures).
        fallbacks: ``fallbacks`` named in the answers, by reason.
    """

    clients: int
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)
    fallbacks: dict[str, int] = field(default_factory=dict)

    def figures(self, window: tuple[float, float] | None = None) -> dict[str, Any]:
        """p50/p99/mean latency (ms) and requests per second, of the phase or a time window.

        Args:
            window: ``(start, end)`` monotonic times: only requests answered in it count, and
                the rate is over its length.
        """
        import numpy as np

        lat = np.asarray(self.latencies_ms)
        span = self.seconds
        if window is not None:
            t = np.asarray(self.answered_at)
            lat = lat[(t >= window[0]) & (t < window[1])]
            span = window[1] - window[0]
        if not len(lat):
            return {"requests": 0, "rps": 0.0, "p50_ms": None, "p99_ms": None, "mean_ms": None}
        return {"requests": int(len(lat)), "rps": round(len(lat) / span, 1),
                "p50_ms": round(float(np.percentile(lat, 50)), 2),
                "p99_ms": round(float(np.percentile(lat, 99)), 2),
                "mean_ms": round(float(lat.mean()), 2)}


def run(url: str, path: str, bodies: list[dict], clients: int, seconds: float,
        seed: int = 0, timeout: float = 30.0) -> Phase:
    """Drive ``clients`` closed-loop clients for ``seconds``; bodies are drawn at random."""
    target = urlparse(url)
    phase = Phase(clients)
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def client(n: int) -> None:
        rng = random.Random(seed * 1000 + n)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
        lat, done, errs, samples, falls = [], [], 0, [], {}
        while time.monotonic() < stop_at:
            body = json.dumps(rng.choice(bodies))
            t0 = time.perf_counter()
            try:
                conn.request("POST", path, body, {"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                ms = (time.perf_counter() - t0) * 1000
                if 200 <= resp.status < 300:
                    lat.append(ms)
                    done.append(time.monotonic())
                    for reason in json.loads(data).get("fallbacks", []):
                        falls[reason] = falls.get(reason, 0) + 1
                else:
                    errs += 1
                    samples.append(f"{resp.status}: {data[:200]!r}")
            except (OSError, http.client.HTTPException) as err:
                errs += 1
                samples.append(f"{type(err).__name__}: {err}")
                conn.close()
                conn = http.client.HTTPConnection(target.hostname, target.port, timeout=timeout)
        conn.close()
        with lock:
            phase.latencies_ms += lat
            phase.answered_at += done
            phase.errors += errs
            phase.error_samples += samples[:3]
            for reason, count in falls.items():
                phase.fallbacks[reason] = phase.fallbacks.get(reason, 0) + count

    t0 = time.monotonic()
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    phase.seconds = time.monotonic() - t0
    return phase
