"""One GX result for a batch validated chunk by chunk.

A large batch is validated in chunks so that GX never holds more than one chunk in memory.
The row suite then yields one result per chunk; :class:`ResultMerger` folds them into the
result GX would have produced for the whole batch (counts summed, percentages recomputed,
sample lists concatenated with batch-wide row positions and capped), so the Data Docs and the
batch verdicts describe the batch, not its last chunk. Table-level expectations that depend on
the size of the batch (the row count) are judged again on the total.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

PARTIAL = 20
"""GX's own cap on ``partial_*`` lists."""
_SUMS = ("element_count", "unexpected_count", "missing_count")
_INDEXED = {"unexpected_index_list": "unexpected_list",
            "partial_unexpected_index_list": "partial_unexpected_list"}


class ResultMerger:
    """Fold the row-suite results of consecutive chunks into one.

    Args:
        kept: Longest ``unexpected_list``/``unexpected_index_list`` kept (the quarantine file
            has every row; the result only needs a sample).
    """

    def __init__(self, kept: int) -> None:
        self.kept = kept
        self.merged: Any = None
        self._counts: list[Counter] = []
        self._values: list[dict[str, Any]] = []

    def add(self, result: Any, offset: int) -> None:
        """Fold in the result of the chunk whose first row is batch row ``offset``."""
        if self.merged is None:
            self.merged = result
            self._counts = [Counter() for _ in result.results]
            self._values = [{} for _ in result.results]
            for i, res in enumerate(result.results):
                self._shift(res.result or {}, offset)
                self._count(res.result or {}, i)
            return
        for i, (mine, theirs) in enumerate(zip(self.merged.results, result.results,
                                               strict=True)):
            self._fold(mine, theirs, offset, i)

    def _shift(self, result: dict[str, Any], offset: int) -> None:
        for name in _INDEXED:
            if result.get(name) is not None:
                result[name] = [int(i) + offset for i in result[name]]

    def _count(self, result: dict[str, Any], i: int) -> None:
        for entry in result.get("partial_unexpected_counts") or []:
            key = _key(entry["value"])
            self._counts[i][key] += int(entry["count"])
            self._values[i].setdefault(key, entry["value"])

    def _fold(self, mine: Any, theirs: Any, offset: int, i: int) -> None:
        mine.success = bool(mine.success and theirs.success)
        if not mine.exception_info or not _raised(mine.exception_info):
            if theirs.exception_info and _raised(theirs.exception_info):
                mine.exception_info = theirs.exception_info
        a, b = mine.result or {}, dict(theirs.result or {})
        self._shift(b, offset)
        self._count(b, i)
        for name in _SUMS:
            if name in a and name in b:
                a[name] = int(a[name]) + int(b[name])
        for index_name, value_name in _INDEXED.items():
            cap = PARTIAL if index_name.startswith("partial") else self.kept
            for name in (index_name, value_name):
                if a.get(name) is not None and b.get(name) is not None:
                    a[name] = list(a[name]) + list(b[name])[:max(0, cap - len(a[name]))]
        if isinstance(a.get("observed_value"), int) and isinstance(b.get("observed_value"), int):
            a["observed_value"] += b["observed_value"]  # the table row count

    def result(self) -> Any:
        """The merged result with recomputed percentages, verdicts and statistics."""
        merged = self.merged
        for res, counts, values in zip(merged.results, self._counts, self._values,
                                       strict=True):
            r = res.result or {}
            if "element_count" in r and "unexpected_count" in r:
                total, bad = int(r["element_count"]), int(r["unexpected_count"])
                missing = int(r.get("missing_count", 0))
                present = total - missing
                pct = 100.0 * bad / present if present else 0.0
                r["unexpected_percent"] = pct
                if "unexpected_percent_total" in r:
                    r["unexpected_percent_total"] = 100.0 * bad / total if total else 0.0
                    r["unexpected_percent_nonmissing"] = pct
                if "missing_percent" in r:
                    r["missing_percent"] = 100.0 * missing / total if total else 0.0
                if "partial_unexpected_counts" in r:
                    r["partial_unexpected_counts"] = [{"value": values[k], "count": n}
                                                      for k, n in counts.most_common(PARTIAL)]
            kwargs = res.expectation_config.kwargs
            if res.expectation_config.type == "expect_table_row_count_to_be_between":
                rows = int(r.get("observed_value", 0))
                lo, hi = kwargs.get("min_value"), kwargs.get("max_value")
                res.success = (lo is None or rows >= lo) and (hi is None or rows <= hi)
        ok = sum(1 for res in merged.results if res.success)
        n = len(merged.results)
        merged.success = ok == n
        merged.statistics.update(evaluated_expectations=n, successful_expectations=ok,
                                 unsuccessful_expectations=n - ok,
                                 success_percent=100.0 * ok / n if n else None)
        return merged


def _raised(info: dict[str, Any]) -> bool:
    candidates = [info] + [v for v in info.values() if isinstance(v, dict)]
    return any(entry.get("raised_exception") for entry in candidates)


def _key(value: Any) -> str:
    """A hashable identity for a listed value (``repr`` fails for out-of-range timestamps)."""
    try:
        return f"{type(value).__name__}:{value!r}"
    except (NotImplementedError, ValueError, OverflowError):
        exact = getattr(value, "asm8", None)  # numpy datetime64 in the value's own unit
        return f"{type(value).__name__}:{exact!r}" if exact is not None else str(id(value))
