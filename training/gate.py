"""The promotion gate: may a challenger replace the champion?

:func:`decide` is a pure function of two metric dicts (the ``challenger`` / ``champion`` entries
of ``evaluation.json``: ``{"retrieval": {"recall@100": ...}, "ranker": {"auc": ...}}``) so it
can be unit-tested with hand-made numbers and re-run by an operator on any evaluation file.

Rules, in order:

1. Any challenger metric that is NaN, null or missing blocks promotion, even when forced: a NaN
   means the model or the held-out data is broken, and serving it would be blind.
2. ``force=True`` promotes (the comparison is still computed and shown).
3. No champion (first run, or none comparable): promote.
4. Otherwise every gated metric must not be worse than the champion's by more than the allowed
   drop ``max(tolerance.absolute, tolerance.relative * |champion value|)``; i.e. the absolute
   and relative tolerances are alternatives and the more lenient one applies. "Worse" means
   lower, except for metrics named in :data:`LOWER_IS_BETTER` (e.g. ``logloss``) where it
   means higher. A champion value that is NaN/missing cannot be compared; that metric is
   skipped with a reason (the challenger's own value is still required to be finite).

Reasons are full sentences naming the metric, both values and the tolerance, because the
Airflow UI shows them to the operator as the explanation of the run's outcome.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shoprec.settings import Settings
from training.runs import read_json, run_dir, write_json

DEFAULT_GATED = ("retrieval.recall@100", "ranker.gauc", "ranker.auc")
LOWER_IS_BETTER = frozenset({"logloss"})
GATE = "gate.json"


@dataclass(frozen=True)
class GateTolerance:
    """How much worse than the champion a challenger may be and still be promoted.

    Attributes:
        metrics: Gated metrics as ``"<section>.<name>"`` paths into the metric dicts.
        absolute: Allowed drop in the metric's own units (0.01 = one AUC point).
        relative: Allowed drop as a share of the champion's value (0.02 = 2%).
            The allowed drop is the larger of the two.
    """

    metrics: tuple[str, ...] = DEFAULT_GATED
    absolute: float = 0.01
    relative: float = 0.0

    def __post_init__(self) -> None:
        for name, value in (("absolute", self.absolute), ("relative", self.relative)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"tolerance {name} must be a finite number >= 0, got {value}")
        if not self.metrics:
            raise ValueError("the gate needs at least one metric to compare")
        bad = [m for m in self.metrics if m.count(".") < 1]
        if bad:
            raise ValueError(f"gated metrics must look like 'section.metric', got {bad}")

    def allowed_drop(self, champion_value: float) -> float:
        """The largest tolerated deterioration relative to ``champion_value``."""
        return max(self.absolute, self.relative * abs(champion_value))

    def describe(self) -> str:
        """The tolerance in words, for reasons."""
        return f"absolute {self.absolute:g}, relative {self.relative:.1%}"


@dataclass
class GateDecision:
    """The outcome of the gate.

    Attributes:
        promote: Whether the challenger may become the champion.
        reasons: Human sentences explaining the outcome (first the blocking ones).
        compared: Per gated metric: ``challenger``, ``champion``, ``allowed_drop``,
            ``delta`` (challenger − champion) and ``ok``.
    """

    promote: bool
    reasons: list[str] = field(default_factory=list)
    compared: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``gate.json`` and XCom hold)."""
        return asdict(self)


def flatten(metrics: dict[str, Any] | None) -> dict[str, Any]:
    """``{"ranker": {"auc": 0.7}}`` → ``{"ranker.auc": 0.7}`` (only numeric-or-null leaves)."""
    out: dict[str, Any] = {}
    for section, values in (metrics or {}).items():
        if isinstance(values, dict):
            for name, value in values.items():
                out[f"{section}.{name}"] = value
        else:
            out[section] = values
    return out


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _nan(value: Any) -> bool:
    return isinstance(value, float) and not math.isfinite(value)


