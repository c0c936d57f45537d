"""COCO object detection JSON and CVAT XML 1.1 boxes, imported into an annotation type."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Literal
from xml.etree import ElementTree
from xml.parsers import expat

from reeldb.annotations.interop._common import (
    _associations,
    _check_association,
    _check_target_type,
    _exact,
    _frame_range,
    _frame_rate,
    _json_number,
    _with,
)
from reeldb.annotations.model import (
    Association,
    NewAnnotation,
    TypeRef,
)
from reeldb.errors import ValidationError, Violation

__all__ = ["from_coco", "from_cvat"]


# -- COCO -------------------------------------------------------------------------------------


def _key(value: Any) -> int | str | None:
    """A COCO id: an int or a string (bools are not ids)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return value


def _list(value: Mapping[str, Any], key: str, problems: list[Violation]) -> list[Any]:
    items = value.get(key)
    if isinstance(items, list):
        return items
    problems.append(Violation(f"/{key}", f"{key} is a list"))
    return []


def from_coco(
    value: Any,
    *,
    type: str | TypeRef | Mapping[str, Any],
    box_property: str,
    label_property: str | None = None,
    time_property: str | None = None,
    frame_rate: str | float | Fraction | None = None,
    association_type: str = "IMAGE_ID",
    association_from: Literal["id", "file_name"] = "file_name",
    associations: Sequence[Association] = (),
    extra: Mapping[str, str] | None = None,
) -> list[NewAnnotation]:
    """Import the boxes of a COCO object detection file.

    Each item of ``annotations`` becomes one annotation of ``type``:
    ``data[box_property] = {x, y, w, h}`` from ``bbox`` (pixels, as COCO has them), the
    category's ``name`` in ``data[label_property]``, and its image as the association
    ``{association_type: str(image[association_from])}``, followed by ``associations``.

    For frames of a video, give ``time_property`` and ``frame_rate``: every image then needs
    an explicit ``frame_id`` (frame numbers are never guessed from file names), and frame
    n becomes the time range ``{"start_frame": n, "end_frame": n + 1, "rate": rate}`` — the
    frame's exact span ``[n/rate, (n+1)/rate)``, the rate an int or ``"num/den"``.

    Args:
        value: The decoded COCO JSON (``images``, ``annotations``, ``categories``).
        type: The annotation type.
        box_property: The property receiving the box.
        label_property: The property receiving the category name; None to skip it.
        time_property: The property receiving the frame's time range; None for stills.
        frame_rate: Frames per second (``25``, ``"30000/1001"``, ``29.97``).
        association_type: The association type of the image.
        association_from: The image field naming it: ``file_name`` or ``id``.
        associations: Associations added to every annotation (the video, say).
        extra: COCO annotation keys copied into data properties, ``{"score": "confidence"}``;
            a key an annotation lacks is skipped.

    Returns:
        The annotations to create, in the order of ``annotations``.

    Raises:
        ValidationError: A key is missing, a box has a negative size, an id is unknown or
            the frame rate is bad; every violation points into ``value``.
    """
    _check_target_type(type, association_type)
    shared = _associations(associations)
    rate = _frame_rate(time_property, frame_rate)
    if not isinstance(value, Mapping):
        raise ValidationError("a COCO file is a JSON object", [Violation("", "expected an object")])
    problems: list[Violation] = []
    images: dict[int | str, tuple[Association, int | None]] = {}
    for i, image in enumerate(_list(value, "images", problems)):
        at = f"/images/{i}"
        if not isinstance(image, Mapping) or _key(image.get("id")) is None:
            problems.append(Violation(at, "an image has an id (a number or a string)"))
            continue
        key = image["id"]
        if key in images:
            problems.append(Violation(f"{at}/id", f"a second image with id {key!r}"))
            continue
        name = _key(image.get(association_from))
        if name is None or name == "":
            problems.append(
                Violation(f"{at}/{association_from}", f"{association_from} is required")
            )
            continue
        checked = _check_association(association_type, str(name), f"{at}/{association_from}")
        frame = image.get("frame_id")
        if rate is not None and (
            not isinstance(frame, int) or isinstance(frame, bool) or frame < 0
        ):
            checked.append(Violation(f"{at}/frame_id", "a video frame needs frame_id >= 0"))
        problems += checked
        if not checked:
            images[key] = (Association(association_type, str(name)), frame)
    labels: dict[int | str, str] = {}
    if label_property is not None:
        for i, category in enumerate(_list(value, "categories", problems)):
            at = f"/categories/{i}"
            if not isinstance(category, Mapping) or _key(category.get("id")) is None:
                problems.append(Violation(at, "a category has an id"))
            elif not isinstance(category.get("name"), str):
                problems.append(Violation(f"{at}/name", "a category has a name"))
            else:
                labels[category["id"]] = category["name"]
    out: list[NewAnnotation] = []
    for j, item in enumerate(_list(value, "annotations", problems)):
        at = f"/annotations/{j}"
        if not isinstance(item, Mapping):
            problems.append(Violation(at, "an annotation is an object"))
            continue
        errors: list[Violation] = []
        image_id = _key(item.get("image_id"))
        if image_id is None:
            errors.append(Violation(f"{at}/image_id", "image_id is required"))
        elif image_id not in images:
            errors.append(Violation(f"{at}/image_id", f"no valid image has id {image_id!r}"))
        box = _coco_box(item.get("bbox"), f"{at}/bbox", errors)
        data: dict[str, Any] = {box_property: box}
        if label_property is not None:
            category = _key(item.get("category_id"))
            if category is None:
                errors.append(Violation(f"{at}/category_id", "category_id is required"))
            elif category not in labels:
                errors.append(Violation(f"{at}/category_id", f"no category has id {category!r}"))
            else:
                data[label_property] = labels[category]
        problems += errors
        if errors or image_id is None:
            continue
        association, frame = images[image_id]
        if rate is not None and time_property is not None and frame is not None:
            data[time_property] = _frame_range(frame, rate)
        for key, prop in (extra or {}).items():
            if key in item:
                data[prop] = item[key]
        out.append(NewAnnotation(type, _with(association, shared), data))
    if problems:
        raise ValidationError("the COCO file cannot be imported", problems)
    return out


