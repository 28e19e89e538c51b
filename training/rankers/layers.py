"""Building blocks shared by the rankers: MLP, Dice, field interactions, linear terms.

Classes are defined on first use (``functools.cache``) so that importing this module does not
import TensorFlow; the pure formulas (:func:`fm_second_order`, :func:`bi_interaction`) are plain
functions so tests can check them on hand-sized inputs.
"""

from __future__ import annotations

import functools
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.rankers.inputs import tf_ops


def regularizer(l2: float) -> Any:
    """An L2 kernel regularizer, or None when ``l2`` is 0 (no useless zero losses)."""
    return tensorflow().keras.regularizers.l2(l2) if l2 > 0 else None


def bi_interaction(fields: Any) -> Any:
    """NFM bi-interaction pooling: ``sum_{i<j} v_i * v_j`` of ``[B, F, d]`` fields → ``[B, d]``.

    Computed as ``((sum v)^2 - sum v^2) / 2``, linear in F instead of quadratic.
    """
    tf = tf_ops()
    total = tf.reduce_sum(fields, axis=1)
    return 0.5 * (tf.square(total) - tf.reduce_sum(tf.square(fields), axis=1))


def fm_second_order(fields: Any) -> Any:
    """FM second-order term ``sum_{i<j} <v_i, v_j>`` of ``[B, F, d]`` fields → ``[B]``."""
    return tf_ops().reduce_sum(bi_interaction(fields), axis=1)


@functools.cache
def dice_class() -> type:
    """``Dice`` (DIN paper): a PReLU whose switch point follows the data distribution."""
    tf = tensorflow()

    class Dice(tf.keras.layers.Layer):
        """``p = sigmoid(BN(x)); f(x) = p * x + (1 - p) * alpha * x``.

        ``BN`` standardises each unit with batch mean/variance in training and with moving
        averages at inference (no scale/shift: ``alpha`` is the only learned parameter), so the
        rectifier's point adapts to where the inputs actually lie.
        """

        def __init__(self, epsilon: float = 1e-8, **kwargs: Any) -> None:
            """``epsilon`` guards the variance (the paper's 1e-8)."""
            super().__init__(**kwargs)
            self.bn = tf.keras.layers.BatchNormalization(axis=-1, center=False, scale=False,
                                                         epsilon=epsilon)

        def build(self, input_shape: Any) -> None:
            """One ``alpha`` per unit (last axis)."""
            self.alpha = self.add_weight(name="alpha", shape=(input_shape[-1],),
                                         initializer="zeros")
            super().build(input_shape)

        def call(self, x: Any, training: bool = False) -> Any:
            """Apply Dice to ``x`` (any rank; statistics over all but the last axis)."""
            p = tf.sigmoid(self.bn(x, training=training))
            return p * x + (1.0 - p) * self.alpha * x

    return Dice


def activation_layer(kind: str, sequence: bool = False) -> Any:
    """``relu``, ``prelu`` (alpha per unit, shared over positions if ``sequence``) or ``dice``."""
    tf = tensorflow()
    if kind == "relu":
        return tf.keras.layers.ReLU()
    if kind == "prelu":
        return tf.keras.layers.PReLU(shared_axes=[1] if sequence else None)
    if kind == "dice":
        return dice_class()()
    raise ValueError(f"unknown activation {kind!r}; expected relu, prelu or dice")


@functools.cache
def mlp_class() -> type:
    """``MLP``: Dense → activation → dropout, per hidden width."""
    tf = tensorflow()

    class MLP(tf.keras.layers.Layer):
        """A stack of hidden layers (no output layer: callers add their own heads)."""

        def __init__(self, units: tuple[int, ...], activation: str = "relu",
                     dropout: float = 0.0, l2: float = 0.0, sequence: bool = False,
                     **kwargs: Any) -> None:
            """Args: widths, activation kind, dropout rate, L2, and whether inputs are 3-D."""
            super().__init__(**kwargs)
            self.dense = [tf.keras.layers.Dense(u, kernel_regularizer=regularizer(l2))
                          for u in units]
            self.acts = [activation_layer(activation, sequence) for _ in units]
            self.drop = tf.keras.layers.Dropout(dropout) if dropout > 0 else None

        def call(self, x: Any, training: bool = False) -> Any:
            """Forward pass; dropout only when ``training``."""
            for dense, act in zip(self.dense, self.acts, strict=True):
                x = dense(x)
                x = act(x, training=training) if isinstance(act, dice_class()) else act(x)
                if self.drop is not None:
                    x = self.drop(x, training=training)
            return x

    return MLP


def mlp(units: tuple[int, ...], config: Any, activation: str = "relu",
        sequence: bool = False, name: str | None = None) -> Any:
    """An :func:`mlp_class` layer with the config's dropout and L2."""
    return mlp_class()(units, activation, config.dropout, config.l2, sequence, name=name)


@functools.cache
def dense_fields_class() -> type:
    """``DenseFields``: each standardised dense value ``x_j`` becomes the field ``x_j * v_j``."""
    tf = tensorflow()

    class DenseFields(tf.keras.layers.Layer):
        """Lets FM/PNN/NFM interact numeric inputs with embedded ones (DeepFM's treatment)."""

        def __init__(self, dim: int, **kwargs: Any) -> None:
            """``dim``: the embedding width the other fields have."""
            super().__init__(**kwargs)
            self.dim = dim

        def build(self, input_shape: Any) -> None:
            """One vector ``v_j`` per dense input."""
            self.v = self.add_weight(name="v", shape=(input_shape[-1], self.dim),
                                     initializer="glorot_uniform")
            super().build(input_shape)

        def call(self, dense: Any) -> Any:
            """``[B, n]`` → ``[B, n, dim]``."""
            return dense[:, :, None] * self.v[None]

    return DenseFields


@functools.cache
def linear_class() -> type:
    """``Linear``: the first-order (one-hot logistic regression) term of Wide/FM models."""
    tf = tensorflow()

    class Linear(tf.keras.layers.Layer):
        """``sum_i w[bucket_i] + w_dense . dense + b``: one weight per hashed bucket per field."""

        def __init__(self, vocabs: dict[str, int], l2: float = 0.0, **kwargs: Any) -> None:
            """``vocabs``: bucket count of every scalar id/categorical input, by name."""
            super().__init__(**kwargs)
            self.weights_by_field = {
                n: tf.keras.layers.Embedding(v, 1, embeddings_initializer="zeros")
                for n, v in vocabs.items()}
            self.dense = tf.keras.layers.Dense(1, kernel_regularizer=regularizer(l2))

        def call(self, buckets: dict[str, Any], dense: Any) -> Any:
            """``[B]`` logit contribution from hashed buckets and ``[B, n]`` dense values."""
            out = (tf.squeeze(self.dense(dense), -1) if dense.shape[-1]
                   else tf.zeros(tf.shape(dense)[:1]))
            for name, table in self.weights_by_field.items():
                out += tf.squeeze(table(buckets[name]), -1)
            return out

    return Linear


def linear(encoder: Any, config: Any, name: str = "linear") -> Any:
    """A :func:`linear_class` layer over the encoder's scalar id/categorical inputs."""
    return linear_class()({s.name: s.vocab for s in encoder.cat_specs}, config.l2, name=name)


def logit_head(name: str = "logit") -> Any:
    """``Dense(1)`` whose output the caller squeezes to ``[B]`` logits."""
    return tensorflow().keras.layers.Dense(1, name=name)
