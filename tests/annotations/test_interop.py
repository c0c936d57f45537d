"""Annotations to and from W3C Web Annotation, COCO and CVAT (reeldb.annotations.interop)."""

from __future__ import annotations

import contextlib
import copy
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reeldb.annotations.interop import (
    ANNO_CONTEXT,
    MEDIA_FRAGMENTS,
    PAYLOAD_FORMAT,
    association_from_urn,
    association_urn,
    from_coco,
    from_cvat,
    from_w3c,
    from_w3c_many,
    to_w3c,
    w3c_collection,
)
from reeldb.annotations.model import Annotation, Association, NewAnnotation, TypeRef
from reeldb.errors import ValidationError
from reeldb.model.timing import TimeRange

DATA = Path(__file__).parent / "data"
MOVIE = Association("MOVIE_ID", "81234567")
SHOT = Association("SHOT_ID", "shot 7/#b:é")


@cache
def schema() -> dict[str, Any]:
    result: dict[str, Any] = json.loads((DATA / "web-annotation.schema.json").read_text())
    return result


@cache
def validator() -> Any:
    return jsonschema_rs.validator_for(schema())


@cache
def spec_examples() -> dict[str, Any]:
    examples: dict[str, Any] = json.loads((DATA / "w3c-spec-examples.json").read_text())
    return {name: value for name, value in examples.items() if not name.startswith("_")}


def spec_example(name: str) -> dict[str, Any]:
    return copy.deepcopy(spec_examples()[name])


def annotation(
    data: Mapping[str, Any],
    *,
    associations: tuple[Association, ...] = (MOVIE, SHOT),
    deleted: bool = False,
    created_by: str | None = "user:alice",
) -> Annotation:
    return Annotation(
        id=uuid.uuid4(),
        version=2,
        namespace="vision",
        type=TypeRef("FACE", 3),
        associations=associations,
        data=dict(data),
        deleted=deleted,
        created_at=datetime.now(UTC),
        created_by=created_by,
    )


