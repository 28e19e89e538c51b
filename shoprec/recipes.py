"""How each contract feature is computed, declared as data next to the feature itself.

A recipe says *what* a feature means (count these events over that window, smooth this ratio,
copy that catalogue column) without naming the feature again; the feature builder
(``feature_repo.build``) interprets recipes generically. Adding a feature to the contract with
an existing recipe kind therefore needs no code change anywhere else, and the offline snapshot
builder and any online updater read the same definition.

Windows are in whole days and end at the snapshot time (exclusive), so a snapshot taken at
midnight of day D only sees events strictly before D: no label leakage into training rows of D.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Count:
    """Number of the entity's events whose type is in ``events`` within ``window_days``."""

    events: tuple[str, ...]
    window_days: int


@dataclass(frozen=True)
class SmoothedRatio:
    """``(numerator + alpha) / (denominator + alpha + beta)``: a Beta(alpha, beta) posterior mean.

    Smoothing keeps a brand-new item with one impression and one click from getting CTR 1.0;
    with no data the value is the prior mean ``alpha / (alpha + beta)``.

    Attributes:
        numerator: Name of a ``Count`` feature of the same view.
        denominator: Name of a ``Count`` feature of the same view.
        alpha: Prior successes.
        beta: Prior failures.
    """

    numerator: str
    denominator: str
    alpha: float
    beta: float


@dataclass(frozen=True)
class MeanItemAttr:
    """Mean of a numeric catalogue column over the items of the user's ``events`` in the window."""

    attr: str
    events: tuple[str, ...]
    window_days: int


@dataclass(frozen=True)
class TopItemAttr:
    """Most frequent value of a catalogue column over the user's ``events`` (ties: lowest value)."""

    attr: str
    events: tuple[str, ...]
    window_days: int


@dataclass(frozen=True)
class Attr:
    """A column of the entity's own table (``items`` / ``users``) as of the snapshot."""

    column: str


@dataclass(frozen=True)
class DaysSince:
    """Days from a timestamp column of the entity's table to the snapshot time (never negative)."""

    column: str


Recipe = Count | SmoothedRatio | MeanItemAttr | TopItemAttr | Attr | DaysSince
