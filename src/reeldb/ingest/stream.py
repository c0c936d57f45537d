"""Walk a media document's JSON as it streams in, one node at a time, in bounded memory.

A media document's bulk is its events (and their regions); the levels above them are few
and small. The walker frames the 5-level envelope itself (``{"asset": ..., "tracks": [{...,
"components": [{..., "events": [...]}]}]}``) and hands every value inside it, each event
whole, to the C decoder of Python's `json` module at a known offset (`raw_decode`). So
memory holds one buffer of text and one event at a time, whatever the document's size, and
each node comes out with its exact position (track, component, event indexes).

Why not ijson alone: its C backend yields the items under *one* prefix at C speed but not
where each sits (which track, which component), and its per-token events cost more in
Python than this whole walk (measured in ``benchmarks/ingest_bench.py``).
"""

from __future__ import annotations

import codecs
import json
import json.scanner
import re
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import Any, Final

from reeldb.errors import ValidationError, Violation

__all__ = [
    "COMPONENT",
    "COMPONENT_ATTR",
    "COMPONENT_END",
    "COMPONENT_VALUE",
    "EVENT",
    "MAX_VALUE_CHARS",
    "TOP",
    "TRACK",
    "TRACKS_VALUE",
    "TRACK_ATTR",
    "TRACK_END",
    "TRACK_VALUE",
    "walk",
]

TOP: Final = 0
"""``(TOP, key, value)``: a top-level member other than ``tracks`` (``asset`` included)."""
TRACK: Final = 1
"""``(TRACK, t, None)``: track ``t`` (an object) begins."""
TRACK_ATTR: Final = 2
"""``(TRACK_ATTR, key, value)``: a member of the current track (``components`` only when it
is not an array)."""
COMPONENT: Final = 3
"""``(COMPONENT, c, None)``: component ``c`` (an object) of the current track begins."""
COMPONENT_ATTR: Final = 4
"""``(COMPONENT_ATTR, key, value)``: a member of the current component."""
EVENT: Final = 5
"""``(EVENT, e, value)``: event ``e`` of the current component, decoded."""
COMPONENT_END: Final = 6
"""``(COMPONENT_END, count, None)``: the current component ends; it had ``count`` events."""
TRACK_END: Final = 7
"""``(TRACK_END, count, None)``: the current track ends; it had ``count`` components."""
TRACKS_VALUE: Final = 8
"""``(TRACKS_VALUE, "tracks", value)``: ``tracks`` is not an array (a schema violation)."""
TRACK_VALUE: Final = 9
"""``(TRACK_VALUE, t, value)``: track ``t`` is not an object (a schema violation); no
`TRACK_END` follows."""
COMPONENT_VALUE: Final = 10
"""``(COMPONENT_VALUE, c, value)``: like `TRACK_VALUE`, for a component."""

_SPACE: Final = re.compile(r"[ \t\n\r]*")
_NUMBER_TAIL: Final = re.compile(r"[0-9eE+.-]*")
_LOOKAHEAD: Final = 16
"""Characters from the buffer's end where a decoding error may be a cut token."""

_REFILL: Final = 64 * 1024
"""Characters left in the buffer below which the next piece is read before an event."""

MAX_VALUE_CHARS: Final = 256 * 1024 * 1024
"""The largest single value (an event with its regions, a track's attribute) read whole."""


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