def _fmt(value: Any) -> str:
    if value is None:
        return "missing (null)"
    return f"{value:.4f}" if _finite(value) else str(value)


def decide(challenger: dict[str, Any], champion: dict[str, Any] | None,
           tolerance: GateTolerance = GateTolerance(), force: bool = False) -> GateDecision:
    """Decide whether ``challenger`` may replace ``champion``; see the module docstring.

    Args:
        challenger: The challenger's metrics, ``{"retrieval": {...}, "ranker": {...}}``.
        champion: The champion's metrics on the same rows, or ``None`` if there is none.
        tolerance: Gated metrics and allowed drop.
        force: Promote regardless of the comparison (never with NaN/missing metrics).

    Returns:
        The decision with its reasons and the per-metric comparison.
    """
    flat, champ = flatten(challenger), flatten(champion)
    broken = [f"{name} of the challenger is {_fmt(value)}, not a finite number; a model with "
              "NaN or missing metrics is never promoted, not even by force"
              for name, value in flat.items() if value is None or _nan(value)]
    broken += [f"{name} is missing from the challenger's metrics, so it cannot be gated"
               for name in tolerance.metrics if name not in flat]
    worse: list[str] = []
    notes: list[str] = []
    compared: dict[str, dict[str, Any]] = {}
    for name in tolerance.metrics:
        ours, theirs = flat.get(name), champ.get(name)
        if champion is None or not _finite(ours):
            continue
        if not _finite(theirs):
            notes.append(f"{name}: the champion has no finite value ({_fmt(theirs)}), so the "
                         f"challenger's {_fmt(ours)} is not compared")
            continue
        lower = name.rsplit(".", 1)[-1] in LOWER_IS_BETTER
        allowed = tolerance.allowed_drop(theirs)
        worse_by = (ours - theirs) if lower else (theirs - ours)
        ok = worse_by <= allowed + 1e-12
        compared[name] = {"challenger": ours, "champion": theirs, "delta": ours - theirs,
                          "allowed_drop": allowed, "ok": ok}
        if ok:
            notes.append(f"{name}: challenger {_fmt(ours)} vs champion {_fmt(theirs)} is within "
                         f"the allowed drop of {allowed:.4f} ({tolerance.describe()})")
        else:
            worse.append(f"{name}: challenger {_fmt(ours)} is {worse_by:.4f} "
                         f"{'higher' if lower else 'lower'} than champion {_fmt(theirs)}, beyond "
                         f"the allowed drop of {allowed:.4f} ({tolerance.describe()})")
    if broken or (worse and not force):
        return GateDecision(False, [f"not promoted: {r}" for r in broken + worse] + notes,
                            compared)
    if worse:
        return GateDecision(True, [f"force-promoted by the operator although {r}"
                                   for r in worse] + notes, compared)
    if champion is None:
        head = "promoted: there is no comparable champion and every challenger metric is finite"
    elif force:
        head = "force-promoted by the operator (no gated metric was worse anyway)"
    else:
        head = "promoted: no gated metric is worse than the champion's beyond the tolerance"
    return GateDecision(True, [head] + notes, compared)


def gate_run(settings: Settings, run_id: str, tolerance: GateTolerance = GateTolerance(),
             force: bool = False) -> GateDecision:
    """Apply :func:`decide` to ``models/<run_id>/evaluation.json``; write ``gate.json``.

    The evaluation's explanation of a missing or incomparable champion is added to the reasons,
    so the operator sees why the run was promoted without a comparison.
    """
    path: Path = run_dir(settings, run_id)
    evaluation = read_json(path / "evaluation.json")
    decision = decide(evaluation["challenger"], evaluation.get("champion"), tolerance, force)
    if evaluation.get("champion") is None and evaluation.get("champion_reason"):
        decision.reasons.append(f"champion: {evaluation['champion_reason']}")
    write_json(path / GATE, {"run_id": run_id, "champion_run_id":
                             evaluation.get("champion_run_id"), "force": force,
                             "tolerance": asdict(tolerance), **decision.to_dict()})
    return decision
