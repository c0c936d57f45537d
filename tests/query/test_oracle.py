"""The reference evaluator, on hand-written documents with results worked out by hand."""

from __future__ import annotations

from typing import Any

import pytest

from reeldb.query import parse_query
from reeldb.query.oracle import EventMatch, document_matches, matching_events

# --- building documents -----------------------------------------------------------------------


def box(x: float, y: float, w: float, h: float) -> dict[str, float]:
    return {"x": x, "y": y, "w": w, "h": h}


def region(person: str | None = None, bounding_box: Any = None, **attrs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"bounding_box": bounding_box or box(0, 0, 0.5, 0.5), **attrs}
    if person is not None:
        out["person"] = person
    return out


def event(
    start: float, end: float, *regions: dict[str, Any], frames: bool = False, **attrs: Any
) -> dict[str, Any]:
    span = {"start_frame": start, "end_frame": end} if frames else {"start": start, "end": end}
    out: dict[str, Any] = {"time_range": span, **attrs}
    if regions:
        out["regions"] = list(regions)
    return out


def component(*events: dict[str, Any], **attrs: Any) -> dict[str, Any]:
    return {**attrs, "events": list(events)}


def track(*components: dict[str, Any], rate: str = "24", **attrs: Any) -> dict[str, Any]:
    return {"frame_rate": rate, **attrs, "components": list(components)}


def document(*tracks: dict[str, Any], **asset: Any) -> dict[str, Any]:
    return {"asset": asset, "tracks": list(tracks)}


def one_event(ev: dict[str, Any], rate: str = "24") -> dict[str, Any]:
    return document(track(component(ev, algorithm="a"), rate=rate, kind="video"), title="T")


def matches(query: str, data: dict[str, Any], **kwargs: Any) -> bool:
    return document_matches(parse_query(query), data, **kwargs)


def events(query: str, data: dict[str, Any], **kwargs: Any) -> list[EventMatch]:
    return matching_events(parse_query(query), data, **kwargs)


def paths(query: str, data: dict[str, Any], **kwargs: Any) -> list[tuple[int, int, int]]:
    return [m.path for m in events(query, data, **kwargs)]


# --- missing values -----------------------------------------------------------------------------

SPARSE = one_event(event(0, 1, label="face", confidence=None))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("event.confidence > 0.5", False),
        ("event.confidence = 0.5", False),
        ("event.confidence != 0.5", False),  # a missing value is not different either
        ("event.confidence in (0.5, 1)", False),
        ("not event.confidence = 0.5", True),
        ("not event.confidence != 0.5", True),
        ("event.nothing = 1", False),
        ("event.nothing != 1", False),
        ('event.nothing contains "x"', False),
        ("event.nothing overlaps(0, 100)", False),
        ("event.nothing within(0, 0, 1, 1)", False),
        ("not event.nothing = 1", True),
        ('event.label != "car"', True),
        ('event.label = "face" and event.confidence != 1', False),
        ('event.label = "face" and not event.confidence = 1', True),
        ('region.person = "Alice"', False),  # no regions: every region field is missing
        ('not region.person = "Alice"', True),
        ("region.bounding_box intersects(0, 0, 1, 1)", False),
        ("asset.year = 1", False),
        ("asset.year != 1", False),
        ("component.version != 1", False),
    ],
)
def test_missing_values(query: str, expected: bool) -> None:
    assert matches(query, SPARSE) is expected
    assert bool(events(query, SPARSE)) is expected


# --- regions ------------------------------------------------------------------------------------

TWO_PEOPLE = one_event(event(10, 20, region("Alice"), region("Bob"), label="face"))


@pytest.mark.parametrize(
    ("query", "regions"),
    [
        ('not region.person = "Alice"', (1,)),  # matches through Bob
        ('region.person = "Alice"', (0,)),
        ('region.person != "Alice"', (1,)),
        ('not region.person = "Carol"', (0, 1)),
        ('region.person in ("Alice", "Bob")', (0, 1)),
        ('event.label = "face"', (0, 1)),  # no region field: all of them
        ('event.label = "face" and region.person = "Bob"', (1,)),
        ('region.person = "Alice" or event.label = "nope"', (0,)),
    ],
)
def test_matching_regions(query: str, regions: tuple[int, ...]) -> None:
    assert matches(query, TWO_PEOPLE)
    assert events(query, TWO_PEOPLE) == [EventMatch((0, 0, 0), 10.0, 20.0, regions)]


