"""Import and export of annotations: W3C Web Annotation, COCO and CVAT (`Annotations` methods)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

from reeldb.annotations import interop
from reeldb.annotations.model import MAX_BATCH, Annotation, Association, NewAnnotation
from reeldb.auth.model import AuditEntry
from reeldb.errors import ValidationError, Violation

if TYPE_CHECKING:
    from reeldb.annotations._service import Annotations

__all__ = ["export_w3c", "import_coco", "import_cvat", "import_w3c", "to_w3c"]

Progress = Callable[[int], None]
"""Called with the number of annotations just stored (or exported)."""


def export_w3c(
    self: Annotations,
    namespace: str,
    *,
    relative_box: bool = False,
    progress: Progress | None = None,
    **search: Any,
) -> Iterator[dict[str, Any]]:
    """Export current annotations as W3C Web Annotations (JSON-LD), page by page.

    Each annotation's targets are its associations (``urn:reeldb:association:TYPE:ID``)
    with Media Fragments selectors for its time (``t=``) and box (``xywh=``); its text
    properties become ``TextualBody`` bodies, and the whole annotation rides along in a
    body of type ``application/vnd.reeldb.annotation+json``, so `import_w3c` restores it
    exactly. Wrap the items with `reeldb.annotations.interop.w3c_collection` for a file.

    Args:
        self: The annotations of a database.
        namespace: The namespace.
        relative_box: Boxes are fractions of the frame: write ``xywh=percent:``.
        progress: Called after each page with its size.
        **search: Conditions of `search` (``type``, ``associations``, ``time``...);
            ``sort`` defaults to ``created``.

    Yields:
        One W3C annotation per current, live annotation matching ``search``.

    Raises:
        QueryError: A condition is malformed.
    """
    search.setdefault("sort", "created")
    search.setdefault("limit", 1000)
    cursor: str | None = None
    while True:
        page = self.search(namespace, cursor=cursor, **search)
        for hit in page.items:
            yield self.to_w3c(hit.annotation, relative_box=relative_box)
        if progress is not None:
            progress(len(page.items))
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def to_w3c(
    self: Annotations, annotation: Annotation, *, relative_box: bool = False
) -> dict[str, Any]:
    """One annotation as a W3C Web Annotation, with its type's time, box and texts.

    Args:
        self: The annotations of a database.
        annotation: A live annotation version.
        relative_box: Write its box as ``xywh=percent:``.

    Returns:
        The JSON-LD object.
    """
    layout = self._layout(
        self._db.schemas.get(annotation.namespace, annotation.type.name, annotation.type.version)
    )
    return interop.to_w3c(
        annotation,
        time_property=layout.time,
        box_property=layout.box,
        text_properties=layout.texts,
        relative_box=relative_box,
    )


def import_w3c(
    self: Annotations,
    namespace: str,
    value: Any,
    *,
    type: str | Mapping[str, Any] | None = None,
    time_property: str | None = None,
    box_property: str | None = None,
    text_property: str | None = None,
    association_type: str = "SOURCE",
    associations: Sequence[Association] = (),
    audit: AuditEntry | None = None,
    progress: Progress | None = None,
) -> list[Annotation]:
    """Import W3C Web Annotations: one, a list, an ``AnnotationPage`` or a collection.

    Annotations exported by reeldb come back exactly (id, type and version,
    associations, data). Others are mapped into ``type``: ``t=`` → ``time_property``,
    ``xywh=`` → ``box_property``, the first text body → ``text_property``, each target
    → an association (reeldb URNs decoded; other IRIs as ``association_type``).

    Stored in batches of `MAX_BATCH`, each all or none: on an error, the batches before
    it stay stored.

    Args:
        self: The annotations of a database.
        namespace: The namespace that will own them.
        value: The decoded JSON-LD.
        type: The annotation type of foreign annotations.
        time_property: Where a ``t=`` fragment goes.
        box_property: Where an ``xywh=`` fragment goes.
        text_property: Where the text body goes.
        association_type: The association type of targets that are not reeldb URNs.
        associations: Associations added to every imported annotation.
        audit: An audit entry recorded with each batch.
        progress: Called after each batch with its size.

    Returns:
        The stored annotations.

    Raises:
        ValidationError: The input is malformed or breaks its types (pointers name the
            item); AlreadyExistsError: an id is taken (importing twice).
    """
    items = interop.from_w3c_many(
        value,
        type=type,
        time_property=time_property,
        box_property=box_property,
        text_property=text_property,
        association_type=association_type,
        associations=associations,
    )
    return _store_all(self, namespace, items, audit, progress)


def import_coco(
    self: Annotations,
    namespace: str,
    value: Any,
    *,
    type: str | Mapping[str, Any],
    box_property: str,
    label_property: str | None = None,
    time_property: str | None = None,
    frame_rate: str | float | Fraction | None = None,
    association_type: str = "IMAGE_ID",
    association_from: Literal["id", "file_name"] = "file_name",
    associations: Sequence[Association] = (),
    extra: Mapping[str, str] | None = None,
    audit: AuditEntry | None = None,
    progress: Progress | None = None,
) -> list[Annotation]:
    """Import COCO object detection boxes into an annotation type.

    See `reeldb.annotations.interop.from_coco` for the mapping; batches as in
    `import_w3c`.

    Returns:
        The stored annotations.
    """
    items = interop.from_coco(
        value,
        type=type,
        box_property=box_property,
        label_property=label_property,
        time_property=time_property,
        frame_rate=frame_rate,
        association_type=association_type,
        association_from=association_from,
        associations=associations,
        extra=extra,
    )
    return _store_all(self, namespace, items, audit, progress)


def import_cvat(
    self: Annotations,
    namespace: str,
    xml_text: str | bytes,
    *,
    type: str | Mapping[str, Any],
    box_property: str,
    label_property: str | None = None,
    time_property: str | None = None,
    frame_rate: str | float | Fraction | None = None,
    associations: Sequence[Association] = (),
    attribute_properties: Mapping[str, str] | None = None,
    track_property: str | None = None,
    association_type: str = "IMAGE_ID",
    association_from: Literal["name", "id"] = "name",
    audit: AuditEntry | None = None,
    progress: Progress | None = None,
) -> list[Annotation]:
    """Import CVAT (XML 1.1, images or video tracks) boxes into an annotation type.

    See `reeldb.annotations.interop.from_cvat` for the mapping; batches as in
    `import_w3c`.

    Returns:
        The stored annotations.
    """
    items = interop.from_cvat(
        xml_text,
        type=type,
        box_property=box_property,
        label_property=label_property,
        time_property=time_property,
        frame_rate=frame_rate,
        associations=associations,
        attribute_properties=attribute_properties,
        track_property=track_property,
        association_type=association_type,
        association_from=association_from,
    )
    return _store_all(self, namespace, items, audit, progress)


def _store_all(
    self: Annotations,
    namespace: str,
    items: Sequence[NewAnnotation],
    audit: AuditEntry | None,
    progress: Progress | None,
) -> list[Annotation]:
    out: list[Annotation] = []
    for start in range(0, len(items), MAX_BATCH):
        batch = items[start : start + MAX_BATCH]
        try:
            out += self.create_many(namespace, batch, audit=audit)
        except ValidationError as exc:
            raise _shifted(exc, start, single=len(batch) == 1) from None
        if progress is not None:
            progress(len(batch))
    return out


def _shifted(exc: ValidationError, start: int, *, single: bool) -> ValidationError:
    """The error of a batch with its item pointers (``/3/data``) counted in the whole input."""
    if not start and not single:
        return exc
    shifted = []
    for v in exc.violations:
        if single:  # a batch of one reports pointers inside the item
            shifted.append(Violation(f"/{start}{v.pointer}", v.message))
            continue
        head, _, rest = v.pointer.lstrip("/").partition("/")
        index = f"/{int(head) + start}" if head.isdigit() else f"/{head}"
        shifted.append(Violation(index + (f"/{rest}" if rest else ""), v.message))
    return ValidationError(exc.summary, shifted)
