"""serving.experiments: stable hash assignment, independent layers, variant encoding."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest

from serving.experiments import (
    Layer,
    Variant,
    assign,
    assign_layer,
    check_layers,
    decode,
    encode,
    position,
)


def layer(name: str = "ranker", salt: str = "s1", weights: tuple[float, ...] = (50, 50),
          param: str = "use_ranker") -> Layer:
    values = [True, False] if param == "use_ranker" else [0, 10]
    return Layer(name, salt, tuple(Variant(f"v{i}", w, {param: values[i]})
                                   for i, w in enumerate(weights)))


def test_position_is_the_documented_hash() -> None:
    digest = hashlib.sha256(b"s1:7").digest()
    assert position("s1", 7) == int.from_bytes(digest[:8], "big") / 2**64
    assert position("s1", 7) == position("s1", 7) != position("s2", 7)


def test_assignment_follows_the_cut_points() -> None:
    lay = layer(weights=(30, 70))
    for user in range(200):
        expected = "v0" if position("s1", user) < 0.3 else "v1"
        assert assign_layer(lay, user).name == expected


def test_split_matches_weights_and_zero_weight_is_never_chosen() -> None:
    counts = Counter(assign_layer(layer(weights=(100, 0)), u).name for u in range(100))
    assert counts == {"v0": 100}
    three = Layer("x", "salt", (Variant("a", 1), Variant("b", 0), Variant("c", 3)))
    counts = Counter(assign_layer(three, u).name for u in range(20_000))
    assert counts["b"] == 0
    assert abs(counts["a"] / 20_000 - 0.25) < 0.015


def test_layers_are_independent() -> None:
    a, b = layer("a", "salt-a"), layer("b", "salt-b", param="popularity_quota")
    cells = Counter((assign_layer(a, u).name, assign_layer(b, u).name) for u in range(20_000))
    for cell in [("v0", "v0"), ("v0", "v1"), ("v1", "v0"), ("v1", "v1")]:
        assert abs(cells[cell] / 20_000 - 0.25) < 0.015, cells


def test_raising_a_weight_only_moves_users_between_cut_points() -> None:
    before, after = layer(weights=(50, 50)), layer(weights=(60, 40))
    for u in range(2000):
        if assign_layer(before, u).name == "v0":
            assert assign_layer(after, u).name == "v0"


def test_assign_fills_defaults_and_returns_every_layer() -> None:
    layers = check_layers([layer("b", "sb", (0, 100), "popularity_quota")])
    assert assign(layers, 5) == ({"b": "v1"}, {"use_ranker": True, "popularity_quota": 10,
                                               "diversity": ""})
    assert assign((), 5) == ({}, {"use_ranker": True, "popularity_quota": 0, "diversity": ""})


def test_encode_decode_round_trip() -> None:
    text = encode({"recall_quota": "pop_mix", "ranker": "champion"})
    assert text == "ranker:champion,recall_quota:pop_mix"
    assert decode(text) == {"ranker": "champion", "recall_quota": "pop_mix"}
    assert decode("") == {}


@pytest.mark.parametrize("text", ["ranker", "ranker:", "Ranker:x", "a:b,a:c", "a:b;c:d"])
def test_decode_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="is not a distinct 'layer:variant' pair"):
        decode(text)


@pytest.mark.parametrize("build,message", [
    (lambda: Variant("Bad Name", 1), "variant name 'Bad Name' must match"),
    (lambda: Variant("a", -1), "weight must be a number >= 0"),
    (lambda: Variant("a", 1, {"speed": 1}), "unknown parameter 'speed'"),
    (lambda: Variant("a", 1, {"use_ranker": "yes"}), "use_ranker must be a bool"),
    (lambda: Variant("a", 1, {"popularity_quota": -2}), "must be a non-negative int"),
    (lambda: Variant("a", 1, {"diversity": "shuffle"}), "diversity must be one of"),
    (lambda: Layer("x", "", (Variant("a", 1),)), "needs a non-empty salt"),
    (lambda: Layer("x", "s", (Variant("a", 1), Variant("a", 1))), "needs distinct variants"),
    (lambda: Layer("x", "s", (Variant("a", 0),)), "weights sum to 0"),
    (lambda: Layer("x", "s", (Variant("a", 1, {"use_ranker": True}), Variant("b", 1))),
     "every variant must set the same parameters"),
    (lambda: check_layers([layer("a", "s1"), layer("b", "s1", param="popularity_quota")]),
     r"repeat the salt\(s\) \['s1'\]"),
    (lambda: check_layers([layer("a", "s1"), layer("b", "s2")]),
     "parameter 'use_ranker' is set by layers 'a' and 'b'"),
])
def test_bad_experiments_are_named(build, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build()
