from __future__ import annotations

import contextlib
import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reeldb.errors import ValidationError, Violation
from reeldb.model.timing import (
    MAX_FRAME_RATE,
    FrameRate,
    TimeRange,
    exact_seconds,
    format_timecode,
    frame_to_seconds,
    seconds_to_frame,
)

NTSC = FrameRate(Fraction(30000, 1001))
PAL = FrameRate(Fraction(25))


@st.composite
def rates(draw: st.DrawFn) -> FrameRate:
    den = draw(st.integers(1, 1001))
    num = draw(st.integers(1, min(240_000, 10_000 * den)))
    return FrameRate(Fraction(num, den))


seconds_values = st.fractions(min_value=0, max_value=10_000, max_denominator=100_000)


@st.composite
def time_ranges(draw: st.DrawFn) -> TimeRange:
    a, b = draw(seconds_values), draw(seconds_values)
    return TimeRange(min(a, b), max(a, b))


# --- FrameRate.parse ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param("30000/1001", Fraction(30000, 1001), id="ntsc-rational"),
        pytest.param("24000/1001", Fraction(24000, 1001), id="film-rational"),
        pytest.param("25", Fraction(25), id="int-str"),
        pytest.param("25/1", Fraction(25), id="int-over-one"),
        pytest.param(25, Fraction(25), id="int"),
        pytest.param(Fraction(30000, 1001), Fraction(30000, 1001), id="fraction"),
        pytest.param(23.976, Fraction(24000, 1001), id="23.976-float"),
        pytest.param("23.976", Fraction(24000, 1001), id="23.976-str"),
        pytest.param(23.98, Fraction(24000, 1001), id="23.98-float"),
        pytest.param("23.98", Fraction(24000, 1001), id="23.98-str"),
        pytest.param(29.97, Fraction(30000, 1001), id="29.97-float"),
        pytest.param("29.97", Fraction(30000, 1001), id="29.97-str"),
        pytest.param(47.952, Fraction(48000, 1001), id="47.952-float"),
        pytest.param("47.952", Fraction(48000, 1001), id="47.952-str"),
        pytest.param(59.94, Fraction(60000, 1001), id="59.94-float"),
        pytest.param("59.94", Fraction(60000, 1001), id="59.94-str"),
        pytest.param(119.88, Fraction(120000, 1001), id="119.88-float"),
        pytest.param("119.88", Fraction(120000, 1001), id="119.88-str"),
        pytest.param(12.5, Fraction(25, 2), id="decimal-float"),
        pytest.param("12.5", Fraction(25, 2), id="decimal-str"),
        pytest.param("2997/100", Fraction(2997, 100), id="rational-not-remapped"),
        pytest.param(25.0, Fraction(25), id="integral-float"),
        pytest.param(10_000, MAX_FRAME_RATE, id="max-rate"),
        pytest.param("1/1001", Fraction(1, 1001), id="slow-rate"),
    ],
)
def test_parse_accepts(spec: str | int | float | Fraction, expected: Fraction) -> None:
    rate = FrameRate.parse(spec)
    assert rate.value == expected
    assert isinstance(rate.value, Fraction)


@pytest.mark.parametrize(
    ("spec", "shown"),
    [
        pytest.param(0, "0", id="zero"),
        pytest.param("0", "'0'", id="zero-str"),
        pytest.param(0.0, "0.0", id="zero-float"),
        pytest.param(Fraction(0), "Fraction(0, 1)", id="zero-fraction"),
        pytest.param(-25, "-25", id="negative"),
        pytest.param("-30000/1001", "'-30000/1001'", id="negative-str"),
        pytest.param(-29.97, "-29.97", id="negative-float"),
        pytest.param(math.nan, "nan", id="nan"),
        pytest.param(math.inf, "inf", id="inf"),
        pytest.param("nan", "'nan'", id="nan-str"),
        pytest.param("inf", "'inf'", id="inf-str"),
        pytest.param(True, "True", id="bool"),
        pytest.param("fast", "'fast'", id="junk"),
        pytest.param("", "''", id="empty"),
        pytest.param(" 25", "' 25'", id="whitespace"),
        pytest.param("25fps", "'25fps'", id="suffix"),
        pytest.param("1/0", "'1/0'", id="divide-by-zero"),
        pytest.param("1/2/3", "'1/2/3'", id="two-slashes"),
        pytest.param("1.5/2", "'1.5/2'", id="decimal-numerator"),
        pytest.param("١٢", "'١٢'", id="non-ascii-digits"),
        pytest.param(10_001, "10001", id="absurd"),
        pytest.param(10_000.5, "10000.5", id="absurd-float"),
        pytest.param("1e99999999", "'1e99999999'", id="huge-exponent"),
        pytest.param(None, "None", id="none"),
        pytest.param([25], "[25]", id="list"),
    ],
)
def test_parse_rejects(spec: Any, shown: str) -> None:
    with pytest.raises(ValidationError) as info:
        FrameRate.parse(spec)
    assert shown in str(info.value)
    assert "\n" not in str(info.value)