def _coco_box(bbox: Any, at: str, errors: list[Violation]) -> dict[str, Any]:
    if not isinstance(bbox, list) or len(bbox) != 4:
        errors.append(Violation(at, "bbox is [x, y, width, height]"))
        return {}
    if any(_exact(n) is None for n in bbox):
        errors.append(Violation(at, "bbox holds four finite numbers"))
        return {}
    if bbox[2] < 0 or bbox[3] < 0:
        errors.append(Violation(at, "a box cannot have a negative width or height"))
    return dict(zip("xywh", bbox, strict=True))


# -- CVAT -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CvatOptions:
    box_property: str
    label_property: str | None
    attribute_properties: Mapping[str, str]


class _Refused(Exception):
    """A DOCTYPE or entity declaration met while parsing CVAT XML."""


def _parse_xml(text: str | bytes) -> ElementTree.Element:
    """Parse untrusted XML with no DTD at all.

    Expat builds the tree directly, with handlers that refuse any DOCTYPE or entity
    declaration: no entity expansion (billion laughs) and no external entities, what
    ``defusedxml`` does with ``forbid_dtd=True`` (it is not a dependency of reeldb).
    """
    builder = ElementTree.TreeBuilder()
    parser = expat.ParserCreate()

    def refuse(*_: Any) -> int:
        raise _Refused

    parser.StartDoctypeDeclHandler = refuse
    parser.EntityDeclHandler = refuse
    parser.UnparsedEntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.data
    parser.buffer_text = True
    try:
        parser.Parse(text, True)
        return builder.close()
    except _Refused:
        raise ValidationError(
            "the CVAT file declares a DOCTYPE or entities",
            [Violation("", "DOCTYPE and ENTITY declarations are refused in uploaded XML")],
        ) from None
    except expat.ExpatError as exc:
        raise ValidationError(
            "the CVAT file is not well-formed XML", [Violation("", str(exc))]
        ) from None


def _decimal(element: ElementTree.Element, name: str, at: str, errors: list[Violation]) -> Decimal:
    text = element.get(name)
    try:
        number = Decimal(text) if text is not None else None
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        errors.append(Violation(f"{at}/{name}", f"{name} is a number"))
        return Decimal(0)
    return number


def _cvat_data(
    box: ElementTree.Element, at: str, label: str | None, options: _CvatOptions
) -> tuple[dict[str, Any], list[Violation]]:
    """The data of one CVAT box: the box (from its corners), label and mapped attributes."""
    errors: list[Violation] = []
    xtl, ytl = _decimal(box, "xtl", at, errors), _decimal(box, "ytl", at, errors)
    xbr, ybr = _decimal(box, "xbr", at, errors), _decimal(box, "ybr", at, errors)
    if not errors and (xbr < xtl or ybr < ytl):
        errors.append(Violation(at, "a box cannot have a negative size (xbr < xtl or ybr < ytl)"))
    data: dict[str, Any] = {
        options.box_property: {
            "x": _json_number(xtl),
            "y": _json_number(ytl),
            "w": _json_number(xbr - xtl),
            "h": _json_number(ybr - ytl),
        }
    }
    if options.label_property is not None:
        if not label:
            errors.append(Violation(f"{at}/label", "a box has a label"))
        data[options.label_property] = label
    for attribute in box.findall("attribute"):
        prop = options.attribute_properties.get(attribute.get("name") or "")
        if prop is not None:
            data[prop] = attribute.text or ""
    return data, errors


