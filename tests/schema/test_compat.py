"""Schema compatibility: modes, the TYPE and STORED_DATA rules, and the subschema checker.

Expected verdicts are derived from set inclusion, not from the implementation:

* BACKWARD: every instance valid under the old version is valid under the new one;
* FORWARD: every instance valid under the new version is valid under the old one;
* FULL: both;
* NONE: no mode check, but the TYPE rule (MRK-7) still applies to a schema no DataStore uses.

DSL objects are closed by default (``additionalProperties: false``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

import reeldb
from reeldb.errors import (
    AlreadyExistsError,
    IncompatibleSchemaError,
    InvalidSchemaError,
    ValidationError,
)
from reeldb.schema.compat import _Side, covers, mode_incompatibilities, type_changes
from reeldb.schema.model import CompatibilityMode
from reeldb.schema.validator import SchemaValidator
from reeldb.testing import BOUNDING_BOX, FACE_DETECTION, face_document

DIALECT = "https://json-schema.org/draft/2020-12/schema"
DATASTORE = "vision/face_detection/1"
EVENT = "$.tracks[*].components[*].events[*]"

# The seed schema with three optional properties, so that every kind of change has a target.
BASE: dict[str, Any] = copy.deepcopy(BOUNDING_BOX)
BASE["keys"]["properties"].update(
    {
        "label": {"type": "string"},
        "score": {"type": "float", "minimum": 0, "maximum": 10},
        "kind": {"type": "enum", "values": ["box", "face"]},
    }
)

BOX = {"x": 1, "y": 2, "w": 3, "h": 4}
SPAN = {"start": 0, "end": 1.5}

Definition = dict[str, Any]
Change = Callable[[Definition], None]


def props(definition: Definition) -> dict[str, Any]:
    found: dict[str, Any] = definition["keys"]["properties"]
    return found


def derive(base: Definition, change: Change) -> Definition:
    """A next version of ``base``: a deep copy without its version number, then ``change``."""
    new = copy.deepcopy(base)
    del new["version"]
    change(new)
    return new


def opened(definition: Definition) -> Definition:
    return {**copy.deepcopy(definition), "additionalProperties": True}


def add_optional(d: Definition) -> None:
    props(d)["note"] = {"type": "string"}


def add_mandatory(d: Definition) -> None:
    props(d)["note"] = {"type": "string", "mandatory": True}


def remove_optional(d: Definition) -> None:
    del props(d)["label"]


def remove_mandatory(d: Definition) -> None:
    del props(d)["boxTimeRange"]


def optional_to_mandatory(d: Definition) -> None:
    props(d)["label"]["mandatory"] = True


def mandatory_to_optional(d: Definition) -> None:
    props(d)["boundingBox"]["mandatory"] = False


def string_to_int(d: Definition) -> None:
    props(d)["label"] = {"type": "int"}


def loosen_maximum(d: Definition) -> None:
    props(d)["score"]["maximum"] = 20


def tighten_maximum(d: Definition) -> None:
    props(d)["score"]["maximum"] = 5


def loosen_minimum(d: Definition) -> None:
    props(d)["score"]["minimum"] = -1


def exclusive_maximum_same_bound(d: Definition) -> None:
    # maximum 10 -> exclusiveMaximum 10: 10 itself is no longer allowed.
    del props(d)["score"]["maximum"]
    props(d)["score"]["exclusiveMaximum"] = 10


def enum_add_value(d: Definition) -> None:
    props(d)["kind"]["values"] = ["box", "face", "logo"]


def enum_remove_value(d: Definition) -> None:
    props(d)["kind"]["values"] = ["box"]


def description_only(d: Definition) -> None:
    d["description"] = "A rectangle on screen, and when it is there"
    props(d)["label"]["description"] = "What the box shows"


def close_object(d: Definition) -> None:
    d["additionalProperties"] = False


def open_object(d: Definition) -> None:
    d["additionalProperties"] = True


def no_change(d: Definition) -> None:
    pass


def verdicts(backward: bool, forward: bool, none: bool = True) -> dict[str, bool]:
    return {"BACKWARD": backward, "FORWARD": forward, "FULL": backward and forward, "NONE": none}


# change id -> (change, expected verdict per mode), for closed objects (the DSL default).
CLOSED_TABLE: dict[str, tuple[Change, dict[str, bool]]] = {
    # Old instances never carry `note`; new ones may, and the closed old version rejects it.
    "add-optional": (add_optional, verdicts(backward=True, forward=False)),
    # Old instances lack `note`; new instances carry it, which the closed old version rejects.
    "add-mandatory": (add_mandatory, verdicts(backward=False, forward=False)),
    # Old instances may carry `label`; the closed new version rejects it.
    "remove-optional": (remove_optional, verdicts(backward=False, forward=True)),
    # Old instances carry `boxTimeRange` (new rejects it); new ones lack it (old requires it).
    "remove-mandatory": (remove_mandatory, verdicts(backward=False, forward=False)),
    "optional-to-mandatory": (optional_to_mandatory, verdicts(backward=False, forward=True)),
    "mandatory-to-optional": (mandatory_to_optional, verdicts(backward=True, forward=False)),
    "loosen-maximum": (loosen_maximum, verdicts(backward=True, forward=False)),
    "tighten-maximum": (tighten_maximum, verdicts(backward=False, forward=True)),
    "loosen-minimum": (loosen_minimum, verdicts(backward=True, forward=False)),
    "maximum-to-exclusive": (exclusive_maximum_same_bound, verdicts(backward=False, forward=True)),
    "enum-add-value": (enum_add_value, verdicts(backward=True, forward=False)),
    "enum-remove-value": (enum_remove_value, verdicts(backward=False, forward=True)),
    "description-only": (description_only, verdicts(backward=True, forward=True)),
    "no-change": (no_change, verdicts(backward=True, forward=True)),
    # Closed -> open: every old instance is still accepted; new ones may carry anything extra.
    "open-the-object": (open_object, verdicts(backward=True, forward=False)),
}

# The same kinds of change on an open object (``"additionalProperties": true``).
OPEN_TABLE: dict[str, tuple[Change, dict[str, bool]]] = {
    # Strictly by sets: the open old version accepts ANY value under the new name (e.g.
    # "note": 5), which the new version now rejects, so adding even an optional property to
    # an open object is not BACKWARD compatible. The reverse holds: a new instance's `note`
    # is a string, which the open old version accepts as an extra property.
    "add-optional": (add_optional, verdicts(backward=False, forward=True)),
    # The removed `label` falls under additionalProperties: true, so old instances stay
    # valid; a new instance may now carry "label": 5, which the old version rejects.
    "remove-optional": (remove_optional, verdicts(backward=True, forward=False)),
    "close-the-object": (close_object, verdicts(backward=False, forward=True)),
    "loosen-maximum": (loosen_maximum, verdicts(backward=True, forward=False)),
    "description-only": (description_only, verdicts(backward=True, forward=True)),
}

MODES = ("BACKWARD", "FORWARD", "FULL", "NONE")


def table_params(table: dict[str, tuple[Change, dict[str, bool]]]) -> list[Any]:
    return [
        pytest.param(change, mode, expected[mode], id=f"{name}-{mode}")
        for name, (change, expected) in table.items()
        for mode in MODES
    ]


def check(base: Definition, change: Change, mode: str) -> reeldb.CompatibilityReport:
    with reeldb.connect("memory:") as db:
        db.create_namespace("ns")
        db.add_schema("ns", copy.deepcopy(base), compatibility=mode)
        report = db.check_schema("ns", derive(base, change))
        if report.compatible:
            assert db.add_schema("ns", derive(base, change)).version == 1
        else:
            with pytest.raises(IncompatibleSchemaError):
                db.add_schema("ns", derive(base, change))
            assert [v.version for v in db.list_schema_versions("ns", "BOUNDING_BOX")] == [0]
        return report


def allowed_rules(mode: str) -> set[str]:
    return {"BACKWARD", "FORWARD"} if mode == "FULL" else {mode}


@pytest.mark.parametrize(("change", "mode", "expected"), table_params(CLOSED_TABLE))
def test_closed_object_change_verdicts(change: Change, mode: str, expected: bool) -> None:
    report = check(BASE, change, mode)
    assert report.compatible is expected, report.incompatibilities
    assert report.mode == mode
    assert {item.rule for item in report.incompatibilities} <= allowed_rules(mode)


@pytest.mark.parametrize(("change", "mode", "expected"), table_params(OPEN_TABLE))
def test_open_object_change_verdicts(change: Change, mode: str, expected: bool) -> None:
    report = check(opened(BASE), change, mode)
    assert report.compatible is expected, report.incompatibilities
    assert {item.rule for item in report.incompatibilities} <= allowed_rules(mode)


def test_open_object_witness_for_add_optional() -> None:
    """The instance that makes add-optional on an open object BACKWARD incompatible."""
    with reeldb.connect("memory:") as db:
        db.create_namespace("ns")
        db.add_schema("ns", opened(BASE), compatibility="NONE")
        db.add_schema("ns", derive(opened(BASE), add_optional))
        witness = {"boundingBox": BOX, "boxTimeRange": SPAN, "note": 5}
        assert db.validate("ns", "BOUNDING_BOX", witness, version=0) == []
        assert db.validate("ns", "BOUNDING_BOX", witness, version=1) != []


def test_open_object_add_optional_names_the_property() -> None:
    report = check(opened(BASE), add_optional, "BACKWARD")
    assert [(i.path, i.rule) for i in report.incompatibilities] == [("$.note", "BACKWARD")]
    assert "additionalProperties" in report.incompatibilities[0].message


@pytest.mark.parametrize("mode", [*MODES, "BACKWARD_TRANSITIVE", "FULL_TRANSITIVE"])
def test_type_change_is_rejected_in_every_mode(mode: str) -> None:
    report = check(BASE, string_to_int, mode)
    assert not report.compatible
    assert [(i.path, i.rule) for i in report.incompatibilities] == [("$.label", "TYPE")]
    assert "string" in report.incompatibilities[0].message
    assert "int" in report.incompatibilities[0].message


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param("string", "keyword", id="string-keyword"),
        pytest.param("int", "float", id="int-float"),
        pytest.param("bounding_box", "time_range", id="structured"),
        pytest.param("enum", "string", id="enum-string"),
    ],
)
def test_type_rule_uses_dsl_types(old: str, new: str) -> None:
    """A DSL type change is a TYPE change even when the JSON types overlap (int -> float)."""

    def spec(kind: str) -> dict[str, Any]:
        return {"type": kind, "values": ["a"]} if kind == "enum" else {"type": kind}

    with reeldb.connect("memory:") as db:
        db.create_namespace("ns")
        db.add_schema("ns", {"name": "T", "properties": {"p": spec(old)}}, compatibility="NONE")
        report = db.check_schema("ns", {"name": "T", "properties": {"p": spec(new)}})
    assert [(i.path, i.rule) for i in report.incompatibilities] == [("$.p", "TYPE")]


def test_nested_type_change_names_the_nested_path() -> None:
    v1 = {
        "name": "T",
        "properties": {"o": {"type": "object", "properties": {"n": {"type": "string"}}}},
    }
    v2 = copy.deepcopy(v1)
    v2["properties"]["o"]["properties"]["n"] = {"type": "bool"}
    with reeldb.connect("memory:") as db:
        db.create_namespace("ns")
        db.add_schema("ns", v1, compatibility="NONE")
        report = db.check_schema("ns", v2)
    assert [(i.path, i.rule) for i in report.incompatibilities] == [("$.o.n", "TYPE")]


# -- the seed scenario AT-05 -----------------------------------------------------------------


def test_at05_optional_label_then_type_change(db: reeldb.Database) -> None:
    db.create_namespace("ns")
    assert db.add_schema("ns", copy.deepcopy(BOUNDING_BOX)).version == 0
    v1 = derive(BOUNDING_BOX, lambda d: props(d).update(label={"type": "string"}))
    assert db.add_schema("ns", v1).version == 1
    assert db.validate("ns", "BOUNDING_BOX", {"boundingBox": BOX, "boxTimeRange": SPAN}) == []

    v2 = copy.deepcopy(v1)
    props(v2)["boundingBox"] = {"type": "string", "mandatory": True}
    with pytest.raises(IncompatibleSchemaError) as raised:
        db.add_schema("ns", v2)
    assert [(i.path, i.rule) for i in raised.value.incompatibilities] == [("$.boundingBox", "TYPE")]
    assert "boundingBox" in str(raised.value)
    assert "bounding_box" in raised.value.incompatibilities[0].message
    # The registry is unchanged.
    assert [v.version for v in db.list_schema_versions("ns", "BOUNDING_BOX")] == [0, 1]
    assert db.get_schema("ns", "BOUNDING_BOX").version == 1
    assert db.get_schema("ns", "BOUNDING_BOX").definition == v1


# -- transitive modes ------------------------------------------------------------------------


def three_versions(db: reeldb.Database, v1: Definition, v2: Definition) -> None:
    """Store v1 and v2 under NONE, leaving the mode to the test."""
    db.create_namespace("ns")
    db.add_schema("ns", v1, compatibility="NONE")
    db.add_schema("ns", v2)


SHORT_NOTE = {"name": "T", "properties": {"note": {"type": "string", "maxLength": 10}}}
NO_NOTE: dict[str, Any] = {"name": "T", "properties": {}}
SHORTER_NOTE = {"name": "T", "properties": {"note": {"type": "string", "maxLength": 5}}}


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        pytest.param("BACKWARD", True, id="BACKWARD"),
        pytest.param("BACKWARD_TRANSITIVE", False, id="BACKWARD_TRANSITIVE"),
        pytest.param("FULL", False, id="FULL"),
        pytest.param("FORWARD", False, id="FORWARD"),
        pytest.param("FORWARD_TRANSITIVE", False, id="FORWARD_TRANSITIVE"),
    ],
)
def test_transitive_backward_checks_every_earlier_version(
    db: reeldb.Database, mode: str, expected: bool
) -> None:
    # v1: optional note (<= 10 chars); v2 drops it (under NONE); v3 re-adds it (<= 5 chars).
    # v2 instances never carry a note, so v3 accepts all of them (BACKWARD holds), but a v1
    # instance {"note": "0123456789"} is rejected by v3 (BACKWARD_TRANSITIVE fails).
    # FORWARD (and so FULL) fails: a v3 instance may carry a note, which the closed v2 rejects.
    three_versions(db, SHORT_NOTE, NO_NOTE)
    db.set_compatibility("ns", "T", mode)
    report = db.check_schema("ns", SHORTER_NOTE)
    assert report.compatible is expected, report.incompatibilities
    if mode == "BACKWARD_TRANSITIVE":
        assert [(i.path, i.rule) for i in report.incompatibilities] == [("$.note", "BACKWARD")]
        assert "v1" in report.incompatibilities[0].message


def test_transitive_type_rule_checks_every_earlier_version(db: reeldb.Database) -> None:
    # v1 note: string; v2 drops it; v3 re-adds it as int. Only v1 sees a type change.
    three_versions(db, {"name": "T", "properties": {"note": {"type": "string"}}}, NO_NOTE)
    v3 = {"name": "T", "properties": {"note": {"type": "int"}}}
    db.set_compatibility("ns", "T", "BACKWARD")
    assert db.check_schema("ns", v3).compatible
    db.set_compatibility("ns", "T", "BACKWARD_TRANSITIVE")
    report = db.check_schema("ns", v3)
    assert [(i.path, i.rule) for i in report.incompatibilities] == [("$.note", "TYPE")]
    with pytest.raises(IncompatibleSchemaError):
        db.add_schema("ns", v3)
    assert [v.version for v in db.list_schema_versions("ns", "T")] == [1, 2]


def test_forward_transitive_checks_every_earlier_version(db: reeldb.Database) -> None:
    # v1 requires `id`; v2 (under NONE) makes it optional; v3 = v2 with a description.
    # FORWARD against v2 holds (same instances); against v1 a v3 instance without `id` fails.
    mandatory = {"name": "T", "properties": {"id": {"type": "keyword", "mandatory": True}}}
    optional = {"name": "T", "properties": {"id": {"type": "keyword"}}}
    three_versions(db, mandatory, optional)
    v3 = {**optional, "description": "ids became optional"}
    db.set_compatibility("ns", "T", "FORWARD")
    assert db.check_schema("ns", v3).compatible
    db.set_compatibility("ns", "T", "FORWARD_TRANSITIVE")
    report = db.check_schema("ns", v3)
    assert [(i.path, i.rule) for i in report.incompatibilities] == [("$.id", "FORWARD")]


def test_set_compatibility_applies_to_later_versions(db: reeldb.Database) -> None:
    db.create_namespace("ns")
    db.add_schema("ns", copy.deepcopy(BASE))
    assert db.check_schema("ns", derive(BASE, remove_optional)).mode == "BACKWARD"
    assert not db.check_schema("ns", derive(BASE, remove_optional)).compatible
    subject = db.set_compatibility("ns", "BOUNDING_BOX", "forward")
    assert subject.compatibility is CompatibilityMode.FORWARD
    assert db.check_schema("ns", derive(BASE, remove_optional)).compatible
    with pytest.raises(ValidationError, match="unknown compatibility mode"):
        db.set_compatibility("ns", "BOUNDING_BOX", "SIDEWAYS")


# -- the STORED_DATA rule (NMDB-6, seed AT-16) ---------------------------------------------


def store_three(vision: reeldb.Database) -> list[reeldb.Document]:
    return [
        vision.put_document(
            DATASTORE, {"title_id": str(i), "video_stream_id": "v"}, face_document()
        )
        for i in range(3)
    ]


def with_event_property(base: Definition, name: str, spec: dict[str, Any]) -> Definition:
    new = copy.deepcopy(base)
    new["levels"]["event"]["properties"][name] = spec
    return new


EMOTION = with_event_property(FACE_DETECTION, "emotion", {"type": "keyword"})


def test_at16_optional_event_property_is_accepted(vision: reeldb.Database) -> None:
    docs = store_three(vision)
    assert vision.get_datastore(DATASTORE).schema_version == 1
    stored = vision.add_schema("vision", copy.deepcopy(EMOTION))
    assert stored.version == 2
    assert vision.get_datastore(DATASTORE).schema_version == 2
    for doc in docs:
        again = vision.get_document(doc.id)
        assert again.body == doc.body
        assert again.schema_version == 1
        assert vision.validate("vision", "face_detection", face_document(), version=2) == []
    tagged = face_document()
    tagged["tracks"][0]["components"][0]["events"][0]["emotion"] = "happy"
    assert vision.put_document(DATASTORE, {"title_id": "9", "video_stream_id": "v"}, tagged)


def test_at16_mandatory_event_property_is_rejected(vision: reeldb.Database) -> None:
    docs = store_three(vision)
    vision.add_schema("vision", copy.deepcopy(EMOTION))
    mandatory = with_event_property(EMOTION, "emotion", {"type": "keyword", "mandatory": True})
    with pytest.raises(IncompatibleSchemaError) as raised:
        vision.add_schema("vision", mandatory)
    found = raised.value.incompatibilities
    stored = [i for i in found if i.rule == "STORED_DATA"]
    assert stored, found
    assert stored[0].path.startswith(f"document {docs[0].id}")
    assert stored[0].path == f"document {docs[0].id}/tracks/0/components/0/events/0"
    assert {i.path.split("/")[0] for i in stored} == {f"document {d.id}" for d in docs}
    assert "emotion" in stored[0].message
    assert DATASTORE in stored[0].message
    # The mode check reports it as well, as a separate rule.
    assert (f"{EVENT}.emotion", "BACKWARD") in {(i.path, i.rule) for i in found}
    assert vision.get_datastore(DATASTORE).schema_version == 2
    assert [v.version for v in vision.list_schema_versions("vision", "face_detection")] == [1, 2]


def test_at16_mandatory_event_property_rejected_by_stored_data_alone(
    vision: reeldb.Database,
) -> None:
    """In mode NONE only STORED_DATA stands between the change and the stored documents."""
    docs = store_three(vision)
    vision.add_schema("vision", copy.deepcopy(EMOTION))
    vision.set_compatibility("vision", "face_detection", "NONE")
    mandatory = with_event_property(EMOTION, "emotion", {"type": "keyword", "mandatory": True})
    report = vision.check_schema("vision", mandatory)
    assert {i.rule for i in report.incompatibilities} == {"STORED_DATA"}
    assert report.incompatibilities[0].path.startswith(f"document {docs[0].id}")
    assert report.checked_documents == 3


def test_at16_type_change_of_stored_property_is_rejected(vision: reeldb.Database) -> None:
    docs = store_three(vision)
    changed = with_event_property(FACE_DETECTION, "confidence", {"type": "string"})
    with pytest.raises(IncompatibleSchemaError) as raised:
        vision.add_schema("vision", changed)
    found = {(i.path.split("/")[0], i.rule) for i in raised.value.incompatibilities}
    assert (f"{EVENT}.confidence", "TYPE") in found
    assert (f"document {docs[0].id}", "STORED_DATA") in found
    assert vision.get_datastore(DATASTORE).schema_version == 1


def test_none_mode_bound_schema_may_change_type_of_absent_property(
    vision: reeldb.Database,
) -> None:
    """NMDB-6: in NONE a DataStore's schema answers only to its stored data."""
    store_three(vision)
    vision.add_schema("vision", copy.deepcopy(EMOTION))
    store_three(vision)  # none of these documents has an emotion
    vision.set_compatibility("vision", "face_detection", "NONE")
    retyped = with_event_property(EMOTION, "emotion", {"type": "int"})
    report = vision.check_schema("vision", retyped)
    assert report.compatible, report.incompatibilities
    assert report.checked_documents == 6
    assert vision.add_schema("vision", retyped).version == 3
    assert vision.get_datastore(DATASTORE).schema_version == 3