def pointers(exc: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return [v.pointer for v in exc.value.violations]


def selector_values(target: Any) -> list[str]:
    values = []
    selector = target.get("selector") if isinstance(target, dict) else None
    while selector:
        values.append(selector["value"])
        selector = selector.get("refinedBy")
    return values


# -- round trip (property-based) --------------------------------------------------------------

weird_ids = st.sampled_from(
    ["a b", "x:y", "a/b", "#frag", "%41", "100%", "é", "日本語", "clip 🎬", "?q=1&t=2"]
    + ["urn:reeldb:association:X:y", " ", "~0~1", "a#t=1,2", "line\nbreak"]
)
association_strategy = st.builds(
    Association,
    st.from_regex(r"\A[A-Za-z][A-Za-z0-9_.\-]{0,20}\Z"),
    st.one_of(weird_ids, st.text(min_size=1, max_size=40)),
)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
seconds = st.one_of(st.integers(0, 10**6), st.floats(0, 10**6, allow_subnormal=False))


@st.composite
def time_ranges(draw: st.DrawFn) -> dict[str, Any]:
    if draw(st.booleans()):
        start, end = sorted([draw(seconds), draw(seconds)])
        return {"start": start, "end": end}
    first = draw(st.integers(0, 10**7))
    last = draw(st.integers(first, first + 10**4))
    rate = draw(st.sampled_from(["30000/1001", 25, "24", 29.97, "12.5", 59.94, "24000/1001"]))
    return {"start_frame": first, "end_frame": last, "rate": rate}


sizes = st.one_of(st.just(0), st.just(0.0), st.integers(0, 5000), st.floats(0, 5000))
boxes = st.fixed_dictionaries(
    {
        "x": st.one_of(st.integers(-50, 5000), st.floats(-50, 5000)),
        "y": st.one_of(st.integers(-50, 5000), st.floats(-50, 5000)),
        "w": sizes,
        "h": sizes,
    }
)


@st.composite
def stored_annotations(draw: st.DrawFn) -> Annotation:
    data: dict[str, Any] = draw(
        st.dictionaries(
            st.text(max_size=10).filter(lambda k: k[:1] != "_"), json_values, max_size=5
        )
    )
    if draw(st.booleans()):
        data["_span"] = draw(time_ranges())
    if draw(st.booleans()):
        data["_box"] = draw(boxes)
    data["_note"] = draw(
        st.none() | st.text(max_size=30) | st.lists(st.text(max_size=10), max_size=3)
    )
    return Annotation(
        id=draw(st.uuids()),
        version=draw(st.integers(1, 10**6)),
        namespace="vision",
        type=TypeRef(draw(st.from_regex(r"\A[A-Z][A-Z0-9_]{0,30}\Z")), draw(st.integers(0, 10**4))),
        associations=tuple(
            draw(st.lists(association_strategy, min_size=1, max_size=6, unique=True))
        ),
        data=data,
        deleted=False,
        created_at=draw(st.datetimes(timezones=st.just(UTC))),
        created_by=draw(st.none() | st.sampled_from(["user:alice", "app:shot-detector", "x y"])),
    )


@given(stored_annotations())
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip_restores_the_annotation_exactly(original: Annotation) -> None:
    exported = to_w3c(
        original, time_property="_span", box_property="_box", text_properties=["_note"]
    )
    wire = json.loads(json.dumps(exported))  # it is plain JSON
    assert validator().is_valid(wire), list(validator().iter_errors(wire))
    restored = from_w3c(wire, type="IGNORED", time_property="ignored")
    assert restored.id == original.id
    assert restored.type == original.type  # name and version
    assert restored.associations == original.associations  # order kept
    assert orjson.dumps(restored.data) == orjson.dumps(original.data)  # 1 is not 1.0


@given(association_strategy)
def test_association_urn_round_trips_any_id(association: Association) -> None:
    urn = association_urn(association)
    assert association_from_urn(urn) == association
    assert "#" not in urn and " " not in urn and "/" not in urn.removeprefix("urn:")


# -- export -----------------------------------------------------------------------------------


def test_export_shape() -> None:
    face = annotation(
        {
            "span": {"start": 10, "end": 20.5},
            "box": {"x": 160, "y": 120, "w": 320, "h": 240},
            "comment": "a face",
            "tags": ["smile", "glasses"],
        }
    )
    out = to_w3c(
        face, time_property="span", box_property="box", text_properties=["comment", "tags"]
    )
    assert out["@context"] == ANNO_CONTEXT
    assert out["id"] == f"urn:uuid:{face.id}"
    assert out["type"] == "Annotation"
    assert out["created"].endswith("Z")
    assert out["creator"] == {
        "id": "urn:reeldb:principal:user%3Aalice",
        "name": "user:alice",
        "type": "Person",
    }
    assert [t["source"] for t in out["target"]] == [
        "urn:reeldb:association:MOVIE_ID:81234567",
        "urn:reeldb:association:SHOT_ID:shot%207%2F%23b%3A%C3%A9",
    ]
    for target in out["target"]:
        assert target["type"] == "SpecificResource"
        assert selector_values(target) == ["t=10,20.5", "xywh=160,120,320,240"]
        assert target["selector"]["conformsTo"] == MEDIA_FRAGMENTS
        assert target["selector"]["refinedBy"]["conformsTo"] == MEDIA_FRAGMENTS
    texts = [b for b in out["body"] if b["format"] == "text/plain"]
    assert [(b["type"], b["value"], b["purpose"]) for b in texts] == [
        ("TextualBody", "a face", "describing"),
        ("TextualBody", "smile", "describing"),
        ("TextualBody", "glasses", "describing"),
    ]
    payload = out["body"][-1]
    assert payload["type"] == "TextualBody" and payload["format"] == PAYLOAD_FORMAT
    assert json.loads(payload["value"]) == {
        "id": str(face.id),
        "version": 2,
        "type": {"name": "FACE", "version": 3},
        "associations": [MOVIE.to_json(), SHOT.to_json()],
        "data": face.data,
    }
    assert validator().is_valid(out)


def test_export_without_selectors_uses_plain_iris() -> None:
    out = to_w3c(annotation({"label": "cat"}, associations=(MOVIE,), created_by=None))
    assert out["target"] == "urn:reeldb:association:MOVIE_ID:81234567"
    assert "creator" not in out
    assert validator().is_valid(out)


@pytest.mark.parametrize(
    ("span", "fragment"),
    [
        pytest.param({"start": 0, "end": 1.5}, "t=0,1.5", id="seconds"),
        pytest.param({"start": "1/3", "end": "2/3"}, "t=0.333333,0.666667", id="rounded-outward"),
        pytest.param(
            {"start_frame": 1, "end_frame": 2, "rate": "30000/1001"},
            "t=0.033366,0.066734",
            id="ntsc-frames",
        ),
        pytest.param({"start_frame": 50, "end_frame": 75, "rate": 25}, "t=2,3", id="pal-frames"),
    ],
)
def test_export_time_fragment(span: dict[str, Any], fragment: str) -> None:
    out = to_w3c(annotation({"span": span}, associations=(MOVIE,)), time_property="span")
    assert selector_values(out["target"]) == [fragment]


def test_export_empty_time_range_has_no_fragment() -> None:
    # Media Fragments calls t=5,5 invalid; the payload still holds the range.
    out = to_w3c(annotation({"span": {"start": 5, "end": 5}}), time_property="span")
    assert out["target"][0] == "urn:reeldb:association:MOVIE_ID:81234567"


@pytest.mark.parametrize(
    ("box", "relative", "fragment"),
    [
        pytest.param({"x": 1.5, "y": 2, "w": 10, "h": 0}, False, "xywh=1,2,11,0", id="covering"),
        pytest.param({"x": -5, "y": 0, "w": 20, "h": 20}, False, "xywh=0,0,15,20", id="clipped"),
        pytest.param(
            {"x": 0.25, "y": 0.1, "w": 0.5, "h": 0.333}, True, "xywh=percent:25,10,50,34", id="pct"
        ),
    ],
)
def test_export_box_fragment(box: dict[str, Any], relative: bool, fragment: str) -> None:
    out = to_w3c(
        annotation({"box": box}, associations=(MOVIE,)), box_property="box", relative_box=relative
    )
    assert selector_values(out["target"]) == [fragment]
    assert validator().is_valid(out)


def test_tombstones_are_not_exported() -> None:
    with pytest.raises(ValidationError, match="deleted") as exc:
        to_w3c(annotation({}, deleted=True))
    assert pointers(exc) == ["/deleted"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param({"span": {"start": 3, "end": 1}}, ["/data/span"], id="start-after-end"),
        pytest.param({"span": {"start": "x", "end": 1}}, ["/data/span/start"], id="bad-start"),
        pytest.param({"span": {"start_frame": 1, "end_frame": 2}}, ["/data/span"], id="no-rate"),
        pytest.param({"box": {"x": 0, "y": 0, "w": -1, "h": 2}}, ["/data/box/w"], id="negative"),
        pytest.param({"box": {"x": 0, "y": 0, "w": 1}}, ["/data/box/h"], id="missing-h"),
        pytest.param({"box": [1, 2, 3, 4]}, ["/data/box"], id="box-not-object"),
        pytest.param({"note": 3}, ["/data/note"], id="text-not-string"),
    ],
)
def test_export_errors_point_at_the_property(data: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ValidationError) as exc:
        to_w3c(
            annotation(data),
            time_property="span",
            box_property="box",
            text_properties=["note"],
        )
    assert pointers(exc) == expected


def test_created_is_utc_with_z() -> None:
    face = annotation({})
    local = timezone(timedelta(hours=2))
    moment = datetime(2024, 5, 6, 9, 30, 0, 120000, tzinfo=local)
    out = to_w3c(
        Annotation(
            face.id,
            1,
            "vision",
            face.type,
            face.associations,
            {},
            False,
            moment,
        )
    )
    assert out["created"] == "2024-05-06T07:30:00.12Z"


