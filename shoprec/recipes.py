"""How each contract feature is computed, declared as data next to the feature itself.

A recipe says *what* a feature means (count these events over that window, smooth this ratio,
copy that catalogue column) without naming the feature again; the feature builder
(``feature_repo.build``) interprets recipes generically. Adding a feature to the contract with
an existing recipe kind therefore needs no code change anywhere else, and the offline snapshot
builder and any online updater read the same definition.

Windows are in whole days and end at the snapshot time (exclusive), so a snapshot taken at
midnight of day D only sees events strictly before D: no label leakage into training rows of D.

Request-time recipes (:class:`RequestPart`) are the exception: they are not snapshotted at all
but computed from the request itself (a Feast on-demand feature view), offline from the training
row's event and online from the serving request, by the same function
(``feature_repo.request_context.compute``).
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
    """The ``rank``-th most frequent value of a catalogue column over the user's ``events``.

    ``rank=1`` is the mode; ``rank=2`` the runner-up, and so on (ties: lowest value first).
    Undefined (the feature's default) when fewer than ``rank`` distinct values occurred.
    """

    attr: str
    events: tuple[str, ...]
    window_days: int
    rank: int = 1


@dataclass(frozen=True)
class DaysSinceLast:
    """Days from the entity's last ``events`` event in the window to the snapshot time.

    Fractional (an event at 18:00 the day before a midnight snapshot gives 0.25). Undefined
    (the feature's default, which should be ``window_days``: "at least that long ago") when the
    entity had no such event in the window.
    """

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


@dataclass(frozen=True)
class Band:
    """Index of the band a numeric column of the entity's table falls into.

    ``edges`` are fixed, increasing boundaries declared in the contract (not quantiles of the
    data, so a band means the same thing in every snapshot and in every run): band ``0`` is
    ``value < edges[0]``, band ``k`` is ``edges[k-1] <= value < edges[k]`` and the last band
    ``len(edges)`` is ``value >= edges[-1]``. A missing value is undefined (the default).
    """

    column: str
    edges: tuple[float, ...]


ITEM = "item_id"
"""``History.value`` for the id of each event's item."""
GAP_HOURS = "gap_hours"
"""``History.value`` for the hours between each event and the snapshot time."""


@dataclass(frozen=True)
class History:
    """The entity's last ``Feature.max_len`` ``events`` in the window, oldest first.

    Attributes:
        events: Event types that enter the history (ties in time: funnel order, then item id).
        value: What each element is: :data:`ITEM` (the event's item id), a column of the items
            table (e.g. ``category_id``; ``-1`` for an item missing from the table, which is
            also the pad value, so models mask it), or :data:`GAP_HOURS` (hours from the event
            to the snapshot time, always > 0 because events are strictly before it).
        window_days: Only events in ``[D - window_days, D)`` enter the snapshot of day ``D``;
            a user with none gets an empty history (all padding), like a cold user.
    """

    events: tuple[str, ...]
    value: str
    window_days: int


@dataclass(frozen=True)
class RequestPart:
    """A feature computed at request time from a request field (a Feast on-demand view).

    Attributes:
        field: Name of a :class:`shoprec.contract.RequestField`.
        part: ``hour`` (0-23, UTC) or ``weekday`` (0 = Monday, UTC) of a timestamp field, or
            ``code``: the position of a string field's value in ``values``.
        values: For ``code``, the closed set of known values; anything else (or a missing
            value) is undefined (the default).
    """

    field: str
    part: str
    values: tuple[str, ...] = ()


Recipe = (Count | SmoothedRatio | MeanItemAttr | TopItemAttr | DaysSinceLast | Attr | DaysSince
          | Band | History | RequestPart)