def _whole(value: str | None) -> int | None:
    """A whole number >= 0 written in an XML attribute; None if it is not one."""
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def from_cvat(
    xml_text: str | bytes,
    *,
    type: str | TypeRef | Mapping[str, Any],
    box_property: str,
    label_property: str | None = None,
    time_property: str | None = None,
    frame_rate: str | float | Fraction | None = None,
    associations: Sequence[Association] = (),
    attribute_properties: Mapping[str, str] | None = None,
    track_property: str | None = None,
    association_type: str = "IMAGE_ID",
    association_from: Literal["name", "id"] = "name",
) -> list[NewAnnotation]:
    """Import the boxes of a CVAT XML 1.1 file (CVAT for images or CVAT for video).

    * ``<image id name><box label xtl ytl xbr ybr>`` (images): each box becomes one
      annotation associated with its image, ``{association_type: <image name or id>}``,
      followed by ``associations``. With ``time_property``, the image ``id`` (CVAT's frame
      index) gives the frame.
    * ``<track id label><box frame xtl ytl xbr ybr outside>`` (video): each box of a track
      on a frame becomes one annotation on that frame, interpolated boxes included; boxes
      with ``outside="1"`` (the object left the view) are skipped. These need
      ``time_property``, ``frame_rate`` and ``associations`` (the video).

    The box is ``{x: xtl, y: ytl, w: xbr - xtl, h: ybr - ytl}`` in pixels, computed exactly;
    frame n is the time range ``{"start_frame": n, "end_frame": n + 1, "rate": rate}``.
    ``<attribute name>`` values are copied as strings into the properties
    ``attribute_properties`` maps them to; others are ignored, as are shapes other than
    boxes. The XML may not declare a DOCTYPE or entities.

    Args:
        xml_text: The XML file's text.
        type: The annotation type.
        box_property: The property receiving the box.
        label_property: The property receiving the label; None to skip it.
        time_property: The property receiving the frame's time range.
        frame_rate: Frames per second (``25``, ``"30000/1001"``, ``29.97``).
        associations: Associations added to every annotation (for tracks, the video).
        attribute_properties: CVAT attribute name -> data property.
        track_property: The property receiving a track box's track id (an int).
        association_type: The association type of an image.
        association_from: The image attribute naming it: ``name`` or ``id``.

    Returns:
        The annotations to create: image boxes, then track boxes, in document order.

    Raises:
        ValidationError: The XML is malformed or declares a DOCTYPE, a box is incomplete or
            has a negative size, the frame rate is bad. Pointers follow the elements, e.g.
            ``/track/2/box/0/xbr`` (indexes count same-named siblings).
    """
    _check_target_type(type, association_type)
    shared = _associations(associations)
    rate = _frame_rate(time_property, frame_rate)
    root = _parse_xml(xml_text)
    if root.tag != "annotations":
        raise ValidationError(
            "not a CVAT XML file", [Violation("", f"the root is <{root.tag}>, not <annotations>")]
        )
    options = _CvatOptions(box_property, label_property, attribute_properties or {})
    problems: list[Violation] = []
    out: list[NewAnnotation] = []
    for i, image in enumerate(root.findall("image")):
        at = f"/image/{i}"
        name = image.get(association_from)
        checked = _check_association(association_type, name or "", f"{at}/{association_from}")
        frame = _whole(image.get("id"))
        if rate is not None and frame is None:
            checked.append(Violation(f"{at}/id", "the image id (its frame) is a whole number"))
        problems += checked
        for j, box in enumerate(image.findall("box")):
            data, errors = _cvat_data(box, f"{at}/box/{j}", box.get("label"), options)
            problems += errors
            if errors or checked or name is None:
                continue
            if rate is not None and time_property is not None and frame is not None:
                data[time_property] = _frame_range(frame, rate)
            out.append(
                NewAnnotation(type, _with(Association(association_type, name), shared), data)
            )
    for k, track in enumerate(root.findall("track")):
        at = f"/track/{k}"
        boxes = track.findall("box")
        if boxes and (rate is None or not shared):
            problems.append(
                Violation(at, "track boxes need time_property, frame_rate and associations")
            )
            continue
        track_id = _whole(track.get("id"))
        if track_property is not None and track_id is None:
            problems.append(Violation(f"{at}/id", "a track id is a whole number"))
            continue
        for j, box in enumerate(boxes):
            where = f"{at}/box/{j}"
            if box.get("outside") == "1":
                continue
            data, errors = _cvat_data(box, where, track.get("label"), options)
            frame = _whole(box.get("frame"))
            if frame is None:
                errors.append(Violation(f"{where}/frame", "frame is a whole number"))
            problems += errors
            if errors or frame is None or rate is None or time_property is None:
                continue
            data[time_property] = _frame_range(frame, rate)
            if track_property is not None:
                data[track_property] = track_id
            out.append(NewAnnotation(type, shared, data))
    if problems:
        raise ValidationError("the CVAT file cannot be imported", problems)
    return out