def test_none_mode_bound_schema_rejects_type_change_of_stored_property(
    vision: reeldb.Database,
) -> None:
    docs = store_three(vision)
    vision.set_compatibility("vision", "face_detection", "NONE")
    retyped = copy.deepcopy(FACE_DETECTION)
    retyped["levels"]["region"]["properties"]["person"] = {"type": "int"}
    with pytest.raises(IncompatibleSchemaError) as raised:
        vision.add_schema("vision", retyped)
    found = raised.value.incompatibilities
    assert {i.rule for i in found} == {"STORED_DATA"}  # no TYPE rule for a bound schema in NONE
    assert found[0].path == f"document {docs[0].id}/tracks/0/components/0/events/0/regions/0/person"
    assert vision.get_datastore(DATASTORE).schema_version == 1


def test_none_mode_unbound_schema_still_answers_to_type_rule(db: reeldb.Database) -> None:
    db.create_namespace("ns")
    db.add_schema("ns", copy.deepcopy(EMOTION), compatibility="NONE")
    report = db.check_schema("ns", with_event_property(EMOTION, "emotion", {"type": "int"}))
    assert [(i.path, i.rule) for i in report.incompatibilities] == [(f"{EVENT}.emotion", "TYPE")]


def test_stored_data_without_documents_is_vacuous(vision: reeldb.Database) -> None:
    vision.set_compatibility("vision", "face_detection", "NONE")
    mandatory = with_event_property(
        FACE_DETECTION, "emotion", {"type": "keyword", "mandatory": True}
    )
    report = vision.check_schema("vision", mandatory)
    assert report.compatible
    assert report.checked_documents == 0
    assert report.datastores == (DATASTORE,)