@pytest.mark.parametrize(
    "query",
    [
        'region.person = "Carol"',
        'region.person = "Alice" and region.person = "Bob"',  # one region at a time
        'not region.person = "Alice" and not region.person = "Bob"',
        'not event.label = "face"',
    ],
)
def test_regions_that_do_not_match(query: str) -> None:
    assert not matches(query, TWO_PEOPLE)
    assert events(query, TWO_PEOPLE) == []


def test_region_without_the_field() -> None:
    data = one_event(event(0, 1, region("Alice"), region(None)))
    assert events('not region.person = "Alice"', data) == [EventMatch((0, 0, 0), 0, 1, (1,))]
    assert events('region.person != "Alice"', data) == []


def test_events_without_regions() -> None:
    data = one_event(event(0, 1, label="car"))
    assert events('event.label = "car"', data) == [EventMatch((0, 0, 0), 0.0, 1.0, ())]
    assert events('not region.person = "Alice"', data) == [EventMatch((0, 0, 0), 0.0, 1.0, ())]
    assert events('region.person = "Alice"', data) == []
    assert events("region.bounding_box within(0, 0, 1, 1)", data) == []


# --- documents with parts missing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"asset": {"title": "Lonely"}}, id="no-tracks-key"),
        pytest.param({"asset": {"title": "Lonely"}, "tracks": []}, id="empty-tracks"),
    ],
)
def test_document_without_tracks(data: dict[str, Any]) -> None:
    assert matches('asset.title = "Lonely"', data)
    assert matches("asset.title contains lonely", data)
    assert events('asset.title = "Lonely"', data) == []  # a match, but no event
    assert not matches('asset.title = "Crowded"', data)
    assert not matches('track.kind = "video"', data)
    assert not matches('event.label = "x"', data)
    assert matches('not event.label = "x"', data)
    assert matches("count(event) = 0", data)
    assert not matches("count(event) > 0", data)
    assert matches("count(event in component) = 0", data)


def test_document_without_asset() -> None:
    data: dict[str, Any] = {"tracks": [track(component(event(0, 1, label="a")))]}
    assert matches('event.label = "a"', data)
    assert not matches('asset.title = "x"', data)
    assert matches('not asset.title = "x"', data)


def test_track_without_components() -> None:
    data = document(track(kind="audio"), track(component(event(0, 1)), kind="video"), title="T")
    data["tracks"][0].pop("components")
    assert matches('track.kind = "audio"', data)
    assert events('track.kind = "audio"', data) == []
    assert matches('track.kind = "audio" and count(event) = 0', data)
    assert matches('track.kind = "audio" and count(event in component) = 0', data)
    assert not matches('track.kind = "audio" and count(event) > 0', data)
    assert paths('track.kind = "video" and count(event) = 1', data) == [(1, 0, 0)]


def test_component_without_events() -> None:
    data = document(track(component(algorithm="idle"), component(event(0, 1), algorithm="busy")))
    assert matches('component.algorithm = "idle"', data)
    assert events('component.algorithm = "idle"', data) == []
    assert matches('component.algorithm = "idle" and count(event in component) = 0', data)
    assert matches('component.algorithm = "idle" and count(event) = 1', data)
    assert paths('component.algorithm = "busy"', data) == [(0, 1, 0)]


# --- time ranges --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("20", "30", True),  # touching the end
        ("0", "10", True),  # touching the start
        ("20.000001", "30", False),
        ("0", "9.999999", False),
        ("12", "13", True),  # inside
        ("0", "100", True),  # around
        ("15", "15", True),  # an instant inside
        ("20", "20", True),  # the end instant
        ("1e1", "1e1", True),
    ],
)
def test_overlaps_is_closed(start: str, end: str, expected: bool) -> None:
    data = one_event(event(10, 20))
    assert matches(f"event.time_range overlaps({start}, {end})", data) is expected


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        ("5", "5", True),
        ("0", "5", True),
        ("5", "9", True),
        ("5.000001", "9", False),
        ("4", "4.999999", False),
    ],
)
def test_zero_length_ranges(start: str, end: str, expected: bool) -> None:
    data = one_event(event(5, 5))
    assert matches(f"event.time_range overlaps({start}, {end})", data) is expected
    assert bool(events(f"event.time_range overlaps({start}, {end})", data)) is expected


def test_frame_based_time_ranges() -> None:
    data = one_event(event(24, 48, frames=True))  # at 24 fps: [1, 2] s
    assert events("event.time_range overlaps(0, 100)", data) == [
        EventMatch((0, 0, 0), 1.0, 2.0, ())
    ]
    assert matches("event.time_range overlaps(2, 3)", data)
    assert matches("event.time_range overlaps(0, 1)", data)
    assert not matches("event.time_range overlaps(2.000001, 3)", data)
    assert not matches("event.time_range overlaps(0, 0.999999)", data)