def test_parse_rejects_huge_string_without_value_error() -> None:
    with pytest.raises(ValidationError, match="frame rate"):
        FrameRate.parse("1" * 5000)


def test_constructor_validates() -> None:
    with pytest.raises(ValidationError, match="0"):
        FrameRate(Fraction(0))
    with pytest.raises(ValidationError, match="10001"):
        FrameRate(Fraction(10_001))
    with pytest.raises(ValidationError, match="float"):
        FrameRate(25.0)  # type: ignore[arg-type]


def test_frame_rate_str_and_duration() -> None:
    assert str(NTSC) == "30000/1001"
    assert str(PAL) == "25"
    assert str(FrameRate.parse(12.5)) == "25/2"
    assert NTSC.frame_duration == Fraction(1001, 30000)
    assert PAL.frame_duration == Fraction(1, 25)
    assert FrameRate.parse(str(NTSC)) == NTSC


# --- exact_seconds --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(0, Fraction(0), id="zero"),
        pytest.param(3, Fraction(3), id="int"),
        pytest.param(1.001, Fraction(1001, 1000), id="float-is-decimal"),
        pytest.param(0.1, Fraction(1, 10), id="tenth"),
        pytest.param("1.5", Fraction(3, 2), id="decimal-str"),
        pytest.param("1001/30000", Fraction(1001, 30000), id="rational-str"),
        pytest.param("1e-05", Fraction(1, 100_000), id="exponent-str"),
        pytest.param(Fraction(1, 3), Fraction(1, 3), id="fraction"),
        pytest.param(-0.0, Fraction(0), id="negative-zero"),
    ],
)
def test_exact_seconds_accepts(value: int | float | str | Fraction, expected: Fraction) -> None:
    assert exact_seconds(value) == expected


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        pytest.param(-1, "-1", id="negative"),
        pytest.param(-0.5, "-0.5", id="negative-float"),
        pytest.param("-1.5", "'-1.5'", id="negative-str"),
        pytest.param(Fraction(-1, 3), "Fraction(-1, 3)", id="negative-fraction"),
        pytest.param(math.nan, "nan", id="nan"),
        pytest.param(math.inf, "inf", id="inf"),
        pytest.param(False, "False", id="bool"),
        pytest.param("soon", "'soon'", id="junk"),
        pytest.param("1/0", "'1/0'", id="divide-by-zero"),
        pytest.param("1e400", "'1e400'", id="beyond-float"),
        pytest.param(None, "None", id="none"),
    ],
)
def test_exact_seconds_rejects(value: Any, shown: str) -> None:
    with pytest.raises(ValidationError) as info:
        exact_seconds(value)
    assert shown in str(info.value)


@settings(max_examples=300, deadline=None)
@given(st.floats(0, 1e6, allow_nan=False))
def test_exact_seconds_float_repr_round_trip(x: float) -> None:
    assert exact_seconds(repr(x)) == Fraction(repr(x))
    assert exact_seconds(x) == Fraction(repr(x))


# --- frames and seconds ---------------------------------------------------------------------


@pytest.mark.parametrize("rounding", ["floor", "nearest", "ceil"])
@settings(max_examples=200, deadline=None)
@given(rate=rates(), frame=st.integers(0, 10**8))
def test_frame_seconds_round_trip(rate: FrameRate, frame: int, rounding: str) -> None:
    assert seconds_to_frame(frame_to_seconds(frame, rate), rate, rounding) == frame


