"""``reeldb ann``: annotations, with their import and export (W3C Web Annotation, COCO, CVAT)."""

from __future__ import annotations

import contextlib
import enum
import math
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Annotated, Any, TypeVar

import orjson
import typer

from reeldb import _json
from reeldb.annotations import MAX_BATCH, MAX_TIMELINE, Annotation, Association, interop
from reeldb.cli._common import get_state, progress_bar, read_bytes, read_json
from reeldb.cli._output import Output, highlighted, summary
from reeldb.database import Database
from reeldb.errors import ReelError, ValidationError, Violation
from reeldb.model.document import Page
from reeldb.model.timing import TimeRange

__all__ = ["ann_app"]

ann_app = typer.Typer(help="Annotations: typed, versioned metadata on any entity (Marken).")

AnnNamespaceArg = Annotated[str, typer.Argument(help="The namespace that owns the annotations.")]
AnnIdArg = Annotated[str, typer.Argument(help="The annotation id (a UUID).")]
AnnTypeOpt = Annotated[
    str | None,
    typer.Option("--type", "-t", help="Annotation type: NAME (latest version) or NAME@VERSION."),
]
AssocOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--assoc", "-a", help="An entity it annotates, TYPE:ID (repeatable; the ID may hold ':')."
    ),
]
DataOpt = Annotated[
    str | None,
    typer.Option("--data", help="Its properties: a JSON object, or @file.json (@- for stdin)."),
]
LimitOpt = Annotated[int, typer.Option(help="Page size (1-1000).")]
CursorOpt = Annotated[str | None, typer.Option(help="next_cursor of the previous page.")]


def _association(text: str, option: str | None = "--assoc") -> Association:
    """``TYPE:ID``, split at the first ``:`` (ids may contain colons)."""
    kind, sep, ident = text.partition(":")
    if not sep or not kind or not ident:
        what, example = (option, f"{option} ") if option else ("association", "")
        raise ValidationError(f"{what} {text!r}: write TYPE:ID, e.g. {example}MOVIE_ID:81234567")
    return Association(kind, ident)


def _data(text: str) -> dict[str, Any]:
    """``--data``: inline JSON, or ``@path`` (``@-``: standard input)."""
    if text.startswith("@"):
        value = read_json(text[1:], "data")
    else:
        value = _json.loads(text, what="--data")
    if not isinstance(value, dict):
        raise ValidationError(
            f"--data is a JSON object of the type's properties, not {_json.dumps(value).decode()}"
        )
    return value