def test_frame_based_time_ranges_at_ntsc_rate() -> None:
    data = one_event(event(24, 48, frames=True), rate="24000/1001")  # [1.001, 2.002] s
    [found] = events("event.time_range overlaps(0, 100)", data)
    assert (found.start, found.end) == (24 * 1001 / 24000, 48 * 1001 / 24000)
    assert matches("event.time_range overlaps(2.002, 3)", data)
    assert not matches("event.time_range overlaps(0, 1.0009)", data)
    assert matches("event.time_range overlaps(0, 1.001)", data)


def test_a_time_range_with_its_own_rate() -> None:
    ev = event(0, 0)
    ev["time_range"] = {"start_frame": 50, "end_frame": 100, "rate": "50"}
    data = one_event(ev, rate="24")
    assert [(m.start, m.end) for m in events("event.time_range overlaps(0, 9)", data)] == [
        (1.0, 2.0)
    ]


def test_region_time_ranges() -> None:
    data = one_event(
        event(
            0,
            240,
            region("Alice", time_range={"start_frame": 24, "end_frame": 48}),
            region("Bob", time_range={"start": 5, "end": 6}),
            region("Carol"),
            frames=True,
        )
    )
    assert events("region.time_range overlaps(2, 2)", data) == [
        EventMatch((0, 0, 0), 0.0, 10.0, (0,))
    ]
    assert events("region.time_range overlaps(1.5, 5)", data)[0].regions == (0, 1)
    assert events("not region.time_range overlaps(0, 100)", data)[0].regions == (2,)


# --- boxes --------------------------------------------------------------------------------------

# The stored box is [0.25, 0.75] x [0.25, 0.75]; every number is exact in binary.
BOXED = one_event(event(0, 1, region("Alice", box(0.25, 0.25, 0.5, 0.5))))


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        ("intersects(0.75, 0.75, 0.25, 0.25)", True),  # corners touch
        ("intersects(0, 0.25, 0.25, 0.5)", True),  # left edges touch
        ("intersects(0.5, 0, 0.1, 0.25)", True),  # top edge touches
        ("intersects(0.5, 0.5, 0, 0)", True),  # a point inside
        ("intersects(0, 0, 1, 1)", True),  # around
        ("intersects(0.3, 0.3, 0.1, 0.1)", True),  # inside
        ("intersects(0, 0, 0.2, 1)", False),
        ("intersects(0.76, 0.25, 0.1, 0.1)", False),
        ("intersects(0.75, 0, 0.25, 0.1)", False),  # x touches, y does not
        ("within(0.25, 0.25, 0.5, 0.5)", True),  # exactly the same box
        ("within(0, 0, 1, 1)", True),
        ("within(0.25, 0.25, 0.5, 0.49)", False),
        ("within(0.26, 0.25, 0.5, 0.5)", False),
        ("within(0.3, 0.3, 0.1, 0.1)", False),  # the box is bigger than the query
    ],
)
def test_boxes_are_closed(test: str, expected: bool) -> None:
    assert matches(f"region.bounding_box {test}", BOXED) is expected


def test_box_edges_are_computed_in_doubles() -> None:
    # 0.1 + 0.2 is 0.30000000000000004 in doubles: documented, as an SQL backend computes it.
    data = one_event(event(0, 1, region("A", box(0.1, 0.1, 0.2, 0.2))))
    assert not matches("region.bounding_box within(0, 0, 0.3, 0.3)", data)
    assert matches("region.bounding_box within(0, 0, 0.30000000000000004, 1)", data)
    assert matches("region.bounding_box intersects(0.3, 0.3, 1, 1)", data)


def test_box_on_a_zero_sized_region() -> None:
    data = one_event(event(0, 1, region("A", box(0.5, 0.5, 0, 0))))
    assert matches("region.bounding_box within(0.5, 0.5, 0, 0)", data)
    assert matches("region.bounding_box intersects(0, 0, 0.5, 0.5)", data)
    assert not matches("region.bounding_box intersects(0, 0, 0.49, 0.49)", data)


# --- count --------------------------------------------------------------------------------------