@settings(max_examples=200, deadline=None)
@given(rate=rates(), a=st.integers(0, 10**8), b=st.integers(0, 10**8))
def test_frame_to_seconds_strictly_increasing(rate: FrameRate, a: int, b: int) -> None:
    assert (frame_to_seconds(a, rate) < frame_to_seconds(b, rate)) == (a < b)
    assert frame_to_seconds(a, rate) < frame_to_seconds(a + 1, rate)


def test_no_drift_at_ntsc() -> None:
    frame = 10**7
    seconds = frame_to_seconds(frame, NTSC)
    assert seconds == Fraction(1001 * 10**7, 30000)
    assert seconds_to_frame(seconds, NTSC) == frame
    # Floats cannot hold the time exactly, and the decimal 29.97 lands ten frames off.
    float_seconds = frame / (30000 / 1001)
    assert Fraction(float_seconds) != seconds
    assert math.floor(float(seconds) * 29.97) != frame
    # A float round trip loses frames where exact arithmetic does not.
    assert math.floor(10**6 / (30000 / 1001) * (30000 / 1001)) == 10**6 - 1
    assert seconds_to_frame(frame_to_seconds(10**6, NTSC), NTSC) == 10**6


def test_seconds_to_frame_rounding() -> None:
    half = Fraction(3, 2) / PAL.value  # frame 1.5
    assert seconds_to_frame(half, PAL) == 1
    assert seconds_to_frame(half, PAL, "floor") == 1
    assert seconds_to_frame(half, PAL, "nearest") == 2
    assert seconds_to_frame(half, PAL, "ceil") == 2
    below_half = Fraction(7, 5) / PAL.value
    assert seconds_to_frame(below_half, PAL, "nearest") == 1
    assert seconds_to_frame(Fraction(0), PAL, "ceil") == 0
    assert seconds_to_frame(1, PAL) == 25  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("frame", "shown"),
    [
        pytest.param(-1, "-1", id="negative"),
        pytest.param(True, "True", id="bool"),
        pytest.param(1.0, "1.0", id="float"),
        pytest.param("3", "'3'", id="str"),
    ],
)
def test_frame_to_seconds_rejects(frame: Any, shown: str) -> None:
    with pytest.raises(ValidationError) as info:
        frame_to_seconds(frame, PAL)
    assert shown in str(info.value)


@pytest.mark.parametrize(
    ("seconds", "rounding", "shown"),
    [
        pytest.param(Fraction(-1), "floor", "Fraction(-1, 1)", id="negative"),
        pytest.param(0.5, "floor", "0.5", id="float"),
        pytest.param(True, "floor", "True", id="bool"),
        pytest.param(Fraction(1), "round", "'round'", id="bad-rounding"),
    ],
)
def test_seconds_to_frame_rejects(seconds: Any, rounding: str, shown: str) -> None:
    with pytest.raises(ValidationError) as info:
        seconds_to_frame(seconds, PAL, rounding)
    assert shown in str(info.value)


def test_rate_argument_must_be_frame_rate() -> None:
    with pytest.raises(ValidationError, match="25"):
        frame_to_seconds(1, 25)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="25"):
        seconds_to_frame(Fraction(1), 25)  # type: ignore[arg-type]


# --- TimeRange ------------------------------------------------------------------------------


def test_from_json_seconds() -> None:
    span = TimeRange.from_json({"start": 1.001, "end": "2.5"})
    assert span == TimeRange(Fraction(1001, 1000), Fraction(5, 2))
    assert span.duration == Fraction(1499, 1000)
    assert span.to_json() == {"start": 1.001, "end": 2.5}
    assert TimeRange.from_json({"start": 0, "end": 0}, NTSC).duration == 0


def test_from_json_frames_use_track_rate() -> None:
    span = TimeRange.from_json({"start_frame": 30, "end_frame": 60}, NTSC)
    assert span == TimeRange(Fraction(1001, 1000), Fraction(2002, 1000))
    assert span.frames(NTSC) == (30, 60)


