"""Hypothesis strategies for request bodies, generated from the served OpenAPI spec.

Purely random JSON mostly fails at the first field, so bodies follow each endpoint's request
schema (``/docs.json``): required and optional properties, integers around their bounds, enums
plus an unknown value, strings around their length limits, arrays and nested objects. At every
node a value may instead be any JSON value, and objects may carry an unknown property, so the
bodies are mostly *near misses* - the inputs most likely to slip past validation into the code.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                               max_size=4),
    max_leaves=10)

TIMESTAMPS = ["2026-03-04T10:00:00Z", "2026-03-04", "yesterday", "9999-12-31T23:59:59",
              "0001-01-01T00:00:00", 0, 2**40, -1]


def _integer(schema: dict, hints: list[int]) -> st.SearchStrategy:
    lo, hi = schema.get("minimum", -2**31), schema.get("maximum", 2**31)
    edges = [lo - 1, lo, hi, hi + 1]
    return _rarely(st.integers(lo, min(hi, lo + 200)) | st.sampled_from(hints),
                   st.sampled_from(edges))


def _string(schema: dict) -> st.SearchStrategy:
    if "enum" in schema:
        return _rarely(st.sampled_from(schema["enum"]), st.just("unknown-value"))
    if schema.get("format") == "date-time":
        return st.sampled_from(TIMESTAMPS)
    longest = schema.get("maxLength", 16)
    return _rarely(st.text(max_size=min(longest, 24)) | st.sampled_from(["home", "ok_value"]),
                   st.sampled_from(["x" * (longest + 1), "bad value!", ""]))


def from_schema(schema: dict, spec: dict, hints: list[int], depth: int = 0
                ) -> st.SearchStrategy[Any]:
    """A strategy of values near ``schema`` (``$ref`` resolved against ``spec``)."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return from_schema(spec["components"]["schemas"][name], spec, hints, depth)
    if "anyOf" in schema:
        return st.one_of([from_schema(s, spec, hints, depth) for s in schema["anyOf"]])
    kind = schema.get("type")
    if kind == "integer":
        core = _integer(schema, hints)
    elif kind == "number":
        core = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([-1.0, 0.0])
    elif kind == "string":
        core = _string(schema)
    elif kind == "boolean":
        core = st.booleans()
    elif kind == "null":
        core = st.none()
    elif kind == "array" and depth < 3:
        core = _rarely(st.lists(from_schema(schema.get("items", {}), spec, hints, depth + 1),
                                min_size=schema.get("minItems", 0), max_size=4), st.just([]))
    elif kind == "object" and depth < 3:
        props = {k: from_schema(v, spec, hints, depth + 1)
                 for k, v in schema.get("properties", {}).items()}
        required = set(schema.get("required", []))
        fields = {k: v for k, v in props.items() if k in required}
        optional = {k: v for k, v in props.items() if k not in required}
        core = _rarely(st.fixed_dictionaries(fields, optional=optional),
                       st.fixed_dictionaries({**fields, "unexpected_field": json_values},
                                             optional=optional))
    else:
        return json_values
    return _rarely(core, json_values)


def _rarely(usual: st.SearchStrategy, rare: st.SearchStrategy) -> st.SearchStrategy:
    """``rare`` one time in twelve, else ``usual`` (so deep bodies still reach the code)."""
    return st.integers(0, 11).flatmap(lambda n: rare if n == 0 else usual)


def request_bodies(spec: dict, hints: list[int]) -> dict[str, st.SearchStrategy]:
    """Per POST path of the spec, a strategy of JSON request bodies."""
    out = {}
    for path, ops in spec["paths"].items():
        body = ops.get("post", {}).get("requestBody", {}).get("content", {})
        schema = body.get("application/json", {}).get("schema")
        if schema is not None:
            out[path] = from_schema(schema, spec, hints)
    return out


RAW = [b"", b"{", b"[]", b"null", b"42", b'"text"', b'{"user_id": 7, "k": 3,}',
       b'{"user_id": NaN}', b'{"user_id": 1e400}', b"\xff\xfe",
       b'{"events": [{"user_id": 1, "item_id": 1, "event_type": "click", '
       b'"session_id": "\\ud800"}]}']
"""Bodies that are not valid JSON, not objects, or carry edge-case escapes."""