def _numbers(text: str, option: str, form: str, example: str, count: int) -> list[float]:
    """Comma-separated finite numbers: ``--time 72,75``, ``--box 0,0,0.5,0.5``."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise ValidationError(f"{option} {text!r}: write {form}, e.g. {option} {example}")
    return values


class _Times:
    """An annotation's time, as search reads it (for tables).

    Its type's ``temporal`` property, else the type's first ``time_range`` property
    (docs/annotations.md).
    """

    def __init__(self, db: Database, namespace: str) -> None:
        self._db = db
        self._namespace = namespace
        self._names: dict[tuple[str, int], str | None] = {}

    def __call__(self, annotation: Annotation) -> tuple[float, float] | None:
        key = (annotation.type.name, annotation.type.version)
        if key not in self._names:
            resolved = self._db.get_schema(self._namespace, *key).resolved
            if resolved.get("temporal", {}).get("type") == "time_range":
                self._names[key] = "temporal"
            else:
                times = (n for n, spec in resolved.items() if spec["type"] == "time_range")
                self._names[key] = next(times, None)
        name = self._names[key]
        value = annotation.data.get(name) if name is not None else None
        if not isinstance(value, dict):
            return None
        try:
            time = TimeRange.from_json(value)
        except ValidationError:
            return None
        return float(time.start), float(time.end)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def _show_annotation(out: Output, annotation: Annotation) -> None:
    if out.json:
        out.data(annotation)
        return
    by = f" by {annotation.created_by}" if annotation.created_by else ""
    out.line(
        f"annotation {annotation.id} version {annotation.version}"
        + (" (deleted)" if annotation.deleted else "")
    )
    out.line(f"type: {annotation.type}")
    out.line("associations: " + ", ".join(str(a) for a in annotation.associations))
    out.line(f"created: {annotation.created_at.isoformat()}{by}")
    out.line(_json.dumps_pretty(annotation.data))


def _read_items(source: str, stack: contextlib.ExitStack) -> tuple[Iterator[Any], int]:
    """The items of ``--file``: a JSON list, or JSON Lines (one object per line).

    Returns the items (a file's JSON Lines are decoded as they are stored; ``stack`` closes
    the file) and their count.
    """
    what = "items from standard input" if source == "-" else f"items file {source}"
    if source == "-":
        data = sys.stdin.buffer.read()
        if data.lstrip()[:1] == b"[":
            return _list_items(data, what)
        lines = data.splitlines()
        return _json_lines(lines, what), sum(1 for line in lines if line.strip())
    try:
        stream = stack.enter_context(Path(source).open("rb"))  # noqa: SIM115 - the stack closes it
        while stream.peek(1)[:1].isspace():  # whitespace before the first item
            stream.read(1)
        if stream.peek(1)[:1] == b"[":
            return _list_items(stream.read(), what)
        with Path(source).open("rb") as counting:
            total = sum(1 for line in counting if line.strip())
    except OSError as exc:
        raise ValidationError(f"cannot read items file {source}: {exc.strerror}") from None
    return _json_lines(stream, what), total


def _list_items(data: bytes, what: str) -> tuple[Iterator[Any], int]:
    items = _json.loads(data, what=what)
    if not isinstance(items, list):  # pragma: no cover - it starts with "["
        raise ValidationError(f"{what} holds a JSON list or JSON Lines")
    return iter(items), len(items)


def _json_lines(lines: Iterable[bytes], what: str) -> Iterator[Any]:
    for number, line in enumerate(lines, 1):
        if line.strip():
            yield _json.loads(line, what=f"line {number} of {what}")


def _batch_error(exc: ReelError, first: int, size: int) -> ReelError:
    """The error of a batch of ``ann create --file`` that starts at item ``first``.

    Pointers name items of the whole input (``/10003/data/label``) and, past the first batch,
    the message says what was stored.
    """
    context = f"items 0-{first - 1} were stored; item {first} and later ones were not: "
    context = context if first else ""
    if not isinstance(exc, ValidationError):
        if context:
            exc.args = (f"{context}{exc}", *exc.args[1:])
        return exc
    moved = []
    for v in exc.violations:
        index, slash, rest = v.pointer.removeprefix("/").partition("/")
        if size == 1:  # the library reports a batch of one as "/data/x"
            moved.append(Violation(f"/{first}{v.pointer}", v.message))
        elif index.isdigit():  # "/3/data/x" is item 3 of the batch
            moved.append(Violation(f"/{first + int(index)}{slash}{rest}", v.message))
        else:
            moved.append(v)
    return ValidationError(f"{context}{exc.summary}", moved)


@ann_app.command("create")
def ann_create(
    ctx: typer.Context,
    namespace: AnnNamespaceArg,
    type_: AnnTypeOpt = None,
    assoc: AssocOpt = None,
    data: DataOpt = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            "-f",
            help="Many annotations: a JSON list or JSON Lines of {type, associations, data} "
            "(- for stdin).",
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(help=f"With --file: annotations per batch (1-{MAX_BATCH}).")
    ] = MAX_BATCH,
) -> None:
    """Validate and store an annotation, or many with --file.

    With --file, annotations are stored in batches of --batch-size, each in one transaction:
    a batch is all or nothing. If a batch fails, the batches before it stay stored and the
    ones after it are not tried; the error names the items stored.
    """
    state = get_state(ctx)
    db, out = state.db, state.out
    if file is None:
        if type_ is None or not assoc:
            raise ValidationError(
                "give --type NAME[@VERSION] and at least one --assoc TYPE:ID "
                "(or --file for many annotations)"
            )
        annotation = db.annotations.create(
            namespace,
            type_,
            [_association(a) for a in assoc],
            {} if data is None else _data(data),
        )
        if out.json:
            out.data(annotation)
        else:
            out.line(
                f"created annotation {annotation.id} ({annotation.type}, "
                f"version {annotation.version})"
            )
        return
    if type_ is not None or assoc or data is not None:
        raise ValidationError(
            "--file holds the type, associations and data of each annotation: "
            "leave out --type, --assoc and --data"
        )
    if not 1 <= batch_size <= MAX_BATCH:
        raise ValidationError(f"--batch-size must be from 1 to {MAX_BATCH}")
    db.get_namespace(namespace)  # before reading a large file
    created: list[Annotation] = []
    batches = 0
    with contextlib.ExitStack() as stack:
        items, total = _read_items(file, stack)
        bar = stack.enter_context(
            progress_bar("storing annotations", disable=out.json or total <= batch_size)
        )
        task = bar.add_task("annotations", total=total)
        while True:
            batch: list[Any] = []
            try:
                for item in items:
                    batch.append(item)
                    if len(batch) == batch_size:
                        break
            except ReelError as exc:  # a line that is not JSON
                raise _batch_error(exc, len(created), 0) from None
            if not batch:
                break
            try:
                created += db.annotations.create_many(namespace, batch)
            except ReelError as exc:
                raise _batch_error(exc, len(created), len(batch)) from None
            batches += 1
            bar.update(task, completed=len(created))
    if out.json:
        out.data(created)
    else:
        out.line(
            f"created {len(created)} annotation{'' if len(created) == 1 else 's'} "
            f"in {batches} batch{'' if batches == 1 else 'es'}"
        )


@ann_app.command("get")
def ann_get(
    ctx: typer.Context,
    namespace: AnnNamespaceArg,
    annotation_id: AnnIdArg,
    version: Annotated[
        int | None,
        typer.Option(help="This version (default: the current one; of a deleted one too)."),
    ] = None,
) -> None:
    """Print an annotation: its current version, or --version N."""
    state = get_state(ctx)
    _show_annotation(state.out, state.db.annotations.get(namespace, annotation_id, version))


@ann_app.command("versions")
def ann_versions(ctx: typer.Context, namespace: AnnNamespaceArg, annotation_id: AnnIdArg) -> None:
    """List every version of an annotation, oldest first (a delete's tombstone last)."""
    state = get_state(ctx)
    versions = state.db.annotations.versions(namespace, annotation_id)
    state.out.table(
        f"Versions of annotation {annotation_id}",
        ["version", "type", "created", "deleted", "data"],
        [
            (
                v.version,
                v.type,
                v.created_at.isoformat(),
                "yes" if v.deleted else "",
                summary(v.data),
            )
            for v in versions
        ],
        versions,
        shrink=["data"],
    )


@ann_app.command("update")
def ann_update(
    ctx: typer.Context,
    namespace: AnnNamespaceArg,
    annotation_id: AnnIdArg,
    expected_version: Annotated[
        int,
        typer.Option(
            help="The version you read: the update fails if another write came first.",
        ),
    ],
    data: DataOpt = None,
    assoc: AssocOpt = None,
    type_: Annotated[
        str | None,
        typer.Option(
            "--type", "-t", help="Validate against this type (NAME or NAME@VERSION) instead."
        ),
    ] = None,
) -> None:
    """Store a new version of an annotation; what is not given is kept.

    --data replaces the data whole; --assoc (repeated) replaces every association.
    """
    state = get_state(ctx)
    annotation = state.db.annotations.update(
        namespace,
        annotation_id,
        expected_version=expected_version,
        data=None if data is None else _data(data),
        associations=[_association(a) for a in assoc] if assoc else None,
        type=type_,
    )
    if state.out.json:
        state.out.data(annotation)
    else:
        state.out.line(f"updated annotation {annotation.id}: version {annotation.version}")


@ann_app.command("delete")
def ann_delete(
    ctx: typer.Context,
    namespace: AnnNamespaceArg,
    annotation_id: AnnIdArg,
    expected_version: Annotated[
        int | None, typer.Option(help="Fail unless the annotation is at this version.")
    ] = None,
) -> None:
    """Delete an annotation: store a tombstone version; its history stays readable."""
    state = get_state(ctx)
    tombstone = state.db.annotations.delete(
        namespace, annotation_id, expected_version=expected_version
    )
    if state.out.json:
        state.out.data(tombstone)
    else:
        state.out.line(
            f"deleted annotation {tombstone.id}: version {tombstone.version} is its tombstone"
        )


SearchTypeOpt = Annotated[
    str | None,
    typer.Option(
        "--type",
        "-t",
        help="Only this type (NAME: any version, or NAME@VERSION) and the types that extend it.",
    ),
]
ExactTypeOpt = Annotated[
    bool, typer.Option("--exact-type", help="Not the types that extend --type.")
]
SearchAssocOpt = Annotated[
    list[str] | None,
    typer.Option("--assoc", "-a", help="Attached to this entity, TYPE:ID (repeat: to all)."),
]
TimeOpt = Annotated[
    str | None, typer.Option(help="START,END seconds the annotation's time is tested on.")
]
TimeOpOpt = Annotated[str, typer.Option(help="overlaps (touching counts) or within.")]
BoxOpt = Annotated[str | None, typer.Option(help="X,Y,W,H the annotation's box is tested on.")]
BoxOpOpt = Annotated[str, typer.Option(help="intersects (touching counts) or within.")]
TextOpt = Annotated[
    str | None,
    typer.Option(help="Words to find in text properties (stemmed; several: in order)."),
]
FieldOpt = Annotated[
    list[str] | None, typer.Option(help="Find --text only in this property (repeatable).")
]
WhereOpt = Annotated[
    str | None,
    typer.Option(
        help='A condition on data.* properties of --type: data.label = "car" (or its JSON).'
    ),
]


def _conditions(
    type_: str | None,
    exact_type: bool,
    assoc: list[str] | None,
    time: str | None,
    time_op: str,
    box: str | None,
    box_op: str,
    text: str | None,
    field: list[str] | None,
    where: str | None,
) -> dict[str, Any]:
    """The search options (of ``ann search`` and ``ann export``) as `search` arguments."""
    condition: Any = where
    if where is not None and where.lstrip().startswith("{"):
        condition = _json.loads(where, what="--where JSON")
    window = None if time is None else _numbers(time, "--time", "START,END", "72,75", 2)
    area = None if box is None else _numbers(box, "--box", "X,Y,W,H", "0,0,0.5,0.5", 4)
    return {
        "type": type_,
        "subtypes": not exact_type,
        "associations": [_association(a) for a in assoc or ()],
        "time": window,
        "time_op": time_op,
        "box": area,
        "box_op": box_op,
        "text": text,
        "text_fields": field or None,
        "where": condition,
    }


@ann_app.command("search")
def ann_search(
    ctx: typer.Context,
    namespace: AnnNamespaceArg,
    type_: SearchTypeOpt = None,
    exact_type: ExactTypeOpt = False,
    assoc: SearchAssocOpt = None,
    time: TimeOpt = None,
    time_op: TimeOpOpt = "overlaps",
    box: BoxOpt = None,
    box_op: BoxOpOpt = "intersects",
    text: TextOpt = None,
    field: FieldOpt = None,
    where: WhereOpt = None,
    sort: Annotated[
        str | None,
        typer.Option(
            help="time, -time, created, -created or relevance (default: relevance with --text, "
            "else time)."
        ),
    ] = None,
    limit: LimitOpt = 50,
    cursor: CursorOpt = None,
    all_pages: Annotated[
        bool, typer.Option("--all", help="Follow next_cursor to the last page.")
    ] = False,
) -> None:
    """Find current, live annotations: every condition given must hold.

    The query language of --where is in docs/query-language.md.
    """
    state = get_state(ctx)
    db, out = state.db, state.out
    conditions = _conditions(
        type_, exact_type, assoc, time, time_op, box, box_op, text, field, where
    )
    hits: list[Any] = []
    while True:
        page = db.annotations.search(namespace, **conditions, sort=sort, limit=limit, cursor=cursor)
        hits += page.items
        cursor = page.next_cursor
        if not all_pages or cursor is None:
            break
    result = Page(tuple(hits), cursor)
    if out.json:
        out.data(result)
        return
    times = _Times(db, namespace)
    rows = []
    for hit in hits:
        a = hit.annotation
        span = times(a)
        shown: Any = summary(a.data)
        if hit.highlights:
            shown = highlighted(
                "; ".join(f"{name}: {value}" for name, value in hit.highlights.items())
            )
        rows.append(
            (a.id, a.type, _seconds(span and span[0]),
             ", ".join(str(x) for x in a.associations), shown)
        )  # fmt: skip
    out.table(
        f"Annotations in {namespace}",
        ["id", "type", "start s", "associations", "summary"],
        rows,
        result,
        shrink=["associations", "summary"],
    )
    if cursor:
        out.line(f"more: --cursor {cursor}")


@ann_app.command("timeline")
def ann_timeline(
    ctx: typer.Context,
    namespace: AnnNamespaceArg,
    association: Annotated[str, typer.Argument(help="The entity, TYPE:ID (e.g. VIDEO:v42).")],
    start: Annotated[float | None, typer.Option(help="Window start, seconds (default 0).")] = None,
    end: Annotated[float | None, typer.Option(help="Window end, seconds (default: none).")] = None,
    type_: Annotated[
        str | None, typer.Option("--type", "-t", help="Only this type and those extending it.")
    ] = None,
    limit: Annotated[int, typer.Option(help=f"Page size (1-{MAX_TIMELINE}).")] = 1000,
    cursor: CursorOpt = None,
) -> None:
    """List an entity's timed annotations that overlap a time window, by start time."""
    state = get_state(ctx)
    db, out = state.db, state.out
    link = _association(association, None)
    page = db.annotations.timeline(
        namespace, link, start, end, type=type_, limit=limit, cursor=cursor
    )
    if out.json:
        out.data(page)
        return
    times = _Times(db, namespace)
    rows = []
    for a in page.items:
        span = times(a)
        rows.append(
            (a.id, a.type, _seconds(span and span[0]), _seconds(span and span[1]), summary(a.data))
        )
    out.table(
        f"Timeline of {link}",
        ["id", "type", "start s", "end s", "data"],
        rows,
        page,
        shrink=["data"],
    )
    if page.next_cursor:
        out.line(f"more: --cursor {page.next_cursor}")


@ann_app.command("association-types")
def ann_association_types(
    ctx: typer.Context,
    namespace: AnnNamespaceArg,
    set_: Annotated[
        str | None,
        typer.Option("--set", help="Allow only these association types: T1,T2,..."),
    ] = None,
    any_: Annotated[bool, typer.Option("--any", help="Allow any association type.")] = False,
) -> None:
    """Show, or set, the association types annotations of a namespace may use.

    Annotations already stored are not checked again.
    """
    state = get_state(ctx)
    annotations = state.db.annotations
    if set_ is not None and any_:
        raise ValidationError("give --set T1,T2 or --any, not both")
    if set_ is not None:
        annotations.restrict_association_types(
            namespace, [t.strip() for t in set_.split(",") if t.strip()]
        )
    elif any_:
        annotations.restrict_association_types(namespace, None)
    types = annotations.association_types(namespace)
    if state.out.json:
        state.out.data({"namespace": namespace, "association_types": types})
    elif types is None:
        state.out.line(f"annotations in {namespace} may use any association type")
    else:
        state.out.line(f"annotations in {namespace} may use association types: {', '.join(types)}")


# -- import and export ------------------------------------------------------------------------


_Choice = TypeVar("_Choice", bound=enum.StrEnum)


class ExportFormat(enum.StrEnum):
    """What ``ann export`` writes."""

    W3C = "w3c"
    JSONL = "jsonl"


class ImportFormat(enum.StrEnum):
    """What ``ann import`` reads."""

    W3C = "w3c"
    COCO = "coco"
    CVAT = "cvat"


class ImageField(enum.StrEnum):
    """The field of a COCO image that names it."""

    ID = "id"
    FILE_NAME = "file_name"


def _choice(kind: type[_Choice], value: str, option: str) -> _Choice:
    """An option's value among an enum's (a bad one is an error line, not a usage box)."""
    try:
        return kind(value)
    except ValueError:
        choices = ", ".join(member.value for member in kind)
        raise ValidationError(f"{option} {value!r}: use one of {choices}") from None


@contextlib.contextmanager
def _writing(target: str) -> Iterator[IO[bytes]]:
    """Where an export goes: standard output for ``-``, else ``target``.

    A file is written under a temporary name beside ``target`` and renamed onto it once
    everything was written: an export that fails leaves no partial file.
    """
    if target == "-":
        sys.stdout.flush()
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    path = Path(target)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        handle = part.open("xb")  # noqa: SIM115 - closed below, then renamed
    except OSError as exc:
        raise ValidationError(f"cannot write {target}: {exc.strerror}") from None
    try:
        with handle:
            yield handle
        part.replace(path)
    except OSError as exc:
        part.unlink(missing_ok=True)
        raise ValidationError(f"cannot write {target}: {exc.strerror}") from None
    except BaseException:
        part.unlink(missing_ok=True)
        raise


@ann_app.command("export")
def ann_export(
    ctx: typer.Context,
    namespace: AnnNamespaceArg,
    type_: SearchTypeOpt = None,
    exact_type: ExactTypeOpt = False,
    assoc: SearchAssocOpt = None,
    time: TimeOpt = None,
    time_op: TimeOpOpt = "overlaps",
    box: BoxOpt = None,
    box_op: BoxOpOpt = "intersects",
    text: TextOpt = None,
    field: FieldOpt = None,
    where: WhereOpt = None,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="<w3c|jsonl>",
            help="w3c: one AnnotationCollection document; jsonl: one annotation per line, "
            "written as it is read (for big exports).",
        ),
    ] = ExportFormat.W3C.value,
    relative_box: Annotated[
        bool,
        typer.Option(
            "--relative-box", help="Boxes are fractions of the frame: write xywh=percent:."
        ),
    ] = False,
    output: Annotated[
        str, typer.Option("--output", help="The file to write, or - for stdout.")
    ] = "-",
) -> None:
    """Export current, live annotations as W3C Web Annotations (JSON-LD), oldest first.

    The conditions are those of reeldb ann search. Every annotation carries itself whole,
    so reeldb ann import --format w3c restores it exactly: id, type and version,
    associations and data. A file is written only if the export succeeds.
    """
    state = get_state(ctx)
    db, out = state.db, state.out
    conditions = _conditions(
        type_, exact_type, assoc, time, time_op, box, box_op, text, field, where
    )
    fmt = _choice(ExportFormat, format_, "--format")
    filtered = any((type_, assoc, time, box, text, where))
    db.get_namespace(namespace)  # before creating the file
    total = None if filtered else db.annotations.count(namespace)
    count = 0
    with (
        progress_bar("exporting annotations", disable=out.json or output == "-") as bar,
        _writing(output) as sink,
    ):
        task = bar.add_task("annotations", total=total)
        items = db.annotations.export_w3c(
            namespace,
            relative_box=relative_box,
            progress=lambda done: bar.advance(task, done),
            **conditions,
        )
        if fmt is ExportFormat.JSONL:
            for item in items:
                sink.write(_json.dumps(item) + b"\n")
                count += 1
        else:
            collected = list(items)
            count = len(collected)
            sink.write(
                orjson.dumps(interop.w3c_collection(collected), option=orjson.OPT_INDENT_2) + b"\n"
            )
    if output == "-":
        return
    if out.json:
        out.data({"exported": count, "output": output})
    else:
        out.line(f"exported {count} annotation{'' if count == 1 else 's'} to {output}")