def test_from_json_explicit_rate_wins() -> None:
    span = TimeRange.from_json({"start_frame": 25, "end_frame": 50, "rate": "25"}, NTSC)
    assert span == TimeRange(Fraction(1), Fraction(2))
    span = TimeRange.from_json({"start_frame": 0, "end_frame": 24, "rate": 23.976})
    assert span.end == Fraction(1001, 1000)


def test_from_json_end_frame_is_exclusive() -> None:
    span = TimeRange.from_json({"start_frame": 0, "end_frame": 1}, PAL)
    assert span.end == PAL.frame_duration
    assert span.frames(PAL) == (0, 1)


def test_from_json_frames_without_rate() -> None:
    with pytest.raises(ValidationError, match="given in frames but no frame rate is known"):
        TimeRange.from_json({"start_frame": 0, "end_frame": 10})


@pytest.mark.parametrize(
    ("obj", "pointer", "fragment"),
    [
        pytest.param({"start": 2, "end": 1}, "", "start 2 is after end 1", id="reversed"),
        pytest.param(
            {"start_frame": 9, "end_frame": 3, "rate": 25},
            "",
            "start_frame 9 is after end_frame 3",
            id="reversed-frames",
        ),
        pytest.param({"start": -1, "end": 1}, "/start", "-1", id="negative-start"),
        pytest.param({"start": 0, "end": "x"}, "/end", "'x'", id="junk-end"),
        pytest.param({"start": True, "end": 1}, "/start", "True", id="bool-start"),
        pytest.param({"start": math.nan, "end": 1}, "/start", "nan", id="nan-start"),
        pytest.param({"start": 0, "end": math.inf}, "/end", "inf", id="inf-end"),
        pytest.param({"start": 0}, "/end", "is required", id="missing-end"),
        pytest.param({"end": 1}, "/start", "is required", id="missing-start"),
        pytest.param({}, "/start", "is required", id="empty"),
        pytest.param({"start": 0, "end": 1, "note": 1}, "/note", "not allowed", id="extra"),
        pytest.param({"start_frame": 0}, "/end_frame", "is required", id="missing-end-frame"),
        pytest.param({"end_frame": 0}, "/start_frame", "is required", id="missing-start-frame"),
        pytest.param({"start_frame": 0, "end_frame": 1, "end": 1}, "", "mixes", id="mixed-forms"),
        pytest.param({"start": 0, "end": 1, "rate": 25}, "", "mixes", id="seconds-with-rate"),
        pytest.param(
            {"start_frame": 0, "end_frame": 1, "fps": 25}, "/fps", "not allowed", id="extra-frame"
        ),
        pytest.param(
            {"start_frame": -1, "end_frame": 1}, "/start_frame", "-1", id="negative-frame"
        ),
        pytest.param(
            {"start_frame": 0, "end_frame": 1.5}, "/end_frame", "1.5", id="fractional-frame"
        ),
        pytest.param(
            {"start_frame": False, "end_frame": 1}, "/start_frame", "False", id="bool-frame"
        ),
        pytest.param(
            {"start_frame": 0, "end_frame": 1, "rate": "1/0"}, "/rate", "'1/0'", id="bad-rate"
        ),
        pytest.param({"start_frame": 0, "end_frame": 1, "rate": 0}, "/rate", "0", id="zero-rate"),
        pytest.param({1: 0, "start": 0, "end": 1}, "/1", "not allowed", id="non-str-key"),
    ],
)
def test_from_json_rejects(obj: dict[Any, Any], pointer: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        TimeRange.from_json(obj, PAL if "start_frame" in obj and "rate" not in obj else None)
    assert pointer in [violation.pointer for violation in info.value.violations]
    assert fragment in str(info.value)
    assert all(isinstance(v, Violation) for v in info.value.violations)


def test_from_json_rejects_non_mapping_and_bad_track_rate() -> None:
    with pytest.raises(ValidationError, match=r"\[0, 1\]"):
        TimeRange.from_json([0, 1])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="'25'"):
        TimeRange.from_json({"start_frame": 0, "end_frame": 1}, "25")  # type: ignore[arg-type]