# -- check_schema --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(add_optional, id="compatible"),
        pytest.param(add_mandatory, id="mode"),
        pytest.param(string_to_int, id="type"),
    ],
)
def test_check_schema_never_stores_and_matches_add_schema(
    db: reeldb.Database, change: Change
) -> None:
    db.create_namespace("ns")
    db.add_schema("ns", copy.deepcopy(BASE))
    candidate = derive(BASE, change)
    report = db.check_schema("ns", candidate)
    again = db.check_schema("ns", candidate)
    assert again.incompatibilities == report.incompatibilities
    assert report.candidate.version == 1
    assert [v.version for v in db.list_schema_versions("ns", "BOUNDING_BOX")] == [0]
    if report.compatible:
        assert db.add_schema("ns", candidate).version == report.candidate.version
    else:
        with pytest.raises(IncompatibleSchemaError) as raised:
            db.add_schema("ns", candidate)
        assert raised.value.incompatibilities == report.incompatibilities
        assert [v.version for v in db.list_schema_versions("ns", "BOUNDING_BOX")] == [0]


def test_check_schema_with_stored_documents_matches_add_schema(vision: reeldb.Database) -> None:
    store_three(vision)
    mandatory = with_event_property(
        FACE_DETECTION, "emotion", {"type": "keyword", "mandatory": True}
    )
    report = vision.check_schema("vision", mandatory)
    assert not report.compatible
    assert report.checked_documents == 3
    assert report.datastores == (DATASTORE,)
    assert vision.get_datastore(DATASTORE).schema_version == 1
    assert [v.version for v in vision.list_schema_versions("vision", "face_detection")] == [1]
    with pytest.raises(IncompatibleSchemaError) as raised:
        vision.add_schema("vision", mandatory)
    assert raised.value.incompatibilities == report.incompatibilities


