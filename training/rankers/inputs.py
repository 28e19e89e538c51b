"""Raw contract inputs → the tensors every ranker builds on, inside the model.

:func:`training.preprocessing.encode` returns one flat vector; rankers need more structure:
FM-style models take inner products between *fields*, and DIN/DIEN/DMR attend from the candidate
to *each position* of a behaviour history. :class:`FeatureEncoder` therefore returns an
:class:`Encoded` with per-field embeddings, standardised dense values and, per group of aligned
histories, per-position keys, the candidate query and the pad mask.

Conventions (the contract's): a ``sequence`` input is ``[B, max_len]``, newest last, left-padded
with ``-1`` (id/category histories, :data:`ID_PAD`) or ``0.0`` (float histories,
:data:`FLOAT_PAD`); pad positions are masked out everywhere. A history with a ``target`` is hashed
and embedded by its target's OWN ``Hashing`` + ``Embedding`` layers, so "item 7 in the history"
and "candidate item 7" are the same vector.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from shoprec.tf_runtime import tensorflow
from training.preprocessing import InputSpec, Stats

tf_ops = functools.cache(tensorflow)
"""``tensorflow()`` for helpers that run inside traced graphs: the cached wrapper is opaque to
AutoGraph, which would otherwise try (and warn about failing) to convert the env-var setup."""

ID_PAD = -1
"""Pad element of id/category histories (the contract default of those features)."""
FLOAT_PAD = 0.0
"""Pad element of float histories (e.g. time gaps)."""
SCALAR_CATEGORICAL = ("id", "categorical")
SCALAR_DENSE = ("count", "numeric")


@dataclass(frozen=True)
class SeqGroup:
    """Histories of one length, aligned position by position, attended against their targets.

    Attributes:
        names: The id histories of the group (each has a ``target``).
        targets: Their targets, same order.
        keys: ``[B, L, k]`` concatenated history embeddings, ``k = len(names) * dim``.
        query: ``[B, k]`` the candidate's target embeddings, same layout as ``keys``.
        mask: ``[B, L]`` float32, 1 at real positions (any history non-pad), 0 at pads.
        side: ``[B, L, s]`` standardised float histories of the same length (0 at pads), or None.
        buckets: Per history, ``[B, L]`` hashed buckets (DMR's output embeddings need them).
        target_buckets: Per target, ``[B]`` hashed buckets.
    """

    names: tuple[str, ...]
    targets: tuple[str, ...]
    keys: Any
    query: Any
    mask: Any
    side: Any
    buckets: tuple[Any, ...]
    target_buckets: tuple[Any, ...]


@dataclass(frozen=True)
class Encoded:
    """Everything a ranker reads, for one batch.

    Attributes:
        scalar_fields: ``[B, Fs, d]`` embeddings of scalar id/categorical inputs (spec order).
        targeted_pooled: ``[B, Ft, d]`` masked-mean embeddings of the histories with a target.
        free_pooled: ``[B, Fu, d]`` masked-mean embeddings of id histories without a target.
        dense: ``[B, n]`` standardised counts/numerics, then masked means of float histories.
        buckets: Hashed bucket ``[B]`` of every scalar id/categorical input, by name.
        groups: Attention groups (empty when no history has a target).
        penalty: Sum of squares of the embedding rows this batch used, divided by ``B``.
    """

    scalar_fields: Any
    targeted_pooled: Any
    free_pooled: Any
    dense: Any
    buckets: dict[str, Any]
    groups: tuple[SeqGroup, ...]
    penalty: Any

    def fields(self, pool_targeted: bool = True) -> Any:
        """``[B, F, d]`` field embeddings; attention models pass False and attend instead."""
        tf = tf_ops()
        parts = [self.scalar_fields, self.free_pooled]
        if pool_targeted:
            parts.insert(1, self.targeted_pooled)
        return tf.concat(parts, axis=1)

    def flat(self, pool_targeted: bool = True) -> Any:
        """``[B, F * d + n]``: flattened fields followed by the dense values (MLP input)."""
        tf = tf_ops()
        f = self.fields(pool_targeted)
        return tf.concat([tf.reshape(f, [-1, f.shape[1] * f.shape[2]]), self.dense], axis=1)


def validate_specs(specs: list[InputSpec], stats: Stats) -> None:
    """Raise ``ValueError``/``KeyError`` naming the input when the specs cannot be encoded."""
    if not specs:
        raise ValueError("a ranker needs at least one input")
    by_name = {s.name: s for s in specs}
    if len(by_name) != len(specs):
        raise ValueError(f"duplicate input names in {[s.name for s in specs]}")
    for s in specs:
        if s.kind in SCALAR_CATEGORICAL:
            if s.vocab <= 0:
                raise ValueError(f"input {s.name!r} ({s.kind}) needs vocab > 0 for hashing")
        elif s.kind in SCALAR_DENSE:
            if s.name not in stats:
                raise KeyError(f"no train statistics for {s.kind} input {s.name!r}")
        elif s.kind == "sequence":
            _validate_sequence(s, by_name, stats)
        else:
            raise ValueError(f"unknown kind {s.kind!r} of input {s.name!r}")


def _validate_sequence(s: InputSpec, by_name: dict[str, InputSpec], stats: Stats) -> None:
    if s.max_len < 1:
        raise ValueError(f"sequence input {s.name!r} needs max_len >= 1, got {s.max_len}")
    if s.dtype == "float64":
        if s.target:
            raise ValueError(f"float sequence {s.name!r} cannot have a target ({s.target!r}): "
                             "only id histories share an embedding with a candidate")
        if s.name not in stats:
            raise KeyError(f"no train statistics for float sequence {s.name!r}: pass "
                           "(mean, variance) of its non-pad elements (fit_ranker_stats)")
        return
    if s.dtype != "int64":
        raise ValueError(f"sequence {s.name!r} has element dtype {s.dtype!r}; "
                         "int64 or float64 expected")
    if not s.target:
        if s.vocab <= 0:
            raise ValueError(f"id sequence {s.name!r} without target needs vocab > 0")
        return
    target = by_name.get(s.target)
    if target is None or target.kind not in SCALAR_CATEGORICAL:
        raise ValueError(f"sequence {s.name!r} targets {s.target!r}, which is not a scalar "
                         "id/categorical input of this model")
    if s.vocab not in (0, target.vocab):
        raise ValueError(f"sequence {s.name!r} has vocab {s.vocab} but shares the table of "
                         f"{target.name!r} (vocab {target.vocab})")


def fit_sequence_stats(columns: Any, specs: list[InputSpec]) -> Stats:
    """(mean, variance) of ``log1p`` of the non-pad elements of every float sequence input.

    The same statistics :func:`training.preprocessing.fit_stats` computes (the trainer calls
    that one): the encoder standardises ``log1p(gap)``, because raw gaps in hours span four
    orders of magnitude and, standardised linearly, would swamp the attention unit's inputs.

    Args:
        columns: A DataFrame or mapping: input name → ``[N, max_len]`` array, or a column of
            per-row sequences in any form :func:`shoprec.sequences.pad_sequences` reads.
        specs: The model inputs; only float ``sequence`` ones are read.

    Returns:
        Stats to merge with :func:`training.preprocessing.fit_stats`'s (``fit_ranker_stats``).
    """
    import numpy as np
    import pandas as pd

    from shoprec.sequences import pad_sequences

    out: Stats = {}
    for s in specs:
        if s.kind == "sequence" and s.dtype == "float64":
            values = columns[s.name]
            if not isinstance(values, (np.ndarray, pd.Series)):
                values = np.asarray(values)
            padded = pad_sequences(values, s)
            real = np.log1p(np.maximum(padded[padded != FLOAT_PAD], 0.0))
            out[s.name] = (float(real.mean()), float(real.var())) if real.size else (0.0, 1.0)
    return out


def fit_ranker_stats(df: Any, specs: list[InputSpec]) -> Stats:
    """All train statistics a ranker needs: scalar counts/numerics and float histories."""
    from training.preprocessing import fit_stats

    scalar = [s for s in specs if s.kind != "sequence"]
    return {**fit_stats(df, scalar), **fit_sequence_stats(df, specs)}


@functools.cache
def encoder_class() -> type:
    """The encoder layer class, defined on first use so importing this module stays TF-free."""
    tf = tensorflow()

    class FeatureEncoder(tf.keras.layers.Layer):
        """Hashing + embeddings + normalisation from train stats, for every kind of input."""

        def __init__(self, specs: list[InputSpec], stats: Stats, dim: int,
                     **kwargs: Any) -> None:
            """Create the tables; ``dim`` is the width of every embedding."""
            super().__init__(**kwargs)
            validate_specs(specs, stats)
            self.dim = dim
            self.cat_specs = [s for s in specs if s.kind in SCALAR_CATEGORICAL]
            self.dense_specs = [s for s in specs if s.kind in SCALAR_DENSE]
            seqs = [s for s in specs if s.kind == "sequence"]
            self.float_seqs = [s for s in seqs if s.dtype == "float64"]
            self.targeted = [s for s in seqs if s.dtype == "int64" and s.target]
            self.free = [s for s in seqs if s.dtype == "int64" and not s.target]
            self.hashing, self.tables = {}, {}
            for s in self.cat_specs + self.free:
                self.hashing[s.name] = tf.keras.layers.Hashing(s.vocab, name=f"{s.name}_hash")
                self.tables[s.name] = tf.keras.layers.Embedding(s.vocab, dim, name=f"{s.name}_emb")
            self.norm = None
            if self.dense_specs:
                self.norm = tf.keras.layers.Normalization(
                    mean=[stats[s.name][0] for s in self.dense_specs],
                    variance=[stats[s.name][1] for s in self.dense_specs], name="dense_norm")
            # Python floats, not layers: standardising a float history needs no variables.
            self.seq_stats = {s.name: stats[s.name] for s in self.float_seqs}
            self.group_lens = list(dict.fromkeys(s.max_len for s in self.targeted))
            self.group_members = [[s for s in self.targeted if s.max_len == n]
                                  for n in self.group_lens]
            self.n_dense = len(self.dense_specs) + len(self.float_seqs)

        def _lookup(self, table: str, values: Any) -> tuple[Any, Any]:
            bucket = self.hashing[table](values)
            # float32 whatever the policy: masks, pooling and attention stay in one dtype
            # under mixed_float16 too (the Dense layers cast to their compute dtype).
            return bucket, tf.cast(self.tables[table](bucket), tf.float32)

        def _float_seq(self, s: InputSpec, x: Any) -> tuple[Any, Any]:
            """Standardised ``log1p`` of a float history (the scale its stats were fit on)."""
            x = tf.cast(x, tf.float32)
            mask = tf.cast(tf.not_equal(x, FLOAT_PAD), tf.float32)
            mean, var = self.seq_stats[s.name]
            z = (tf.math.log1p(tf.maximum(x, 0.0)) - mean) / max(var, 1e-12) ** 0.5
            return z * mask, mask

        def encode(self, features: dict[str, Any]) -> Encoded:
            """Encode a batch of raw inputs (a dict by input name; extra keys are ignored)."""
            batch = tf.shape(features[(self.cat_specs or self.dense_specs or
                                       self.float_seqs or self.free)[0].name])[0]
            penalty = tf.constant(0.0)
            buckets, cat_emb = {}, {}
            for s in self.cat_specs:
                buckets[s.name], e = self._lookup(s.name, features[s.name])
                cat_emb[s.name] = e
                penalty += tf.reduce_sum(tf.square(e))
            seq_emb, seq_buckets, seq_mask = {}, {}, {}
            for s in self.targeted + self.free:
                raw = features[s.name]
                seq_mask[s.name] = tf.cast(tf.not_equal(raw, ID_PAD), tf.float32)
                seq_buckets[s.name], e = self._lookup(s.target or s.name, raw)
                seq_emb[s.name] = e * seq_mask[s.name][..., None]
                penalty += tf.reduce_sum(tf.square(seq_emb[s.name]))
            dense = []
            if self.dense_specs:
                dense.append(self.norm(tf.stack([_scalar(features[s.name], s.kind)
                                                 for s in self.dense_specs], axis=1)))
            floats = {s.name: self._float_seq(s, features[s.name]) for s in self.float_seqs}
            dense += [masked_mean(x[..., None], m) for x, m in floats.values()]

            def stack(embs: list[Any]) -> Any:
                return (tf.stack(embs, axis=1) if embs
                        else tf.zeros([batch, 0, self.dim], tf.float32))

            return Encoded(
                scalar_fields=stack(list(cat_emb.values())),
                targeted_pooled=stack([masked_mean(seq_emb[s.name], seq_mask[s.name])
                                       for s in self.targeted]),
                free_pooled=stack([masked_mean(seq_emb[s.name], seq_mask[s.name])
                                   for s in self.free]),
                dense=tf.concat(dense, axis=1) if dense else tf.zeros([batch, 0], tf.float32),
                buckets=buckets,
                groups=tuple(self._group(n, buckets, cat_emb, seq_emb, seq_buckets, seq_mask,
                                         floats) for n in self.group_lens),
                penalty=penalty / tf.cast(batch, tf.float32))

        def _group(self, length: int, buckets: dict[str, Any], cat_emb: dict[str, Any],
                   emb: dict[str, Any], seq_buckets: dict[str, Any], masks: dict[str, Any],
                   floats: dict[str, Any]) -> SeqGroup:
            members = self.group_members[self.group_lens.index(length)]
            side = [floats[s.name][0][..., None] for s in self.float_seqs if s.max_len == length]
            mask = tf.reduce_max(tf.stack([masks[s.name] for s in members], axis=-1), axis=-1)
            query = [cat_emb[s.target] for s in members]
            return SeqGroup(
                names=tuple(s.name for s in members), targets=tuple(s.target for s in members),
                keys=tf.concat([emb[s.name] for s in members], axis=-1),
                query=tf.concat(query, axis=-1), mask=mask,
                side=tf.concat(side, axis=-1) * mask[..., None] if side else None,
                buckets=tuple(seq_buckets[s.name] for s in members),
                target_buckets=tuple(buckets[s.target] for s in members))

    return FeatureEncoder


def _scalar(x: Any, kind: str) -> Any:
    tf = tf_ops()
    x = tf.cast(x, tf.float32)
    # Clamp at 0 like training.preprocessing: a negative count must not become NaN at serving.
    return tf.math.log1p(tf.maximum(x, 0.0)) if kind == "count" else x


def masked_mean(values: Any, mask: Any) -> Any:
    """Mean of ``values [B, L, d]`` over positions where ``mask [B, L]`` is 1; 0 when none."""
    tf = tf_ops()
    total = tf.reduce_sum(values * mask[..., None], axis=1)
    return total / tf.maximum(tf.reduce_sum(mask, axis=1, keepdims=True), 1.0)

