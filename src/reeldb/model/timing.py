"""Frame-exact media time: frame rates, seconds, frames, time ranges and timecode.

Every value here is an exact :class:`fractions.Fraction`; floats appear only at the JSON edge.
Broadcast rates are rational: NTSC "29.97" fps is really ``30000/1001``. In floating point
that rate cannot be represented, and the error accumulates with the frame number. Frame
1,000,000 at ``30000/1001`` lies at exactly ``1001000000/30000`` s = 33366.666... s; the float
``1_000_000 / (30000 / 1001)`` times the float rate is ``999999.9999999999``, which floors to
frame 999,999. Taking the decimal ``29.97`` itself as the rate is worse: it puts the frame at
33366.7000 s, a whole frame (33 ms) late, and ten frames late by frame 10,000,000. With
rationals, frame -> seconds -> frame is the identity for every frame and every rate.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from reprlib import repr as _show
from typing import Any, TypeVar

from reeldb.errors import ValidationError, Violation

__all__ = [
    "MAX_FRAME_RATE",
    "FrameRate",
    "TimeRange",
    "exact_seconds",
    "format_timecode",
    "frame_to_seconds",
    "seconds_to_frame",
]

MAX_FRAME_RATE = Fraction(10_000)
"""The highest accepted frame rate, in frames per second."""

_MAX_SECONDS = Fraction(sys.float_info.max)  # larger values cannot be written as JSON numbers
_MAX_TEXT = 1000  # characters in a numeric string; keeps int() and 10**exp cheap
_MAX_EXPONENT = 1000
_NUMBER = re.compile(
    r"[+-]?(?:[0-9]+/(?P<den>[0-9]+)|[0-9]+(?:\.[0-9]+)?(?:[eE](?P<exp>[+-]?[0-9]+))?)",
    re.ASCII,
)
_NTSC = {  # decimal spellings of the NTSC family -> their exact N/1001 rates
    Fraction(decimal): Fraction(nominal * 1000, 1001)
    for decimal, nominal in [("23.976", 24), ("23.98", 24), ("29.97", 30), ("47.952", 48)]
    + [("59.94", 60), ("119.88", 120)]
}
_T = TypeVar("_T")
_ROUNDINGS = ("floor", "nearest", "ceil")
_SECONDS_KEYS = frozenset({"start", "end"})
_FRAME_KEYS = frozenset({"start_frame", "end_frame"})


def _number(value: object, what: str, accepted: str) -> Fraction:
    """Read an exact number from an int, float, str or Fraction; reject bool, nan and inf."""
    if isinstance(value, Fraction):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Fraction(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return Fraction(float.__repr__(value))  # the shortest round-tripping decimal
        raise ValidationError(f"{what} must be finite, got {_show(value)}; expected {accepted}")
    if isinstance(value, str):
        match = _NUMBER.fullmatch(value) if len(value) <= _MAX_TEXT else None
        if match is None:
            raise ValidationError(f"{what} {_show(value)} is not a number; expected {accepted}")
        if match["den"] is not None and int(match["den"]) == 0:
            raise ValidationError(f"{what} {_show(value)} divides by zero; expected {accepted}")
        if match["exp"] is not None and abs(int(match["exp"])) > _MAX_EXPONENT:
            raise ValidationError(f"{what} {_show(value)} is out of range; expected {accepted}")
        return Fraction(value)
    raise ValidationError(
        f"{what} must be a number, got {type(value).__name__} {_show(value)}; expected {accepted}"
    )


def _is_exact(value: object) -> bool:
    return isinstance(value, Fraction) or (isinstance(value, int) and not isinstance(value, bool))


def _at(key: str, parse: Callable[..., _T], *args: Any) -> _T:
    """Call ``parse(*args)``; report its ValidationError as a time range Violation at ``key``."""
    try:
        return parse(*args)
    except ValidationError as error:
        problem = Violation(f"/{key}", error.summary)
        raise ValidationError("invalid time range", [problem]) from error


def _require(value: object, kind: type[Any], what: str) -> None:
    if not isinstance(value, kind):
        raise ValidationError(
            f"{what} must be a {kind.__name__}, got {type(value).__name__} {_show(value)}"
        )


@dataclass(frozen=True, slots=True)
class FrameRate:
    """An exact frame rate.

    Attributes:
        value: Frames per second, ``0 < value <= MAX_FRAME_RATE``.

    Raises:
        ValidationError: If ``value`` is not a Fraction in that range.
    """

    value: Fraction

    def __post_init__(self) -> None:
        _require(self.value, Fraction, "frame rate value")
        if not 0 < self.value <= MAX_FRAME_RATE:
            raise ValidationError(
                f"frame rate {self.value} fps is out of range; expected more than 0 and at most "
                f"{MAX_FRAME_RATE} fps"
            )

    @classmethod
    def parse(cls, spec: str | int | float | Fraction) -> FrameRate:
        """Read a frame rate from a JSON-ish spelling.

        Rationals (``"30000/1001"``, ``Fraction(30000, 1001)``) and integers are taken exactly.
        Decimal spellings of the NTSC family (23.976, 23.98, 29.97, 47.952, 59.94, 119.88, as
        float or str) mean their exact ``N/1001`` rates; other decimals are taken exactly as
        written (``12.5`` is ``25/2``).

        Args:
            spec: The rate in frames per second.

        Returns:
            The frame rate.

        Raises:
            ValidationError: If ``spec`` is not a positive finite number at most
                ``MAX_FRAME_RATE`` (bools, junk strings and ``"1/0"`` included).
        """
        accepted = 'a positive rate such as 25, "25/1", "30000/1001" or 29.97'
        value = _number(spec, "frame rate", accepted)
        if isinstance(spec, float) or (isinstance(spec, str) and "/" not in spec):
            value = _NTSC.get(value, value)
        if not 0 < value <= MAX_FRAME_RATE:
            raise ValidationError(
                f"frame rate {_show(spec)} is out of range; expected more than 0 and at most "
                f"{MAX_FRAME_RATE} fps"
            )
        return cls(value)

    @property
    def frame_duration(self) -> Fraction:
        """Seconds per frame, exactly: ``1 / value``."""
        return 1 / self.value

    def __str__(self) -> str:
        return str(self.value)


def exact_seconds(value: int | float | str | Fraction) -> Fraction:
    """Read a JSON number of seconds as an exact Fraction.

    Floats mean their shortest decimal spelling: ``1.001`` is exactly ``1001/1000``.

    Args:
        value: Seconds as an int, float, Fraction, or a string such as ``"1.5"``, ``"1e-05"``
            or ``"1001/30000"``.

    Returns:
        The number of seconds.

    Raises:
        ValidationError: If ``value`` is negative, nan, infinite, a bool, not a number, or too
            large to be written back as a JSON number.
    """
    accepted = 'seconds >= 0 such as 1.5, "1.5" or "1001/30000"'
    seconds = _number(value, "seconds", accepted)
    if not 0 <= seconds <= _MAX_SECONDS:
        raise ValidationError(f"seconds {_show(value)} is out of range; expected {accepted}")
    return seconds


def frame_to_seconds(frame: int, rate: FrameRate) -> Fraction:
    """Give the exact time at which a frame starts.

    Args:
        frame: Frame number, counted from 0.
        rate: Frame rate.

    Returns:
        ``frame / rate`` seconds.

    Raises:
        ValidationError: If ``frame`` is not an int >= 0 or ``rate`` is not a FrameRate.
    """
    if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
        raise ValidationError(f"frame must be an int >= 0, got {_show(frame)}")
    _require(rate, FrameRate, "rate")
    return frame * rate.frame_duration


def seconds_to_frame(seconds: Fraction, rate: FrameRate, rounding: str = "floor") -> int:
    """Give the frame at a time, exactly.

    Args:
        seconds: Time in seconds, >= 0 (a Fraction or an int).
        rate: Frame rate.
        rounding: ``"floor"`` (the frame showing at that time), ``"ceil"`` (the first frame
            starting at or after it) or ``"nearest"`` (halves round up).

    Returns:
        The frame number.

    Raises:
        ValidationError: If ``seconds`` is not a Fraction or int >= 0, ``rate`` is not a
            FrameRate, or ``rounding`` is unknown.
    """
    if not _is_exact(seconds) or seconds < 0:
        raise ValidationError(
            f"seconds must be a Fraction >= 0 (see exact_seconds), got {_show(seconds)}"
        )
    _require(rate, FrameRate, "rate")
    position = seconds * rate.value
    if rounding == "floor":
        return math.floor(position)
    if rounding == "ceil":
        return math.ceil(position)
    if rounding == "nearest":
        return math.floor(position + Fraction(1, 2))
    raise ValidationError(f"rounding {_show(rounding)} is unknown; expected one of {_ROUNDINGS}")


@dataclass(frozen=True, slots=True)
class TimeRange:
    """A closed span of media time, in exact seconds.

    Attributes:
        start: Start in seconds, >= 0.
        end: End in seconds, >= ``start``.

    Raises:
        ValidationError: If a bound is not a Fraction, is negative, is too large for JSON, or
            ``start > end``.
    """

    start: Fraction
    end: Fraction

    def __post_init__(self) -> None:
        _require(self.start, Fraction, "start")
        _require(self.end, Fraction, "end")
        if not 0 <= self.start <= self.end <= _MAX_SECONDS:
            raise ValidationError(
                f"time range start {self.start} s, end {self.end} s is invalid; expected "
                f"0 <= start <= end <= {float(_MAX_SECONDS)!r}"
            )

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], rate: FrameRate | None = None) -> TimeRange:
        """Read a time range from JSON in seconds or in frames.

        ``{"start": 1.5, "end": 2}`` gives seconds. ``{"start_frame": 0, "end_frame": 24,
        "rate": "24"}`` gives frames ``[start_frame, end_frame)``, so ``end = end_frame / rate``;
        its optional ``"rate"`` wins over the ``rate`` argument.

        Args:
            obj: The JSON object.
            rate: The enclosing track's frame rate, used for frames when ``obj`` has no rate.

        Returns:
            The time range.

        Raises:
            ValidationError: With a Violation per problem: a missing, extra or mixed key, a bad
                number, ``start > end``, or frames with no known frame rate.
        """
        if not isinstance(obj, Mapping):
            raise ValidationError(f"time range must be a JSON object, got {_show(obj)}")
        keys = set(obj)
        form = _FRAME_KEYS if keys & (_FRAME_KEYS | {"rate"}) else _SECONDS_KEYS
        allowed = form | {"rate"} if form is _FRAME_KEYS else form
        problems = [Violation(f"/{k}", "is not allowed") for k in sorted(keys - allowed, key=str)]
        problems += [Violation(f"/{k}", "is required") for k in sorted(form - keys)]
        if form is _FRAME_KEYS and keys & _SECONDS_KEYS:
            problems.insert(0, Violation("", "mixes seconds (start/end) and frames"))
        if problems:
            raise ValidationError("invalid time range", problems)
        if rate is not None:
            _require(rate, FrameRate, "rate")
        if form is _SECONDS_KEYS:
            first, last = "start", "end"
            start = _at(first, exact_seconds, obj[first])
            end = _at(last, exact_seconds, obj[last])
        else:
            first, last = "start_frame", "end_frame"
            if "rate" in obj:
                rate = _at("rate", FrameRate.parse, obj["rate"])
            elif rate is None:
                no_rate = "the time is given in frames but no frame rate is known"
                raise ValidationError("invalid time range", [Violation("", no_rate)])
            start = _at(first, frame_to_seconds, obj[first], rate)
            end = _at(last, frame_to_seconds, obj[last], rate)
        if start > end:
            problem = f"{first} {_show(obj[first])} is after {last} {_show(obj[last])}"
            problem += f"; expected {first} <= {last}"
            raise ValidationError("invalid time range", [Violation("", problem)])
        return _at(last, cls, start, end)

    def to_json(self) -> dict[str, float]:
        """Write the range as JSON seconds; floats round to the nearest double.

        Returns:
            ``{"start": float, "end": float}``.
        """
        return {"start": float(self.start), "end": float(self.end)}

    @property
    def duration(self) -> Fraction:
        """Length of the range in seconds: ``end - start``."""
        return self.end - self.start

    def overlaps(self, other: TimeRange) -> bool:
        """Tell whether two ranges share a moment; touching ranges do.

        Args:
            other: Another range.

        Returns:
            True if some time lies in both closed ranges.

        Raises:
            ValidationError: If ``other`` is not a TimeRange.
        """
        _require(other, TimeRange, "other")
        return self.start <= other.end and other.start <= self.end

    def contains(self, other: TimeRange) -> bool:
        """Tell whether this range covers another entirely.

        Args:
            other: Another range.

        Returns:
            True if ``start <= other.start`` and ``other.end <= end``.

        Raises:
            ValidationError: If ``other`` is not a TimeRange.
        """
        _require(other, TimeRange, "other")
        return self.start <= other.start and other.end <= self.end

    def frames(self, rate: FrameRate) -> tuple[int, int]:
        """Give the frames ``[first, end)`` needed to cover the range.

        Args:
            rate: Frame rate.

        Returns:
            ``(floor(start * rate), ceil(end * rate))``.

        Raises:
            ValidationError: If ``rate`` is not a FrameRate.
        """
        return seconds_to_frame(self.start, rate), seconds_to_frame(self.end, rate, "ceil")


def format_timecode(seconds: Fraction, rate: FrameRate) -> str:
    """Format a time as SMPTE-style non-drop timecode ``HH:MM:SS:FF``.

    Frames are counted at the nominal integer rate ``ceil(rate)`` (30 for ``30000/1001``), so
    for fractional rates the timecode labels frames rather than wall-clock time. Drop-frame
    timecode is not produced. Hours are not wrapped at 24.

    Args:
        seconds: Time in seconds, >= 0.
        rate: Frame rate; the frame is ``seconds_to_frame(seconds, rate)``.

    Returns:
        The timecode, e.g. ``"01:00:00:00"``.

    Raises:
        ValidationError: If ``seconds`` or ``rate`` is invalid (see :func:`seconds_to_frame`).
    """
    frame = seconds_to_frame(seconds, rate)
    nominal = math.ceil(rate.value)
    whole_seconds, ff = divmod(frame, nominal)
    minutes, ss = divmod(whole_seconds, 60)
    hh, mm = divmod(minutes, 60)
    return f"{hh:02d}:{mm:02d}:{ss:02d}:{ff:02d}"