def test_check_schema_of_a_new_schema(db: reeldb.Database) -> None:
    db.create_namespace("ns")
    report = db.check_schema("ns", copy.deepcopy(BOUNDING_BOX), compatibility="FULL")
    assert report.compatible
    assert (report.candidate.version, report.mode) == (0, "FULL")
    assert [s.name for s in db.list_schemas("ns") if not s.builtin] == []


# -- versions, kinds and modes of later versions -------------------------------------------


def test_explicit_existing_version_already_exists(db: reeldb.Database) -> None:
    db.create_namespace("ns")
    db.add_schema("ns", copy.deepcopy(BASE))
    with pytest.raises(AlreadyExistsError, match="v0 already exists"):
        db.add_schema("ns", copy.deepcopy(BASE))
    with pytest.raises(AlreadyExistsError):
        db.check_schema("ns", copy.deepcopy(BASE))


def test_explicit_version_below_latest_is_invalid(db: reeldb.Database) -> None:
    db.create_namespace("ns")
    db.add_schema("ns", copy.deepcopy(BASE))
    assert db.add_schema("ns", {**derive(BASE, description_only), "version": 3}).version == 3
    with pytest.raises(ValidationError, match="greater than the latest, 3"):
        db.add_schema("ns", {**derive(BASE, description_only), "version": 2})
    with pytest.raises(AlreadyExistsError):
        db.add_schema("ns", {**derive(BASE, description_only), "version": 3})
    assert db.add_schema("ns", derive(BASE, description_only)).version == 4
    assert [v.version for v in db.list_schema_versions("ns", "BOUNDING_BOX")] == [0, 3, 4]


