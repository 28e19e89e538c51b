"""Switches of the two-tower model beyond :class:`training.config.ModelConfig` (TF-free).

Kept apart from ``ModelConfig`` (shared with the ranker) so that the retrieval-only choices
(sampling-bias correction, mixed negatives, the user-tower architecture) live next to the code
that reads them; :func:`training.two_tower.build_two_tower` takes them as an argument.
"""

from __future__ import annotations

from dataclasses import dataclass

USER_TOWERS = ("pooled", "multi_interest")


@dataclass(frozen=True)
class TwoTowerOptions:
    """How the two-tower model samples negatives and represents users.

    Attributes:
        logq_correction: Subtract ``log q(item)`` from every candidate logit (Yi et al. 2019,
            TFRS ``candidate_sampling_probability``), ``q`` estimated from the item frequencies
            of the training rows (:class:`training.two_tower_sampling.ItemFrequency`). In-batch
            negatives are drawn in proportion to popularity; without the correction popular
            items are over-penalised as negatives.
        logq_weight: Multiplies ``log q`` (1 = the unbiased correction; values in (0, 1) keep
            part of the popularity prior, which offline recall often rewards).
        mixed_negatives: Extra negatives per batch drawn uniformly from the whole catalogue
            (Yang et al. 2020, "Mixed Negative Sampling"); 0 = in-batch only. Uniform draws
            reach the long tail and items with no training rows, which in-batch sampling never
            shows as negatives.
        remove_accidental_hits: Mask a candidate that is the row's own positive item appearing
            as another row's positive or as a sampled negative.
        user_tower: ``pooled`` (contract features, histories mean-pooled) or ``multi_interest``
            (K interest vectors from the item-id history, :mod:`training.multi_interest`).
        num_interests: K, for ``multi_interest``.
        attention_units: Hidden width of the multi-interest attention.
        seed: Seed of the negative sampler (a ``tf.random.Generator``), so runs repeat.

    Raises:
        ValueError: for a negative count, an unknown user tower or ``num_interests < 1``.
    """

    logq_correction: bool = True
    logq_weight: float = 1.0
    mixed_negatives: int = 0
    remove_accidental_hits: bool = True
    user_tower: str = "pooled"
    num_interests: int = 4
    attention_units: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.mixed_negatives < 0:
            raise ValueError(f"mixed_negatives must be >= 0, got {self.mixed_negatives}")
        if self.user_tower not in USER_TOWERS:
            raise ValueError(f"user_tower must be one of {USER_TOWERS}, got {self.user_tower!r}")
        if self.num_interests < 1 or self.attention_units < 1:
            raise ValueError("num_interests and attention_units must be >= 1, got "
                             f"{self.num_interests} and {self.attention_units}")
        if not 0.0 <= self.logq_weight <= 1.0:
            raise ValueError(f"logq_weight must be in [0, 1], got {self.logq_weight}")