COUNTED = document(
    track(
        component(
            event(0, 1, region("Alice"), region("Bob"), label="face"),
            event(1, 2, region("Bob"), region("Bob"), label="face"),
            event(2, 3, label="car"),
            algorithm="faces",
        ),
        component(event(3, 4, label="face"), algorithm="other"),
        kind="video",
    ),
    track(component(event(5, 6, label="line"), algorithm="subs"), kind="subtitle"),
    title="T",
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("count(event) = 4", [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)]),
        ("count(event) = 1", [(1, 0, 0)]),
        ("count(event) > 4", []),
        ("count(event in track) >= 1", [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0), (1, 0, 0)]),
        ("count(event in component) = 3", [(0, 0, 0), (0, 0, 1), (0, 0, 2)]),
        ("count(event in component) = 1", [(0, 1, 0), (1, 0, 0)]),
        ("count(event in component) < 1", []),
        (
            'count(event where event.label = "face") = 3',
            [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)],
        ),
        (
            'count(event in component where event.label = "face") = 2',
            [(0, 0, 0), (0, 0, 1), (0, 0, 2)],
        ),
        ('count(event in component where event.label = "face") = 0', [(1, 0, 0)]),
        # counts events, not regions: the event with Bob twice counts once
        (
            'count(event where region.person = "Bob") = 2',
            [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)],
        ),
        # some region of the event that is not Alice, or an event with no region
        (
            'count(event where not region.person = "Alice") = 4',
            [(0, 0, 0), (0, 0, 1), (0, 0, 2), (0, 1, 0)],
        ),
        ('count(event where region.person = "Alice") = 1 and event.label = "car"', [(0, 0, 2)]),
        ('track.kind = "subtitle" and count(event) = 1', [(1, 0, 0)]),
        ('not count(event where event.label = "face") > 0', [(1, 0, 0)]),
    ],
)
def test_count(query: str, expected: list[tuple[int, int, int]]) -> None:
    assert paths(query, COUNTED) == expected
    assert matches(query, COUNTED) is bool(expected)


def test_count_keeps_the_matching_regions() -> None:
    found = events('count(event) = 4 and region.person = "Bob"', COUNTED)
    assert [(m.path, m.regions) for m in found] == [((0, 0, 0), (1,)), ((0, 0, 1), (0, 1))]


# --- order of matching events -------------------------------------------------------------------


def test_matching_events_in_time_order() -> None:
    data = document(
        track(
            component(event(5, 9), event(1, 2), event(1, 1), algorithm="a"),
            component(event(1, 3), event(0.5, 10), algorithm="b"),
        ),
        track(component(event(1, 2), event(24, 48, frames=True)), rate="24"),  # frames: [1, 2]
        title="T",
    )
    found = events("event.time_range overlaps(0, 100)", data)
    assert [(m.start, m.end, m.path) for m in found] == [
        (0.5, 10.0, (0, 1, 1)),
        (1.0, 1.0, (0, 0, 2)),
        (1.0, 2.0, (0, 0, 1)),  # same start and end: by position in the document
        (1.0, 2.0, (1, 0, 0)),
        (1.0, 2.0, (1, 0, 1)),
        (1.0, 3.0, (0, 1, 0)),
        (5.0, 9.0, (0, 0, 0)),
    ]
    assert all(isinstance(m.start, float) and isinstance(m.end, float) for m in found)


def test_each_event_once() -> None:
    data = one_event(event(0, 1, region("A"), region("A"), region("A")))
    assert events('region.person = "A"', data) == [EventMatch((0, 0, 0), 0.0, 1.0, (0, 1, 2))]


def test_outer_levels_select_their_events() -> None:
    assert paths('track.kind = "subtitle"', COUNTED) == [(1, 0, 0)]
    assert paths('component.algorithm = "other"', COUNTED) == [(0, 1, 0)]
    assert len(paths('asset.title = "T"', COUNTED)) == 5
    assert paths('track.kind = "video" and track.kind = "subtitle"', COUNTED) == []
    assert paths('track.kind = "subtitle" and event.label = "face"', COUNTED) == []


# --- values -------------------------------------------------------------------------------------

