"""Behaviour-sequence layers: DIN's activation unit, masked softmax and the AUGRU.

Every layer takes the ``[B, L]`` float mask of :class:`training.rankers.inputs.SeqGroup` (1 at
real positions, 0 at left padding) and guarantees that a pad position contributes nothing,
whatever its embedding is: a weight is multiplied by the mask (DIN), a score is pushed to -1e9
before the softmax (DIEN/DMR) and the recurrent layer skips masked steps (it carries the
previous state over, so leading pads leave the zero initial state untouched).
"""

from __future__ import annotations

import functools
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.rankers.inputs import tf_ops
from training.rankers.layers import dice_class, mlp_class


def masked_softmax(scores: Any, mask: Any) -> Any:
    """Softmax of ``[B, L]`` scores over positions where ``mask`` is 1; all-zero rows when none.

    A cold-start user (empty history) must get zero attention, not a uniform average of pads.
    """
    tf = tf_ops()
    probs = tf.nn.softmax(tf.where(mask > 0, scores, tf.fill(tf.shape(scores), -1e9)), axis=-1)
    return probs * mask


def attention_side(group: Any, match: bool) -> Any:
    """A group's per-slot side inputs, plus exact-match flags when ``match``.

    The flag of history ``h`` at slot ``t`` is 1 when that behaviour's hashed id equals the
    candidate's (same item, same category), 0 otherwise and at pads. The activation unit can
    learn "same category" from ``q * k`` of embeddings too, but only after the embeddings
    have separated the categories; the flag gives it the exact test from the first step (the
    hard "category hit" search of SIM, here as an input rather than a filter).

    Args:
        group: A :class:`training.rankers.inputs.SeqGroup`.
        match: Whether to append the flags.

    Returns:
        ``[B, L, s]`` side inputs, or None when there are none.
    """
    tf = tf_ops()
    if not match:
        return group.side
    flags = [tf.cast(tf.equal(b, t[:, None]), tf.float32) * group.mask
             for b, t in zip(group.buckets, group.target_buckets, strict=True)]
    flags = tf.stack(flags, axis=-1)
    return flags if group.side is None else tf.concat([group.side, flags], axis=-1)


def din_attention(config: Any, length: int, name: str) -> Any:
    """The DIN activation unit ``config`` (a ``RankerConfig``) asks for, over ``length`` slots."""
    act = "dice" if config.dice else "prelu"
    width = config.attention_positions
    return din_attention_class()(config.attention_units, act, config.l2,
                                 config.attention_pooling, positions=length if width else 0,
                                 position_dim=max(width, 1), name=name)