def test_new_version_of_another_kind_is_invalid(db: reeldb.Database) -> None:
    db.create_namespace("ns")
    db.add_schema("ns", copy.deepcopy(BASE))
    document = {
        "name": "BOUNDING_BOX",
        "levels": {"event": {"properties": {"label": {"type": "string"}}}},
    }
    with pytest.raises(InvalidSchemaError, match="properties schema"):
        db.add_schema("ns", document)
    with pytest.raises(InvalidSchemaError, match="properties schema"):
        db.add_schema("ns", {"$schema": DIALECT, "type": "object"}, name="BOUNDING_BOX")
    assert [v.version for v in db.list_schema_versions("ns", "BOUNDING_BOX")] == [0]


@pytest.mark.parametrize(
    "where", [pytest.param("argument", id="argument"), pytest.param("definition", id="definition")]
)
def test_other_compatibility_on_later_version_is_refused(db: reeldb.Database, where: str) -> None:
    db.create_namespace("ns")
    db.add_schema("ns", copy.deepcopy(BASE), compatibility="BACKWARD")
    candidate = derive(BASE, add_optional)
    if where == "argument":
        with pytest.raises(ValidationError, match="set_compatibility"):
            db.add_schema("ns", candidate, compatibility="NONE")
        with pytest.raises(ValidationError, match="set_compatibility"):
            db.check_schema("ns", candidate, compatibility="FULL")
    else:
        with pytest.raises(ValidationError, match="set_compatibility"):
            db.add_schema("ns", {**candidate, "compatibility": "NONE"})
    # The same mode again is fine.
    assert db.add_schema("ns", candidate, compatibility="backward").version == 1
    assert [v.version for v in db.list_schema_versions("ns", "BOUNDING_BOX")] == [0, 1]


# -- covers() on raw JSON Schemas ----------------------------------------------------------


def covered(
    wide: Any, narrow: Any, wide_root: Any = None, narrow_root: Any = None
) -> list[tuple[str, str]]:
    """covers(wide, narrow) with each side its own root (its own $defs)."""
    wide_side = _Side(wide, wide_root if wide_root is not None else {}, "new")
    narrow_side = _Side(narrow, narrow_root if narrow_root is not None else {}, "old")
    return covers(wide_side, narrow_side, "$")


NUMBER_DEFS = {"$defs": {"n": {"type": "number"}, "pos": {"type": "integer", "minimum": 0}}}


