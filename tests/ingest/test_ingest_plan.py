"""The first pass (`scan`) agrees with the synchronous write: same rows, same violations."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_docs import DS, NS, documents, dumps, events_of, setup

import reeldb
from reeldb.errors import ValidationError, Violation
from reeldb.index.rows import ChunkPacker, document_rows
from reeldb.ingest import stream
from reeldb.ingest.plan import IngestPlan, LevelValidators, scan

CHUNK = 200
FAST = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)


@pytest.fixture(scope="module")
def mdb() -> Iterator[reeldb.Database]:
    with reeldb.connect("memory:", index_chunk_bytes=CHUNK) as database:
        setup(database)
        yield database


@pytest.fixture(scope="module")
def validators(mdb: reeldb.Database) -> LevelValidators:
    return LevelValidators.of(mdb.schemas.get(NS, "scenes", 1).json_schema)


def plan_of(
    doc: Any, validators: LevelValidators, *, chunks: int | None = None, **kwargs: Any
) -> IngestPlan:
    data = dumps(doc)
    pieces = (
        [data] if chunks is None else [data[i : i + chunks] for i in range(0, len(data), chunks)]
    )
    return scan(stream.walk(pieces), validators, chunk_bytes=CHUNK, what="the document", **kwargs)


def scan_violations(doc: Any, validators: LevelValidators, **kwargs: Any) -> list[Violation]:
    with pytest.raises(ValidationError) as info:
        plan_of(doc, validators, **kwargs)
    assert "the document is invalid; nothing was stored" in str(info.value)
    return list(info.value.violations)


def sync_violations(db: reeldb.Database, doc: Any) -> list[Violation]:
    before = db.count_documents(DS)
    with pytest.raises(ValidationError) as info:
        db.put_document(DS, {"id": "x"}, copy.deepcopy(doc))
    assert db.count_documents(DS) == before
    return list(info.value.violations)


def pairs(violations: list[Violation]) -> set[tuple[str, str]]:
    return {(v.pointer, v.message) for v in violations}


# -- valid documents: the plan sizes the index as the synchronous cut does -------------------


@FAST
@given(doc=documents(), piece=st.sampled_from([None, 1, 7, 64]))
def test_rows_and_chunks_match_the_synchronous_cut(
    mdb: reeldb.Database, validators: LevelValidators, doc: dict[str, Any], piece: int | None
) -> None:
    plan = plan_of(doc, validators, chunks=piece)
    columns = list(mdb._columns(mdb.schemas.get(NS, "scenes", 1)))
    cut = document_rows(doc, columns, CHUNK)
    assert plan.rows == len(cut.rows)
    assert plan.chunks == len(cut.chunks)
    evs = events_of(doc)
    assert plan.events == len(evs)
    assert plan.regions == sum(len(ev.get("regions") or []) for *_, ev in evs)
    # the heads are the document without its events
    assert plan.heads.top == {k: v for k, v in doc.items() if k != "tracks"}
    tracks = doc.get("tracks") or []
    assert plan.heads.tracks == [{k: v for k, v in t.items() if k != "components"} for t in tracks]
    assert plan.heads.components == [
        [{k: v for k, v in c.items() if k != "events"} for c in t.get("components") or []]
        for t in tracks
    ]
    assert IngestPlan.from_json(plan.to_json()) == plan
    # and the synchronous path accepts it too
    mdb.put_document(DS, {"id": "valid"}, copy.deepcopy(doc))


def test_several_chunks_occur(validators: LevelValidators) -> None:
    doc = {
        "tracks": [
            {
                "components": [
                    {
                        "events": [
                            {
                                "label": "face",
                                "time_range": {"start": i, "end": i + 1},
                                "text": "storm " * 5,
                            }
                            for i in range(20)
                        ]
                    },
                    {"events": []},
                ]
            }
        ]
    }
    plan = plan_of(doc, validators)
    assert plan.chunks > 3
    assert plan.rows == 21
    assert plan.events == 20


@pytest.mark.parametrize(
    ("doc", "rows"),
    [
        ({}, 1),
        ({"asset": {"title": "t"}}, 1),
        ({"tracks": []}, 1),
        ({"tracks": [{}]}, 1),
        ({"tracks": [{}, {"components": []}]}, 2),
        ({"tracks": [{"components": [{}, {"events": []}]}]}, 2),
    ],
    ids=repr,
)
def test_rows_of_empty_levels(
    mdb: reeldb.Database, validators: LevelValidators, doc: dict[str, Any], rows: int
) -> None:
    plan = plan_of(doc, validators)
    columns = list(mdb._columns(mdb.schemas.get(NS, "scenes", 1)))
    assert plan.rows == rows == len(document_rows(doc, columns, CHUNK).rows)
    assert plan.chunks == 0


def chunk_count(sizes: list[int], limit: int) -> int:
    packer = ChunkPacker(limit)
    for size in sizes:
        packer.add(size)
    packer.close()
    return packer.closed


def test_chunk_count() -> None:
    assert chunk_count([], 10) == 0
    assert chunk_count([3, 3], 7) == 1  # 3 + 1 + 3
    assert chunk_count([3, 4], 7) == 2
    assert chunk_count([50], 10) == 1  # a large event is a chunk alone
    assert chunk_count([50, 1, 1], 10) == 2


# -- invalid documents: the same violations as the synchronous write ------------------------


def _event(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["tracks"][0]["components"][0]["events"][0]


def _region(doc: dict[str, Any]) -> dict[str, Any]:
    return _event(doc)["regions"][0]


# Schema violations, applied one or several at a time.
SCHEMA_MUTATIONS = {
    "asset_title": lambda d: d["asset"].update(title=5),
    "asset_extra": lambda d: d["asset"].update(nope=1),
    "top_extra": lambda d: d.update(foo=[1]),
    "track_kind": lambda d: d["tracks"][0].update(kind=3),
    "track_extra": lambda d: d["tracks"][1].update(zzz="x"),
    "component_version": lambda d: d["tracks"][0]["components"][0].update(version="x"),
    "component_events_type": lambda d: d["tracks"][0]["components"][1].update(events={"a": 1}),
    "components_type": lambda d: d["tracks"][1].update(components=7),
    "event_label": lambda d: _event(d).pop("label"),
    "event_confidence": lambda d: _event(d).update(confidence=2),
    "event_time_order": lambda d: _event(d).update(time_range={"start": 3, "end": 1}),
    "event_time_missing": lambda d: d["tracks"][0]["components"][0]["events"][1].pop("time_range"),
    "event_not_object": lambda d: d["tracks"][0]["components"][0]["events"].append(5),
    "event_extra": lambda d: _event(d).update(extra="x"),
    "frame_order": lambda d: d["tracks"][0]["components"][0]["events"][1].update(
        time_range={"start_frame": 9, "end_frame": 2}
    ),
    "region_box": lambda d: _region(d).update(bounding_box={"x": 0, "y": 0, "w": -1, "h": 1}),
    "region_missing_box": lambda d: _region(d).pop("bounding_box"),
    "region_score": lambda d: _region(d).update(score="high"),
    "tracks_type": lambda d: d.update(tracks={"a": 1}),
    "track_not_object": lambda d: d["tracks"].append(4),
}


def base_document() -> dict[str, Any]:
    return {
        "asset": {"title": "storm", "year": 2026},
        "tracks": [
            {
                "kind": "video",
                "frame_rate": "25",
                "components": [
                    {
                        "algorithm": "a",
                        "events": [
                            {
                                "label": "face",
                                "time_range": {"start": 0, "end": 1},
                                "regions": [{"bounding_box": {"x": 0, "y": 0, "w": 1, "h": 1}}],
                            },
                            {"label": "car", "time_range": {"start_frame": 1, "end_frame": 5}},
                        ],
                    },
                    {"algorithm": "b", "events": []},
                ],
            },
            {"kind": "audio", "components": [{"events": []}]},
        ],
    }


@FAST
@given(
    names=st.lists(st.sampled_from(sorted(SCHEMA_MUTATIONS)), min_size=1, max_size=4, unique=True),
    piece=st.sampled_from([None, 3, 50]),
)
def test_schema_violations_match_the_synchronous_write(
    mdb: reeldb.Database, validators: LevelValidators, names: list[str], piece: int | None
) -> None:
    doc = base_document()
    for name in names:
        if (
            "tracks_type" in names
            and name != "tracks_type"
            and name not in ("asset_title", "asset_extra", "top_extra")
        ):
            continue  # nothing of the tracks left to break
        SCHEMA_MUTATIONS[name](doc)
    expected = sync_violations(mdb, doc)
    found = scan_violations(doc, validators, chunks=piece)
    assert pairs(found) == pairs(expected)
    assert len(found) == len(expected)


@pytest.mark.parametrize(
    "doc",
    [
        # frames with neither a track rate nor their own
        {
            "tracks": [
                {
                    "components": [
                        {
                            "events": [
                                {"label": "a", "time_range": {"start_frame": 1, "end_frame": 2}},
                                {
                                    "label": "a",
                                    "time_range": {"start": 1, "end": 2},
                                    "regions": [
                                        {
                                            "bounding_box": {"x": 0, "y": 0, "w": 1, "h": 1},
                                            "time_range": {"start_frame": 0, "end_frame": 1},
                                        }
                                    ],
                                },
                            ]
                        }
                    ]
                }
            ]
        },
        # a rate the schema accepts but that is out of range, after the components
        {
            "tracks": [
                {
                    "components": [
                        {
                            "events": [
                                {"label": "a", "time_range": {"start_frame": 1, "end_frame": 2}}
                            ]
                        }
                    ],
                    "frame_rate": "20000",
                }
            ]
        },
        # a rate out of range, no frames at all
        {"tracks": [{"frame_rate": "20000", "components": []}]},
        # an event's own rate out of range
        {
            "tracks": [
                {
                    "components": [
                        {
                            "events": [
                                {
                                    "label": "a",
                                    "time_range": {
                                        "start_frame": 1,
                                        "end_frame": 2,
                                        "rate": "20000",
                                    },
                                }
                            ]
                        }
                    ]
                }
            ]
        },
        # frames at a valid rate in one track, none in the next
        {
            "tracks": [
                {
                    "frame_rate": "24",
                    "components": [
                        {
                            "events": [
                                {"label": "a", "time_range": {"start_frame": 1, "end_frame": 2}}
                            ]
                        }
                    ],
                },
                {
                    "components": [
                        {
                            "events": [
                                {"label": "a", "time_range": {"start_frame": 1, "end_frame": 2}}
                            ]
                        }
                    ]
                },
            ]
        },
    ],
    ids=["no-rate", "bad-rate-after", "bad-rate-alone", "bad-own-rate", "second-track"],
)
def test_timing_violations_match_the_synchronous_write(
    mdb: reeldb.Database, validators: LevelValidators, doc: dict[str, Any]
) -> None:
    assert pairs(scan_violations(doc, validators)) == pairs(sync_violations(mdb, doc))


def test_frames_under_an_invalid_rate_before_the_components(
    mdb: reeldb.Database, validators: LevelValidators
) -> None:
    doc = {
        "tracks": [
            {
                "frame_rate": "20000",
                "components": [
                    {"events": [{"label": "a", "time_range": {"start_frame": 1, "end_frame": 2}}]}
                ],
            }
        ]
    }
    assert pairs(scan_violations(doc, validators)) == pairs(sync_violations(mdb, doc))


@pytest.mark.parametrize("rate", ["abc", "0", "1/0"])
def test_a_malformed_frame_rate_is_reported_once(
    mdb: reeldb.Database, validators: LevelValidators, rate: str
) -> None:
    doc = {"tracks": [{"frame_rate": rate, "components": []}]}
    found = scan_violations(doc, validators)
    assert [v.pointer for v in found] == ["/tracks/0/frame_rate"]
    assert pairs(found) == pairs(sync_violations(mdb, doc))


def test_a_non_object_component_is_not_blamed_on_its_track(
    mdb: reeldb.Database, validators: LevelValidators
) -> None:
    doc = {"tracks": [{"kind": "video", "components": [4]}]}
    found = scan_violations(doc, validators)
    assert pairs(found) == pairs(sync_violations(mdb, doc))
    assert "/tracks/0" not in {v.pointer for v in found}


@pytest.mark.parametrize(
    "doc", [{"tracks": [None]}, {"tracks": [{"components": [None]}]}], ids=["track", "component"]
)
def test_null_tracks_and_components_are_refused(
    mdb: reeldb.Database, validators: LevelValidators, doc: dict[str, Any]
) -> None:
    assert pairs(scan_violations(doc, validators)) == pairs(sync_violations(mdb, doc))


def test_a_syntax_error_is_a_validation_error(validators: LevelValidators) -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        scan(stream.walk([b'{"tracks": [']), validators, chunk_bytes=CHUNK, what="d")


# -- bounded violations -------------------------------------------------------------------


def many_bad_events(n: int, event: dict[str, Any]) -> dict[str, Any]:
    return {"tracks": [{"components": [{"events": [dict(event) for _ in range(n)]}]}]}


@pytest.mark.parametrize("limit", [1000, 10])
def test_bounded_violations(validators: LevelValidators, limit: int) -> None:
    doc = many_bad_events(5000, {"time_range": {"start": 0, "end": 1}})  # no label
    found = scan_violations(doc, validators, max_violations=limit)
    assert len(found) == limit + 1
    assert found[:limit] == [
        Violation(f"/tracks/0/components/0/events/{i}", '"label" is a required property')
        for i in range(limit)
    ]
    assert found[-1] == Violation("", f"... and {5000 - limit} more violations not listed")


def test_few_violations_have_no_summary(validators: LevelValidators) -> None:
    doc = many_bad_events(10, {"time_range": {"start": 0, "end": 1}})
    found = scan_violations(doc, validators, max_violations=10)
    assert len(found) == 10
    assert all(v.message == '"label" is a required property' for v in found)


@pytest.mark.parametrize("limit", [1000, 10])
def test_bounded_frame_violations_count_every_range(
    validators: LevelValidators, limit: int
) -> None:
    doc = many_bad_events(5000, {"label": "a", "time_range": {"start_frame": 0, "end_frame": 1}})
    found = scan_violations(doc, validators, max_violations=limit)
    assert len(found) == limit + 1
    assert found[-1] == Violation("", f"... and {5000 - limit} more violations not listed")