def test_from_json_rejects_end_beyond_json_range() -> None:
    with pytest.raises(ValidationError, match="end"):
        TimeRange.from_json({"start_frame": 0, "end_frame": 10**400}, FrameRate(Fraction(1)))


def test_time_range_constructor_validates() -> None:
    with pytest.raises(ValidationError, match="start 2 s, end 1 s"):
        TimeRange(Fraction(2), Fraction(1))
    with pytest.raises(ValidationError, match="-1"):
        TimeRange(Fraction(-1), Fraction(1))
    with pytest.raises(ValidationError, match="float"):
        TimeRange(0.5, Fraction(1))  # type: ignore[arg-type]


def test_overlaps_and_contains() -> None:
    a = TimeRange(Fraction(0), Fraction(2))
    b = TimeRange(Fraction(2), Fraction(3))
    c = TimeRange(Fraction(5, 2), Fraction(4))
    assert a.overlaps(b) and b.overlaps(a)  # touching counts
    assert not a.overlaps(c)
    assert a.contains(a)
    assert a.contains(TimeRange(Fraction(1), Fraction(2)))
    assert not a.contains(b)
    with pytest.raises(ValidationError, match="None"):
        a.overlaps(None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="None"):
        a.contains(None)  # type: ignore[arg-type]


def test_frames_cover_partial_frames() -> None:
    span = TimeRange(Fraction(1, 100), Fraction(1, 10))
    assert span.frames(PAL) == (0, 3)  # 0.25 .. 2.5 frames
    with pytest.raises(ValidationError, match="rate"):
        span.frames(None)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(time_ranges(), time_ranges())
def test_overlaps_symmetric_and_implied_by_contains(a: TimeRange, b: TimeRange) -> None:
    assert a.overlaps(b) == b.overlaps(a)
    if a.contains(b):
        assert a.overlaps(b)
    assert a.contains(a) and a.overlaps(a)


# --- timecode -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "rate", "expected"),
    [
        pytest.param(Fraction(0), PAL, "00:00:00:00", id="zero"),
        pytest.param(Fraction(3600), PAL, "01:00:00:00", id="one-hour-pal"),
        pytest.param(Fraction(1, 2), PAL, "00:00:00:12", id="half-second"),
        pytest.param(Fraction(3661) + Fraction(24, 25), PAL, "01:01:01:24", id="all-fields"),
        pytest.param(frame_to_seconds(30, NTSC), NTSC, "00:00:01:00", id="ntsc-nominal-30"),
        pytest.param(Fraction(3600), NTSC, "00:59:56:12", id="ntsc-non-drop-hour"),
        pytest.param(Fraction(100 * 3600), PAL, "100:00:00:00", id="no-24h-wrap"),
    ],
)
def test_format_timecode(seconds: Fraction, rate: FrameRate, expected: str) -> None:
    assert format_timecode(seconds, rate) == expected


def test_format_timecode_rejects() -> None:
    with pytest.raises(ValidationError, match="-1"):
        format_timecode(Fraction(-1), PAL)
    with pytest.raises(ValidationError, match="30"):
        format_timecode(Fraction(1), 30)  # type: ignore[arg-type]


class _LoudFloat(float):
    def __repr__(self) -> str:
        return f"LoudFloat({float(self)!r})"


def test_float_subclass_with_custom_repr() -> None:
    assert FrameRate.parse(_LoudFloat(29.97)) == NTSC
    assert exact_seconds(_LoudFloat(1.001)) == Fraction(1001, 1000)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**30), 10**30)
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["1/0", "-0", "1e400", "30000/1001", "29.97", "1.5"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=5,
)
json_keys = st.sampled_from(["start", "end", "start_frame", "end_frame", "rate", "x"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(json_keys, json_values), st.sampled_from([None, PAL, NTSC]))
def test_from_json_only_raises_validation_error(
    obj: dict[str, Any], rate: FrameRate | None
) -> None:
    try:
        span = TimeRange.from_json(obj, rate)
    except ValidationError as error:
        assert "\n" not in str(error)
    else:
        assert 0 <= span.start <= span.end
        span.to_json()


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_parsers_only_raise_validation_error(value: Any) -> None:
    for parse in (FrameRate.parse, exact_seconds):
        with contextlib.suppress(ValidationError):
            parse(value)