@functools.cache
def din_attention_class() -> type:
    """``DinAttention``: the DIN activation unit + weighted sum pooling."""
    tf = tensorflow()

    class DinAttention(tf.keras.layers.Layer):
        """``w_t = a([q, k_t, q - k_t, q * k_t, side_t, p_t]) * mask_t``; output ``sum_t w_t k_t``.

        With ``pooling="sum"`` weights are NOT softmax-normalised (the DIN paper keeps them raw
        so that the pooled vector's size reflects how much of the history relates to the
        candidate); ``"softmax"`` normalises them over the real positions.

        ``p_t`` (when ``positions`` > 0) is a learnt embedding of the slot's RECENCY: histories
        are newest-last and left-padded, so slot ``t`` of every row is the ``L - t``-th newest
        behaviour. Without it the unit cannot tell yesterday's click from last month's when both
        match the candidate equally, and a short-term effect (interest in what was clicked
        lately) is diluted by the long tail (DMR's position embeddings, time-aware DIN variants).
        """

        def __init__(self, units: tuple[int, ...], activation: str = "prelu",
                     l2: float = 0.0, pooling: str = "sum", positions: int = 0,
                     position_dim: int = 8, **kwargs: Any) -> None:
            """Activation unit of hidden widths ``units``; ``pooling``: ``sum`` or ``softmax``.

            Args:
                units: Hidden widths of the activation unit.
                activation: ``prelu`` or ``dice``.
                l2: L2 weight of the unit's kernels.
                pooling: ``sum`` (raw weights) or ``softmax`` (normalised over real slots).
                positions: History length ``L`` to learn a recency embedding for; 0 = none.
                position_dim: Width of that embedding.
                **kwargs: Keras layer arguments (``name``, ...).
            """
            super().__init__(**kwargs)
            if pooling not in ("sum", "softmax"):
                raise ValueError(f"pooling must be 'sum' or 'softmax', got {pooling!r}")
            if positions < 0 or (positions and position_dim < 1):
                raise ValueError(f"positions must be >= 0 and position_dim >= 1, got "
                                 f"{positions}, {position_dim}")
            self.pooling = pooling
            self.positions = positions
            self.unit = mlp_class()(units, activation, 0.0, l2, True)
            self.score = tf.keras.layers.Dense(1)
            self.position_table = (tf.keras.layers.Embedding(positions, position_dim,
                                                             name="positions")
                                   if positions else None)

        def weights_for(self, query: Any, keys: Any, mask: Any, side: Any = None,
                        training: bool = False) -> Any:
            """``[B, L]`` weights (0 at pads) of ``query [B, k]`` on ``keys [B, L, k]``.

            The unit's first Dense layer is applied to ``[q, k, q - k, q * k, side, p]``
            without building that ``[B, L, 4k + ...]`` tensor: with its kernel split by input
            block, ``x W = q (W_q + W_d) + k (W_k - W_d) + (q * k) W_p + side W_s + p W_pos``.
            The same weights and the same function, about half the multiply-adds (the query
            and position terms are computed once per row and once per slot instead of once
            per (row, slot)); the activation unit is the serving cost of DIN and DMR.
            """
            if self.position_table is not None and keys.shape[1] is not None \
                    and keys.shape[1] != self.positions:
                raise ValueError(f"history length {keys.shape[1]} != the {self.positions} "
                                 "positions this attention unit was built for")
            hidden = self._first(query, keys, side)
            mlp = self.unit
            for i, (dense, act) in enumerate(zip(mlp.dense, mlp.acts, strict=True)):
                if i:
                    hidden = dense(hidden)
                hidden = act(hidden, training=training) if isinstance(act, dice_class()) \
                    else act(hidden)
                if mlp.drop is not None:
                    hidden = mlp.drop(hidden, training=training)
            return tf.squeeze(self.score(hidden), -1) * mask

        def _first(self, query: Any, keys: Any, side: Any) -> Any:
            """The first Dense layer of the unit on the (never built) concatenated input."""
            d = keys.shape[-1]
            s = 0 if side is None else side.shape[-1]
            p = 0 if self.position_table is None else self.position_table.output_dim
            dense = self.unit.dense[0]
            if not dense.built:  # the same kernel [4k + s + p, units] the concat would build
                dense.build(tf.TensorShape([None, None, 4 * d + s + p]))
            w = dense.kernel
            w_q, w_k, w_d, w_p = w[:d], w[d:2 * d], w[2 * d:3 * d], w[3 * d:4 * d]
            out = tf.tensordot(keys, w_k - w_d, 1) + tf.tensordot(query[:, None, :] * keys,
                                                                  w_p, 1)
            out += tf.matmul(query, w_q + w_d)[:, None, :]
            if side is not None:
                out += tf.tensordot(side, w[4 * d:4 * d + s], 1)
            if p:
                pos = self.position_table(tf.range(self.positions))
                out += tf.matmul(pos, w[4 * d + s:])[None]
            return out + dense.bias if dense.use_bias else out

        def call(self, query: Any, keys: Any, mask: Any, side: Any = None,
                 training: bool = False) -> tuple[Any, Any]:
            """``(pooled [B, k], weights [B, L])``."""
            w = self.weights_for(query, keys, mask, side, training=training)
            if self.pooling == "softmax":
                w = masked_softmax(w, mask)
            return tf.reduce_sum(w[..., None] * keys, axis=1), w

    return DinAttention