class _Text:
    """The document's text, decoded from UTF-8 chunks, with a cursor (bounded buffer)."""

    __slots__ = ("_bytes", "_chunks", "_decoder", "_done", "consumed", "pos", "text")

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._done = False
        self._bytes = 0
        self.text = ""
        self.pos = 0
        self.consumed = 0  # characters dropped from the front of the buffer

    def more(self) -> bool:
        """Append the next piece of text; False at the end of the input."""
        if self._done:
            return False
        piece = b""
        while not piece:
            chunk = next(self._chunks, None)
            if chunk is None:
                self._done = True
                tail = self._decode(b"", final=True)
                self.text = self.text[self.pos :] + tail
                self.consumed += self.pos
                self.pos = 0
                return bool(tail)
            piece = chunk
        added = self._decode(bytes(piece), final=False)
        self._bytes += len(piece)
        self.text = self.text[self.pos :] + added
        self.consumed += self.pos
        self.pos = 0
        return True

    def _decode(self, data: bytes, *, final: bool) -> str:
        try:
            return self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            at = self._bytes + exc.start
            raise ValidationError(
                "document is not UTF-8 text", [Violation("", f"{exc.reason} at byte {at}")]
            ) from None

    def at(self) -> int:
        """Where the cursor is, in characters from the start of the document."""
        return self.consumed + self.pos

    def skip_space(self) -> str:
        """Skip whitespace; the next character ("" at the end of the input)."""
        while True:
            end = _SPACE.match(self.text, self.pos).end()  # type: ignore[union-attr]
            if end < len(self.text):
                self.pos = end
                return self.text[end]
            self.pos = end
            if not self.more():
                return ""

    def expect(self, chars: str, where: str) -> str:
        """Consume one of ``chars`` (after whitespace); which one."""
        char = self.skip_space()
        if not char or char not in chars:
            found = "the end of the input" if not char else repr(char)
            raise _syntax(f"expected {' or '.join(map(repr, chars))} {where}, found {found}", self)
        self.pos += 1
        return char


def _syntax(message: str, text: _Text) -> ValidationError:
    return ValidationError(
        "document is not valid JSON", [Violation("", f"{message} at character {text.at()}")]
    )


class _Values:
    """Decodes one JSON value at the cursor, reading more text until it is complete."""

    __slots__ = ("_decode", "_text", "scan")

    def __init__(self, text: _Text) -> None:
        self._text = text
        decoder = json.JSONDecoder(parse_constant=_constant)
        self._decode = decoder.raw_decode
        # The C scanner of this decoder's settings: ``(value, end)`` at a position.
        scanner = json.scanner.make_scanner(decoder)  # type: ignore[arg-type]
        self.scan: Callable[[str, int], tuple[Any, int]] = scanner

    def __call__(self) -> Any:
        text = self._text
        text.skip_space()
        while True:
            try:
                value, end = self._decode(text.text, text.pos)
            except json.JSONDecodeError as exc:
                # An error near the end of the buffer (a literal, an escape or a number cut
                # in two; an unterminated string) may only mean that the value goes on in
                # the next piece: read it and decode again.
                partial = exc.pos >= len(text.text) - _LOOKAHEAD or exc.msg.startswith(
                    "Unterminated"
                )
                if not partial or len(text.text) - text.pos > MAX_VALUE_CHARS or not text.more():
                    raise ValidationError(
                        "document is not valid JSON",
                        [Violation("", f"{exc.msg} at character {text.consumed + exc.pos}")],
                    ) from None
                continue
            except ValueError as exc:  # NaN, Infinity
                raise ValidationError(
                    "document is not valid JSON", [Violation("", f"{exc} at character {text.at()}")]
                ) from None
            if (
                isinstance(value, int | float)
                and _NUMBER_TAIL.fullmatch(text.text, end)
                and text.more()
            ):
                continue  # the buffer ends in what may be more of the number: read on
            text.pos = end
            return value

    def key(self) -> str:
        value = self()
        if not isinstance(value, str):
            raise _syntax("expected a member name", self._text)
        self._text.expect(":", "after a member name")
        return value


def walk(chunks: Iterable[bytes]) -> Iterator[tuple[int, Any, Any]]:
    """The nodes of a media document, in document order, from its UTF-8 bytes.

    Args:
        chunks: The document's bytes, in pieces of any size.

    Yields:
        ``(kind, a, b)`` tuples; see `TOP`, `TRACK`, `TRACK_ATTR`, `COMPONENT`,
        `COMPONENT_ATTR`, `EVENT`, `COMPONENT_END`, `TRACK_END`, `TRACKS_VALUE`,
        `TRACK_VALUE` and `COMPONENT_VALUE`.

    Raises:
        ValidationError: The bytes are not UTF-8 or not one JSON object (truncated,
            malformed, trailing data); the message gives the character position.
    """
    text = _Text(chunks)
    value = _Values(text)
    if text.skip_space() != "{":
        if text.skip_space() == "":
            raise _syntax("the document is empty", text)
        raise ValidationError(
            "a media document is a JSON object with 'asset' and 'tracks'",
            [Violation("", f"got {type(value()).__name__}")],
        )
    text.pos += 1
    for key in _members(text, value, "the document"):
        if key != "tracks":
            yield TOP, key, value()
        elif text.skip_space() != "[":
            yield TRACKS_VALUE, key, value()
        else:
            text.pos += 1
            yield from _tracks(text, value)
    if text.skip_space():
        raise _syntax("unexpected data after the document", text)


