"""Checking a query against the fields of a DataStore's document schema."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

import reeldb
from reeldb.errors import QueryError
from reeldb.query import FieldInfo, check_query, parse_query, searchable_fields
from reeldb.query.oracle import document_matches
from reeldb.testing import FACE_DETECTION

Fields = dict[tuple[str, str], FieldInfo]

CATALOG: dict[str, Any] = {
    "name": "catalog",
    "levels": {
        "asset": {
            "properties": {
                "title": {"type": "text", "mandatory": True},
                "year": {"type": "int"},
                "released": {"type": "timestamp"},
            }
        },
        "track": {
            "properties": {
                "kind": {"type": "enum", "values": ["video", "audio", "subtitle"]},
                "language": {"type": "keyword"},
            }
        },
        "component": {"properties": {"algorithm": {"type": "keyword"}, "version": {"type": "int"}}},
        "event": {
            "extends": ["TEMPORAL_SPATIAL_BASE"],
            "properties": {
                "label": {"type": "keyword"},
                "text": {"type": "text"},
                "confidence": {"type": "float", "minimum": 0, "maximum": 1},
                "flag": {"type": "bool"},
                "at": {"type": "timestamp"},
                "tags": {"type": "list", "items": {"type": "keyword"}},
                "notes": {"type": "keyword", "indexed": False},
                "code": {"type": "string"},
                "meta": {"type": "object", "properties": {"a": {"type": "int"}}},
                "outline": {"type": "polygon"},
                "level": {"type": "enum", "values": [1, 2, 3]},
            },
        },
        "region": {
            "properties": {
                "person": {"type": "keyword"},
                "face": {"type": "bounding_box"},
                "score": {"type": "float"},
                "caption": {"type": "text", "indexed": True},
            }
        },
    },
}


@pytest.fixture(scope="module")
def schemas() -> Iterator[tuple[Fields, Fields]]:
    with reeldb.connect("memory:") as db:
        db.create_namespace("v")
        faces = db.add_schema("v", copy.deepcopy(FACE_DETECTION))
        catalog = db.add_schema("v", copy.deepcopy(CATALOG))
        yield searchable_fields(faces.resolved), searchable_fields(catalog.resolved)


@pytest.fixture
def faces(schemas: tuple[Fields, Fields]) -> Fields:
    return schemas[0]


@pytest.fixture
def catalog(schemas: tuple[Fields, Fields]) -> Fields:
    return schemas[1]


def check(query: str | dict[str, Any], fields: Fields, **kwargs: Any) -> None:
    check_query(parse_query(query), fields, **kwargs)


def refused(query: str | dict[str, Any], fields: Fields, *words: str) -> QueryError:
    with pytest.raises(QueryError) as info:
        check(query, fields)
    for word in words:
        assert word in str(info.value), str(info.value)
    return info.value


def at(error: QueryError) -> tuple[int | None, int | None]:
    return error.line, error.column


# --- searchable_fields ------------------------------------------------------------------------


def test_searchable_fields_of_face_detection(faces: Fields) -> None:
    assert faces == {
        ("event", "time_range"): FieldInfo("time_range"),
        ("region", "bounding_box"): FieldInfo("bounding_box"),
        ("region", "time_range"): FieldInfo("time_range"),
        ("asset", "title"): FieldInfo("text"),
        ("track", "kind"): FieldInfo("enum", True, ("video", "audio", "subtitle")),
        ("component", "algorithm"): FieldInfo("keyword"),
        ("event", "label"): FieldInfo("keyword"),
        ("event", "confidence"): FieldInfo("float"),
        ("region", "person"): FieldInfo("keyword"),
    }


def test_searchable_fields_of_catalog(catalog: Fields) -> None:
    assert catalog["event", "notes"] == FieldInfo("keyword", indexed=False)
    assert catalog["region", "caption"] == FieldInfo("text", indexed=True)
    assert catalog["event", "tags"].type == "list"
    assert catalog["event", "temporal"] == FieldInfo("time_range")  # inherited
    assert catalog["event", "spatial"] == FieldInfo("bounding_box")
    assert catalog["asset", "released"].type == "timestamp"


def test_a_plain_json_schema_offers_the_structural_fields() -> None:
    assert searchable_fields({}) == {
        ("event", "time_range"): FieldInfo("time_range"),
        ("region", "bounding_box"): FieldInfo("bounding_box"),
        ("region", "time_range"): FieldInfo("time_range"),
    }


# --- valid queries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        'track.kind = "video" and count(event where event.label = "face") > 3',
        'event.label in ("face", "car") or not region.person = "Alice"',
        "event.confidence >= 0.5 and event.confidence < 1 and event.confidence != 0",
        'asset.title contains "heavy storm" and asset.title contains storm',
        'component.algorithm < "m" and track.kind >= "audio"',
        "event.time_range overlaps(0, 10.5) and region.bounding_box within(0, 0, 1, 1)",
        "region.bounding_box intersects(-1, -1, 0, 0)",
        "region.time_range overlaps(1, 1)",
        'count(event in component where region.person = "Bob" and event.confidence > 0.9) >= 1',
        "count(event) = 0 or count(event in component) > 2",
        'not (event.label = "a" or (region.person != "b" and not track.kind = "audio"))',
    ],
)
def test_valid_queries_pass(query: str, faces: Fields) -> None:
    assert check_query(parse_query(query), faces) is None


@pytest.mark.parametrize(
    "query",
    [
        'asset.title contains "storm" and asset.year > 1999 and asset.year <= 2000.5',
        'asset.released >= "2026-01-01T00:00:00Z" and asset.released < "2026-06-01T00:00:00+02:00"',
        'event.at in ("2026-01-01T00:00:00.5Z", "2026-01-01T00:00:00.123456-05:30")',
        'track.language = "en" and component.version != 3',
        "event.flag = true and event.flag != false and event.flag in (true, false)",
        'event.code < "b" and event.text contains "rain"',
        "event.temporal overlaps(1, 2) and event.spatial within(0, 0, 1, 1)",
        "region.face intersects(0.25, 0.25, 0.5, 0.5) and region.score > 0.5",
        'region.caption contains "a red car"',
        "count(event where event.flag = true and region.score > 0.1) < 10",
    ],
)
def test_valid_queries_pass_on_catalog(query: str, catalog: Fields) -> None:
    check(query, catalog)


def test_json_form_is_checked_too(faces: Fields) -> None:
    check({"field": "event.label", "in": ["face"]}, faces)
    error = refused({"field": "event.lable", "op": "=", "value": "x"}, faces, "did you mean")
    assert at(error) == (None, None)  # no text, no position
    assert "(line" not in str(error)


@pytest.mark.parametrize(
    "query",
    [
        "event.time_range overlaps(0, 1)",
        "region.bounding_box within(0, 0, 1, 1)",
        "region.bounding_box intersects(0.5, 0.5, 0, 0)",
        "region.time_range overlaps(2, 3)",
        "count(event where event.time_range overlaps(0, 1)) > 0",
    ],
)
def test_structural_fields_on_any_schema(query: str, faces: Fields, catalog: Fields) -> None:
    for fields in (faces, catalog, searchable_fields({})):
        check(query, fields)


# --- unknown fields -----------------------------------------------------------------------------


def test_unknown_field_with_suggestion(faces: Fields) -> None:
    error = refused(
        'event.lable = "face"',
        faces,
        "this DataStore has no field event.lable; did you mean event.label?",
        "(event fields: confidence, label, time_range)",
    )
    assert at(error) == (1, 1)


def test_unknown_field_on_line_2(faces: Fields) -> None:
    error = refused(
        'event.label = "face"\n  and region.persn = "Bob"', faces, "did you mean region.person?"
    )
    assert at(error) == (2, 7)
    assert str(error).endswith("(line 2, column 7)")


def test_unknown_field_without_close_match(faces: Fields) -> None:
    error = refused("asset.zzzz = 1", faces, "has no field asset.zzzz (asset fields: title)")
    assert "did you mean" not in str(error)


def test_unknown_field_of_a_level_with_no_fields() -> None:
    refused('track.kind = "video"', searchable_fields({}), "(track fields: none)")
    refused('event.label = "x"', searchable_fields({}), "(event fields: time_range)")


def test_unknown_field_names_the_datastore(faces: Fields) -> None:
    with pytest.raises(QueryError, match=r"^vision/face_detection/1 has no field event\.x "):
        check_query(parse_query("event.x = 1"), faces, what="vision/face_detection/1")


def test_unknown_field_inside_count(faces: Fields) -> None:
    error = refused("count(event where event.confidnce > 0.5) > 1", faces, "event.confidence?")
    assert at(error) == (1, 19)


# --- types and operators ------------------------------------------------------------------------


def test_text_field_compared_with_a_number(faces: Fields) -> None:
    error = refused(
        'event.label = "face" and\n   asset.title = 3',
        faces,
        'asset.title is text: compare it with a "string", not 3',
    )
    assert at(error) == (2, 4)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ('asset.title < "m"', ["< does not apply to asset.title (text)"]),
        ("asset.title = true", ['compare it with a "string", not True']),
        ('event.label in ("a", 2)', ['event.label is keyword: compare it with a "string", not 2']),
        ('event.confidence = "high"', ["event.confidence is float: compare it with a number"]),
        ("event.confidence = true", ["compare it with a number, not True"]),
        ("event.confidence in (0.5, false)", ["compare it with a number, not False"]),
    ],
)
def test_values_of_the_wrong_type(query: str, words: list[str], faces: Fields) -> None:
    error = refused(query, faces, *words)
    assert at(error) == (1, 1)


def test_contains_on_a_keyword(faces: Fields) -> None:
    error = refused(
        'track.kind = "video" and event.label contains face',
        faces,
        "contains needs a text field; event.label is keyword",
    )
    assert at(error) == (1, 26)


@pytest.mark.parametrize("words", ['"!!!"', '"-- ..."'])
def test_contains_without_a_word(words: str, faces: Fields) -> None:
    refused(f"asset.title contains {words}", faces, "has no word to search for")


@pytest.mark.parametrize("words", ['"  "', '""'])
def test_contains_nothing_is_not_a_query(words: str) -> None:
    with pytest.raises(QueryError, match=r"contains needs the words to find") as error:
        parse_query(f"asset.title contains {words}")
    assert (error.value.line, error.value.column) == (1, 1)


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("event.label overlaps(1, 2)", ["overlaps needs a time range; event.label is keyword"]),
        ("region.bounding_box overlaps(1, 2)", ["region.bounding_box is bounding_box"]),
        ("event.time_range overlaps(-1, 2)", ["0 <= start <= end"]),
        ("event.time_range overlaps(3, 2)", ["0 <= start <= end"]),
        ("event.time_range within(0, 0, 1, 1)", ["within needs a bounding box"]),
        ("event.confidence intersects(0, 0, 1, 1)", ["intersects needs a bounding box"]),
        ("region.bounding_box within(0, 0, -1, 1)", ["within(x, y, w, h) needs w >= 0"]),
        ("region.bounding_box intersects(0, 0, 1, -0.5)", ["h >= 0"]),
        ("event.time_range = 1", ["event.time_range is time_range: it cannot be compared"]),
        ('region.bounding_box in ("a")', ["is bounding_box: it cannot be compared"]),
        ("event.time_range contains storm", ["contains needs a text field"]),
    ],
)
def test_time_ranges_and_boxes(query: str, words: list[str], faces: Fields) -> None:
    error = refused(query, faces, *words)
    assert at(error) == (1, 1)


def test_boxes_may_start_left_of_zero(faces: Fields) -> None:
    check("region.bounding_box within(-0.5, -2, 0, 0)", faces)


@pytest.mark.parametrize(
    "query", ['track.kind = "vidoe"', 'track.kind in ("video", "film")', 'track.kind < "Video"']
)
def test_enum_value_not_in_the_list(query: str, faces: Fields) -> None:
    error = refused(query, faces, 'is not a value of track.kind ("video", "audio", "subtitle")')
    assert at(error) == (1, 1)


def test_enum_compared_with_a_number(faces: Fields) -> None:
    refused("track.kind = 1", faces, '1 is not a value of track.kind ("video", "audio"')


@pytest.mark.parametrize(
    "value",
    ["yesterday", "2026-01-01", "2026-01-01T00:00:00", "2026-13-01T00:00:00Z", "", "12:00:00Z"],
)
def test_timestamp_not_rfc_3339(value: str, catalog: Fields) -> None:
    error = refused(
        f'asset.year = 1 or\nasset.released >= "{value}"',
        catalog,
        f"{value!r} is not an RFC 3339 timestamp (asset.released)",
    )
    assert at(error) == (2, 1)


def test_timestamp_compared_with_a_number(catalog: Fields) -> None:
    refused("event.at > 1700000000", catalog, 'event.at is timestamp: compare it with a "string"')


@pytest.mark.parametrize("op", ["<", "<=", ">", ">="])
def test_order_on_bool(op: str, catalog: Fields) -> None:
    refused(f"event.flag {op} true", catalog, f"{op} does not apply to event.flag (bool)")


@pytest.mark.parametrize("value", ["1", "0", '"true"'])
def test_bool_compared_with_something_else(value: str, catalog: Fields) -> None:
    refused(f"event.flag = {value}", catalog, "event.flag is bool: compare it with true or false")


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ('event.tags = "a"', ["event.tags is list: it cannot be compared"]),
        ('event.tags in ("a", "b")', ["event.tags is list: it cannot be compared"]),
        ("event.tags contains a", ["contains needs a text field; event.tags is list"]),
        ("event.meta = 1", ["event.meta is object: it cannot be compared"]),
        ("event.outline = 1", ["event.outline is polygon: it cannot be compared"]),
    ],
)
def test_structured_fields_are_not_comparable(
    query: str, words: list[str], catalog: Fields
) -> None:
    refused(query, catalog, *words)


@pytest.mark.parametrize(
    "query",
    [
        'event.notes = "x"',
        'event.notes in ("x")',
        'event.notes contains "x"',
        'count(event where event.notes = "x") > 0',
    ],
)
def test_unindexed_field_is_refused(query: str, catalog: Fields) -> None:
    refused(query, catalog, "event.notes is not indexed (the schema says indexed: false)")


def test_unindexed_field_position(catalog: Fields) -> None:
    error = refused('event.label = "x" or\n  (event.notes = "y")', catalog, "not indexed")
    assert at(error) == (2, 4)


def test_first_problem_wins(faces: Fields) -> None:
    error = refused('asset.nope = 1 and track.kind = "nope"', faces, "no field asset.nope")
    assert at(error) == (1, 1)


@pytest.mark.parametrize(
    "query",
    [
        'event.code < "x"',
        'track.kind >= "audio"',
        'asset.released < "2026-01-01T00:00:00Z"',
        "component.version > 2",
        "event.confidence <= 1",
        'component.algorithm != "x"',
    ],
)
def test_ordered_types(query: str, catalog: Fields) -> None:
    check(query, catalog)


# --- count --------------------------------------------------------------------------------------


def test_count_nested_in_count(faces: Fields) -> None:
    error = refused(
        "count(event where count(event) > 1) > 0",
        faces,
        "count(...) cannot be nested in another count",
    )
    assert at(error) == (1, 19)


def test_count_nested_deeper_in_count(faces: Fields) -> None:
    error = refused(
        'count(event in component where event.label = "a"\n'
        "  and not count(event in component) = 0) > 0",
        faces,
        "cannot be nested",
    )
    assert at(error) == (2, 11)


@pytest.mark.parametrize(
    ("query", "field", "column"),
    [
        ('count(event where track.kind = "video") > 1', "track.kind", 19),
        ('count(event where asset.title contains "x") > 1', "asset.title", 19),
        ('count(event where event.label = "a" or component.algorithm = "b") > 1', "component", 40),
    ],
)
def test_outer_levels_inside_count(query: str, field: str, column: int, faces: Fields) -> None:
    error = refused(query, faces, "inside count(event where ...)", "event.* and region.*", field)
    assert at(error) == (1, column)


def test_outer_levels_beside_count_are_fine(faces: Fields) -> None:
    check('track.kind = "video" and count(event where region.person = "Bob") >= 1', faces)


# --- bugs ---------------------------------------------------------------------------------------


def test_numeric_enum_is_queryable(catalog: Fields) -> None:
    document = {
        "asset": {"title": "t"},
        "tracks": [
            {"components": [{"events": [{"time_range": {"start": 0, "end": 1}, "level": 2}]}]}
        ],
    }
    accepted = []
    for query in ("event.level = 2", 'event.level = "2"'):
        try:
            check(query, catalog)
        except QueryError:
            continue
        accepted.append(query)
        assert document_matches(parse_query(query), document), query
    assert accepted