def test_collection_holds_every_annotation() -> None:
    exported = [to_w3c(annotation({"n": i})) for i in range(3)]
    collection = w3c_collection(exported, id="https://example.org/export/1", label="Faces")
    assert collection["type"] == "AnnotationCollection"
    assert collection["total"] == 3
    page = collection["first"]
    assert page["type"] == "AnnotationPage" and page["id"] == "https://example.org/export/1#page0"
    assert all("@context" not in item for item in page["items"])
    restored = from_w3c_many(collection)
    assert [a.data for a in restored] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert w3c_collection([], id="urn:x:empty") == {
        "@context": ANNO_CONTEXT,
        "id": "urn:x:empty",
        "type": "AnnotationCollection",
        "total": 0,
    }
    assert w3c_collection([])["id"].startswith("urn:uuid:")


# -- the schema -------------------------------------------------------------------------------


def test_schema_is_a_valid_2020_12_schema() -> None:
    assert schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema_rs.meta.validate(schema())


@pytest.mark.parametrize("name", sorted(spec_examples()))
def test_schema_accepts_the_w3c_examples(name: str) -> None:
    example = spec_example(name)
    assert validator().is_valid(example), [e.message for e in validator().iter_errors(example)]


def _media_selector(value: str) -> dict[str, Any]:
    example = spec_example("example-20-fragment-selector")
    example["body"]["selector"]["value"] = value
    return example


@pytest.mark.parametrize(
    "value",
    [
        "t=10,20",
        "t=npt:10,20",
        "t=,20",
        "t=10",
        "t=npt:1:02:03.25,1:02:05",
        "t=00:10,01:20",
        "t=smpte-30:0:02:00,0:02:01:12",
        "t=clock:2011-10-01T23:00:45Z",
        "xywh=160,120,320,240",
        "xywh=pixel:160,120,320,240",
        "xywh=percent:25,25,50,50",
        "t=10,20&xywh=160,120,320,240",
        "track=audio&t=10,20",
    ],
)
def test_schema_accepts_media_fragments(value: str) -> None:
    assert validator().is_valid(_media_selector(value))


@pytest.mark.parametrize(
    "value",
    ["t=10-20", "t=a,b", "t=1:2:3", "xywh=1,2,3", "xywh=1.5,2,3,4", "xywh=-1,2,3,4"]
    + ["xywh=em:1,2,3,4", "t=10,20&", "T=10,20", ""],
)
def test_schema_rejects_bad_media_fragments(value: str) -> None:
    assert not validator().is_valid(_media_selector(value))


def _broken(name: str, change: Any) -> dict[str, Any]:
    example = spec_example(name)
    change(example)
    return example


@pytest.mark.parametrize(
    "broken",
    [
        pytest.param(_broken("example-1-basic", lambda e: e.pop("target")), id="missing-target"),
        pytest.param(_broken("example-1-basic", lambda e: e.update(target=[])), id="empty-targets"),
        pytest.param(
            _broken("example-1-basic", lambda e: e.update({"@context": "http://schema.org/"})),
            id="wrong-context",
        ),
        pytest.param(_broken("example-1-basic", lambda e: e.pop("id")), id="missing-id"),
        pytest.param(
            _broken("example-1-basic", lambda e: e.update(id="not an iri")), id="id-not-iri"
        ),
        pytest.param(
            _broken("example-1-basic", lambda e: e.update(type="Note")), id="not-annotation"
        ),
        pytest.param(
            _broken(
                "example-20-fragment-selector",
                lambda e: e["body"]["selector"].update(type="FragmentSelektor"),
            ),
            id="wrong-selector-type",
        ),
        pytest.param(
            _broken("example-20-fragment-selector", lambda e: e["body"]["selector"].pop("value")),
            id="selector-without-value",
        ),
        pytest.param(
            _broken(
                "example-29-refinement-of-selection",
                lambda e: e["target"]["selector"]["refinedBy"].pop("type"),
            ),
            id="refinement-without-type",
        ),
        pytest.param(
            _broken("example-5-textual-body", lambda e: e["body"].pop("value")),
            id="textual-body-without-value",
        ),
        pytest.param(
            _broken("example-5-textual-body", lambda e: e["body"].update(value=["a"])),
            id="textual-body-value-not-string",
        ),
        pytest.param(
            _broken("example-6-string-body", lambda e: e.update(body="http://example.org/b")),
            id="body-and-bodyValue",
        ),
        pytest.param(
            _broken("example-41-complete", lambda e: e.update(created="2015-10-13 13:00")),
            id="created-not-utc-datetime",
        ),
        pytest.param(
            _broken("example-41-complete", lambda e: e["target"].pop("source")),
            id="specific-resource-without-source",
        ),
    ],
)
def test_schema_rejects_broken_annotations(broken: dict[str, Any]) -> None:
    assert not validator().is_valid(broken)


# -- import of foreign W3C annotations --------------------------------------------------------


def video_target(selector: Any) -> dict[str, Any]:
    return {
        "@context": ANNO_CONTEXT,
        "id": "http://example.org/anno1",
        "type": "Annotation",
        "bodyValue": "a face",
        "target": {"source": "http://example.org/video1", "selector": selector},
    }


def media(value: str, **extra: Any) -> dict[str, Any]:
    return {"type": "FragmentSelector", "conformsTo": MEDIA_FRAGMENTS, "value": value, **extra}


def read(value: Any, **options: Any) -> NewAnnotation:
    options = {
        "type": "FACE",
        "time_property": "span",
        "box_property": "box",
        "text_property": "text",
        **options,
    }
    return from_w3c(value, **options)


