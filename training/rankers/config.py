"""Names and hyper-parameters shared by every ranker; importing this module never imports TF.

Kept apart from the model modules so that the trainer, the DAGs and the CLI can list the rankers
and build a :class:`RankerConfig` at parse time for nothing more than a dataclass import.
"""

from __future__ import annotations

from dataclasses import dataclass

from training.ranker_names import (  # noqa: F401  (re-exported; their home imports nothing)
    MULTI_TASK_RANKERS,
    RANKERS,
)

CLICK_TASK = "ctr"
"""Task name of P(click | impression): the primary score every ranker exports."""

CONVERSION_TASK = "cvr"
"""Task name of P(purchase | click): post-click conversion."""

CTCVR = "ctcvr"
"""Extra ESMM output: P(click and purchase | impression) = pCTR x pCVR."""


def default_tasks(name: str) -> tuple[str, ...]:
    """The tasks ``name`` learns when nothing else is asked: (ctr,) or (ctr, cvr)."""
    if name not in RANKERS:
        raise ValueError(f"unknown ranker {name!r}; known: {list(RANKERS)}")
    return (CLICK_TASK, CONVERSION_TASK) if name in MULTI_TASK_RANKERS else (CLICK_TASK,)


@dataclass(frozen=True)
class RankerConfig:
    """Architecture and optimisation settings of the rankers (each model reads what it uses).

    Attributes:
        embedding_dim: Width of EVERY embedding (ids, categories, pooled histories, dense-as-field
            vectors). One width because FM/PNN/NFM take inner products between fields, and
            DIN-style attention compares the candidate with the history in the same space.
        hidden_units: The main ReLU MLP (deep part, experts of MMoE, towers of ESMM).
        dropout: Dropout rate after every hidden layer (0 disables it).
        l2: L2 weight: dense kernels through Keras regularizers (``model.losses``, added by
            ``tfrs.Model.train_step``), the shared input embeddings as a mini-batch-aware
            penalty on the rows a batch looks up (inside ``compute_loss``), so a 100k-row table
            is not decayed densely on every step.
        learning_rate: For the trainer's optimizer (the models do not create one).
        cross_layers: Number of DCN-v2 ``Cross`` layers.
        projection_dim: Low-rank DCN-v2 cross (``W = U V``, rank ``projection_dim``); ``None`` =
            full-rank.
        attention_units: Hidden layers of the DIN/DMR activation unit and of DIEN's auxiliary net.
        dice: Use Dice instead of PReLU in DIN/DIEN/DMR attention units and MLPs.
        attention_pooling: How DIN/DMR weigh the history: ``sum`` = raw activation-unit
            weights (the paper: the pooled vector's size says how much of the history relates
            to the candidate), ``softmax`` = weights normalised over the real positions (the
            authors' released code): the pooled vector keeps its scale however long the
            history grows, which matters when histories are longer at serving time than in
            the training window.
        attention_positions: Width of the recency (slot) embedding the DIN/DMR activation unit
            sees with every behaviour; 0 disables it. On by default: the unit otherwise
            weighs a month-old behaviour like yesterday's, which dilutes short-term interest.
        attention_match: Give the DIN/DMR activation unit, per behaviour, exact-match flags
            (same item id / same category as the candidate), so "the user just clicked this
            category" need not be learnt from embedding products alone.
        gru_units: Hidden size of DIEN's interest-extractor GRU and AUGRU.
        n_experts: MMoE experts.
        tower_units: Per-task tower of MMoE (after the gated mixture).
        residual_blocks: Residual blocks of ``deep_resnet`` (width ``hidden_units[0]``).
        product: PNN product layer: ``inner`` (IPNN) or ``outer`` (OPNN, sum-pooled).
        wide_cross_bins: Hash buckets of each pairwise categorical cross in the wide part.
        aux_loss_weight: Weight of DIEN's next-click and DMR's next-item auxiliary losses.
        task_weights: ``(task, weight)`` pairs; tasks not listed weigh 1.
        seed: Seeds weight initialisation (``tf.keras.utils.set_random_seed``) at build time.
    """

    embedding_dim: int = 16
    hidden_units: tuple[int, ...] = (128, 64)
    dropout: float = 0.0
    l2: float = 0.0
    learning_rate: float = 1e-3
    cross_layers: int = 2
    projection_dim: int | None = None
    attention_units: tuple[int, ...] = (64, 32)
    dice: bool = False
    attention_pooling: str = "sum"
    attention_positions: int = 8
    attention_match: bool = True
    gru_units: int = 16
    n_experts: int = 4
    tower_units: tuple[int, ...] = (32,)
    residual_blocks: int = 2
    product: str = "inner"
    wide_cross_bins: int = 10_000
    aux_loss_weight: float = 1.0
    task_weights: tuple[tuple[str, float], ...] = ()
    seed: int = 0

    def __post_init__(self) -> None:
        positive = {"embedding_dim": self.embedding_dim, "gru_units": self.gru_units,
                    "n_experts": self.n_experts, "wide_cross_bins": self.wide_cross_bins}
        bad = {k: v for k, v in positive.items() if v < 1}
        if bad:
            raise ValueError(f"RankerConfig needs positive values, got {bad}")
        for name in ("hidden_units", "attention_units", "tower_units"):
            units = getattr(self, name)
            if not units or any(u < 1 for u in units):
                raise ValueError(f"RankerConfig.{name} needs >= 1 positive width, got {units}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.l2 < 0 or self.learning_rate <= 0 or self.aux_loss_weight < 0:
            raise ValueError("l2 and aux_loss_weight must be >= 0 and learning_rate > 0, got "
                             f"{self.l2}, {self.aux_loss_weight}, {self.learning_rate}")
        if self.cross_layers < 0 or self.residual_blocks < 0 or self.attention_positions < 0:
            raise ValueError("cross_layers, residual_blocks and attention_positions must be "
                             f">= 0, got {self.cross_layers}, {self.residual_blocks}, "
                             f"{self.attention_positions}")
        if self.projection_dim is not None and self.projection_dim < 1:
            raise ValueError(f"projection_dim must be None or >= 1, got {self.projection_dim}")
        if self.attention_pooling not in ("sum", "softmax"):
            raise ValueError(f"attention_pooling must be 'sum' or 'softmax', got "
                             f"{self.attention_pooling!r}")
        if self.product not in ("inner", "outer"):
            raise ValueError(f"product must be 'inner' or 'outer', got {self.product!r}")
        tasks = [t for t, _ in self.task_weights]
        if len(set(tasks)) != len(tasks) or any(w < 0 for _, w in self.task_weights):
            raise ValueError(f"task_weights must name each task once with a weight >= 0, got "
                             f"{self.task_weights}")

    def task_weight(self, task: str) -> float:
        """Loss weight of ``task`` (1 unless ``task_weights`` says otherwise)."""
        return dict(self.task_weights).get(task, 1.0)