@pytest.mark.parametrize(
    ("wide", "narrow", "ok"),
    [
        pytest.param({"$ref": "#/$defs/n"}, {"type": "integer"}, True, id="ref-wide"),
        pytest.param({"$ref": "#/$defs/n"}, {"type": "string"}, False, id="ref-wide-mismatch"),
        pytest.param({"type": "number"}, {"$ref": "#/$defs/pos"}, True, id="ref-narrow"),
        pytest.param({"minimum": 1}, {"$ref": "#/$defs/pos"}, False, id="ref-narrow-bound"),
        pytest.param(
            {"type": "integer"}, {"$ref": "#/$defs/n", "minimum": 0}, False, id="ref-siblings"
        ),
        pytest.param(
            {"allOf": [{"type": "integer"}, {"minimum": 0}]},
            {"type": "integer", "minimum": 1},
            True,
            id="allOf-wide",
        ),
        pytest.param(
            {"allOf": [{"type": "integer"}, {"minimum": 2}]},
            {"type": "integer", "minimum": 1},
            False,
            id="allOf-wide-part-fails",
        ),
        pytest.param(
            {"type": "number"},
            {"allOf": [{"type": "integer"}, {"maximum": 3}]},
            True,
            id="allOf-narrow-one-part-suffices",
        ),
        pytest.param({}, {"anyOf": [{"type": "string"}]}, True, id="empty-wide"),
        pytest.param(True, {"type": "string"}, True, id="true-wide"),
        pytest.param({"type": "string"}, False, True, id="false-narrow"),
        pytest.param(False, {"type": "string"}, False, id="false-wide"),
        pytest.param({"type": "string"}, True, False, id="true-narrow"),
    ],
)
def test_covers_refs_and_allof(wide: Any, narrow: Any, ok: bool) -> None:
    assert (covered(wide, narrow, NUMBER_DEFS, NUMBER_DEFS) == []) is ok


def test_covers_allof_narrow_is_sound_but_incomplete() -> None:
    # Both parts together prove it, neither alone does: reported, never wrongly accepted.
    narrow = {"allOf": [{"type": "integer"}, {"minimum": 0}]}
    assert covered({"type": "integer", "minimum": 0}, narrow) != []


@pytest.mark.parametrize(
    ("wide", "narrow", "ok"),
    [
        pytest.param(
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            True,
            id="anyOf-unchanged",
        ),
        pytest.param(
            {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            {"anyOf": [{"type": "string"}]},
            False,
            id="anyOf-changed",
        ),
        pytest.param({"not": {"type": "null"}}, {"type": "string"}, False, id="not-added"),
        pytest.param(
            {"type": "string", "title": "t", "description": "d", "x-custom": 1},
            {"type": "string"},
            True,
            id="annotations-ignored",
        ),
        pytest.param({"x-reeldb-ordered": [["a", "b"]]}, {}, False, id="ordered-is-a-constraint"),
        pytest.param(
            {"type": "string"}, {"type": "string", "oneOf": [{}]}, True, id="narrow-extra"
        ),
    ],
)
def test_covers_unknown_keywords(wide: Any, narrow: Any, ok: bool) -> None:
    problems = covered(wide, narrow)
    assert (problems == []) is ok, problems


def test_covers_unknown_keyword_message() -> None:
    problems = covered({"anyOf": [{"type": "string"}]}, {"anyOf": [{"type": "integer"}]})
    assert problems == [("$", "cannot prove 'anyOf' in new holds for old")]


@pytest.mark.parametrize(
    ("wide", "narrow", "ok"),
    [
        pytest.param({"type": "string", "maxLength": 2}, {"enum": ["a", "bb"]}, True, id="fits"),
        pytest.param({"type": "string", "maxLength": 1}, {"enum": ["a", "bb"]}, False, id="long"),
        pytest.param({"enum": ["a", "b", "c"]}, {"enum": ["a", "b"]}, True, id="subset"),
        pytest.param({"enum": ["a"]}, {"enum": ["a", "b"]}, False, id="superset"),
        pytest.param({"type": "number"}, {"enum": [1, 2.5]}, True, id="numbers"),
        pytest.param({"type": "integer"}, {"enum": [1, 2.5]}, False, id="not-integer"),
        pytest.param({"type": "integer"}, {"enum": [True]}, False, id="bool-is-not-integer"),
        pytest.param({"enum": [1]}, {"enum": [1.0]}, True, id="one-equals-one-point-zero"),
        # JSON equality, not Python's: true is not 1, false is not 0.
        pytest.param({"enum": [1]}, {"enum": [True]}, False, id="true-is-not-one"),
        pytest.param({"enum": [0, "a"]}, {"enum": [False, "a"]}, False, id="false-is-not-zero"),
        pytest.param({"not": {"const": 1}}, {"not": {"const": True}}, False, id="opaque-true"),
        pytest.param({"enum": [1, "a"]}, {"enum": [True]}, False, id="true-is-not-one-unequal"),
        pytest.param({"minimum": 0}, {"const": 3}, True, id="const"),
        pytest.param({"const": 3}, {"enum": [3]}, True, id="const-wide"),
        pytest.param({"enum": ["a"]}, {"type": "string"}, False, id="wide-restricts"),
        pytest.param({"$ref": "#/$defs/n"}, {"enum": [1.5]}, True, id="ref-wide-by-value"),
    ],
)
def test_covers_enum_narrow_side_by_values(wide: Any, narrow: Any, ok: bool) -> None:
    assert (covered(wide, narrow, NUMBER_DEFS, NUMBER_DEFS) == []) is ok


def test_covers_enum_names_rejected_values() -> None:
    problems = covered({"type": "string", "maxLength": 1}, {"enum": ["a", "bb", "ccc"]})
    assert problems == [("$", "old allows 'bb', 'ccc', which new rejects")]


@pytest.mark.parametrize(
    ("wide", "narrow", "ok"),
    [
        pytest.param({"minimum": 0}, {"type": "number", "minimum": 0}, True, id="min=min"),
        pytest.param({"minimum": 0}, {"type": "number", "minimum": -1}, False, id="min<min"),
        pytest.param({"minimum": 0}, {"type": "number"}, False, id="min-unbounded"),
        pytest.param(
            {"minimum": 0}, {"type": "number", "exclusiveMinimum": 0}, True, id="min=xmin"
        ),
        pytest.param(
            {"exclusiveMinimum": 0}, {"type": "number", "minimum": 0}, False, id="xmin=min"
        ),
        pytest.param(
            {"exclusiveMinimum": 0}, {"type": "number", "minimum": 0.5}, True, id="xmin<min"
        ),
        pytest.param(
            {"exclusiveMinimum": 0}, {"type": "number", "exclusiveMinimum": 0}, True, id="xmin=xmin"
        ),
        pytest.param({"maximum": 5}, {"type": "number", "maximum": 5}, True, id="max=max"),
        pytest.param({"maximum": 5}, {"type": "number", "maximum": 6}, False, id="max>max"),
        pytest.param(
            {"maximum": 5}, {"type": "number", "exclusiveMaximum": 5}, True, id="max=xmax"
        ),
        pytest.param(
            {"exclusiveMaximum": 5}, {"type": "number", "maximum": 5}, False, id="xmax=max"
        ),
        pytest.param(
            {"exclusiveMaximum": 5}, {"type": "number", "maximum": 4.9}, True, id="xmax>max"
        ),
        pytest.param(
            {"exclusiveMaximum": 5},
            {"type": "number", "exclusiveMaximum": 6, "maximum": 5},
            False,
            id="xmax-both-narrow",
        ),
        pytest.param(
            {"exclusiveMaximum": 5},
            {"type": "number", "exclusiveMaximum": 5, "maximum": 9},
            True,
            id="xmax-one-narrow-bound-suffices",
        ),
        pytest.param({"maximum": 5}, {"type": "string"}, True, id="bounds-ignore-strings"),
        pytest.param({"multipleOf": 0.5}, {"type": "number", "multipleOf": 1.5}, True, id="mult"),
        pytest.param({"multipleOf": 2}, {"type": "integer", "multipleOf": 3}, False, id="mult-no"),
        pytest.param({"minLength": 2}, {"type": "string", "minLength": 3}, True, id="minLength"),
        pytest.param({"maxLength": 2}, {"type": "string"}, False, id="maxLength-unbounded"),
        pytest.param({"maxItems": 2}, {"type": "array", "maxItems": 1}, True, id="maxItems"),
        pytest.param({"minItems": 1}, {"type": "array"}, False, id="minItems-unbounded"),
    ],
)
def test_covers_bounds(wide: Any, narrow: Any, ok: bool) -> None:
    assert (covered(wide, narrow) == []) is ok


@pytest.mark.parametrize(
    ("wide", "narrow", "ok", "path"),
    [
        pytest.param(
            {"type": "array", "items": {"type": "number"}},
            {"type": "array", "items": {"type": "integer"}},
            True,
            None,
            id="items-widened",
        ),
        pytest.param(
            {"type": "array", "items": {"type": "integer"}},
            {"type": "array", "items": {"type": "number"}},
            False,
            "$[*]",
            id="items-narrowed",
        ),
        pytest.param(
            {"type": "array", "items": {"type": "string"}},
            {"type": "array"},
            False,
            "$[*]",
            id="items-added",
        ),
        pytest.param(
            {"type": "array", "prefixItems": [{"type": "string"}]},
            {"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer"}]},
            True,
            None,
            id="prefix-longer-narrow",
        ),
        pytest.param(
            {"type": "array", "prefixItems": [{"type": "string"}]},
            {"type": "array", "items": {"type": "number"}},
            False,
            "$[0]",
            id="prefix-vs-items",
        ),
        pytest.param(
            {"type": "array", "prefixItems": [{"type": "number"}], "items": False},
            {"type": "array", "prefixItems": [{"type": "integer"}], "items": False},
            True,
            None,
            id="prefix-closed",
        ),
        pytest.param(
            {"type": "array", "prefixItems": [{"type": "number"}], "items": False},
            {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "integer"}]},
            False,
            "$[1]",
            id="prefix-closed-wide-open-narrow",
        ),
        pytest.param(
            {"type": "array", "uniqueItems": True},
            {"type": "array"},
            False,
            "$",
            id="unique-added",
        ),
    ],
)
def test_covers_arrays(wide: Any, narrow: Any, ok: bool, path: str | None) -> None:
    problems = covered(wide, narrow)
    assert (problems == []) is ok, problems
    if path is not None:
        assert path in [p for p, _ in problems]