@pytest.mark.parametrize(
    ("selector", "span", "box"),
    [
        pytest.param(media("t=30,60"), {"start": 30, "end": 60}, None, id="seconds"),
        pytest.param(media("t=npt:10.5,20"), {"start": 10.5, "end": 20}, None, id="npt-prefix"),
        pytest.param(media("t=,20"), {"start": 0, "end": 20}, None, id="from-zero"),
        pytest.param(
            media("t=npt:1:02:03.25,01:02:05"), {"start": 3723.25, "end": 3725}, None, id="hhmmss"
        ),
        pytest.param(media("t=00:10,01:20.5"), {"start": 10, "end": 80.5}, None, id="mmss"),
        pytest.param(
            media("t=smpte-25:0:00:10:05,0:00:11"), {"start": 10.2, "end": 11}, None, id="smpte"
        ),
        pytest.param(
            media("xywh=160,120,320,240"), None, {"x": 160, "y": 120, "w": 320, "h": 240}, id="px"
        ),
        pytest.param(
            media("xywh=pixel:1.5,2,3,4"), None, {"x": 1.5, "y": 2, "w": 3, "h": 4}, id="decimals"
        ),
        pytest.param(
            media("xywh=percent:25,10,50,5"),
            None,
            {"x": 0.25, "y": 0.1, "w": 0.5, "h": 0.05},
            id="percent-is-relative",
        ),
        pytest.param(
            media("t=10,20&xywh=1,2,3,4"),
            {"start": 10, "end": 20},
            {"x": 1, "y": 2, "w": 3, "h": 4},
            id="both-in-one",
        ),
        pytest.param(
            media("t=10,20", refinedBy=media("xywh=1,2,3,4")),
            {"start": 10, "end": 20},
            {"x": 1, "y": 2, "w": 3, "h": 4},
            id="refined-by",
        ),
        pytest.param(
            [media("t=10,20"), media("xywh=1,2,3,4")],
            {"start": 10, "end": 20},
            {"x": 1, "y": 2, "w": 3, "h": 4},
            id="selector-list",
        ),
        pytest.param(
            {"type": "FragmentSelector", "value": "t=1,2"},
            {"start": 1, "end": 2},
            None,
            id="no-conformsTo",
        ),
        pytest.param(
            {
                "type": "FragmentSelector",
                "conformsTo": "http://tools.ietf.org/rfc/rfc3778",
                "value": "page=10&viewrect=50,50,640,480",
            },
            None,
            None,
            id="other-fragment-spec-ignored",
        ),
        pytest.param(
            {"type": "SvgSelector", "value": "<svg/>"}, None, None, id="other-selector-ignored"
        ),
    ],
)
def test_import_selectors(selector: Any, span: Any, box: Any) -> None:
    imported = read(video_target(selector))
    expected: dict[str, Any] = {"text": "a face"}
    if span is not None:
        expected["span"] = span
    if box is not None:
        expected["box"] = box
    assert imported == NewAnnotation(
        "FACE", (Association("SOURCE", "http://example.org/video1"),), expected
    )


@pytest.mark.parametrize(
    ("target", "source", "data"),
    [
        pytest.param(
            "http://example.org/video1.mp4#t=npt:10,20&xywh=percent:0,0,50,50",
            "http://example.org/video1.mp4",
            {"span": {"start": 10, "end": 20}, "box": {"x": 0, "y": 0, "w": 0.5, "h": 0.5}},
            id="iri-with-media-fragment",
        ),
        pytest.param(
            "http://example.org/page#section2",
            "http://example.org/page#section2",
            {},
            id="other-fragment-kept",
        ),
        pytest.param(
            {"id": "http://example.com/image1#xywh=100,100,300,300", "type": "Image"},
            "http://example.com/image1",
            {"box": {"x": 100, "y": 100, "w": 300, "h": 300}},
            id="external-resource-id",
        ),
        pytest.param(
            {"source": {"id": "http://example.org/v#t=5,6", "type": "Video"}},
            "http://example.org/v",
            {"span": {"start": 5, "end": 6}},
            id="source-object",
        ),
    ],
)
def test_import_plain_targets(target: Any, source: str, data: dict[str, Any]) -> None:
    value = {"type": "Annotation", "target": target}
    assert read(value) == NewAnnotation("FACE", (Association("SOURCE", source),), data)


def test_import_w3c_spec_examples() -> None:
    example4 = read(spec_example("example-4-iri-with-fragment"))
    assert example4.associations == (Association("SOURCE", "http://example.com/image1"),)
    assert example4.data == {"box": {"x": 100, "y": 100, "w": 300, "h": 300}}
    example6 = read(spec_example("example-6-string-body"))
    assert example6.data == {"text": "Comment text"}
    complete = read(spec_example("example-41-complete"), association_type="DOCUMENT")
    assert complete.associations == (Association("DOCUMENT", "http://example.com/document1"),)
    assert complete.data == {"text": "love"}
    choice = spec_example("example-41-complete")
    del choice["body"][0]
    assert read(choice).data["text"].startswith("I really love")
    example5 = read(spec_example("example-5-textual-body"), text_property="html")
    assert example5.data == {"html": "<p>j'adore !</p>"}


def test_import_maps_reeldb_urns_and_adds_associations() -> None:
    video = Association("VIDEO_ID", "v1")
    value = {
        "id": "urn:uuid:0195b2a4-7c3e-7d4e-8f00-0123456789ab",
        "type": ["Annotation"],
        "target": [
            association_urn(SHOT) + "#t=1,2",
            "https://example.org/frame.png",
            association_urn(SHOT),
        ],
    }
    imported = read(value, associations=[video])
    assert imported.associations == (
        SHOT,
        Association("SOURCE", "https://example.org/frame.png"),
        video,
    )
    assert imported.id == uuid.UUID("0195b2a4-7c3e-7d4e-8f00-0123456789ab")
    assert imported.data == {"span": {"start": 1, "end": 2}}


def test_import_ignores_unmapped_fragments() -> None:
    value = video_target(media("t=oops"))
    imported = from_w3c(value, type="FACE@2")  # no time_property: t= is not read
    assert imported.data == {}
    assert imported.type == "FACE@2"


def test_payload_wins_over_the_mapping() -> None:
    face = annotation({"span": {"start": 1, "end": 2}})
    exported = to_w3c(face, time_property="span")
    exported["target"] = "http://elsewhere.example/rewritten-by-a-server"
    exported["id"] = "http://annotations.example/42"
    restored = from_w3c(exported, type="OTHER", associations=[Association("X", "y")])
    assert restored == NewAnnotation(TypeRef("FACE", 3), face.associations, face.data, face.id)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param([], [], id="empty-list"),
        pytest.param({"type": "AnnotationPage", "id": "urn:p", "items": []}, [], id="empty-page"),
        pytest.param(
            {"type": "AnnotationCollection", "id": "urn:c", "total": 0}, [], id="empty-collection"
        ),
    ],
)
def test_import_many_empty(value: Any, expected: list[NewAnnotation]) -> None:
    assert from_w3c_many(value, type="FACE") == expected


