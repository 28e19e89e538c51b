"""A/B experiments as layers of variants, assigned by a stable hash of the user id.

A *layer* is one experiment (which ranker, which recall quotas, ...). Each layer splits ALL
traffic among its variants by weight; layers are independent of each other because each has its
own salt, so a user's variant in one layer says nothing about their variant in another.

Assignment (deterministic, no state, identical in every worker and in the offline report)::

    h        = first 8 bytes of sha256(f"{salt}:{user_id}") as a big-endian unsigned integer
    position = h / 2**64                                  # uniform in [0, 1)
    variant  = the first variant whose cumulative weight / total weight > position

Changing a layer's salt reshuffles its users (start a new experiment); changing weights moves
only the users between the old and new cut points.

A variant sets *parameters* of the serving pipeline (:data:`PARAMS`); a parameter no layer sets
keeps its default, and two layers may not set the same parameter (they would not be
independent). The variants a request got are written as one string, ``layer:variant`` pairs
joined by ``,`` in layer-name order (:func:`encode`), in the response and in every feedback row.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from serving.rerank import DIVERSITY

NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
"""Layer and variant names: safe inside the ``layer:variant,...`` encoding and metric labels."""

PARAMS: dict[str, tuple[type, Any]] = {
    "use_ranker": (bool, True),
    "popularity_quota": (int, 0),
    "diversity": (str, ""),
}
"""Pipeline parameters a variant may set: name -> (type, default when no layer sets it).

``diversity`` overrides the re-ranking diversity method of ``rerank.yaml`` (``""``: keep it).
"""
CHOICES: dict[str, tuple[Any, ...]] = {"diversity": DIVERSITY}


@dataclass(frozen=True)
class Variant:
    """One arm of a layer: a share of traffic and the pipeline parameters it sets."""

    name: str
    weight: float
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"variant name {self.name!r} must match {NAME.pattern}")
        if isinstance(self.weight, bool) or not isinstance(self.weight, int | float) \
                or not math.isfinite(self.weight) or self.weight < 0:
            raise ValueError(f"variant {self.name!r}: weight must be a number >= 0, "
                             f"got {self.weight!r}")
        for key, value in self.params.items():
            if key not in PARAMS:
                raise ValueError(f"variant {self.name!r}: unknown parameter {key!r}; "
                                 f"known: {sorted(PARAMS)}")
            kind = PARAMS[key][0]
            if type(value) is not kind or (kind is int and value < 0):
                raise ValueError(f"variant {self.name!r}: {key} must be a "
                                 f"{'non-negative ' if kind is int else ''}{kind.__name__}, "
                                 f"got {value!r}")
            if key in CHOICES and value not in CHOICES[key]:
                raise ValueError(f"variant {self.name!r}: {key} must be one of "
                                 f"{list(CHOICES[key])}, got {value!r}")


@dataclass(frozen=True)
class Layer:
    """One experiment: variants splitting all traffic, hashed with ``salt``."""

    name: str
    salt: str
    variants: tuple[Variant, ...]

    def __post_init__(self) -> None:
        if not NAME.match(self.name):
            raise ValueError(f"layer name {self.name!r} must match {NAME.pattern}")
        if not self.salt:
            raise ValueError(f"layer {self.name!r} needs a non-empty salt")
        names = [v.name for v in self.variants]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"layer {self.name!r} needs distinct variants, got {names}")
        if not sum(v.weight for v in self.variants) > 0:
            raise ValueError(f"layer {self.name!r}: variant weights sum to 0")
        keys = {k for v in self.variants for k in v.params}
        for v in self.variants:
            if set(v.params) != keys:
                raise ValueError(f"layer {self.name!r}: every variant must set the same "
                                 f"parameters {sorted(keys)}; {v.name!r} sets "
                                 f"{sorted(v.params)}")


def check_layers(layers: Sequence[Layer]) -> tuple[Layer, ...]:
    """Return ``layers`` sorted by name after checking they are independent.

    Raises:
        ValueError: if two layers share a name, a salt or a parameter.
    """
    seen: dict[str, str] = {}
    for kind, values in (("name", [x.name for x in layers]), ("salt", [x.salt for x in layers])):
        dupes = sorted({v for v in values if values.count(v) > 1})
        if dupes:
            raise ValueError(f"layers repeat the {kind}(s) {dupes}")
    for layer in layers:
        for key in layer.variants[0].params:
            if key in seen:
                raise ValueError(f"parameter {key!r} is set by layers {seen[key]!r} and "
                                 f"{layer.name!r}; a parameter belongs to one layer")
            seen[key] = layer.name
    return tuple(sorted(layers, key=lambda x: x.name))


def position(salt: str, user_id: int) -> float:
    """The user's stable position in ``[0, 1)`` for a layer salt (see the module docstring)."""
    digest = hashlib.sha256(f"{salt}:{int(user_id)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def assign_layer(layer: Layer, user_id: int) -> Variant:
    """The variant of ``layer`` that ``user_id`` falls into."""
    pos = position(layer.salt, user_id)
    total = sum(v.weight for v in layer.variants)
    cumulative = 0.0
    for v in layer.variants:
        cumulative += v.weight
        if v.weight > 0 and pos < cumulative / total:
            return v
    return next(v for v in reversed(layer.variants) if v.weight > 0)  # float rounding at 1.0


def assign(layers: Sequence[Layer], user_id: int) -> tuple[dict[str, str], dict[str, Any]]:
    """``({layer: variant}, pipeline parameters)`` for ``user_id`` (defaults filled in)."""
    variants: dict[str, str] = {}
    params = {key: default for key, (_, default) in PARAMS.items()}
    for layer in layers:
        v = assign_layer(layer, user_id)
        variants[layer.name] = v.name
        params.update(v.params)
    return variants, params


def encode(variants: Mapping[str, str]) -> str:
    """``{"ranker": "champion", "recall": "pop"}`` -> ``"ranker:champion,recall:pop"``."""
    return ",".join(f"{layer}:{variants[layer]}" for layer in sorted(variants))


def decode(text: str) -> dict[str, str]:
    """Inverse of :func:`encode`; ``""`` means no experiment.

    Raises:
        ValueError: naming the malformed part.
    """
    out: dict[str, str] = {}
    for part in filter(None, text.split(",")):
        layer, sep, variant = part.partition(":")
        if not (sep and NAME.match(layer) and NAME.match(variant)) or layer in out:
            raise ValueError(f"variant {text!r}: {part!r} is not a distinct 'layer:variant' "
                             f"pair of names matching {NAME.pattern}")
        out[layer] = variant
    return out
