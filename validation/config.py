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
        max_age_days: Oldest plausible event, in days before ``now`` (``None``: no relative
            bound, for historical dumps such as MovieLens 1997). Together with ``earliest`` and
            ``future_skew_minutes`` this is the sane window that catches epoch seconds read as
            milliseconds (1970) or milliseconds read as seconds (tens of thousands of years).
        earliest: Absolute floor of the window (ISO date, UTC), applied always: seconds taken
            for milliseconds land in January 1970, decades before any e-commerce log.
        future_skew_minutes: How far in the future an event may lie, to allow for client clock
            skew; anything later is a broken clock or a unit error.
        freshness_days: If set, the newest valid event must be at most this many days old. Off
            by default so backfills of historical data pass.
        volume_window: How many previous committed batches (by commit time, from the ledgers)
            form the trailing mean the batch volume is compared with.
        min_volume_ratio: Smallest allowed ``read / trailing mean``: a batch far smaller than
            usual usually means a broken or partial export.
        max_volume_ratio: Largest allowed ratio: a sudden flood usually means a re-sent
            backlog or a bot. The check is skipped (with a note) while there is no history.
    """

    min_rows: int = 1
    max_quarantine_share: float = 0.2
    max_unknown_item_share: float = 0.05
    max_age_days: float | None = 3650.0
    earliest: str = "1990-01-01"
    future_skew_minutes: float = 10.0
    freshness_days: float | None = None
    volume_window: int = 7
    min_volume_ratio: float = 0.2
    max_volume_ratio: float = 5.0

    def __post_init__(self) -> None:
        """Reject thresholds that would make the gate meaningless instead of failing later."""
        for name in ("max_quarantine_share", "max_unknown_item_share"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"GateConfig.{name} must be a share in [0, 1], got {value}")
        if self.min_rows < 0:
            raise ValueError(f"GateConfig.min_rows must be >= 0, got {self.min_rows}")
        if (self.max_age_days is not None and self.max_age_days <= 0) \
                or self.future_skew_minutes < 0:
            raise ValueError("GateConfig.max_age_days must be > 0 and future_skew_minutes >= 0, "
                             f"got {self.max_age_days} and {self.future_skew_minutes}")
        if not 0 <= self.min_volume_ratio <= 1 <= self.max_volume_ratio:
            raise ValueError("GateConfig volume band must satisfy 0 <= min_volume_ratio <= 1 <= "
                             f"max_volume_ratio, got [{self.min_volume_ratio}, "
                             f"{self.max_volume_ratio}]")
        if self.volume_window < 1:
            raise ValueError(f"GateConfig.volume_window must be >= 1, got {self.volume_window}")
        if self.freshness_days is not None and self.freshness_days <= 0:
            raise ValueError(f"GateConfig.freshness_days must be > 0, got {self.freshness_days}")