def test_import_many_from_the_spec_collection() -> None:
    collection = json.loads((DATA / "w3c-spec-collection.json").read_text())
    imported = from_w3c_many(collection, type="COMMENT", association_type="CHAPTER")
    assert [a.associations for a in imported] == [
        (Association("CHAPTER", "http://example.com/book/chapter1"),),
        (Association("CHAPTER", "http://example.com/book/chapter2"),),
    ]
    page = collection["first"]
    page["@context"] = ANNO_CONTEXT
    assert from_w3c_many(page, type="COMMENT") == from_w3c_many(page["items"], type="COMMENT")
    assert len(from_w3c_many(page["items"][0], type="COMMENT")) == 1


def test_import_many_follows_embedded_next_pages() -> None:
    first: dict[str, Any] = {"type": "AnnotationPage", "items": [spec_example("example-1-basic")]}
    first["next"] = {"type": "AnnotationPage", "items": [spec_example("example-6-string-body")]}
    assert len(from_w3c_many(first, type="NOTE")) == 2


# -- import errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("http://example.org/anno1", [""], id="not-an-object"),
        pytest.param({"target": "urn:x"}, ["/type"], id="no-type"),
        pytest.param({"type": "Note", "target": "urn:x"}, ["/type"], id="not-annotation"),
        pytest.param({"type": "Annotation"}, [""], id="no-target"),
        pytest.param({"type": "Annotation", "target": []}, ["/target"], id="empty-targets"),
        pytest.param({"type": "Annotation", "target": 3}, ["/target"], id="target-number"),
        pytest.param(
            {"type": "Annotation", "target": ["urn:x", {"selector": {}}]},
            ["/target/1"],
            id="target-without-source",
        ),
        pytest.param(
            {"type": "Annotation", "target": {"source": 7}}, ["/target/source"], id="bad-source"
        ),
        pytest.param(
            {"type": "Annotation", "target": "urn:x", "body": {"b": 1}, "bodyValue": "x"},
            ["/bodyValue"],
            id="body-and-bodyValue",
        ),
        pytest.param(
            {"type": "Annotation", "target": "urn:x", "bodyValue": 3},
            ["/bodyValue"],
            id="bodyValue-not-string",
        ),
        pytest.param(
            {"type": "Annotation", "target": "urn:x", "body": {"type": "TextualBody"}},
            ["/body/value"],
            id="textual-body-without-value",
        ),
        pytest.param(video_target(media("t=10")), ["/target/selector/value"], id="open-ended-time"),
        pytest.param(video_target(media("t=20,10")), ["/target/selector/value"], id="reversed"),
        pytest.param(video_target(media("t=10-20")), ["/target/selector/value"], id="bad-time"),
        pytest.param(
            video_target(media("t=0:61,1:00")), ["/target/selector/value"], id="61-minutes"
        ),
        pytest.param(
            video_target(media("t=clock:2011-10-01T23:00:45Z,2011-10-01T23:00:46Z")),
            ["/target/selector/value"],
            id="wall-clock",
        ),
        pytest.param(
            video_target(media("t=smpte-30-drop:0:00:01:00,0:00:02:00")),
            ["/target/selector/value"],
            id="drop-frame",
        ),
        pytest.param(video_target(media("xywh=1,2,3")), ["/target/selector/value"], id="xywh-3"),
        pytest.param(
            video_target(media("xywh=em:1,2,3,4")), ["/target/selector/value"], id="xywh-unit"
        ),
        pytest.param(
            video_target(media("xywh=-1,2,3,4")), ["/target/selector/value"], id="xywh-negative"
        ),
        pytest.param(
            video_target(media(f"xywh={'9' * 400}.5,1,1,1")),
            ["/target/selector/value"],
            id="xywh-huge",
        ),
        pytest.param(
            video_target(media(f"t={'9' * 5000},1")), ["/target/selector/value"], id="t-huge"
        ),
        pytest.param(
            video_target([media("t=1,2", refinedBy=media("t=3,4"))]),
            ["/target/selector/0/refinedBy/value"],
            id="conflicting-times",
        ),
        pytest.param(
            video_target({"type": "FragmentSelector", "value": 5}),
            ["/target/selector/value"],
            id="selector-value-not-string",
        ),
        pytest.param(
            {"type": "Annotation", "target": ["urn:reeldb:association:BAD TYPE:x"]},
            ["/target/0"],
            id="bad-urn-type",
        ),
        pytest.param(
            {"type": "Annotation", "target": ["urn:reeldb:association:MOVIE_ID:%FF"]},
            ["/target/0"],
            id="bad-urn-encoding",
        ),
        pytest.param(
            {"type": "Annotation", "target": "http://example.org/" + "x" * 600},
            ["/target"],
            id="iri-too-long-for-an-association-id",
        ),
        pytest.param(
            {"type": "Annotation", "target": "urn:x", "id": "urn:uuid:not-a-uuid"},
            ["/id"],
            id="bad-urn-uuid",
        ),
    ],
)
def test_import_errors_have_pointers(value: Any, expected: list[str]) -> None:
    with pytest.raises(ValidationError) as exc:
        read(value)
    assert pointers(exc) == expected
    assert all(v.message and "\n" not in v.message for v in exc.value.violations)