VALUES = one_event(
    event(
        0,
        1,
        flag=True,
        off=False,
        n=1,
        x=0.1,
        big=2**60,
        word="5",
        name="Zebra",
        accent="é",
        tags=["a", "b"],
    )
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # a stored true is not the number 1, and a stored 1 is not true
        ("event.flag = 1", False),
        ("event.flag != 1", False),
        ("event.flag in (1, 2)", False),
        ("event.flag = true", True),
        ("event.flag != false", True),
        ("event.flag in (1, true)", True),
        ("event.flag > false", False),  # bools have no order
        ("event.flag >= true", False),
        ("event.off = false", True),
        ("event.off = 0", False),
        ("event.n = true", False),
        ("event.n != true", False),
        ("event.n = 1", True),
        ("event.n = 1.0", True),
        ("event.n < 1.5", True),
        ("event.n >= 1e0", True),
        ("event.x = 0.1", True),  # the decimal 0.1 is the stored double 0.1
        ("event.x > 0.09999999", True),
        ("event.big = 1152921504606846976", True),
        ("event.big > 1152921504606846975", True),
        # numbers and strings do not mix
        ("event.word = 5", False),
        ("event.word != 5", False),
        ('event.n = "1"', False),
        ('event.word = "5"', True),
        # strings compare by code point
        ('event.name < "apple"', True),
        ('event.name > "Zebra"', False),
        ('event.name >= "Zebra"', True),
        ('event.accent > "z"', True),
        # a list is not a scalar
        ('event.tags = "a"', False),
        ('event.tags contains "a"', False),
    ],
)
def test_scalar_comparisons(query: str, expected: bool) -> None:
    assert matches(query, VALUES) is expected


# --- full text ----------------------------------------------------------------------------------

TEXTS = one_event(event(0, 1, text="Storms were coming; Café crème!", code=7))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ('event.text contains "storm"', True),  # stemmed: Storms
        ("event.text contains storms", True),
        ('event.text contains "STORM"', True),
        ('event.text contains "stormy"', False),  # stems to "stormi"
        ('event.text contains "come"', True),  # coming
        ('event.text contains "were coming"', True),
        ('event.text contains "coming were"', False),  # phrase order matters
        ('event.text contains "storms coming"', False),  # not adjacent
        ('event.text contains "cafe"', True),  # no diacritics
        ('event.text contains "CAFÉ CREME"', True),
        ('event.text contains "coming, café"', True),  # punctuation is not a word
        ('event.text contains "rain"', False),
        ('event.text contains "!!"', False),  # no word
        ('event.code contains "7"', False),  # not text
        ('event.missing contains "storm"', False),
        ('not event.text contains "rain"', True),
    ],
)
def test_full_text(query: str, expected: bool) -> None:
    assert matches(query, TEXTS) is expected


# --- timestamps ---------------------------------------------------------------------------------

STAMPED = one_event(
    event(
        0,
        1,
        at="2026-01-01T01:00:00+01:00",
        early="2026-01-01T00:30:00+01:00",
        bad="not a time",
    )
)
STAMPS = {("event", "at"), ("event", "early"), ("event", "bad")}


@pytest.mark.parametrize(
    ("query", "as_instants", "as_strings"),
    [
        ('event.at = "2026-01-01T00:00:00Z"', True, False),
        ('event.at = "2026-01-01T00:00:00.000Z"', True, False),
        ('event.at != "2026-01-01T00:00:00Z"', False, True),
        ('event.at in ("2020-01-01T00:00:00Z", "2025-12-31T23:00:00-01:00")', True, False),
        ('event.at = "2026-01-01T01:00:00+01:00"', True, True),
        ('event.early < "2026-01-01T00:00:00Z"', True, False),  # 23:30 the day before
        ('event.early > "2026-01-01T00:00:00Z"', False, True),
        ('event.at <= "2026-01-01T00:00:00z"', True, False),
        ('event.bad = "not a time"', False, True),  # unreadable as an instant
        ('event.bad != "2026-01-01T00:00:00Z"', False, True),
    ],
)
def test_timestamps_compare_as_instants(query: str, as_instants: bool, as_strings: bool) -> None:
    assert matches(query, STAMPED, timestamps=STAMPS) is as_instants
    assert bool(events(query, STAMPED, timestamps=STAMPS)) is as_instants
    assert matches(query, STAMPED) is as_strings  # not declared: plain strings


def test_timestamps_only_for_the_named_fields() -> None:
    query = 'event.at = "2026-01-01T00:00:00Z"'
    assert not matches(query, STAMPED, timestamps=[("event", "early")])
    assert not matches(query, STAMPED, timestamps=[("asset", "at")])
    assert matches(query, STAMPED, timestamps=[("event", "at")])


def test_timestamps_are_compared_to_the_microsecond() -> None:
    """Digits beyond the microsecond are dropped, on both sides (docs/query-language.md)."""
    data = one_event(event(0, 1, at="2026-01-01T00:00:00.1234561Z"))
    stamps = {("event", "at")}
    assert matches('event.at = "2026-01-01T00:00:00.1234567Z"', data, timestamps=stamps)
    assert not matches('event.at < "2026-01-01T00:00:00.1234567Z"', data, timestamps=stamps)
    assert matches('event.at < "2026-01-01T00:00:00.123457Z"', data, timestamps=stamps)
