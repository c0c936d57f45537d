"""The acceptance point of the compatibility checker, as properties.

A generated schema change classified compatible must never make a generated valid stored
document invalid: under BACKWARD every document valid under v1 is valid under v2, and under
FORWARD every document valid under v2 is valid under v1. The checker must also not be
trivially conservative: a good share of the generated changes is classified compatible.

Each example uses its own in-memory database (function-scoped fixtures are not reset between
hypothesis examples), so the property runs inside the test function.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st

import reeldb

NAMES = ("a", "b", "c", "d", "e", "f")
NESTED_NAMES = ("p", "q", "r")
STRINGS = ("string", "keyword", "text")
SCALARS = (*STRINGS, "int", "float", "bool")
TYPES = (*SCALARS, "enum", "time_range", "bounding_box", "list", "object")
BOUNDED = (*STRINGS, "int", "float", "list")
# Includes values Python compares equal but JSON does not (1 and true, 0 and false).
ENUM_POOL = ("x", "y", 1, 2.5, 0, True, False, None)
ALIASING_POOL = (0, 1, True, False, "x")
MUTATIONS = (
    "add",
    "remove",
    "mandatory",
    "type",
    "bounds",
    "items",
    "additional",
    "enum",
    "nested",
    "description",
)
WEIGHTS = {"bounds": 3, "items": 3, "enum": 3, "nested": 3}
MAX_EXAMPLES = 200
PROPERTY_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)

Definition = dict[str, Any]
Spec = dict[str, Any]


def json_identity(value: Any) -> tuple[str, Any]:
    """Tell apart values Python compares equal but JSON does not (1 and true)."""
    return type(value).__name__, value


# true <-> 1 and false <-> 0: equal in Python, different JSON values.
ALIAS = {
    json_identity(True): 1,
    json_identity(1): True,
    json_identity(False): 0,
    json_identity(0): False,
}


# -- schemas -------------------------------------------------------------------------------


@st.composite
def bounds(draw: st.DrawFn, low: str, high: str, values: st.SearchStrategy[Any]) -> Spec:
    lo, hi = draw(st.none() | values), draw(st.none() | values)
    if lo is not None and hi is not None and lo > hi:
        lo, hi = hi, lo
    out: Spec = {}
    if lo is not None:
        out[low] = lo
    if hi is not None:
        out[high] = hi
    return out


def bound_values(kind: str) -> tuple[tuple[str, ...], st.SearchStrategy[Any]]:
    if kind in STRINGS:
        return ("minLength", "maxLength"), st.integers(0, 4)
    if kind == "int":
        return ("minimum", "maximum"), st.integers(-5, 5)
    if kind == "float":
        return ("minimum", "maximum"), st.integers(-5, 5) | st.sampled_from([-2.5, 0.5, 1.5])
    return ("maxItems",), st.integers(0, 3)


def enum_values(pool: tuple[Any, ...]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.sampled_from(pool), min_size=1, max_size=4, unique_by=json_identity)


@st.composite
def property_specs(draw: st.DrawFn, pool: tuple[Any, ...], kinds: tuple[str, ...] = TYPES) -> Spec:
    kind = draw(st.sampled_from(kinds))
    spec: Spec = {"type": kind}
    if draw(st.booleans()):
        spec["mandatory"] = True
    if kind in ("int", "float", *STRINGS):
        keys, values = bound_values(kind)
        spec.update(draw(bounds(keys[0], keys[1], values)))
    elif kind == "enum":
        spec["values"] = draw(enum_values(pool))
    elif kind == "list":
        spec["items"] = {"type": draw(st.sampled_from(["string", "int"]))}
        if draw(st.booleans()):
            spec["maxItems"] = draw(st.integers(0, 3))
    elif kind == "object":
        names = draw(st.lists(st.sampled_from(NESTED_NAMES), min_size=1, max_size=2, unique=True))
        spec["properties"] = {name: draw(property_specs(pool, SCALARS)) for name in names}
        if draw(st.booleans()):
            spec["additionalProperties"] = True
    return spec


@st.composite
def definitions(draw: st.DrawFn, pool: tuple[Any, ...] = ENUM_POOL) -> Definition:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
    return {
        "name": "T",
        "properties": {name: draw(property_specs(pool)) for name in names},
        "additionalProperties": draw(st.booleans()),
    }


def pick(draw: st.DrawFn, names: Any) -> str | None:
    choices = sorted(names)
    return draw(st.sampled_from(choices)) if choices else None


def mutate(draw: st.DrawFn, d: Definition, kind: str, pool: tuple[Any, ...]) -> str:
    """Apply one mutation of ``kind`` in place; return what was done."""
    props: dict[str, Spec] = d["properties"]
    of_type = {name: spec["type"] for name, spec in props.items()}
    if kind == "add" and (name := pick(draw, set(NAMES) - set(props))):
        props[name] = draw(property_specs(pool))
        return "add mandatory" if props[name].get("mandatory") else "add optional"
    if kind == "remove" and (name := pick(draw, props)):
        was = "mandatory" if props.pop(name).get("mandatory") else "optional"
        return f"remove {was}"
    if kind == "mandatory" and (name := pick(draw, props)):
        props[name]["mandatory"] = not props[name].get("mandatory", False)
        return "to mandatory" if props[name]["mandatory"] else "to optional"
    if kind == "type" and (name := pick(draw, props)):
        kinds = tuple(t for t in TYPES if t != of_type[name])
        props[name] = draw(property_specs(pool, kinds))
        return "type"
    if kind == "bounds" and (name := pick(draw, [n for n, t in of_type.items() if t in BOUNDED])):
        keys, values = bound_values(of_type[name])
        key = draw(st.sampled_from(keys))
        if key in props[name] and draw(st.booleans()):
            del props[name][key]
            return f"drop {key}"
        props[name][key] = draw(values)
        return f"set {key}"
    if kind == "items" and (name := pick(draw, [n for n, t in of_type.items() if t == "list"])):
        now = props[name]["items"]["type"]
        props[name]["items"] = {"type": "int" if now == "string" else "string"}
        return "list items type"
    if kind == "additional":
        d["additionalProperties"] = not d["additionalProperties"]
        return "open" if d["additionalProperties"] else "close"
    if kind == "enum" and (name := pick(draw, [n for n, t in of_type.items() if t == "enum"])):
        values = props[name]["values"]
        how = draw(st.sampled_from(["add", "remove", "redraw", "alias"]))
        extra = [v for v in pool if json_identity(v) not in map(json_identity, values)]
        if how == "add" and extra:
            values.append(draw(st.sampled_from(extra)))
        elif how == "remove" and len(values) > 1:
            values.pop(draw(st.integers(0, len(values) - 1)))
        elif how == "alias":  # e.g. [true, "x"] -> [1, "x"]: equal in Python only
            props[name]["values"] = [ALIAS.get(json_identity(v), v) for v in values]
        else:
            props[name]["values"] = draw(enum_values(pool))
        return f"enum {how}"
    if kind == "nested" and (name := pick(draw, [n for n, t in of_type.items() if t == "object"])):
        inner = props[name]
        how = draw(st.sampled_from(["mandatory", "additional", "add", "remove"]))
        if how == "additional":
            inner["additionalProperties"] = not inner.get("additionalProperties", False)
        elif how == "add" and (sub := pick(draw, set(NESTED_NAMES) - set(inner["properties"]))):
            inner["properties"][sub] = draw(property_specs(pool, SCALARS))
        elif how == "remove" and len(inner["properties"]) > 1:
            del inner["properties"][pick(draw, inner["properties"])]
        else:
            how = "mandatory"
            sub = pick(draw, inner["properties"])
            inner["properties"][sub]["mandatory"] = not inner["properties"][sub].get(
                "mandatory", False
            )
        return f"nested {how}"
    d["description"] = "changed"
    return "description"


def applicable(d: Definition) -> list[str]:
    """The mutations that can change ``d`` (so that few examples are description-only)."""
    types = {spec["type"] for spec in d["properties"].values()}
    found = ["additional", "description"]
    if len(d["properties"]) < len(NAMES):
        found.append("add")
    if d["properties"]:
        found += ["remove", "mandatory", "type"]
    if types & set(BOUNDED):
        found.append("bounds")
    found += [
        kind
        for kind, needs in (("items", "list"), ("enum", "enum"), ("nested", "object"))
        if needs in types
    ]
    return found


@st.composite
def mutations(
    draw: st.DrawFn, v1: Definition, pool: tuple[Any, ...] = ENUM_POOL
) -> tuple[Definition, list[str]]:
    v2 = copy.deepcopy(v1)
    done = []
    for _ in range(draw(st.sampled_from((1, 1, 2)))):  # mostly one change at a time
        # Mutations that need a particular property type count twice: they are rarer.
        kinds = [k for k in MUTATIONS if k in applicable(v2) for _ in range(WEIGHTS.get(k, 1))]
        done.append(mutate(draw, v2, draw(st.sampled_from(kinds)), pool))
    return v2, done


# -- documents -----------------------------------------------------------------------------

FINITE = st.floats(allow_nan=False, allow_infinity=False)
SECONDS = st.integers(0, 10_000) | st.floats(0, 1e6, allow_nan=False)
SCALAR_JSON = st.none() | st.booleans() | st.integers(-10, 10) | FINITE | st.text("ab", max_size=3)
ANY_JSON = (
    SCALAR_JSON
    | st.lists(SCALAR_JSON, max_size=2)
    | st.dictionaries(st.sampled_from(NESTED_NAMES), SCALAR_JSON, max_size=2)
    | st.just({"start": 0, "end": 1})
    | st.just({"x": 0, "y": 0, "w": 1, "h": 1})
)
TIME_RANGES = st.tuples(SECONDS, SECONDS).map(
    lambda pair: {"start": min(pair), "end": max(pair)}
) | st.tuples(st.integers(0, 5000), st.integers(0, 5000), st.sampled_from(["24000/1001", 25])).map(
    lambda t: {"start_frame": min(t[:2]), "end_frame": max(t[:2]), "rate": t[2]}
)
BOXES = st.fixed_dictionaries(
    {"x": FINITE, "y": FINITE, "w": st.floats(0, 1e6), "h": st.integers(0, 4000)}
)


def number_range(spec: Spec) -> tuple[Any, Any] | None:
    lo, hi = spec.get("minimum"), spec.get("maximum")
    if lo is not None and hi is not None and lo > hi:
        return None
    return lo, hi


def values_of(spec: Spec, other: Spec | None = None) -> st.SearchStrategy[Any] | None:
    """Values valid for one DSL property, or None when it has none.

    ``other`` is the same property in the other version, if any: extra keys of open objects
    favour the names it declares.
    """
    kind = spec["type"]
    if kind in STRINGS:
        lo = spec.get("minLength", 0)
        hi = spec.get("maxLength", lo + 4)
        return None if lo > hi else st.text("ab", min_size=lo, max_size=hi)
    if kind in ("int", "float"):
        found = number_range(spec)
        if found is None:
            return None
        lo, hi = found
        ints_lo = None if lo is None else math.ceil(lo)
        ints_hi = None if hi is None else math.floor(hi)
        ints: st.SearchStrategy[Any] = st.nothing()
        if ints_lo is None or ints_hi is None or ints_lo <= ints_hi:
            ints = st.integers(min_value=ints_lo, max_value=ints_hi)
        if kind == "int":
            return ints
        return ints | st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)
    if kind == "bool":
        return st.booleans()
    if kind == "enum":
        return st.sampled_from(spec["values"])
    if kind == "time_range":
        return TIME_RANGES
    if kind == "bounding_box":
        return BOXES
    if kind == "list":
        item = values_of(spec["items"])
        assert item is not None
        return st.lists(item, max_size=min(spec.get("maxItems", 3), 3))
    assert kind == "object"
    other_props = other.get("properties", {}) if other and other["type"] == "object" else {}
    return objects_of(
        spec["properties"], spec.get("additionalProperties", False), NESTED_NAMES, other_props
    )


def objects_of(
    props: dict[str, Spec],
    additional: bool,
    names: tuple[str, ...],
    other: dict[str, Spec],
) -> st.SearchStrategy[dict[str, Any]] | None:
    """Objects valid for a DSL property set; open ones get extra keys of any value."""
    required: dict[str, st.SearchStrategy[Any]] = {}
    optional: dict[str, st.SearchStrategy[Any]] = {}
    for name, spec in props.items():
        values = values_of(spec, other.get(name))
        if spec.get("mandatory"):
            if values is None:
                return None
            required[name] = values
        elif values is not None:
            optional[name] = values
    declared = st.fixed_dictionaries(required, optional=optional)
    if not additional:
        return declared
    # Extra keys: any free name, and often one that only the other version declares, since
    # that is where an open object bites.
    free = [name for name in (*names, "zz") if name not in props]
    keys = st.sampled_from(free)
    if only_other := [name for name in other if name not in props]:
        keys = st.sampled_from(only_other) | keys
    extras = st.dictionaries(keys, ANY_JSON, max_size=3)
    return st.tuples(declared, extras).map(lambda pair: {**pair[1], **pair[0]})


def documents_of(
    definition: Definition, other: Definition | None = None
) -> st.SearchStrategy[dict[str, Any]] | None:
    """Documents valid for ``definition`` (``other``: the other version, to aim extra keys)."""
    other_props = other["properties"] if other else {}
    return objects_of(
        definition["properties"], definition["additionalProperties"], NAMES, other_props
    )


# -- the properties ------------------------------------------------------------------------


def register(db: reeldb.Database, v1: Definition, mode: str) -> reeldb.CompatibilityReport:
    """Store v1 under ``mode``; return the check of v1 again (which must be compatible)."""
    db.create_namespace("ns")
    db.add_schema("ns", copy.deepcopy(v1), compatibility=mode)
    return db.check_schema("ns", copy.deepcopy(v1))


def check_soundness(mode: str) -> Counter[bool]:
    """Run the property for ``mode``; return how many changes were (in)compatible."""
    verdicts: Counter[bool] = Counter()

    @PROPERTY_SETTINGS
    @given(data=st.data())
    def prop(data: st.DataObject) -> None:
        v1 = data.draw(definitions(), label="v1")
        v2, done = data.draw(mutations(v1), label="v2")
        for what in done:
            event(f"mutation: {what}")
        with reeldb.connect("memory:") as db:
            assert register(db, v1, mode).compatible  # v1 against itself
            report = db.check_schema("ns", copy.deepcopy(v2))
            verdicts[report.compatible] += 1
            event(f"{mode} compatible: {report.compatible}")
            if not report.compatible:
                return
            assert db.add_schema("ns", copy.deepcopy(v2)).version == 2
            # BACKWARD: data written under v1 must stay valid; FORWARD: the reverse.
            source, target = (1, 2) if mode == "BACKWARD" else (2, 1)
            strategy = documents_of(v1, v2) if source == 1 else documents_of(v2, v1)
            assume(strategy is not None)
            assert strategy is not None
            docs = data.draw(st.lists(strategy, min_size=1, max_size=8), label="documents")
            valid = [doc for doc in docs if db.validate("ns", "T", doc, version=source) == []]
            event(f"generated documents valid: {len(valid) == len(docs)}")
            assume(valid)
            for doc in valid:
                problems = db.validate("ns", "T", doc, version=target)
                assert problems == [], (
                    f"{mode}-compatible change broke {doc!r}: valid under v{source}, "
                    f"not under v{target}: {problems}"
                )

    prop()
    return verdicts


@pytest.mark.slow
def test_backward_compatible_change_keeps_stored_documents_valid() -> None:
    verdicts = check_soundness("BACKWARD")
    # Not trivially conservative (nor trivially permissive).
    assert verdicts[True] >= MAX_EXAMPLES // 10, verdicts
    assert verdicts[False] >= MAX_EXAMPLES // 10, verdicts


@pytest.mark.slow
def test_forward_compatible_change_keeps_new_documents_valid_under_old() -> None:
    verdicts = check_soundness("FORWARD")
    assert verdicts[True] >= MAX_EXAMPLES // 10, verdicts
    assert verdicts[False] >= MAX_EXAMPLES // 10, verdicts


def test_generated_documents_are_valid() -> None:
    """The document strategy itself: what it generates from a definition validates."""

    @settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.data())
    def prop(data: st.DataObject) -> None:
        definition = data.draw(definitions(), label="definition")
        strategy = documents_of(definition)
        assume(strategy is not None)
        assert strategy is not None
        doc = data.draw(strategy, label="document")
        with reeldb.connect("memory:") as db:
            db.create_namespace("ns")
            db.add_schema("ns", definition)
            assert db.validate("ns", "T", doc) == []

    prop()


def test_backward_sound_when_enum_swaps_booleans_for_numbers() -> None:
    """Regression: an enum of true/false swapped for 1/0 was classified compatible."""

    @settings(max_examples=25, deadline=None)
    @example(values=[True])
    @given(values=enum_values(ALIASING_POOL))
    def prop(values: list[Any]) -> None:
        swapped = [ALIAS.get(json_identity(v), v) for v in values]
        assume(any(json_identity(v) in ALIAS for v in values))
        v1 = {"name": "T", "properties": {"e": {"type": "enum", "values": values}}}
        v2 = {"name": "T", "properties": {"e": {"type": "enum", "values": swapped}}}
        with reeldb.connect("memory:") as db:
            register(db, v1, "BACKWARD")
            if not db.check_schema("ns", v2).compatible:
                return
            db.add_schema("ns", v2)
            for value in values:
                assert db.validate("ns", "T", {"e": value}, version=2) == []

    prop()