w3c_words = st.sampled_from(
    ["type", "Annotation", "target", "source", "selector", "value", "FragmentSelector"]
    + ["refinedBy", "conformsTo", MEDIA_FRAGMENTS, "body", "bodyValue", "TextualBody", "items"]
    + ["AnnotationPage", "AnnotationCollection", "first", "next", "id", "format", "Choice"]
    + [PAYLOAD_FORMAT, "t=1,2", "xywh=1,2,3,4", "t=npt:", "xywh=percent:", "#t=5,", "urn:uuid:"]
    + ["urn:reeldb:association:A:%", "Independents", "{}", '{"id": 1}', "t=9,1&xywh=0,0,0,0"]
)
w3c_like = st.recursive(
    json_scalars | w3c_words,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(w3c_words | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=25,
)


@given(w3c_like)
@settings(max_examples=500, deadline=None)
def test_any_input_gives_a_validation_error_or_annotations(value: Any) -> None:
    try:
        from_w3c_many(value, type="T", time_property="t", box_property="b", text_property="x")
    except ValidationError as exc:
        assert all(v.pointer == "" or v.pointer.startswith("/") for v in exc.violations)


coco_words = st.sampled_from(
    ["images", "annotations", "categories", "id", "file_name", "image_id", "bbox"]
    + ["category_id", "name", "frame_id", "score"]
)
coco_like = st.recursive(
    json_scalars | coco_words,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(coco_words | st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=30,
)


@given(coco_like, st.booleans())
@settings(max_examples=500, deadline=None)
def test_any_coco_gives_a_validation_error_or_annotations(value: Any, video: bool) -> None:
    options: dict[str, Any] = {"time_property": "t", "frame_rate": 25} if video else {}
    with contextlib.suppress(ValidationError):
        from_coco(value, type="T", box_property="b", label_property="l", **options)


xml_names = st.sampled_from(["annotations", "image", "box", "track", "attribute", "x"])
xml_attrs = st.dictionaries(
    st.sampled_from(["id", "name", "label", "xtl", "ytl", "xbr", "ybr", "frame", "outside"]),
    st.sampled_from(["0", "1", "-1", "2.5", "x", "", "1e3", "Infinity", "007"]),
    max_size=7,
)


@st.composite
def xml_trees(draw: st.DrawFn, depth: int = 0) -> str:
    name = "annotations" if depth == 0 else draw(xml_names)
    attrs = "".join(f' {k}="{v}"' for k, v in draw(xml_attrs).items())
    children = draw(st.lists(xml_trees(depth + 1), max_size=3)) if depth < 3 else []
    return f"<{name}{attrs}>{''.join(children)}</{name}>"


@given(xml_trees(), st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_cvat_gives_a_validation_error_or_annotations(xml: str, video: bool) -> None:
    options: dict[str, Any] = {"time_property": "t", "frame_rate": 25} if video else {}
    with contextlib.suppress(ValidationError):
        from_cvat(
            xml,
            type="T",
            box_property="b",
            label_property="l",
            associations=[MOVIE],
            attribute_properties={"a": "a"},
            track_property="track",
            **options,
        )


def test_foreign_import_needs_a_type() -> None:
    with pytest.raises(ValidationError, match="type") as exc:
        from_w3c(spec_example("example-1-basic"))
    assert pointers(exc) == [""]


@pytest.mark.parametrize(
    ("change", "pointer", "message"),
    [
        pytest.param(lambda p: "{not json", "/body/0/value", "not valid JSON", id="not-json"),
        pytest.param(lambda p: 42, "/body/0/value", "JSON text", id="not-text"),
        pytest.param(lambda p: "[]", "/body/0/value", "expected an object", id="not-object"),
        pytest.param(
            lambda p: json.dumps({k: v for k, v in p.items() if k != "id"}),
            "/body/0/value",
            "payload /id",
            id="no-id",
        ),
        pytest.param(
            lambda p: json.dumps({**p, "type": {"name": "FACE"}}),
            "/body/0/value",
            "payload /type",
            id="type-without-version",
        ),
        pytest.param(
            lambda p: json.dumps({**p, "associations": []}),
            "/body/0/value",
            "payload /associations",
            id="no-associations",
        ),
        pytest.param(
            lambda p: json.dumps({**p, "extra": 1}),
            "/body/0/value",
            "payload /extra",
            id="unknown-field",
        ),
    ],
)
def test_malformed_payload(change: Any, pointer: str, message: str) -> None:
    exported = to_w3c(annotation({"a": 1}))
    payload = json.loads(exported["body"][0]["value"])
    exported["body"][0]["value"] = change(payload)
    with pytest.raises(ValidationError) as exc:
        from_w3c(exported, type="FACE")
    assert pointers(exc) == [pointer]
    assert message in exc.value.violations[0].message


def test_two_payloads_are_refused() -> None:
    exported = to_w3c(annotation({}))
    exported["body"].append(exported["body"][0])
    with pytest.raises(ValidationError) as exc:
        from_w3c(exported)
    assert pointers(exc) == ["/body/1"]


def test_import_many_error_pointers_name_the_item() -> None:
    good = spec_example("example-1-basic")
    page = {
        "type": "AnnotationCollection",
        "id": "urn:c",
        "first": {
            "type": "AnnotationPage",
            "id": "urn:p",
            "items": [
                good,
                {"type": "Annotation"},
                good,
                {"type": "Annotation", "target": "urn:x", "bodyValue": 1},
            ],
        },
    }
    with pytest.raises(ValidationError) as exc:
        from_w3c_many(page, type="NOTE", text_property="text")
    assert pointers(exc) == ["/first/items/1", "/first/items/3/bodyValue"]
    with pytest.raises(ValidationError) as exc:
        from_w3c_many([good, 5], type="NOTE")
    assert pointers(exc) == ["/1"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(5, [""], id="not-json-object"),
        pytest.param(
            {"type": "AnnotationCollection", "first": "http://example.org/page1"},
            ["/first"],
            id="first-page-by-iri",
        ),
        pytest.param({"type": "AnnotationPage", "items": {}}, ["/items"], id="items-not-list"),
    ],
)
def test_import_many_structure_errors(value: Any, expected: list[str]) -> None:
    with pytest.raises(ValidationError) as exc:
        from_w3c_many(value, type="NOTE")
    assert pointers(exc) == expected


def test_bad_caller_arguments() -> None:
    with pytest.raises(ValidationError, match="association type"):
        from_w3c(spec_example("example-1-basic"), type="NOTE", association_type="no spaces")
    with pytest.raises(ValidationError, match="NAME"):
        from_w3c(spec_example("example-1-basic"), type="NOTE@x")


# -- COCO -------------------------------------------------------------------------------------


def coco() -> dict[str, Any]:
    return {
        "info": {"description": "two frames"},
        "images": [
            {
                "id": 1,
                "file_name": "frames/000010.jpg",
                "width": 640,
                "height": 480,
                "frame_id": 10,
            },
            {
                "id": 2,
                "file_name": "frames/000011.jpg",
                "width": 640,
                "height": 480,
                "frame_id": 11,
            },
        ],
        "categories": [
            {"id": 1, "name": "person", "supercategory": "human"},
            {"id": 2, "name": "car"},
            {"id": 3, "name": "dog"},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40], "score": 0.9},
            {"id": 2, "image_id": 1, "category_id": 2, "bbox": [0.5, 1.25, 100, 50.5]},
            {"id": 3, "image_id": 2, "category_id": 3, "bbox": [5, 5, 0, 0], "score": 0.5},
            {"id": 4, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4], "iscrowd": 0},
        ],
    }