def _w3c_input(data: bytes, what: str) -> Any:
    """A W3C input: a JSON document, or JSON Lines of annotations (returned as a list).

    The input is JSON Lines when it has several lines and the first is a whole JSON object.
    """
    lines = [(n, line) for n, line in enumerate(data.splitlines(), 1) if line.strip()]
    if len(lines) > 1 and lines[0][1].lstrip()[:1] == b"{":
        try:
            first = _json.loads(lines[0][1])
        except ValidationError:
            first = None  # a document spread over lines
        if isinstance(first, dict):
            return [
                first,
                *(_json.loads(line, what=f"line {n} of {what}") for n, line in lines[1:]),
            ]
    return _json.loads(data, what=what)


def _w3c_total(value: Any) -> int | None:
    """How many annotations a W3C input holds, when that is plain (for the progress bar)."""
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict):
        items = value.get("items")  # a page
        if isinstance(items, list):
            return len(items)
        total = value.get("total")  # a collection
        if isinstance(total, int):
            return total
    return None


def _stored_before(exc: ReelError, stored: int) -> ReelError:
    """The error of an import that stored ``stored`` annotations (whole batches) first."""
    context = (
        f"{stored:,} annotations were stored before the error; the others were not: "
        if stored
        else "no annotation was stored: "
    )
    if isinstance(exc, ValidationError):
        return ValidationError(f"{context}{exc.summary}", exc.violations)
    exc.args = (f"{context}{exc}", *exc.args[1:])
    return exc