@pytest.mark.parametrize(
    ("wide", "narrow", "ok"),
    [
        pytest.param(
            {"type": "object", "properties": {"a": {"type": "string"}}},
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            True,
            id="required-dropped",
        ),
        pytest.param(
            {"type": "object", "required": ["a"]},
            {"type": "object", "properties": {"a": {}}},
            False,
            id="required-added",
        ),
        pytest.param(
            {"type": "object", "additionalProperties": False},
            {"type": "object", "properties": {"a": False}},
            False,
            id="closed-wide-open-narrow",
        ),
        pytest.param(
            {"type": "object", "properties": {"a": {}}, "additionalProperties": False},
            {"type": "object", "properties": {"a": {}, "b": False}, "additionalProperties": False},
            True,
            id="narrow-forbids-property",
        ),
        pytest.param(
            {"type": "object", "additionalProperties": {"type": "number"}},
            {"type": "object", "additionalProperties": {"type": "integer"}},
            True,
            id="additional-schemas",
        ),
        pytest.param(
            {"type": "object", "patternProperties": {"^x": {}}},
            {"type": "object"},
            False,
            id="patternProperties-changed",
        ),
    ],
)
def test_covers_objects(wide: Any, narrow: Any, ok: bool) -> None:
    problems = covered(wide, narrow)
    assert (problems == []) is ok, problems


def test_covers_refs_resolve_against_each_sides_root() -> None:
    wide_root = {"$defs": {"a": {"type": "string"}}}
    narrow_root = {"$defs": {"a": {"type": "integer"}}}
    schema = {"$ref": "#/$defs/a"}
    assert covered(schema, schema, wide_root, narrow_root) != []
    assert covered(schema, schema, narrow_root, narrow_root) == []


def test_type_changes_and_mode_incompatibilities_directly() -> None:
    old = {"type": "object", "properties": {"a": {"type": "string"}}}
    new = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert [(i.path, i.rule) for i in type_changes(old, new)] == [("$.a", "TYPE")]
    found = mode_incompatibilities(
        CompatibilityMode.BACKWARD, new, "v2", [("v1", old)], skip_paths=frozenset({"$.a"})
    )
    assert found == []
    found = mode_incompatibilities(CompatibilityMode.NONE, new, "v2", [("v1", old)])
    assert found == []