def test_coco_import() -> None:
    video = Association("MOVIE_ID", "81234567")
    imported = from_coco(
        coco(),
        type="DETECTION",
        box_property="box",
        label_property="label",
        associations=[video],
        extra={"score": "confidence"},
    )
    assert imported == [
        NewAnnotation(
            "DETECTION",
            (Association("IMAGE_ID", "frames/000010.jpg"), video),
            {"box": {"x": 10, "y": 20, "w": 30, "h": 40}, "label": "person", "confidence": 0.9},
        ),
        NewAnnotation(
            "DETECTION",
            (Association("IMAGE_ID", "frames/000010.jpg"), video),
            {"box": {"x": 0.5, "y": 1.25, "w": 100, "h": 50.5}, "label": "car"},
        ),
        NewAnnotation(
            "DETECTION",
            (Association("IMAGE_ID", "frames/000011.jpg"), video),
            {"box": {"x": 5, "y": 5, "w": 0, "h": 0}, "label": "dog", "confidence": 0.5},
        ),
        NewAnnotation(
            "DETECTION",
            (Association("IMAGE_ID", "frames/000011.jpg"), video),
            {"box": {"x": 1, "y": 2, "w": 3, "h": 4}, "label": "person"},
        ),
    ]


def test_coco_video_frames() -> None:
    imported = from_coco(
        coco(),
        type=TypeRef("DETECTION", 1),
        box_property="box",
        label_property=None,
        time_property="span",
        frame_rate="29.97",
        association_type="FRAME",
        association_from="id",
    )
    assert [a.associations for a in imported] == [(Association("FRAME", "1"),)] * 2 + [
        (Association("FRAME", "2"),)
    ] * 2
    assert imported[0].data == {
        "box": {"x": 10, "y": 20, "w": 30, "h": 40},
        "span": {"start_frame": 10, "end_frame": 11, "rate": "30000/1001"},
    }
    span = TimeRange.from_json(imported[2].data["span"])
    assert span == TimeRange(Fraction(11 * 1001, 30000), Fraction(12 * 1001, 30000))
    whole = from_coco(coco(), type="D", box_property="b", time_property="t", frame_rate=25)
    assert whole[0].data["t"] == {"start_frame": 10, "end_frame": 11, "rate": 25}


def _coco_with(change: Any) -> dict[str, Any]:
    value = coco()
    change(value)
    return value


@pytest.mark.parametrize(
    ("value", "options", "expected"),
    [
        pytest.param([], {}, [""], id="not-an-object"),
        pytest.param(
            _coco_with(lambda c: c.pop("images")),
            {},
            [
                "/images",
                "/annotations/0/image_id",
                "/annotations/1/image_id",
                "/annotations/2/image_id",
                "/annotations/3/image_id",
            ],
            id="no-images",
        ),
        pytest.param(
            _coco_with(lambda c: c["annotations"][1].pop("bbox")),
            {},
            ["/annotations/1/bbox"],
            id="missing-bbox",
        ),
        pytest.param(
            _coco_with(lambda c: c["annotations"][2].update(bbox=[1, 2, -3, 4])),
            {},
            ["/annotations/2/bbox"],
            id="negative-width",
        ),
        pytest.param(
            _coco_with(lambda c: c["annotations"][2].update(bbox=[1, 2, "3", 4])),
            {},
            ["/annotations/2/bbox"],
            id="bbox-string",
        ),
        pytest.param(
            _coco_with(lambda c: c["annotations"][3].update(category_id=9)),
            {},
            ["/annotations/3/category_id"],
            id="unknown-category",
        ),
        pytest.param(
            _coco_with(lambda c: c["annotations"][0].update(image_id=7)),
            {},
            ["/annotations/0/image_id"],
            id="unknown-image",
        ),
        pytest.param(
            _coco_with(lambda c: c["images"][1].pop("file_name")),
            {},
            ["/images/1/file_name", "/annotations/2/image_id", "/annotations/3/image_id"],
            id="missing-file-name",
        ),
        pytest.param(
            _coco_with(lambda c: c["images"].append(dict(c["images"][0]))),
            {},
            ["/images/2/id"],
            id="duplicate-image",
        ),
        pytest.param(
            _coco_with(lambda c: c["categories"][0].pop("name")),
            {},
            ["/categories/0/name", "/annotations/0/category_id", "/annotations/3/category_id"],
            id="category-without-name",
        ),
        pytest.param(
            _coco_with(lambda c: c["images"][0].pop("frame_id")),
            {"time_property": "span", "frame_rate": 25},
            ["/images/0/frame_id", "/annotations/0/image_id", "/annotations/1/image_id"],
            id="no-frame-id",
        ),
        pytest.param(coco(), {"time_property": "span"}, [""], id="no-frame-rate"),
        pytest.param(
            coco(), {"time_property": "span", "frame_rate": "1/0"}, [""], id="bad-frame-rate"
        ),
        pytest.param(
            coco(), {"time_property": "span", "frame_rate": -25}, [""], id="negative-frame-rate"
        ),
    ],
)
def test_coco_errors(value: Any, options: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ValidationError) as exc:
        from_coco(value, type="D", box_property="box", label_property="label", **options)
    assert pointers(exc) == expected


# -- CVAT -------------------------------------------------------------------------------------

CVAT_IMAGES = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <meta><task><name>faces</name></task></meta>
  <image id="0" name="frame_000000.png" width="1920" height="1080">
    <box label="face" source="manual" occluded="0" z_order="0"
         xtl="10.00" ytl="20.50" xbr="110.25" ybr="220.50">
      <attribute name="expression">smile</attribute>
      <attribute name="ignored">x</attribute>
    </box>
    <polygon label="face" points="1,2;3,4;5,6" occluded="0"/>
  </image>
  <image id="7" name="frame_000007.png" width="1920" height="1080">
    <box label="hand" occluded="1" xtl="0" ytl="0" xbr="0" ybr="0"/>
  </image>
