"""Annotations to and from W3C Web Annotation (JSON-LD).

Pure conversions: no I/O and no database. The service layer reads and writes the files and
stores what these functions return.

W3C Web Annotation (https://www.w3.org/TR/annotation-model/), as written by `to_w3c`:

* ``id`` is ``urn:uuid:<annotation id>``; ``created`` is the time the exported version was
  stored (``xsd:dateTime`` in UTC, ``Z``); ``creator`` is the principal that stored it.
* Each association becomes one target whose ``source`` is
  ``urn:reeldb:association:<TYPE>:<id>``, the id percent-encoded (every byte but
  ``A-Z a-z 0-9 - . _ ~``), so any id survives, ``#`` and ``/`` included.
* A time range becomes a ``FragmentSelector`` ``t=<start>,<end>`` and a box one
  ``xywh=<x>,<y>,<w>,<h>``, both conforming to Media Fragments URI 1.0
  (https://www.w3.org/TR/media-frags/).
* Text properties become ``TextualBody`` bodies (``text/plain``).
* The whole annotation rides along in one more ``TextualBody`` whose ``format`` is
  `PAYLOAD_FORMAT` and whose ``value`` is the JSON text of
  ``{"id", "version", "type": {"name", "version"}, "associations", "data"}``. `from_w3c`
  restores an annotation from it exactly; selectors and text bodies are a view for other
  tools, and may be lossy (Media Fragments only has whole pixels and decimal seconds).

Annotations from other tools (no payload) are mapped into a type the caller names; see
`from_w3c`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Any, Final, Literal
from urllib.parse import quote, unquote
from uuid import UUID, uuid4

from reeldb import _json
from reeldb.annotations.interop._common import (
    _associations,
    _check_association,
    _check_target_type,
    _exact,
    _json_number,
)
from reeldb.annotations.model import (
    ASSOCIATION_TYPE,
    Annotation,
    Association,
    NewAnnotation,
    TypeRef,
    parse_associations,
)
from reeldb.errors import ValidationError, Violation
from reeldb.model.timing import TimeRange

__all__ = [
    "ANNO_CONTEXT",
    "ASSOCIATION_URN_PREFIX",
    "MEDIA_FRAGMENTS",
    "PAYLOAD_FORMAT",
    "association_from_urn",
    "association_urn",
    "from_w3c",
    "from_w3c_many",
    "to_w3c",
    "w3c_collection",
]

ANNO_CONTEXT: Final = "http://www.w3.org/ns/anno.jsonld"
"""The JSON-LD context every Web Annotation names."""
MEDIA_FRAGMENTS: Final = "http://www.w3.org/TR/media-frags/"
"""The ``conformsTo`` of a FragmentSelector holding a media fragment (``t=``, ``xywh=``)."""
PAYLOAD_FORMAT: Final = "application/vnd.reeldb.annotation+json"
"""The ``format`` of the TextualBody that carries a whole reeldb annotation."""
ASSOCIATION_URN_PREFIX: Final = "urn:reeldb:association:"
"""Targets naming a reeldb association: this prefix, the type, ``:``, the encoded id."""

_MEDIA_FRAGMENTS_ALIASES = frozenset(
    {MEDIA_FRAGMENTS, MEDIA_FRAGMENTS.rstrip("/"), "https://www.w3.org/TR/media-frags/"}
    | {"https://www.w3.org/TR/media-frags"}
)
_PRINCIPAL_URN = "urn:reeldb:principal:"
_AGENT_TYPES = {"user": "Person", "app": "Software"}
_GENERATOR: Final = {"type": "Software", "name": "reeldb"}
_FOREIGN_TARGET_SETS = frozenset({"Composite", "List", "Independents"})
_NPT_DIGITS = 6  # decimals written for seconds: microseconds, far below any frame duration
# Digits are capped so that a hostile value cannot make huge numbers (int() and float()).
_NPT_TIME = re.compile(
    r"(?:(?:(?P<h>[0-9]{1,12}):)?(?P<m>[0-9]{2}):)?(?P<s>[0-9]{1,15})(?P<frac>\.[0-9]{0,15})?",
    re.ASCII,
)
_SMPTE_TIME = re.compile(
    r"(?P<h>[0-9]{1,12}):(?P<m>[0-9]{2}):(?P<s>[0-9]{2})(?::(?P<f>[0-9]{2})(?:\.(?P<sub>[0-9]{2}))?)?",
    re.ASCII,
)
_SMPTE_RATES = {"smpte": 30, "smpte-30": 30, "smpte-25": 25}
_XYWH_NUMBER = re.compile(r"[0-9]{1,15}(?:\.[0-9]{0,15})?", re.ASCII)


# -- shared helpers ---------------------------------------------------------------------------


def _escape(token: object) -> str:
    """One JSON pointer token (RFC 6901): ``~`` is ``~0`` and ``/`` is ``~1``."""
    return str(token).replace("~", "~0").replace("/", "~1")


def _nested(at: str, error: ValidationError) -> list[Violation]:
    """The violations of ``error``, their pointers moved under ``at``."""
    if not error.violations:
        return [Violation(at, error.summary)]
    return [Violation(at + v.pointer, v.message) for v in error.violations]


def _types(value: Mapping[str, Any]) -> set[str]:
    """The JSON-LD ``type`` of an object as a set (a string or a list of strings)."""
    kind = value.get("type")
    if isinstance(kind, str):
        return {kind}
    if isinstance(kind, list):
        return {k for k in kind if isinstance(k, str)}
    return set()


# -- W3C export -------------------------------------------------------------------------------


def association_urn(association: Association) -> str:
    """The IRI a W3C target uses for an association.

    Args:
        association: The association.

    Returns:
        ``urn:reeldb:association:<TYPE>:<id>``, the id percent-encoded as UTF-8 so that any
        id (spaces, ``:``, ``/``, ``#``, ``%``, any script) reads back unchanged.
    """
    return f"{ASSOCIATION_URN_PREFIX}{association.type}:{quote(association.id, safe='')}"


def association_from_urn(iri: str) -> Association | None:
    """Read an IRI written by `association_urn`.

    Args:
        iri: A target source IRI.

    Returns:
        The association, or None if ``iri`` is not a reeldb association URN.

    Raises:
        ValidationError: It is a reeldb association URN, but malformed.
    """
    if iri[: len(ASSOCIATION_URN_PREFIX)].lower() != ASSOCIATION_URN_PREFIX:
        return None
    kind, colon, encoded = iri[len(ASSOCIATION_URN_PREFIX) :].partition(":")
    try:
        ident = unquote(encoded, errors="strict")
    except UnicodeDecodeError:
        ident = ""
    if not colon or not ident or not ASSOCIATION_TYPE.match(kind):
        raise ValidationError(f"{iri!r} is not urn:reeldb:association:<TYPE>:<percent-encoded id>")
    return Association(kind, ident)


def _xsd_datetime(moment: datetime) -> str:
    """An ``xsd:dateTime`` in UTC with ``Z``, as the model requires; naive means UTC."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    text = utc.replace(tzinfo=None, microsecond=0).isoformat()  # %Y would drop zeros: 999
    if utc.microsecond:
        text += f".{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def _agent(principal: str) -> dict[str, str]:
    agent = {"id": _PRINCIPAL_URN + quote(principal, safe=""), "name": principal}
    kind = _AGENT_TYPES.get(principal.partition(":")[0])
    if kind:
        agent["type"] = kind
    return agent


def _npt(seconds: Fraction, *, up: bool) -> str:
    """Seconds as a Media Fragments ``npt-sec``: at most 6 decimals, rounded down or up."""
    scaled = seconds * 10**_NPT_DIGITS
    whole, fraction = divmod(math.ceil(scaled) if up else math.floor(scaled), 10**_NPT_DIGITS)
    if not fraction:
        return str(whole)
    return f"{whole}.{fraction:0{_NPT_DIGITS}d}".rstrip("0")


def _time_fragment(value: Any, at: str) -> str | None:
    """``t=<start>,<end>`` for a time range in seconds or frames; None for an empty range.

    The range is widened to whole microseconds (start down, end up) so that the fragment
    covers it. Media Fragments calls ``t=a,a`` invalid, so an empty range has no fragment.
    """
    try:
        span = TimeRange.from_json(value)
    except ValidationError as exc:
        raise ValidationError("the time range cannot be exported", _nested(at, exc)) from exc
    if span.start == span.end:
        return None
    return f"t={_npt(span.start, up=False)},{_npt(span.end, up=True)}"


def _box_fragment(value: Any, at: str, *, relative: bool) -> str:
    """``xywh=`` for a box ``{x, y, w, h}``.

    Media Fragments only has whole non-negative numbers, so the fragment is the smallest
    whole-pixel (or whole-percent) box that covers the box, clipped at 0.
    """
    if not isinstance(value, Mapping):
        raise ValidationError(
            "the box cannot be exported", [Violation(at, "a box is an object {x, y, w, h}")]
        )
    numbers: dict[str, Fraction] = {}
    problems: list[Violation] = []
    for key in ("x", "y", "w", "h"):
        number = _exact(value.get(key))
        if number is None:
            problems.append(Violation(f"{at}/{key}", "a box needs a finite number here"))
        elif key in "wh" and number < 0:
            problems.append(Violation(f"{at}/{key}", "a box cannot have a negative size"))
        else:
            numbers[key] = number * 100 if relative else number
    if problems:
        raise ValidationError("the box cannot be exported", problems)
    left, top = max(0, math.floor(numbers["x"])), max(0, math.floor(numbers["y"]))
    right = max(0, math.ceil(numbers["x"] + numbers["w"]))
    bottom = max(0, math.ceil(numbers["y"] + numbers["h"]))
    unit = "percent:" if relative else ""
    return f"xywh={unit}{left},{top},{right - left},{bottom - top}"


def _fragment_selector(values: Sequence[str]) -> dict[str, Any]:
    """One FragmentSelector, or a ``refinedBy`` chain when there is a time and a box.

    The model reads several selectors in a ``selector`` list as alternatives that each
    select the same segment (a consumer "MUST pick one"), so a time range and a box cannot
    be two list entries. ``refinedBy`` applies the second selector to the result of the
    first: the box within the time range, which is what the annotation means.
    """
    selector: dict[str, Any] = {}
    for value in reversed(values):
        inner = selector
        selector = {"type": "FragmentSelector", "conformsTo": MEDIA_FRAGMENTS, "value": value}
        if inner:
            selector["refinedBy"] = inner
    return selector


def _text_bodies(value: Any, at: str, purpose: str) -> list[dict[str, Any]]:
    if value is None:
        return []
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise ValidationError(
            "a text property cannot be exported",
            [Violation(at, "a text property is a string or a list of strings")],
        )
    return [
        {"type": "TextualBody", "purpose": purpose, "format": "text/plain", "value": text}
        for text in texts
    ]


def to_w3c(
    annotation: Annotation,
    *,
    time_property: str | None = None,
    box_property: str | None = None,
    text_properties: Sequence[str] = (),
    text_purpose: Literal["commenting", "describing", "tagging"] = "describing",
    relative_box: bool = False,
) -> dict[str, Any]:
    """Write one annotation as a W3C Web Annotation (JSON-LD).

    Tombstones are not exported: filter deleted annotations out first.

    Args:
        annotation: The annotation version to export.
        time_property: A ``data`` property holding a time range, ``{"start", "end"}`` in
            seconds or ``{"start_frame", "end_frame", "rate"}``; each target gets a
            ``t=`` FragmentSelector (none when the property is absent or the range empty).
        box_property: A ``data`` property holding a box ``{"x", "y", "w", "h"}``; each
            target gets an ``xywh=`` FragmentSelector (covering whole pixels).
        text_properties: ``data`` properties (strings or lists of strings) written as
            ``TextualBody`` bodies, in this order.
        text_purpose: The ``purpose`` of those bodies.
        relative_box: The box is relative (0 to 1 of the frame): write ``xywh=percent:``.

    Returns:
        The annotation as a JSON object.

    Raises:
        ValidationError: The annotation is deleted, or a named property does not hold a
            time range, a box or text (pointers into the annotation's JSON).
    """
    if annotation.deleted:
        raise ValidationError(
            f"annotation {annotation.id} is deleted; tombstones are not exported",
            [Violation("/deleted", "filter deleted annotations out before exporting")],
        )
    data = annotation.data
    fragments: list[str] = []
    problems: list[Violation] = []
    if time_property is not None and data.get(time_property) is not None:
        try:
            fragment = _time_fragment(data[time_property], f"/data/{_escape(time_property)}")
        except ValidationError as exc:
            problems += exc.violations
        else:
            fragments += [fragment] if fragment else []
    if box_property is not None and data.get(box_property) is not None:
        try:
            fragments.append(
                _box_fragment(
                    data[box_property], f"/data/{_escape(box_property)}", relative=relative_box
                )
            )
        except ValidationError as exc:
            problems += exc.violations
    bodies: list[dict[str, Any]] = []
    for name in text_properties:
        try:
            bodies += _text_bodies(data.get(name), f"/data/{_escape(name)}", text_purpose)
        except ValidationError as exc:
            problems += exc.violations
    if problems:
        raise ValidationError(f"annotation {annotation.id} cannot be exported", problems)
    payload = {
        "id": str(annotation.id),
        "version": annotation.version,
        "type": annotation.type.to_json(),
        "associations": [a.to_json() for a in annotation.associations],
        "data": data,
    }
    bodies.append(
        {
            "type": "TextualBody",
            "purpose": "describing",
            "format": PAYLOAD_FORMAT,
            "value": _json.dumps(payload).decode(),
        }
    )
    selector = _fragment_selector(fragments) if fragments else None
    targets: list[Any] = [
        {"type": "SpecificResource", "source": association_urn(a), "selector": selector}
        if selector
        else association_urn(a)
        for a in annotation.associations
    ]
    out: dict[str, Any] = {
        "@context": ANNO_CONTEXT,
        "id": f"urn:uuid:{annotation.id}",
        "type": "Annotation",
        "created": _xsd_datetime(annotation.created_at),
    }
    if annotation.created_by:
        out["creator"] = _agent(annotation.created_by)
    out["generator"] = dict(_GENERATOR)
    out["body"] = bodies
    out["target"] = targets[0] if len(targets) == 1 else targets
    return out


def w3c_collection(
    annotations: Sequence[Mapping[str, Any]], *, id: str | None = None, label: str | None = None
) -> dict[str, Any]:
    """Gather exported annotations in an ``AnnotationCollection`` with its first page embedded.

    The form for a file export: one collection, one page holding every annotation (the
    model's Example 40). Annotations lose their own ``@context`` when it is the page's,
    as embedded resources should.

    Args:
        annotations: Annotations from `to_w3c`.
        id: The collection's IRI; a fresh ``urn:uuid:`` when None. The page is
            ``<id>#page0``.
        label: A human-readable name for the collection.

    Returns:
        The collection as a JSON object.
    """
    ident = id if id is not None else f"urn:uuid:{uuid4()}"
    collection: dict[str, Any] = {
        "@context": ANNO_CONTEXT,
        "id": ident,
        "type": "AnnotationCollection",
    }
    if label is not None:
        collection["label"] = label
    collection["total"] = len(annotations)
    if annotations:  # "a Collection that has a total greater than 0 MUST have a first page"
        items = [
            {k: v for k, v in item.items() if k != "@context" or v != ANNO_CONTEXT}
            for item in annotations
        ]
        collection["first"] = {
            "id": f"{ident}#page0",
            "type": "AnnotationPage",
            "startIndex": 0,
            "items": items,
        }
    return collection


# -- W3C import -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Mapping:
    """How a foreign annotation maps into a reeldb type."""

    time_property: str | None
    box_property: str | None
    text_property: str | None


def _media_dimensions(fragment: str) -> dict[str, str]:
    """The ``name=value`` pairs of a media fragment; the last occurrence of a name wins."""
    out: dict[str, str] = {}
    for part in fragment.split("&"):
        name, equals, value = part.partition("=")
        if equals:
            out[unquote(name)] = unquote(value)
    return out


def _is_media_fragment(fragment: str) -> bool:
    return bool(_media_dimensions(fragment).keys() & {"t", "xywh"})


def _npt_seconds(text: str) -> Fraction:
    match = _NPT_TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time: seconds (10.5), mm:ss or hh:mm:ss(.sss)")
    seconds = Fraction(match["s"]) + Fraction(f"0{match['frac'] or ''}".rstrip("."))
    if match["m"] is not None:
        if int(match["m"]) > 59 or seconds >= 60:
            raise ValueError(f"{text!r}: minutes and seconds go up to 59")
        seconds += 60 * int(match["m"]) + 3600 * int(match["h"] or 0)
    return seconds


def _smpte_seconds(text: str, fps: int) -> Fraction:
    match = _SMPTE_TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a SMPTE time hh:mm:ss[:ff[.ss]]")
    minutes, seconds, frames = int(match["m"]), int(match["s"]), int(match["f"] or 0)
    if minutes > 59 or seconds > 59 or frames >= fps:
        raise ValueError(f"{text!r}: minutes and seconds go up to 59, frames up to {fps - 1}")
    frame = Fraction(frames) + Fraction(int(match["sub"] or 0), 100)
    return 3600 * int(match["h"]) + 60 * minutes + seconds + frame / fps


def _time_range(value: str) -> dict[str, int | float]:
    """Read a Media Fragments ``t=`` value into ``{"start", "end"}`` seconds.

    Normal Play Time (``10,20``, ``npt:10.5,1:02:03.25``, ``,20`` from 0) and non-drop SMPTE
    (``smpte-25:0:00:10:12``) are read; wall-clock (``clock:``) and drop-frame times name no
    media time reeldb can use. A range open at the end (``t=10``) is refused: reeldb time
    ranges have two ends.
    """
    scheme, colon, rest = value.partition(":")
    fps: int | None = None
    if colon and scheme == "npt":
        value = rest
    elif colon and scheme in _SMPTE_RATES:
        fps, value = _SMPTE_RATES[scheme], rest
    elif colon and (scheme == "clock" or scheme.startswith("smpte")):
        raise ValueError(f"t={value}: {scheme} times are not supported; use npt seconds")

    def parse(text: str) -> Fraction:
        return _npt_seconds(text) if fps is None else _smpte_seconds(text, fps)

    begin, comma, end = value.partition(",")
    if not comma or not end:
        raise ValueError(f"t={value} has no end; a time range needs both (t=start,end)")
    start = parse(begin) if begin else Fraction(0)
    stop = parse(end)
    try:
        TimeRange(start, stop)
    except ValidationError as exc:
        raise ValueError(exc.summary) from exc
    return {"start": _json_number(start), "end": _json_number(stop)}


def _box(value: str) -> dict[str, int | float]:
    """Read a Media Fragments ``xywh=`` value into ``{x, y, w, h}``.

    ``pixel:`` (the default) keeps the numbers; ``percent:`` divides them by 100, giving a
    box relative to the frame (0 to 1). Decimals are accepted although the grammar only has
    whole numbers, as some tools write them.
    """
    unit, colon, rest = value.partition(":")
    if not colon:
        unit, rest = "pixel", value
    if unit not in ("pixel", "percent"):
        raise ValueError(f"xywh unit {unit!r} is neither pixel nor percent")
    parts = rest.split(",")
    if len(parts) != 4 or not all(_XYWH_NUMBER.fullmatch(p) for p in parts):
        raise ValueError(f"xywh={value} is not four numbers >= 0: x,y,w,h")
    numbers = [Fraction(p.rstrip(".") or "0") for p in parts]
    if unit == "percent":
        numbers = [n / 100 for n in numbers]
    return dict(zip("xywh", (_json_number(n) for n in numbers), strict=True))


class _Reader:
    """Reads one foreign annotation, collecting every violation."""

    def __init__(self, mapping: _Mapping) -> None:
        self.mapping = mapping
        self.problems: list[Violation] = []
        self.time: dict[str, int | float] | None = None
        self.box: dict[str, int | float] | None = None

    def fragment(self, fragment: str, at: str) -> None:
        """Read the ``t=`` and ``xywh=`` of a media fragment, if they are mapped."""
        dims = _media_dimensions(fragment)
        if self.mapping.time_property is not None and "t" in dims:
            self.time = self._merge(self.time, _time_range, dims["t"], "t", at)
        if self.mapping.box_property is not None and "xywh" in dims:
            self.box = self._merge(self.box, _box, dims["xywh"], "xywh", at)

    def _merge(
        self,
        known: dict[str, int | float] | None,
        read: Callable[[str], dict[str, int | float]],
        text: str,
        name: str,
        at: str,
    ) -> dict[str, int | float] | None:
        try:
            value = read(text)
        except ValueError as exc:
            self.problems.append(Violation(at, str(exc)))
            return known
        if known is not None and known != value:
            self.problems.append(
                Violation(at, f"targets select different {name}= segments; reeldb keeps one")
            )
            return known
        return value

    def selectors(self, value: Any, at: str) -> None:
        if isinstance(value, list):
            # Alternatives by the model; a time and a box listed side by side are read too.
            for i, item in enumerate(value):
                self.selectors(item, f"{at}/{i}")
            return
        if not isinstance(value, Mapping):
            return  # an IRI of a selector elsewhere: a pure function cannot fetch it
        if "FragmentSelector" in _types(value):
            conforms = value.get("conformsTo")
            fragment = value.get("value")
            if not isinstance(fragment, str):
                self.problems.append(Violation(f"{at}/value", "a FragmentSelector has a value"))
            elif conforms in _MEDIA_FRAGMENTS_ALIASES or (
                conforms is None and _is_media_fragment(fragment)
            ):
                self.fragment(fragment, f"{at}/value")
        if "refinedBy" in value:
            self.selectors(value["refinedBy"], f"{at}/refinedBy")

    def source(self, iri: str, at: str) -> str:
        """The IRI without a media fragment, which is read as a selector."""
        base, hash_, fragment = iri.partition("#")
        if hash_ and _is_media_fragment(fragment):
            self.fragment(fragment, at)
            return base
        return iri

    def targets(self, value: Any, at: str) -> list[tuple[str, str]]:
        """Every target's source IRI, with its pointer."""
        if isinstance(value, list):
            if not value:
                self.problems.append(Violation(at, "an annotation has at least one target"))
            out: list[tuple[str, str]] = []
            for i, item in enumerate(value):
                out += self.targets(item, f"{at}/{i}")
            return out
        if isinstance(value, str) and value:
            return [(self.source(value, at), at)]
        if isinstance(value, Mapping):
            if _types(value) & _FOREIGN_TARGET_SETS and "items" in value:
                return self.targets(value["items"], f"{at}/items")
            if "source" in value:
                source, where = value["source"], f"{at}/source"
                if isinstance(source, Mapping):
                    source, where = source.get("id"), f"{where}/id"
                if not isinstance(source, str) or not source:
                    self.problems.append(Violation(where, "a source is an IRI"))
                    return []
                iri = self.source(source, where)
                if "selector" in value:
                    self.selectors(value["selector"], f"{at}/selector")
                return [(iri, where)]
            if isinstance(value.get("id"), str) and value["id"]:
                return [(self.source(value["id"], f"{at}/id"), f"{at}/id")]
        self.problems.append(
            Violation(at, "a target is an IRI or an object with a source or an id")
        )
        return []


def _text(value: Mapping[str, Any], at: str, problems: list[Violation]) -> str | None:
    """The first textual body: ``bodyValue``, or the first TextualBody (also within a Choice)."""
    if "bodyValue" in value:
        if isinstance(value["bodyValue"], str):
            return value["bodyValue"]
        problems.append(Violation(f"{at}/bodyValue", "bodyValue is a string"))
        return None
    bodies = value.get("body")
    pending: list[tuple[Any, str]] = (
        [(b, f"{at}/body/{i}") for i, b in enumerate(bodies)]
        if isinstance(bodies, list)
        else [(bodies, f"{at}/body")]
    )
    while pending:
        body, where = pending.pop(0)
        if not isinstance(body, Mapping) or body.get("format") == PAYLOAD_FORMAT:
            continue
        kinds = _types(body)
        if "Choice" in kinds and isinstance(body.get("items"), list):
            pending[:0] = [(b, f"{where}/items/{i}") for i, b in enumerate(body["items"])]
        elif "TextualBody" in kinds or (not kinds and "value" in body and "source" not in body):
            if isinstance(body.get("value"), str):
                return str(body["value"])
            problems.append(Violation(f"{where}/value", "a TextualBody has a string value"))
            return None
    return None


def _payload(value: Mapping[str, Any], at: str) -> tuple[str, Any] | None:
    """The body carrying a reeldb annotation, as (pointer of its value, the value)."""
    bodies = value.get("body")
    items = list(enumerate(bodies)) if isinstance(bodies, list) else [(None, bodies)]
    found = [
        (f"{at}/body" + ("" if i is None else f"/{i}") + "/value", body.get("value"))
        for i, body in items
        if isinstance(body, Mapping) and body.get("format") == PAYLOAD_FORMAT
    ]
    if len(found) > 1:
        raise ValidationError(
            "an annotation carries one reeldb payload",
            [
                Violation(where.removesuffix("/value"), "a second reeldb payload")
                for where, _ in found[1:]
            ],
        )
    return found[0] if found else None


def _restore(where: str, text: Any) -> NewAnnotation:
    """Rebuild the exported annotation from the payload body's value."""

    def fail(problems: Sequence[Violation]) -> ValidationError:
        return ValidationError(
            "the reeldb payload is malformed",
            [Violation(where, f"payload {v.pointer or '/'}: {v.message}") for v in problems],
        )

    if not isinstance(text, str):
        raise fail([Violation("", "the payload is JSON text")])
    try:
        payload = _json.loads(text, what="the reeldb payload")
    except ValidationError as exc:
        raise fail([Violation("", f"not valid JSON: {v.message}") for v in exc.violations]) from exc
    if not isinstance(payload, Mapping):
        raise fail([Violation("", "expected an object")])
    fields = {k: v for k, v in payload.items() if k != "version"}  # the version is informative
    problems: list[Violation] = []
    if fields.get("id") is None:
        problems.append(Violation("/id", "the annotation id is required"))
    kind = fields.get("type")
    if not (
        isinstance(kind, Mapping)
        and isinstance(kind.get("name"), str)
        and kind["name"]
        and isinstance(kind.get("version"), int)
        and not isinstance(kind["version"], bool)
    ):
        problems.append(Violation("/type", "the type is {name, version}"))
    try:
        restored = NewAnnotation.from_json(fields)
    except ValidationError as exc:
        problems += exc.violations
    if problems:
        raise fail(problems)
    assert isinstance(kind, Mapping)  # checked above
    ref = TypeRef(kind["name"], kind["version"])
    return NewAnnotation(ref, restored.associations, restored.data, restored.id)


def from_w3c(
    value: Any,
    *,
    type: str | TypeRef | Mapping[str, Any] | None = None,
    time_property: str | None = None,
    box_property: str | None = None,
    text_property: str | None = None,
    association_type: str = "SOURCE",
    associations: Sequence[Association] = (),
    at: str = "",
) -> NewAnnotation:
    """Read one W3C Web Annotation.

    An annotation written by `to_w3c` is restored exactly from its payload body: id, type
    name and version, associations in order, and data. The other arguments do not apply
    to it.

    Any other annotation is mapped into ``type``:

    * the ``t=`` media fragment of its targets becomes ``data[time_property]`` =
      ``{"start", "end"}`` in seconds (``npt:``, ``hh:mm:ss.sss`` and non-drop SMPTE read);
    * the ``xywh=`` fragment becomes ``data[box_property]`` = ``{x, y, w, h}``: pixels, or
      for ``percent:`` a box relative to the frame (the numbers divided by 100);
    * the first ``TextualBody`` value (or ``bodyValue``) becomes ``data[text_property]``;
    * each target becomes an association: a reeldb URN gives its association back, any
      other IRI ``{"type": association_type, "id": <IRI>}`` (its media fragment, read as a
      selector, removed); ``associations`` are added after them;
    * an ``id`` of the form ``urn:uuid:`` is kept, so a re-import conflicts instead of
      duplicating; any other id gets a new one.

    Fragments are read from FragmentSelectors (``refinedBy`` chains and lists included) and
    from targets given as IRIs with a fragment (``video.mp4#t=10,20&xywh=0,0,5,5``). When
    the targets disagree on the time or box, the annotation is refused.

    Args:
        value: The decoded JSON of one annotation.
        type: The annotation type for foreign annotations (required for them).
        time_property: The property receiving the time range; None to ignore ``t=``.
        box_property: The property receiving the box; None to ignore ``xywh=``.
        text_property: The property receiving the text; None to ignore bodies.
        association_type: The association type of foreign target IRIs.
        associations: Associations added to every foreign annotation.
        at: JSON pointer of ``value`` in a larger input, for messages.

    Returns:
        The annotation to create.

    Raises:
        ValidationError: The annotation is malformed or cannot be mapped; every violation
            has a JSON pointer into ``value``.
    """
    if not isinstance(value, Mapping):
        raise ValidationError(
            "a Web Annotation is a JSON object", [Violation(at, "expected an object")]
        )
    problems: list[Violation] = []
    if "Annotation" not in _types(value):
        problems.append(Violation(f"{at}/type", "the type of a Web Annotation is 'Annotation'"))
    if "target" not in value:
        problems.append(Violation(at, "a Web Annotation has a target"))
    if "body" in value and "bodyValue" in value:
        problems.append(Violation(f"{at}/bodyValue", "body and bodyValue exclude each other"))
    if problems:
        raise ValidationError("the Web Annotation is malformed", problems)
    payload = _payload(value, at)
    if payload is not None:
        return _restore(*payload)
    if type is None:
        raise ValidationError(
            "a Web Annotation from another tool needs a reeldb type",
            [Violation(at, "no reeldb payload: pass type= (and the properties to fill)")],
        )
    _check_target_type(type, association_type)
    extra = _associations(associations)
    reader = _Reader(_Mapping(time_property, box_property, text_property))
    found: list[Association] = []
    for iri, where in reader.targets(value["target"], f"{at}/target"):
        try:
            own = association_from_urn(iri)
        except ValidationError as exc:
            reader.problems.append(Violation(where, exc.summary))
            continue
        kind, ident = (own.type, own.id) if own else (association_type, iri)
        checked = _check_association(kind, ident, where)
        reader.problems += checked
        if not checked:
            found.append(Association(kind, ident))
    data: dict[str, Any] = {}
    if text_property is not None:
        text = _text(value, at, reader.problems)
        if text is not None:
            data[text_property] = text
    if reader.problems:
        raise ValidationError("the Web Annotation cannot be imported", reader.problems)
    if time_property is not None and reader.time is not None:
        data[time_property] = reader.time
    if box_property is not None and reader.box is not None:
        data[box_property] = reader.box
    given = value.get("id")
    kept: UUID | None = None
    if isinstance(given, str) and given[:9].lower() == "urn:uuid:":
        try:
            kept = UUID(given[9:])
        except ValueError:
            raise ValidationError(
                "the Web Annotation is malformed", [Violation(f"{at}/id", "not a UUID")]
            ) from None
    merged = parse_associations([*dict.fromkeys(found), *extra], at=f"{at}/target")
    return NewAnnotation(type, merged, data, kept)


def _annotation_items(value: Any) -> list[tuple[str, Any]]:
    """Annotations of a list, page, collection (embedded pages) or single annotation."""
    if isinstance(value, list):
        return [(f"/{i}", item) for i, item in enumerate(value)]
    if not isinstance(value, Mapping):
        raise ValidationError(
            "expected Web Annotations", [Violation("", "expected an object or a list")]
        )
    kinds = _types(value)
    page: Any
    if "AnnotationCollection" in kinds:
        page, at = value.get("first"), "/first"
        if page is None:
            return []
        if not isinstance(page, Mapping):
            raise ValidationError(
                "the collection's first page is not embedded",
                [Violation(at, "fetch the pages and import each (pages are not fetched here)")],
            )
    elif "AnnotationPage" in kinds:
        page, at = value, ""
    else:
        return [("", value)]
    out: list[tuple[str, Any]] = []
    while isinstance(page, Mapping):  # embedded `next` pages are followed, IRIs are not
        items = page.get("items")
        if not isinstance(items, list):
            raise ValidationError(
                "an AnnotationPage lists its annotations",
                [Violation(f"{at}/items", "a page has a list of items")],
            )
        out += [(f"{at}/items/{i}", item) for i, item in enumerate(items)]
        page, at = page.get("next"), f"{at}/next"
    return out


def from_w3c_many(
    value: Any,
    *,
    type: str | TypeRef | Mapping[str, Any] | None = None,
    time_property: str | None = None,
    box_property: str | None = None,
    text_property: str | None = None,
    association_type: str = "SOURCE",
    associations: Sequence[Association] = (),
) -> list[NewAnnotation]:
    """Read many W3C Web Annotations, as `from_w3c` reads one.

    ``value`` is one annotation, a list of them, an ``AnnotationPage`` (its ``items``) or an
    ``AnnotationCollection`` with its ``first`` page embedded. Pages linked by IRI are not
    fetched: fetch them and pass each.

    Args:
        value: The decoded JSON.
        type: As for `from_w3c`.
        time_property: As for `from_w3c`.
        box_property: As for `from_w3c`.
        text_property: As for `from_w3c`.
        association_type: As for `from_w3c`.
        associations: As for `from_w3c`.

    Returns:
        The annotations to create, in document order.

    Raises:
        ValidationError: Any annotation is malformed; violations of all of them, pointing
            at their item (``/first/items/3/target``).
    """
    out: list[NewAnnotation] = []
    problems: list[Violation] = []
    for at, item in _annotation_items(value):
        try:
            out.append(
                from_w3c(
                    item,
                    type=type,
                    time_property=time_property,
                    box_property=box_property,
                    text_property=text_property,
                    association_type=association_type,
                    associations=associations,
                    at=at,
                )
            )
        except ValidationError as exc:
            problems += exc.violations
    if problems:
        raise ValidationError("some Web Annotations cannot be imported", problems)
    return out