# -- soundness on plain JSON Schemas: regressions and known bugs ----------------------------


def plain(**schema: Any) -> dict[str, Any]:
    return {"$schema": DIALECT, "title": "T", "type": "object", **schema}


def patterned(*, name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """v1 types names matching ^\\d+$ / ^x$ by pattern; v2 also declares ``name`` as integer."""
    patterns = {r"^\d+$": {"type": "integer"}, "^x$": {"type": "integer"}}
    old = plain(patternProperties=patterns, additionalProperties={"type": "string"})
    new = plain(
        properties={name: {"type": "integer"}},
        patternProperties=patterns,
        additionalProperties={"type": "string"},
    )
    return old, new, {name: "s"}


# (old, new, witness): the witness is valid under old and invalid under new, so BACKWARD
# (new must accept everything old accepts) does not hold and the checker must say so.
# These were all classified compatible by an earlier checker (fixed in 84c3cfc).
UNSOUND_BEFORE = {
    "opaque-root-ref": (
        plain(properties={"child": {}}),
        plain(properties={"child": {"$ref": "#"}}),
        {"child": 5},
    ),
    "pattern-properties": (
        plain(
            patternProperties={"^x": {"type": "integer"}}, additionalProperties={"type": "string"}
        ),
        plain(
            properties={"xy": {"type": "string"}},
            patternProperties={"^x": {"type": "integer"}},
            additionalProperties={"type": "string"},
        ),
        {"xy": 1},
    ),
    "unevaluated-properties": (
        plain(properties={"a": {}, "b": {}}, unevaluatedProperties=False),
        plain(properties={"a": {}}, unevaluatedProperties=False),
        {"b": 1},
    ),
    "unevaluated-items": (
        plain(properties={"l": {"prefixItems": [{}, {}], "unevaluatedItems": False}}),
        plain(properties={"l": {"prefixItems": [{}], "unevaluatedItems": False}}),
        {"l": [1, 2]},
    ),
    "ref-inside-unknown-keyword": (
        plain(
            **{"$defs": {"a": {"type": "integer"}}},
            properties={"p": {"anyOf": [{"$ref": "#/$defs/a"}]}},
        ),
        plain(
            **{"$defs": {"a": {"type": "string"}}},
            properties={"p": {"anyOf": [{"$ref": "#/$defs/a"}]}},
        ),
        {"p": 1},
    ),
    "bool-is-not-number-in-opaque-keyword": (
        plain(properties={"p": {"not": {"const": 1}}}),
        plain(properties={"p": {"not": {"const": True}}}),
        {"p": True},
    ),
}

# Python's re says these names match the pattern; the validator (ECMA-262 dialect) says they
# do not, so under v1 additionalProperties (string) governs them, not the pattern.
UNSOUND_REGEX = {
    "unicode-digit-vs-backslash-d": patterned(name="\u0663"),  # ARABIC-INDIC DIGIT THREE
    "dollar-before-trailing-newline": patterned(name="x\n"),
}


@pytest.mark.parametrize(
    ("old", "new", "witness"),
    [pytest.param(*case, id=name) for name, case in {**UNSOUND_BEFORE, **UNSOUND_REGEX}.items()],
)
def test_unsound_witnesses_are_genuine(old: Any, new: Any, witness: Any) -> None:
    assert SchemaValidator(old, reeldb_keywords=False).is_valid(witness)
    assert not SchemaValidator(new, reeldb_keywords=False).is_valid(witness)


@pytest.mark.parametrize(
    ("old", "new", "witness"),
    [pytest.param(*case, id=name) for name, case in {**UNSOUND_BEFORE, **UNSOUND_REGEX}.items()],
)
def test_backward_rejects_change_that_breaks_valid_data(
    db: reeldb.Database, old: Any, new: Any, witness: Any
) -> None:
    db.create_namespace("ns")
    db.add_schema("ns", old, compatibility="BACKWARD")
    report = db.check_schema("ns", new)
    assert not report.compatible, f"{witness!r} is valid under v1 but not under v2"


ENUM_TRUE = {"name": "T", "properties": {"flag": {"type": "enum", "values": [True, "auto"]}}}
ENUM_ONE = {"name": "T", "properties": {"flag": {"type": "enum", "values": [1, "auto"]}}}


def test_enum_true_to_one_witness_is_genuine(db: reeldb.Database) -> None:
    db.create_namespace("ns")
    db.add_schema("ns", ENUM_TRUE, compatibility="NONE")
    db.add_schema("ns", ENUM_ONE)
    assert db.validate("ns", "T", {"flag": True}, version=1) == []
    assert db.validate("ns", "T", {"flag": True}, version=2) != []
    assert db.validate("ns", "T", {"flag": 1}, version=1) != []


@pytest.mark.parametrize("mode", ["BACKWARD", "FORWARD", "FULL"])
def test_enum_true_to_one_is_incompatible(db: reeldb.Database, mode: str) -> None:
    # {"flag": true} is valid under v1 only, {"flag": 1} under v2 only: no mode holds.
    db.create_namespace("ns")
    db.add_schema("ns", ENUM_TRUE, compatibility=mode)
    assert not db.check_schema("ns", ENUM_ONE).compatible


def test_changing_a_list_item_type_is_a_type_change(db: reeldb.Database) -> None:
    """MRK-7 holds inside lists too, even in mode NONE on a schema no DataStore uses."""
    db.create_namespace("lists")
    tags = {"name": "TAGS", "compatibility": "NONE"}
    db.add_schema(
        "lists", {**tags, "properties": {"tags": {"type": "list", "items": {"type": "string"}}}}
    )
    report = db.check_schema(
        "lists",
        {"name": "TAGS", "properties": {"tags": {"type": "list", "items": {"type": "int"}}}},
    )
    assert [(i.path, i.rule) for i in report.incompatibilities] == [("$.tags[*]", "TYPE")]