@functools.cache
def augru_class() -> type:
    """``AUGRU``: DIEN's GRU with attentional update gate, as a Keras layer."""
    tf = tensorflow()

    class AUGRU(tf.keras.layers.Layer):
        """Run ``(inputs [B, L, in], scores [B, L]) → h_L`` (or every ``h_t``).

        One step, with ``a_t`` the attention score of step ``t``::

            u = sigmoid(x W_u + h U_u + b_u)      r = sigmoid(x W_r + h U_r + b_r)
            c = tanh(x W_c + r * (h U_c) + b_c)   u' = a_t * u
            h_t = (1 - u') * h + u' * c

        Weights: ``kernel [in, 3u]``, ``recurrent_kernel [u, 3u]``, ``bias [3u]``, gate order
        (update, reset, candidate). A score of 0 leaves the state unchanged (behaviours
        unrelated to the candidate do not move the interest); with every score 1 this is
        exactly a GRU, which is how DIEN's interest extractor uses it. Masked steps carry the
        state over, so leading pads keep the initial (zero) state.

        The loop is ``tf.scan`` over time, not Keras' ``RNN`` wrapper: that wrapper's AutoGraph
        conversion made tracing and SavedModel export several times slower.
        """

        def __init__(self, units: int, return_sequences: bool = False, **kwargs: Any) -> None:
            """``units``: state width; ``return_sequences``: every step's state, not the last."""
            super().__init__(**kwargs)
            self.units = units
            self.return_sequences = return_sequences

        def build(self, input_shape: Any) -> None:
            """Weights for ``in = input_shape[-1]`` input features."""
            n_in, u = int(input_shape[-1]), self.units
            self.kernel = self.add_weight(name="kernel", shape=(n_in, 3 * u),
                                          initializer="glorot_uniform")
            self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(u, 3 * u),
                                                    initializer="orthogonal")
            self.bias = self.add_weight(name="bias", shape=(3 * u,), initializer="zeros")
            super().build(input_shape)

        def step(self, x: Any, score: Any, h: Any) -> Any:
            """One update: ``x [B, in]``, ``score [B, 1]``, ``h [B, u]`` → new ``h``."""
            xu, xr, xc = tf.split(tf.matmul(x, self.kernel) + self.bias, 3, axis=-1)
            hu, hr, hc = tf.split(tf.matmul(h, self.recurrent_kernel), 3, axis=-1)
            update = score * tf.sigmoid(xu + hu)
            reset = tf.sigmoid(xr + hr)
            candidate = tf.tanh(xc + reset * hc)
            return (1.0 - update) * h + update * candidate

        def call(self, inputs: Any, scores: Any, mask: Any = None,
                 initial_state: Any = None) -> Any:
            """States after the sequence; ``mask [B, L]`` (bool or 0/1) skips pad steps."""
            inputs = tf.convert_to_tensor(inputs)
            scores = tf.cast(scores, inputs.dtype)
            mask = tf.ones_like(scores) if mask is None else tf.cast(mask, inputs.dtype)
            h0 = (tf.zeros([tf.shape(inputs)[0], self.units], inputs.dtype)
                  if initial_state is None else tf.convert_to_tensor(initial_state))

            def advance(h: Any, elems: tuple[Any, Any, Any]) -> Any:
                x, a, m = elems
                return m * self.step(x, a, h) + (1.0 - m) * h

            states = tf.scan(advance, (tf.transpose(inputs, [1, 0, 2]),
                                       tf.transpose(scores)[..., None],
                                       tf.transpose(mask)[..., None]), initializer=h0)
            return tf.transpose(states, [1, 0, 2]) if self.return_sequences else states[-1]

    return AUGRU