</annotations>
"""

CVAT_VIDEO = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <track id="3" label="car" source="manual">
    <box frame="0" outside="0" occluded="0" keyframe="1" xtl="1" ytl="2" xbr="11" ybr="22">
      <attribute name="color">red</attribute>
    </box>
    <box frame="1" outside="0" occluded="1" keyframe="0" xtl="2" ytl="2" xbr="12" ybr="22">
      <attribute name="color">red</attribute>
    </box>
    <box frame="2" outside="1" occluded="0" keyframe="1" xtl="2" ytl="2" xbr="12" ybr="22"/>
  </track>
  <track id="4" label="person" source="auto">
    <box frame="5" outside="0" occluded="0" keyframe="1" xtl="0.1" ytl="0.2" xbr="0.3" ybr="0.6"/>
  </track>
</annotations>
"""


def test_cvat_images() -> None:
    imported = from_cvat(
        CVAT_IMAGES,
        type="FACE",
        box_property="box",
        label_property="label",
        attribute_properties={"expression": "expression"},
        associations=[MOVIE],
    )
    assert imported == [
        NewAnnotation(
            "FACE",
            (Association("IMAGE_ID", "frame_000000.png"), MOVIE),
            {
                "box": {"x": 10, "y": 20.5, "w": 100.25, "h": 200},
                "label": "face",
                "expression": "smile",
            },
        ),
        NewAnnotation(
            "FACE",
            (Association("IMAGE_ID", "frame_000007.png"), MOVIE),
            {"box": {"x": 0, "y": 0, "w": 0, "h": 0}, "label": "hand"},
        ),
    ]
    frames = from_cvat(
        CVAT_IMAGES.encode(),
        type="FACE",
        box_property="box",
        time_property="span",
        frame_rate=25,
        association_type="FRAME",
        association_from="id",
    )
    assert [(a.associations, a.data["span"]) for a in frames] == [
        ((Association("FRAME", "0"),), {"start_frame": 0, "end_frame": 1, "rate": 25}),
        ((Association("FRAME", "7"),), {"start_frame": 7, "end_frame": 8, "rate": 25}),
    ]


def test_cvat_tracks_skip_outside_frames() -> None:
    imported = from_cvat(
        CVAT_VIDEO,
        type="OBJECT",
        box_property="box",
        label_property="label",
        time_property="span",
        frame_rate="30000/1001",
        associations=[MOVIE],
        attribute_properties={"color": "color"},
        track_property="track",
    )
    assert [(a.data["track"], a.data["span"]["start_frame"]) for a in imported] == [
        (3, 0),
        (3, 1),
        (4, 5),
    ]
    assert imported[1] == NewAnnotation(
        "OBJECT",
        (MOVIE,),
        {
            "box": {"x": 2, "y": 2, "w": 10, "h": 20},
            "label": "car",
            "color": "red",
            "span": {"start_frame": 1, "end_frame": 2, "rate": "30000/1001"},
            "track": 3,
        },
    )
    assert imported[2].data["box"] == {"x": 0.1, "y": 0.2, "w": 0.2, "h": 0.4}  # exact


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<annotations><image id="0" name="&lol2;"/></annotations>
"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE a [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<annotations><image id="0" name="&xxe;"/></annotations>
"""


@pytest.mark.parametrize(
    ("xml", "options", "expected"),
    [
        pytest.param(BILLION_LAUGHS, {}, [""], id="doctype-refused"),
        pytest.param(EXTERNAL_ENTITY, {}, [""], id="external-entity-refused"),
        pytest.param(BILLION_LAUGHS.encode("utf-16"), {}, [""], id="doctype-refused-utf16"),
        pytest.param("<annotations><image></annotations>", {}, [""], id="not-well-formed"),
        pytest.param("<annotations>&undefined;</annotations>", {}, [""], id="undefined-entity"),
        pytest.param("<root/>", {}, [""], id="not-cvat"),
        pytest.param(
            CVAT_IMAGES.replace('xbr="110.25"', 'xbr="5"'),
            {},
            ["/image/0/box/0"],
            id="negative-width",
        ),
        pytest.param(
            CVAT_IMAGES.replace('ybr="220.50"', ""), {}, ["/image/0/box/0/ybr"], id="missing-ybr"
        ),
        pytest.param(
            CVAT_IMAGES.replace('xtl="10.00"', 'xtl="ten"'), {}, ["/image/0/box/0/xtl"], id="nan"
        ),
        pytest.param(
            CVAT_IMAGES.replace('xtl="10.00"', 'xtl="NaN"'), {}, ["/image/0/box/0/xtl"], id="NaN"
        ),
        pytest.param(
            CVAT_IMAGES.replace(' name="frame_000007.png"', ""), {}, ["/image/1/name"], id="no-name"
        ),
        pytest.param(
            CVAT_IMAGES.replace('label="hand" ', ""), {}, ["/image/1/box/0/label"], id="no-label"
        ),
        pytest.param(CVAT_VIDEO, {}, ["/track/0", "/track/1"], id="tracks-need-time"),
        pytest.param(
            CVAT_VIDEO,
            {"time_property": "span", "frame_rate": 25},
            ["/track/0", "/track/1"],
            id="tracks-need-associations",
        ),
        pytest.param(
            CVAT_VIDEO.replace('frame="1"', 'frame="-1"'),
            {"time_property": "span", "frame_rate": 25, "associations": [MOVIE]},
            ["/track/0/box/1/frame"],
            id="bad-frame",
        ),
        pytest.param(
            CVAT_VIDEO, {"time_property": "span", "frame_rate": "fast"}, [""], id="bad-rate"
        ),
    ],
)
def test_cvat_errors(xml: str | bytes, options: dict[str, Any], expected: list[str]) -> None:
    with pytest.raises(ValidationError) as exc:
        from_cvat(xml, type="OBJECT", box_property="box", label_property="label", **options)
    assert pointers(exc) == expected
