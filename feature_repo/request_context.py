"""Request-time features (hour, weekday, device): ONE function for training and serving.

The contract's request views hold :class:`shoprec.recipes.RequestPart` features. They are
computed by Feast on-demand feature views (``mode="python"``) from request fields:

* offline, ``get_historical_features`` runs the view over the training rows, whose request
  fields are the impression's own ``event_ts`` / ``device``;
* online, ``get_online_features`` runs it over the serving request's fields.

Both call :func:`compute`. Feast stores an on-demand view's source text in the registry and
re-creates the function from it (``exec`` in a bare namespace) when a store is opened, so the
registered function is a tiny generated stub (:func:`udf_source`) that imports :func:`compute`
from this module and passes it the view's recipes as literals: whichever process runs it
(training, the Bento service, the feast CLI) executes this same code.

Pure Python (no pandas): the online path calls it per request with a few hundred rows at most,
and the offline path once per chunk.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shoprec.contract import Contract
from shoprec.recipes import RequestPart

UDF_NAME = "request_features"
PARTS = ("hour", "weekday", "code")

Spec = tuple[tuple[str, str, str, tuple[str, ...], int], ...]
"""Per feature: ``(name, request field, part, values, default)``."""


def view_spec(contract: Contract, view: str) -> Spec:
    """The literal recipe description of request view ``view`` that :func:`compute` takes.

    Raises:
        ValueError: if a recipe names a part :func:`compute` does not know.
    """
    spec = []
    for f in contract.view_features(view):
        r = f.recipe
        if not isinstance(r, RequestPart) or r.part not in PARTS:
            raise ValueError(f"request feature {f.name!r}: recipe {r!r} is not a RequestPart "
                             f"with part in {PARTS}")
        spec.append((f.name, r.field, r.part, tuple(r.values), int(f.default)))
    return tuple(spec)


def udf_source(contract: Contract, view: str) -> str:
    """Source of the on-demand view's function: an import of :func:`compute` plus literals."""
    return (f"def {UDF_NAME}(inputs):\n"
            f"    from feature_repo.request_context import compute\n"
            f"    return compute(inputs, {view_spec(contract, view)!r})\n")


def make_udf(contract: Contract, view: str) -> tuple[Any, str]:
    """``(function, source)`` for the view; the function is built from exactly that source."""
    source = udf_source(contract, view)
    namespace: dict[str, Any] = {}
    exec(compile(source, f"<{view} request features>", "exec"), namespace)  # noqa: S102
    return namespace[UDF_NAME], source


def _missing(value: Any) -> bool:
    """None, NaN, NaT or pandas' NA (whose comparisons are neither True nor False)."""
    if value is None:
        return True
    try:
        return bool(value != value)
    except TypeError:
        return True


def _utc(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime (naive values are taken as UTC), or None if missing."""
    if _missing(value):
        return None
    if not isinstance(value, datetime):
        raise TypeError(f"request timestamp must be a datetime, got {type(value).__name__} "
                        f"{value!r}")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def part_value(value: Any, part: str, values: tuple[str, ...], default: int) -> int:
    """One feature value of one request (``default`` for a missing or unknown value)."""
    if part == "code":
        if _missing(value):
            return default
        return values.index(value) if value in values else default
    ts = _utc(value)
    if ts is None:
        return default
    return ts.hour if part == "hour" else ts.weekday()


def compute(inputs: Mapping[str, Sequence[Any]], spec: Spec) -> dict[str, list[int]]:
    """Request features of every row of ``inputs`` (column name -> values).

    Args:
        inputs: Columns including every request field the spec reads (Feast passes the whole
            row set; extra columns are ignored).
        spec: From :func:`view_spec`.

    Returns:
        Feature name -> one int per row.

    Raises:
        KeyError: naming a request field missing from ``inputs``.
        TypeError: if a timestamp field holds something other than datetimes.
    """
    out: dict[str, list[int]] = {}
    for name, field, part, values, default in spec:
        if field not in inputs:
            raise KeyError(f"request feature {name!r} needs request field {field!r}; got "
                           f"{sorted(inputs)}")
        out[name] = [part_value(v, part, values, default) for v in inputs[field]]
    return out
