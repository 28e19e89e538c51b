"""Thresholds of the data gate, kept apart from GX so the suites and the gate share one type."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateConfig:
    """How strict the validation gate is.

    Row-level limits decide which single rows are quarantined; batch-level limits decide
    whether the batch as a whole may be committed at all.

    Attributes:
        min_rows: Fewest rows a staged batch may have; an empty batch usually means an upstream
            export broke, and committing it would silently freeze the features.
        max_quarantine_share: Largest share of the rows read from the landing files that ingest
            and validation together may set aside. Above it the source is probably broken
            (a changed format, a new enum value) and the rest of the batch is suspect too.
        max_unknown_item_share: Largest share of valid events whose item is missing from the
            catalogue table. A few are normal (the catalogue lags); many mean mismatched ids.
        max_age_days: Oldest plausible event, in days before ``now``. Together with
            ``future_skew_minutes`` this is the sane window that catches epoch seconds read as
            milliseconds (1970) or milliseconds read as seconds (tens of thousands of years).
        future_skew_minutes: How far in the future an event may lie, to allow for client clock
            skew; anything later is a broken clock or a unit error.
        freshness_days: If set, the newest valid event must be at most this many days old. Off
            by default so backfills of historical data pass.
    """

    min_rows: int = 1
    max_quarantine_share: float = 0.2
    max_unknown_item_share: float = 0.05
    max_age_days: float = 3650.0
    future_skew_minutes: float = 10.0
    freshness_days: float | None = None

    def __post_init__(self) -> None:
        """Reject thresholds that would make the gate meaningless instead of failing later."""
        for name in ("max_quarantine_share", "max_unknown_item_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"GateConfig.{name} must be a share in [0, 1], got {value}")
        if self.min_rows < 0:
            raise ValueError(f"GateConfig.min_rows must be >= 0, got {self.min_rows}")
        if self.max_age_days <= 0 or self.future_skew_minutes < 0:
            raise ValueError("GateConfig.max_age_days must be > 0 and future_skew_minutes >= 0, "
                             f"got {self.max_age_days} and {self.future_skew_minutes}")
        if self.freshness_days is not None and self.freshness_days <= 0:
            raise ValueError(f"GateConfig.freshness_days must be > 0, got {self.freshness_days}")