@ann_app.command("import")
def ann_import(
    ctx: typer.Context,
    namespace: AnnNamespaceArg,
    source: Annotated[str, typer.Argument(help="The file to import, or - for stdin.")],
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="<w3c|coco|cvat>",
            help="w3c: Web Annotations (one, a list, a page or a collection; or JSON Lines, "
            "one per line); coco: COCO object detection JSON; cvat: CVAT XML 1.1.",
        ),
    ],
    type_: Annotated[
        str | None,
        typer.Option(
            "--type",
            "-t",
            help="Annotation type (NAME or NAME@VERSION) of COCO and CVAT boxes, and of W3C "
            "annotations that reeldb did not export.",
        ),
    ] = None,
    time_property: Annotated[
        str | None,
        typer.Option(help="Property for the time: a W3C t= fragment, or the box's frame."),
    ] = None,
    box_property: Annotated[
        str | None,
        typer.Option(help="Property for the box: a W3C xywh= fragment, or the COCO/CVAT box."),
    ] = None,
    text_property: Annotated[
        str | None, typer.Option(help="w3c: property for the first text body.")
    ] = None,
    label_property: Annotated[
        str | None, typer.Option(help="coco, cvat: property for the category or label.")
    ] = None,
    frame_rate: Annotated[
        str | None,
        typer.Option(
            help="coco, cvat: frames per second (25, 30000/1001, 29.97), with --time-property."
        ),
    ] = None,
    assoc: Annotated[
        list[str] | None,
        typer.Option(
            "--assoc", "-a", help="Add this association to every annotation, TYPE:ID (repeatable)."
        ),
    ] = None,
    association_type: Annotated[
        str | None,
        typer.Option(
            help="Association type of W3C targets that are not reeldb associations (default "
            "SOURCE), or of COCO and CVAT images (default IMAGE_ID)."
        ),
    ] = None,
    association_from: Annotated[
        str | None,
        typer.Option(
            metavar="<id|file_name>",
            help="coco: the image field naming an image (default file_name).",
        ),
    ] = None,
) -> None:
    """Import annotations: W3C Web Annotations, COCO or CVAT boxes.

    W3C annotations exported by reeldb come back exactly (id, type and version,
    associations, data); others become annotations of --type (t= into --time-property,
    xywh= into --box-property, the text into --text-property, each target an association).
    COCO and CVAT boxes become annotations of --type, associated with their image (CVAT
    tracks: with --assoc, the video), on frame N with --time-property and --frame-rate.

    Annotations are stored in batches of 10,000, each in one transaction: a batch is all
    or nothing. If a batch fails, the batches before it stay stored and the ones after it
    are not tried; the one-line error says how many annotations were stored before it.
    """
    state = get_state(ctx)
    db, out = state.db, state.out
    fmt = _choice(ImportFormat, format_, "--format")
    image_field = (
        None
        if association_from is None
        else _choice(ImageField, association_from, "--association-from")
    )
    unused = {
        ImportFormat.W3C: {"--label-property": label_property, "--frame-rate": frame_rate},
        ImportFormat.COCO: {"--text-property": text_property},
        ImportFormat.CVAT: {"--text-property": text_property},
    }[fmt]
    if fmt is not ImportFormat.COCO:
        unused["--association-from"] = image_field
    given = [option for option, value in unused.items() if value is not None]
    if given:
        raise ValidationError(f"--format {fmt} does not use {', '.join(given)}")
    if fmt is not ImportFormat.W3C:
        if type_ is None or box_property is None:
            raise ValidationError(
                f"--format {fmt} needs --type NAME[@VERSION] and --box-property PROPERTY"
            )
        if (time_property is None) != (frame_rate is None):
            raise ValidationError(
                "give --time-property and --frame-rate together: frame N becomes the time "
                "range [N/rate, (N+1)/rate)"
            )
    options: dict[str, Any] = {
        "associations": [_association(a) for a in assoc or ()],
        "time_property": time_property,
        "label_property": label_property,
        "text_property": text_property,
        "frame_rate": frame_rate,
        "association_type": association_type,
        "association_from": None if image_field is None else image_field.value,
    }
    options = {k: v for k, v in options.items() if v is not None}  # the library's defaults
    if type_ is not None:
        options["type"] = type_
    if box_property is not None:
        options["box_property"] = box_property
    db.get_namespace(namespace)  # before reading a large file
    what = f"{fmt.name} from standard input" if source == "-" else f"{fmt.name} file {source}"
    value: Any
    run: Callable[..., list[Annotation]]
    if fmt is ImportFormat.W3C:
        value = _w3c_input(read_bytes(source, fmt.name), what)
        total = _w3c_total(value)
        run = db.annotations.import_w3c
    elif fmt is ImportFormat.COCO:
        value = _json.loads(read_bytes(source, fmt.name), what=what)
        items = value.get("annotations") if isinstance(value, dict) else None
        total = len(items) if isinstance(items, list) else None
        run = db.annotations.import_coco
    else:
        value, total = read_bytes(source, fmt.name), None
        run = db.annotations.import_cvat
    stored = 0
    with progress_bar(
        "importing annotations", disable=out.json or (total is not None and total <= MAX_BATCH)
    ) as bar:
        task = bar.add_task("annotations", total=total)

        def advance(done: int) -> None:
            nonlocal stored
            stored += done
            bar.advance(task, done)

        try:
            created = run(namespace, value, progress=advance, **options)
        except ReelError as exc:
            raise _stored_before(exc, stored) from None
    if out.json:
        out.data([str(a.id) for a in created])
    else:
        out.line(
            f"imported {len(created)} annotation{'' if len(created) == 1 else 's'} into {namespace}"
        )