def _members(text: _Text, value: _Values, what: str) -> Iterator[str]:
    """The keys of the object at the cursor (its ``{`` consumed); the caller reads each value.

    A repeated key is refused: the walk cannot take back what it gave for the first one.
    """
    if text.skip_space() == "}":
        text.pos += 1
        return
    seen: set[str] = set()
    while True:
        key = value.key()
        if key in seen:
            raise _syntax(f"{what} has member {key!r} twice", text)
        seen.add(key)
        yield key
        if text.expect(",}", f"after a member of {what}") == "}":
            return


def _items(text: _Text, what: str) -> Iterator[int]:
    """The indexes of the array at the cursor (its ``[`` consumed); the caller reads each item."""
    if text.skip_space() == "]":
        text.pos += 1
        return
    index = 0
    while True:
        yield index
        index += 1
        if text.expect(",]", f"after an item of {what}") == "]":
            return


def _tracks(text: _Text, value: _Values) -> Iterator[tuple[int, Any, Any]]:
    tracks = 0
    for t in _items(text, "tracks"):
        tracks += 1
        if text.skip_space() != "{":
            yield TRACK_VALUE, t, value()
            continue
        text.pos += 1
        yield TRACK, t, None
        count = 0
        for key in _members(text, value, "a track"):
            if key != "components" or text.skip_space() != "[":
                yield TRACK_ATTR, key, value()
                continue
            text.pos += 1
            for c in _items(text, "components"):
                count += 1
                yield from _component(text, value, c)
        yield TRACK_END, count, None


def _component(text: _Text, value: _Values, c: int) -> Iterator[tuple[int, Any, Any]]:
    if text.skip_space() != "{":
        yield COMPONENT_VALUE, c, value()
        return
    text.pos += 1
    yield COMPONENT, c, None
    count = 0
    for key in _members(text, value, "a component"):
        if key != "events" or text.skip_space() != "[":
            yield COMPONENT_ATTR, key, value()
            continue
        text.pos += 1
        count += yield from _events(text, value)
    yield COMPONENT_END, count, None


def _events(text: _Text, value: _Values) -> Generator[tuple[int, Any, Any], None, int]:
    """The events of the array at the cursor (its ``[`` consumed); returns how many.

    As `_items` and `_Values` do, with a fast path for the common case: an object that
    starts at the cursor and ends inside the buffer, followed by ``,`` or ``]``. Anything
    else (whitespace, a value cut by the buffer's end, an error) takes the general path
    from the same position.
    """
    if text.skip_space() == "]":
        text.pos += 1
        return 0
    scan = value.scan
    e = 0
    while True:
        if len(text.text) - text.pos < _REFILL:
            text.more()  # before an event is cut by the buffer's end, not after
        buffer, at = text.text, text.pos
        try:
            event, end = scan(buffer, at)
        except (StopIteration, ValueError):  # not a value here, or not whole in the buffer
            event = value()
        else:
            if type(event) is dict:  # an object's end is its "}": complete
                text.pos = end
            else:  # a number may go on in the next piece: the general path decides
                event = value()
        yield EVENT, e, event
        e += 1
        buffer, at = text.text, text.pos
        following = buffer[at] if at < len(buffer) else ""
        if following == ",":
            text.pos = at + 1
        elif following == "]":
            text.pos = at + 1
            return e
        elif text.expect(",]", "after an item of events") == "]":
            return e
