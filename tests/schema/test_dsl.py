"""The DSL: parsing, compiling to JSON Schema 2020-12, inheritance, and plain JSON Schema."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest

import reeldb
from reeldb.errors import AlreadyExistsError, InvalidSchemaError, NotFoundError, ValidationError
from reeldb.testing import BOUNDING_BOX


@pytest.fixture
def ns(db: reeldb.Database) -> reeldb.Database:
    db.create_namespace("ns")
    return db


def pointers(violations: Any) -> list[str]:
    return [v.pointer for v in violations]


def test_seed_bounding_box_schema_verbatim(ns: reeldb.Database) -> None:
    schema = ns.add_schema("ns", BOUNDING_BOX)
    assert (schema.name, schema.version, schema.kind) == ("BOUNDING_BOX", 0, "properties")
    good = {
        "boundingBox": {"x": 120, "y": 80, "w": 200, "h": 150},
        "boxTimeRange": {"start": 10, "end": 12.5},
    }
    assert ns.validate("ns", "BOUNDING_BOX", good) == []
    missing = ns.validate("ns", "BOUNDING_BOX", {"boundingBox": good["boundingBox"]})
    assert [v.message for v in missing] == ['"boxTimeRange" is a required property']
    wrong = ns.validate("ns", "BOUNDING_BOX", {**good, "boxTimeRange": "soon"})
    assert pointers(wrong) == ["/boxTimeRange"]


def test_compiled_schema_is_standalone_2020_12(ns: reeldb.Database) -> None:
    schema = ns.add_schema("ns", BOUNDING_BOX).json_schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema_rs.meta.validate(schema)
    # Any 2020-12 validator can use it; without reeldb's custom keyword only start <= end is lost.
    plain = jsonschema_rs.validator_for(schema)
    assert plain.is_valid(
        {"boundingBox": {"x": 0, "y": 0, "w": 1, "h": 1}, "boxTimeRange": {"start": 0, "end": 1}}
    )
    assert not plain.is_valid(
        {"boundingBox": {"x": 0, "y": 0, "w": -1, "h": 1}, "boxTimeRange": {"start": 0, "end": 1}}
    )


@pytest.mark.parametrize(
    ("spec", "good", "bad"),
    [
        pytest.param({"type": "string"}, "x", 1, id="string"),
        pytest.param({"type": "text"}, "long words", None, id="text"),
        pytest.param({"type": "keyword"}, "car", ["car"], id="keyword"),
        pytest.param({"type": "int"}, 3, 3.5, id="int"),
        pytest.param({"type": "float"}, 3.5, "3.5", id="float"),
        pytest.param({"type": "bool"}, True, 1, id="bool"),
        pytest.param({"type": "enum", "values": ["a", "b"]}, "a", "c", id="enum"),
        pytest.param({"type": "list", "items": {"type": "int"}}, [1, 2], [1, "2"], id="list"),
        pytest.param(
            {"type": "object", "properties": {"a": {"type": "int", "mandatory": True}}},
            {"a": 1},
            {"b": 1},
            id="object",
        ),
        pytest.param({"type": "timestamp"}, "2026-11-23T12:00:00Z", "yesterday", id="timestamp"),
        pytest.param(
            {"type": "time_range"}, {"start": 1, "end": 2}, {"start": 2, "end": 1}, id="time_range"
        ),
        pytest.param(
            {"type": "time_range"},
            {"start_frame": 10, "end_frame": 20, "rate": "30000/1001"},
            {"start_frame": 10, "end_frame": 20},  # outside a track a frame range names its rate
            id="time_range-frames",
        ),
        pytest.param(
            {"type": "bounding_box"},
            {"x": 0, "y": 0, "w": 1, "h": 1},
            {"x": 0, "y": 0, "width": 1, "height": 1},
            id="bounding_box",
        ),
        pytest.param({"type": "polygon"}, [[0, 0], [1, 0], [0, 1]], [[0, 0], [1, 0]], id="polygon"),
        pytest.param(
            {"type": "float", "minimum": 0, "maximum": 1}, 0.5, 1.5, id="keywords-pass-through"
        ),
        pytest.param({"type": "string", "pattern": "^v[0-9]+$"}, "v2", "2", id="pattern"),
    ],
)
def test_property_types(ns: reeldb.Database, spec: dict[str, Any], good: Any, bad: Any) -> None:
    ns.add_schema("ns", {"name": "T", "properties": {"p": {**spec, "mandatory": True}}})
    assert ns.validate("ns", "T", {"p": good}) == []
    if bad is not None:
        assert pointers(ns.validate("ns", "T", {"p": bad})) != []


def test_objects_are_closed_unless_opened(ns: reeldb.Database) -> None:
    ns.add_schema("ns", {"name": "Closed", "properties": {"a": {"type": "int"}}})
    ns.add_schema(
        "ns", {"name": "Open", "additionalProperties": True, "properties": {"a": {"type": "int"}}}
    )
    assert ns.validate("ns", "Closed", {"a": 1, "typo": 2}) != []
    assert ns.validate("ns", "Open", {"a": 1, "extra": 2}) == []


@pytest.mark.parametrize(
    ("definition", "pointer", "fragment"),
    [
        pytest.param(
            {"name": "X", "properties": {"a": {"type": "strng"}}},
            "/properties/a/type",
            "did you mean 'string'",
            id="unknown-type",
        ),
        pytest.param(
            {"name": "X", "properties": {"a": {"type": "float", "minimun": 0}}},
            "/properties/a/minimun",
            "did you mean 'minimum'",
            id="unknown-keyword",
        ),
        pytest.param(
            {"name": "X", "properties": {"a": {"type": "int", "mandatory": "yes"}}},
            "/properties/a/mandatory",
            "true or false",
            id="mandatory-not-bool",
        ),
        pytest.param(
            {"name": "X", "properties": {"a": {"type": "enum"}}},
            "/properties/a/values",
            "non-empty list",
            id="enum-without-values",
        ),
        pytest.param(
            {"name": "X", "properties": {"a": {"type": "list"}}},
            "/properties/a/items",
            "needs 'items'",
            id="list-without-items",
        ),
        pytest.param(
            {"name": "X", "properties": {"a": {"type": "int", "values": [1]}}},
            "/properties/a/values",
            "only for type enum",
            id="values-on-int",
        ),
        pytest.param(
            {"name": "X", "propertys": {}},
            "/propertys",
            "did you mean 'properties'",
            id="unknown-top-key",
        ),
        pytest.param({"properties": {}}, "/name", "missing schema name", id="no-name"),
        pytest.param(
            {"name": "9bad", "properties": {}}, "/name", "invalid schema name", id="bad-name"
        ),
        pytest.param(
            {"name": "X", "levels": {"evnt": {}}},
            "/levels/evnt",
            "did you mean 'event'",
            id="unknown-level",
        ),
        pytest.param(
            {"name": "X", "levels": {"event": {"properties": {"regions": {"type": "int"}}}}},
            "/levels/event/properties/regions",
            "structural key",
            id="reserved-key",
        ),
        pytest.param(
            {"name": "X", "levels": {}, "extends": ["A"]},
            "/extends",
            "per level",
            id="document-top-extends",
        ),
        pytest.param(
            {"name": "X", "compatibility": "SOMETIMES"},
            "/compatibility",
            "unknown compatibility mode",
            id="bad-mode",
        ),
    ],
)
def test_invalid_definitions_name_the_place(
    ns: reeldb.Database, definition: dict[str, Any], pointer: str, fragment: str
) -> None:
    with pytest.raises(InvalidSchemaError) as info:
        ns.add_schema("ns", definition)
    assert pointer in pointers(info.value.violations)
    assert fragment in str(info.value)
    assert ns.list_schemas("ns")[0].builtin  # nothing stored: only built-ins listed


def test_every_problem_is_reported_at_once(ns: reeldb.Database) -> None:
    with pytest.raises(InvalidSchemaError) as info:
        ns.add_schema(
            "ns",
            {
                "name": "X",
                "properties": {"a": {"type": "nope"}, "b": {"type": "int", "maximun": 1}},
            },
        )
    assert pointers(info.value.violations) == ["/properties/a/type", "/properties/b/maximun"]


def test_bad_keyword_values_are_caught_by_the_meta_schema(ns: reeldb.Database) -> None:
    with pytest.raises(InvalidSchemaError, match="not of type"):
        ns.add_schema(
            "ns", {"name": "X", "properties": {"a": {"type": "float", "minimum": "zero"}}}
        )


# -- inheritance -------------------------------------------------------------------------------


def test_temporal_spatial_base_and_two_parents(ns: reeldb.Database) -> None:
    ns.add_schema(
        "ns",
        {"name": "LABELED_BASE", "properties": {"label": {"type": "string", "mandatory": True}}},
    )
    child = ns.add_schema(
        "ns",
        {
            "name": "CHARACTER_IN_FRAME",
            "extends": ["TEMPORAL_SPATIAL_BASE", "LABELED_BASE"],
            "properties": {"characterName": {"type": "string", "mandatory": True}},
        },
    )
    assert list(child.resolved) == ["temporal", "spatial", "label", "characterName"]
    assert child.lineage == (
        "ns/CHARACTER_IN_FRAME v1",
        "reeldb/TEMPORAL_SPATIAL_BASE v0",
        "ns/LABELED_BASE v1",
    )
    assert (
        ns.validate("ns", "CHARACTER_IN_FRAME", {"label": "character", "characterName": "Alice"})
        == []
    )
    assert pointers(ns.validate("ns", "CHARACTER_IN_FRAME", {"characterName": "Alice"})) == [""]
    bad_time = {"label": "l", "characterName": "A", "temporal": {"start": 3, "end": 1}}
    assert pointers(ns.validate("ns", "CHARACTER_IN_FRAME", bad_time)) == ["/temporal"]


def test_diamond_inheritance_keeps_one_copy(ns: reeldb.Database) -> None:
    ns.add_schema("ns", {"name": "A", "properties": {"a": {"type": "int"}}})
    ns.add_schema("ns", {"name": "B", "extends": ["A"], "properties": {"b": {"type": "int"}}})
    ns.add_schema("ns", {"name": "C", "extends": ["A"], "properties": {"c": {"type": "int"}}})
    d = ns.add_schema(
        "ns", {"name": "D", "extends": ["B", "C"], "properties": {"d": {"type": "int"}}}
    )
    assert list(d.resolved) == ["a", "b", "c", "d"]
    assert d.resolved["a"]["origin"] == "ns/A v1"
    assert d.lineage == ("ns/D v1", "ns/B v1", "ns/C v1", "ns/A v1")  # C3, like Python's MRO
    assert ns.validate("ns", "D", {"a": 1, "b": 2, "c": 3, "d": 4}) == []


def test_same_property_from_two_parents_merges_constraints(ns: reeldb.Database) -> None:
    ns.add_schema("ns", {"name": "Low", "properties": {"score": {"type": "float", "minimum": 0}}})
    ns.add_schema(
        "ns",
        {
            "name": "High",
            "properties": {"score": {"type": "float", "maximum": 1, "mandatory": True}},
        },
    )
    both = ns.add_schema("ns", {"name": "Both", "extends": ["Low", "High"]})
    assert both.resolved["score"]["mandatory"] is True
    assert ns.validate("ns", "Both", {"score": 0.5}) == []
    assert ns.validate("ns", "Both", {"score": -1}) != []
    assert ns.validate("ns", "Both", {"score": 2}) != []
    assert ns.validate("ns", "Both", {}) != []


def test_conflicting_parents_are_named(ns: reeldb.Database) -> None:
    ns.add_schema("ns", {"name": "P1", "properties": {"label": {"type": "string"}}})
    ns.add_schema("ns", {"name": "P2", "properties": {"label": {"type": "int"}}})
    with pytest.raises(InvalidSchemaError) as info:
        ns.add_schema("ns", {"name": "Kid", "extends": ["P1", "P2"]})
    message = str(info.value)
    assert "'label'" in message and "ns/P1 v1" in message and "ns/P2 v1" in message
    assert "string" in message and "int" in message


def test_a_child_cannot_change_an_inherited_type(ns: reeldb.Database) -> None:
    ns.add_schema("ns", {"name": "P", "properties": {"label": {"type": "string"}}})
    with pytest.raises(InvalidSchemaError, match="'label' is string in parent ns/P v1"):
        ns.add_schema(
            "ns", {"name": "Kid", "extends": ["P"], "properties": {"label": {"type": "int"}}}
        )
    refined = ns.add_schema(
        "ns",
        {
            "name": "Kid",
            "extends": ["P"],
            "properties": {"label": {"type": "string", "mandatory": True}},
        },
    )
    assert refined.resolved["label"]["mandatory"] is True


def test_inconsistent_hierarchy_is_rejected(ns: reeldb.Database) -> None:
    ns.add_schema("ns", {"name": "A", "properties": {}})
    ns.add_schema("ns", {"name": "B", "extends": ["A"], "properties": {}})
    with pytest.raises(InvalidSchemaError, match="C3"):
        ns.add_schema("ns", {"name": "C", "extends": ["A", "B"]})


def test_parents_can_be_pinned_and_must_exist(ns: reeldb.Database) -> None:
    ns.add_schema("ns", {"name": "P", "properties": {"a": {"type": "int"}}})
    ns.add_schema("ns", {"name": "P", "properties": {"a": {"type": "int"}, "b": {"type": "int"}}})
    pinned = ns.add_schema("ns", {"name": "Kid", "extends": [{"name": "P", "version": 1}]})
    assert list(pinned.resolved) == ["a"]
    latest = ns.add_schema("ns", {"name": "Kid2", "extends": ["P"]})
    assert list(latest.resolved) == ["a", "b"]
    with pytest.raises(InvalidSchemaError, match="extends Missing"):
        ns.add_schema("ns", {"name": "Kid3", "extends": ["Missing"]})
    with pytest.raises(InvalidSchemaError, match="cannot extend itself"):
        ns.add_schema("ns", {"name": "Self", "extends": ["Self"]})


def test_document_levels_extend_property_schemas(ns: reeldb.Database) -> None:
    ns.add_schema(
        "ns", {"name": "LABELED", "properties": {"label": {"type": "keyword", "mandatory": True}}}
    )
    doc = ns.add_schema("ns", {"name": "shots", "levels": {"event": {"extends": ["LABELED"]}}})
    assert doc.kind == "document"
    assert doc.resolved["event"]["label"]["origin"] == "ns/LABELED v1"
    with pytest.raises(InvalidSchemaError, match="only property schemas"):
        ns.add_schema("ns", {"name": "P", "extends": ["shots"]})


# -- plain JSON Schema ---------------------------------------------------------------------


PLAIN = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "plain",
    "type": "object",
    "properties": {"when": {"type": "string", "format": "date"}, "n": {"type": "integer"}},
    "unevaluatedProperties": False,
    "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}},
}


def test_plain_json_schema_follows_the_specification(ns: reeldb.Database) -> None:
    schema = ns.add_schema("ns", PLAIN)
    assert schema.kind == "json_schema"
    assert schema.json_schema == PLAIN
    # format is an annotation in 2020-12: not asserted
    assert ns.validate("ns", "plain", {"when": "not a date"}) == []
    assert ns.validate("ns", "plain", {"n": 1.0}) == []  # 1.0 is an integer in 2020-12
    assert pointers(ns.validate("ns", "plain", {"other": 1})) == [""]  # unevaluatedProperties


def test_plain_json_schema_needs_2020_12_and_a_name(ns: reeldb.Database) -> None:
    with pytest.raises(InvalidSchemaError, match="2020-12"):
        ns.add_schema("ns", {"$schema": "http://json-schema.org/draft-07/schema#", "title": "x"})
    untitled = {k: v for k, v in PLAIN.items() if k != "title"}
    with pytest.raises(InvalidSchemaError, match="needs a name"):
        ns.add_schema("ns", untitled)
    assert ns.add_schema("ns", untitled, name="given").name == "given"
    with pytest.raises(InvalidSchemaError):
        ns.add_schema("ns", {"$schema": PLAIN["$schema"], "title": "y", "type": 12})


def test_remote_references_are_never_fetched(ns: reeldb.Database) -> None:
    remote = {"$schema": PLAIN["$schema"], "title": "r", "$ref": "https://example.com/s.json"}
    with pytest.raises(InvalidSchemaError, match="cannot be compiled"):
        ns.add_schema("ns", remote)


# -- registry behaviour ------------------------------------------------------------------------


def test_versions_and_reads(ns: reeldb.Database) -> None:
    assert ns.add_schema("ns", {"name": "S", "properties": {}}).version == 1
    assert ns.add_schema("ns", {"name": "S", "properties": {"a": {"type": "int"}}}).version == 2
    assert ns.get_schema("ns", "S").version == 2
    assert ns.get_schema("ns", "S", 1).resolved == {}
    assert [v.version for v in ns.list_schema_versions("ns", "S")] == [1, 2]
    with pytest.raises(NotFoundError, match=r"no version 7 \(latest is 2\)"):
        ns.get_schema("ns", "S", 7)
    with pytest.raises(NotFoundError):
        ns.get_schema("ns", "Nope")
    with pytest.raises(AlreadyExistsError, match="built-in"):
        ns.add_schema("ns", {"name": "TEMPORAL_SPATIAL_BASE", "properties": {}})
    assert ns.get_schema("ns", "TEMPORAL_SPATIAL_BASE").namespace == "reeldb"
    with pytest.raises(NotFoundError):
        ns.add_schema("missing", {"name": "S", "properties": {}})
    with pytest.raises(ValidationError, match="built-in"):
        ns.add_schema("reeldb", {"name": "S", "properties": {}})


def test_schema_text_is_accepted(ns: reeldb.Database) -> None:
    assert ns.add_schema("ns", '{"name": "FromText", "properties": {}}').name == "FromText"
    with pytest.raises(ValidationError, match="not valid JSON"):
        ns.add_schema("ns", "{nope")
    with pytest.raises(InvalidSchemaError, match="JSON object"):
        ns.add_schema("ns", "[1, 2]")
