"""The ``reeldb`` command line: ``reeldb <noun> <verb>``, a thin face over `reeldb.Database`."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from reeldb import __version__, _json
from reeldb.auth.model import NewApiKey
from reeldb.cli._ann import ann_app
from reeldb.cli._common import State, get_state, progress_bar, read_json
from reeldb.cli._export import export_app
from reeldb.cli._output import Output, OutputFormat, plain
from reeldb.cli._reprocess import reprocess_app
from reeldb.cli._writes import (
    WorkerProcess,
    blob_app,
    request_app,
    show_request,
    stream_document,
    upload_file,
    worker,
)
from reeldb.config import SETTINGS, load_settings
from reeldb.database import Database, connect
from reeldb.errors import ConfigError, ConflictError, ReelError, ValidationError
from reeldb.model.document import Document
from reeldb.model.timing import FrameRate, format_timecode
from reeldb.schema.model import SchemaVersion
from reeldb.store import redact_url

__all__ = ["app"]


class _ReelGroup(TyperGroup):
    """The root group: a `ReelError` prints one line and exits 1 (a traceback only with -v)."""

    def invoke(self, ctx: Any) -> Any:  # typer vendors click privately: ctx is its Context
        try:
            return super().invoke(ctx)
        except ReelError as exc:
            state = ctx.obj if isinstance(ctx.obj, State) else None
            verbose = state.verbose if state else False
            if verbose:
                traceback.print_exc()
            out = state.out if state else Output(OutputFormat.TEXT)
            out.error(exc, verbose=verbose)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_ReelGroup,
    name="reeldb",
    help="reeldb: a media metadata and annotation database.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
namespace_app = typer.Typer(help="Namespaces: tenants that own schemas and DataStores.")
role_app = typer.Typer(help="Roles of principals in namespaces (admin, writer, reader).")
schema_app = typer.Typer(help="Schemas: the reeldb DSL or plain JSON Schema 2020-12.")
datastore_app = typer.Typer(help="DataStores: where one kind of media analysis lives.")
doc_app = typer.Typer(help="Immutable media documents, keyed by MID.")
keys_app = typer.Typer(help="API keys of the HTTP service (stored only as hashes).")
audit_app = typer.Typer(help="The audit log of writes and admin actions.")
index_app = typer.Typer(help="The search index of DataStores: generations, rebuilds.")
queries_app = typer.Typer(help="Asynchronous DataStore-level queries (reeldb query --submit).")
for sub, name in (
    (namespace_app, "namespace"),
    (role_app, "role"),
    (schema_app, "schema"),
    (datastore_app, "datastore"),
    (doc_app, "doc"),
    (ann_app, "ann"),
    (keys_app, "keys"),
    (audit_app, "audit"),
    (index_app, "index"),
    (queries_app, "queries"),
    (blob_app, "blob"),
    (request_app, "request"),
    (export_app, "export"),
    (reprocess_app, "reprocess"),
):
    app.add_typer(sub, name=name, no_args_is_help=True)


def _help_settings(value: bool) -> None:
    if value:
        for setting in SETTINGS:
            env = f"REELDB_{setting.name.upper()}"
            typer.echo(f"{setting.name} ({env}, default {setting.default!r}): {setting.help}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    database: Annotated[
        str | None,
        typer.Option(
            "--database",
            "-d",
            help="Database URL: sqlite:///path/reel.db, memory: or postgresql://user@host/db "
            "(env REELDB_DATABASE).",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="text for people, json for machines.")
    ] = OutputFormat.TEXT,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Print every violation and tracebacks.")
    ] = False,
    help_settings: Annotated[
        bool,
        typer.Option(
            "--help-settings",
            help="List every setting with its environment variable and default.",
            callback=_help_settings,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Reeldb: a media metadata and annotation database."""
    state = State(database, output, verbose)
    ctx.obj = state
    ctx.call_on_close(state.close)


NamespaceOpt = Annotated[
    str, typer.Option("--namespace", "-n", envvar="REELDB_NAMESPACE", help="The namespace.")
]
DataStoreArg = Annotated[str, typer.Argument(help="namespace/analysis_type/version")]
DefinitionArg = Annotated[str, typer.Argument(help="Definition file (JSON), or - for stdin.")]
SchemaNameOpt = Annotated[str | None, typer.Option(help="Name, if the definition has none.")]
CompatibilityOpt = Annotated[
    str | None, typer.Option(help="Mode of a new schema (default BACKWARD).")
]
MidOpt = Annotated[
    list[str],
    typer.Option("--mid", "-m", help="A MID key=value pair (repeat for each key), or MID JSON."),
]


def _parse_mid(pairs: list[str]) -> dict[str, str]:
    if len(pairs) == 1 and pairs[0].lstrip().startswith("{"):
        value = _json.loads(pairs[0], what="--mid")
        if not isinstance(value, dict):
            raise ValidationError("--mid JSON must be an object")
        return value
    mid: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ValidationError(f"--mid {pair!r}: write key=value, e.g. --mid title_id=80100172")
        mid[key] = value
    if not mid:
        raise ValidationError("give the MID with --mid key=value (once per MID key)")
    return mid


# -- init and demo ----------------------------------------------------------------------------


AdminOpt = Annotated[
    str, typer.Option("--admin", help="Principal of the first system administrator.")
]


def _show_bootstrap_key(out: Output, new: NewApiKey | None) -> None:
    if new is not None and not out.json:
        out.line(
            f"system administrator {new.key.principal}: API key (shown once, keep it now; "
            f"`reeldb keys create` makes more):\n  {new.secret}"
        )


@app.command()
def init(ctx: typer.Context, admin: AdminOpt = "user:admin") -> None:
    """Create (or migrate) the database; the first time, create a system admin and its key."""
    state = get_state(ctx)
    db = state.db
    new = db.bootstrap(admin)
    summary: dict[str, Any] = {
        "database": redact_url(db.url),
        "namespaces": len(db.list_namespaces()),
        "datastores": len(db.list_datastores()),
        "admin_key": new.secret if new is not None else None,
    }
    if state.out.json:
        state.out.data(summary)
        return
    state.out.line(
        f"reeldb database ready at {redact_url(db.url)} ({summary['namespaces']} namespaces, "
        f"{summary['datastores']} DataStores)"
    )
    _show_bootstrap_key(state.out, new)


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Listen address (setting host, default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (setting port, default 8000).")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes (setting workers, default 1).")
    ] = None,
    demo: Annotated[bool, typer.Option("--demo", help="Load the demo DataStore first.")] = False,
    admin: AdminOpt = "user:admin",
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = True,
    embedded_worker: Annotated[
        bool,
        typer.Option(
            "--worker/--no-worker",
            help="Run asynchronous writes and reprocessing jobs in a worker process of this "
            "service's own (off: run `reeldb worker`s).",
        ),
    ] = True,
) -> None:
    """Run the HTTP service (see docs/http-api.md); Ctrl-C stops it."""
    import uvicorn

    from reeldb.api import create_app
    from reeldb.store import infer_backend

    state = get_state(ctx)
    settings = load_settings(
        {"database": state.database, "host": host, "port": port, "workers": workers}
    )
    if settings.workers > 1 and infer_backend(settings.database) == "memory":
        raise ConfigError("an in-memory database cannot be shared by several workers")
    db = state.db
    new = db.bootstrap(admin)
    if demo:
        from reeldb.demo import load_demo

        load_demo(db)
    _show_bootstrap_key(state.out, new)
    state.out.line(
        f"reeldb {__version__} serving {redact_url(db.url)} on "
        f"http://{settings.host}:{settings.port} "
        f"({settings.workers} worker{'s' if settings.workers > 1 else ''}); "
        "the console at /, API docs at /docs"
    )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": access_log,
        "log_level": "info",
    }
    runner: Any = None
    if embedded_worker:
        # A stable name: restarted, the service resumes the writes it was running.
        name = f"{os.uname().nodename}-serve-{settings.port}"
        if infer_backend(settings.database) == "memory":  # no other process can open it
            from reeldb.workflows.writes import Worker

            runner = Worker(db, name=name).start()
        else:
            runner = WorkerProcess(settings.database, name)
    try:
        if settings.workers == 1:
            uvicorn.run(create_app(db), **options)
            return
        _serve_workers(settings, options)
    finally:
        if runner is not None:
            runner.stop()


def _serve_workers(settings: Any, options: dict[str, Any]) -> None:
    import uvicorn

    # Workers are new processes: they read the database URL and the metrics directory
    # (prometheus_client's multiprocess mode, so /metrics adds up every worker) from here.
    os.environ["REELDB_DATABASE"] = settings.database
    metrics_dir = None
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        metrics_dir = tempfile.mkdtemp(prefix="reeldb-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    try:
        uvicorn.run("reeldb.api:create_app", factory=True, workers=settings.workers, **options)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


app.command()(worker)


@app.command()
def demo(ctx: typer.Context) -> None:
    """Load the demo namespace (once) and take a tour of it."""
    from reeldb.demo import DEMO_DATASTORE, DEMO_NAMESPACE, load_demo

    state = get_state(ctx)
    db, out = state.db, state.out
    loaded = load_demo(db)
    ds = db.get_datastore(DEMO_DATASTORE)
    mid = {"title_id": "80100172", "video_stream_id": "vs-1080p-01"}
    latest = db.latest_document(ds.ref, mid)
    if out.json:
        out.data(
            {
                "database": redact_url(db.url),
                "loaded": loaded,
                "datastore": ds,
                "schemas": db.list_schemas(DEMO_NAMESPACE),
                "latest": {"id": latest.id, "mid": latest.mid, "document": latest.data},
            }
        )
        return
    out.line(
        f"[bold]reeldb[/bold] demo at {escape(redact_url(db.url))}"
        + (" (loaded now)" if loaded else ""),
        markup=True,
    )
    _schema_table(out, db, DEMO_NAMESPACE)
    _datastore_table(out, [ds], db)
    page = db.list_documents(ds.ref, mid)
    out.table(
        f"Documents for MID {_json.dumps(mid).decode()} (newest first)",
        ["document id", "schema", "created", "bytes"],
        [(i.id, f"v{i.schema_version}", i.created_at.isoformat(), i.size) for i in page.items],
        page.items,
    )
    _events_table(out, latest)
    out.line(
        "Try: reeldb doc get demo/face_detection/1 --mid title_id=80100172 "
        "--mid video_stream_id=vs-1080p-01"
    )


@app.command("migrate-backend")
def migrate_backend(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="The installation to copy, e.g. sqlite:///...")],
    target: Annotated[str, typer.Argument(help="Where to copy it, e.g. postgresql://...")],
    batch_size: Annotated[
        int, typer.Option(help="Documents or annotations per transaction.")
    ] = 500,
    verify_only: Annotated[
        bool, typer.Option("--verify-only", help="Only compare the two (counts and hashes).")
    ] = False,
    source_blobs: Annotated[
        str | None, typer.Option(help="The source's blob store (default: its own setting).")
    ] = None,
    source_blob_key: Annotated[
        str | None, typer.Option(help="The source's blob key (default: its own setting).")
    ] = None,
    target_blobs: Annotated[
        str | None, typer.Option(help="The target's blob store (default: its own setting).")
    ] = None,
    target_blob_key: Annotated[
        str | None, typer.Option(help="The target's blob key (default: its own setting).")
    ] = None,
) -> None:
    """Copy a whole installation to another backend, then verify counts and checksums.

    Schemas, DataStores, documents (with their blobs), annotations with their history, API
    keys, roles and the audit log; the target's indexes are rebuilt. Stop the source's
    service first. An interrupted copy is finished by running the same command again.
    """
    from reeldb.transfer import migrate_backend as copy
    from reeldb.transfer import verify_backend

    state = get_state(ctx)
    out = state.out
    if batch_size < 1:
        raise ValidationError("--batch-size must be at least 1")
    if source == target:
        raise ValidationError("the source and the target are the same database")

    def options(blobs: str | None, key: str | None) -> dict[str, str]:
        given = {"blobs": blobs, "blob_key": key}
        return {name: value for name, value in given.items() if value is not None}

    with (
        connect(source, **options(source_blobs, source_blob_key)) as src,
        connect(target, **options(target_blobs, target_blob_key)) as dst,
    ):
        if verify_only:
            checks = verify_backend(src, dst)
            copied: dict[str, int] = {}
        else:
            with progress_bar("{task.description}", disable=out.json) as bar:
                tasks: dict[str, Any] = {}

                def progress(step: str, done: int, total: int | None) -> None:
                    if step not in tasks:
                        tasks[step] = bar.add_task(step, total=total)
                    bar.update(tasks[step], completed=done, total=total)

                report = copy(src, dst, batch_size=batch_size, progress=progress)
            checks, copied = report.checks, report.copied
        bad = [c for c in checks if not c.ok]
        if out.json:
            out.data(
                {
                    "source": redact_url(src.url),
                    "target": redact_url(dst.url),
                    "copied": copied,
                    "checks": [{**plain(c), "ok": c.ok} for c in checks],
                    "ok": not bad,
                }
            )
        else:
            if not verify_only:
                done = ", ".join(f"{n} {what}" for what, n in copied.items()) or "nothing new"
                out.line(f"copied {redact_url(src.url)} -> {redact_url(dst.url)}: {done}")
            out.table(
                "Verification (counts and SHA-256 of every record, both sides)",
                ["what", "source", "target", "sha-256", "same"],
                [
                    (c.what, c.source_count, c.target_count, c.source_sha256[:16], c.ok)
                    for c in checks
                ],
                checks,
            )
    if bad:
        raise ConflictError(
            f"verification failed: {', '.join(c.what for c in bad)} differ between the source "
            "and the target"
        )


# -- namespaces and roles ---------------------------------------------------------------------


@namespace_app.command("create")
def namespace_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Namespace name, e.g. media-video-analytics.")],
    description: Annotated[str, typer.Option(help="Free text.")] = "",
    admin: Annotated[
        list[str] | None, typer.Option(help="Principal to make admin (repeatable).")
    ] = None,
) -> None:
    """Create a namespace."""
    state = get_state(ctx)
    namespace = state.db.create_namespace(name, description=description, admins=admin or [])
    if state.out.json:
        state.out.data(namespace)
    else:
        state.out.line(f"created namespace {namespace.name}")


@namespace_app.command("list")
def namespace_list(ctx: typer.Context) -> None:
    """List namespaces."""
    state = get_state(ctx)
    items = state.db.list_namespaces()
    state.out.table(
        "Namespaces",
        ["name", "description", "created"],
        [(n.name, n.description, n.created_at.isoformat()) for n in items],
        items,
    )


@role_app.command("grant")
def role_grant(
    ctx: typer.Context,
    namespace: Annotated[str, typer.Argument(help="The namespace.")],
    principal: Annotated[str, typer.Argument(help="e.g. user:alice or app:shot-detector.")],
    role: Annotated[str, typer.Argument(help="admin, writer or reader.")],
) -> None:
    """Give a principal a role in a namespace (replacing its previous role)."""
    state = get_state(ctx)
    grant = state.db.grant_role(namespace, principal, role)
    if state.out.json:
        state.out.data(grant)
    else:
        state.out.line(f"{grant.principal} is {grant.role.value} in {grant.namespace}")


@role_app.command("revoke")
def role_revoke(
    ctx: typer.Context,
    namespace: Annotated[str, typer.Argument(help="The namespace.")],
    principal: Annotated[str, typer.Argument(help="The principal.")],
) -> None:
    """Remove a principal's role in a namespace."""
    state = get_state(ctx)
    state.db.revoke_role(namespace, principal)
    if state.out.json:
        state.out.data({"namespace": namespace, "principal": principal, "revoked": True})
    else:
        state.out.line(f"{principal} has no role in {namespace} now")


@role_app.command("list")
def role_list(
    ctx: typer.Context, namespace: Annotated[str, typer.Argument(help="The namespace.")]
) -> None:
    """List the role grants of a namespace."""
    state = get_state(ctx)
    grants = state.db.list_roles(namespace)
    state.out.table(
        f"Roles in {namespace}",
        ["principal", "role", "granted"],
        [(g.principal, g.role.value, g.granted_at.isoformat()) for g in grants],
        grants,
    )


# -- schemas ----------------------------------------------------------------------------------


def _schema_table(out: Output, db: Database, namespace: str) -> None:
    subjects = db.list_schemas(namespace)
    out.table(
        f"Schemas in {namespace}",
        ["name", "kind", "versions", "compatibility"],
        [
            (
                s.name + (" (built-in)" if s.builtin else ""),
                s.kind.value,
                ", ".join(f"v{v}" for v in s.versions),
                s.compatibility.value,
            )
            for s in subjects
        ],
        subjects,
    )


@schema_app.command("add")
def schema_add(
    ctx: typer.Context,
    source: DefinitionArg,
    namespace: NamespaceOpt,
    name: SchemaNameOpt = None,
    compatibility: CompatibilityOpt = None,
) -> None:
    """Check a schema version and add it; DataStores using the schema move to it."""
    state = get_state(ctx)
    definition = read_json(source, "schema")
    schema = state.db.add_schema(namespace, definition, name=name, compatibility=compatibility)
    if state.out.json:
        state.out.data(_schema_record(schema))
    else:
        state.out.line(f"added schema {schema.ref} ({schema.kind.value})")


@schema_app.command("check")
def schema_check(
    ctx: typer.Context,
    source: DefinitionArg,
    namespace: NamespaceOpt,
    name: SchemaNameOpt = None,
    compatibility: CompatibilityOpt = None,
) -> None:
    """Check a schema version without storing it; exit 1 if it is incompatible."""
    state = get_state(ctx)
    definition = read_json(source, "schema")
    report = state.db.check_schema(namespace, definition, name=name, compatibility=compatibility)
    if state.out.json:
        state.out.data({**plain(report), "compatible": report.compatible})
    elif report.compatible:
        state.out.line(
            f"{report.candidate} is compatible ({report.mode.value}; "
            f"{report.checked_documents} stored documents checked)"
        )
    else:
        state.out.line(f"{report.candidate} is incompatible ({report.mode.value}):")
        for item in report.incompatibilities:
            state.out.line(f"  {item.rule:<11} {item.path}: {item.message}")
    if not report.compatible:
        raise typer.Exit(1)


@schema_app.command("list")
def schema_list(ctx: typer.Context, namespace: NamespaceOpt) -> None:
    """List the schemas of a namespace (and the built-ins)."""
    state = get_state(ctx)
    _schema_table(state.out, state.db, namespace)


def _schema_record(schema: SchemaVersion) -> dict[str, Any]:
    record = plain(schema)
    record.pop("resolved", None)
    return dict(record)


@schema_app.command("show")
def schema_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Schema name.")],
    namespace: NamespaceOpt,
    version: Annotated[int | None, typer.Option(help="Version (default: latest).")] = None,
    json_schema: Annotated[
        bool, typer.Option("--json-schema", help="Print only the compiled JSON Schema 2020-12.")
    ] = False,
) -> None:
    """Show a schema version: its definition, lineage and properties."""
    state = get_state(ctx)
    schema = state.db.get_schema(namespace, name, version)
    if json_schema:
        state.out.data(schema.json_schema)
        return
    if state.out.json:
        state.out.data(_schema_record(schema))
        return
    out = state.out
    out.line(
        f"[bold]{escape(str(schema.ref))}[/bold] ({schema.kind.value}) "
        f"{escape(schema.description)}",
        markup=True,
    )
    if len(schema.lineage) > 1:
        out.line("is a: " + ", ".join(schema.lineage[1:]))
    levels = schema.resolved if schema.kind.value == "document" else {"": schema.resolved}
    rows = [
        (f"{level}.{prop}" if level else prop, spec["type"],
         "yes" if spec["mandatory"] else "", spec["origin"])
        for level, props in levels.items()
        for prop, spec in props.items()
    ]  # fmt: skip
    if rows:
        out.table("Properties", ["property", "type", "mandatory", "defined by"], rows, rows)


@schema_app.command("versions")
def schema_versions(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Schema name.")],
    namespace: NamespaceOpt,
) -> None:
    """List every version of a schema."""
    state = get_state(ctx)
    versions = state.db.list_schema_versions(namespace, name)
    state.out.table(
        f"Versions of {namespace}/{name}",
        ["version", "kind", "created", "description"],
        [
            (f"v{v.version}", v.kind.value, v.created_at.isoformat(), v.description)
            for v in versions
        ],
        [_schema_record(v) for v in versions],
    )


@schema_app.command("set-compatibility")
def schema_set_compatibility(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Schema name.")],
    mode: Annotated[str, typer.Argument(help="BACKWARD, FORWARD, FULL, *_TRANSITIVE or NONE.")],
    namespace: NamespaceOpt,
) -> None:
    """Change the compatibility mode later versions are checked under."""
    state = get_state(ctx)
    subject = state.db.set_compatibility(namespace, name, mode)
    if state.out.json:
        state.out.data(subject)
    else:
        state.out.line(f"{namespace}/{name} now uses {subject.compatibility.value}")


# -- DataStores -------------------------------------------------------------------------------


def _datastore_table(out: Output, items: list[Any], db: Database) -> None:
    out.table(
        "DataStores",
        ["datastore", "MID keys", "schema", "documents", "description"],
        [
            (ds.ref, ", ".join(ds.mid_keys), f"{ds.schema_name} v{ds.schema_version}",
             db.count_documents(ds.ref), ds.description)
            for ds in items
        ],
        items,
    )  # fmt: skip


@datastore_app.command("create")
def datastore_create(
    ctx: typer.Context,
    datastore: DataStoreArg,
    mid_keys: Annotated[
        str, typer.Option("--mid-keys", help="Comma-separated MID keys (immutable).")
    ],
    schema: Annotated[str, typer.Option(help="Document schema name in the namespace.")],
    description: Annotated[str, typer.Option(help="Free text.")] = "",
) -> None:
    """Create a DataStore."""
    state = get_state(ctx)
    keys = [key.strip() for key in mid_keys.split(",") if key.strip()]
    ds = state.db.create_datastore(datastore, mid_keys=keys, schema=schema, description=description)
    if state.out.json:
        state.out.data(ds)
    else:
        state.out.line(f"created DataStore {ds.ref} ({ds.schema_name} v{ds.schema_version})")


@datastore_app.command("list")
def datastore_list(
    ctx: typer.Context,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Only this namespace.")
    ] = None,
) -> None:
    """List DataStores."""
    state = get_state(ctx)
    _datastore_table(state.out, state.db.list_datastores(namespace), state.db)


@datastore_app.command("show")
def datastore_show(ctx: typer.Context, datastore: DataStoreArg) -> None:
    """Show a DataStore."""
    state = get_state(ctx)
    ds = state.db.get_datastore(datastore)
    if state.out.json:
        state.out.data({**plain(ds), "documents": state.db.count_documents(ds.ref)})
    else:
        _datastore_table(state.out, [ds], state.db)


# -- documents --------------------------------------------------------------------------------


def _events_table(out: Output, doc: Document) -> None:
    rows = []
    for view in doc.events():
        rate = view.track.get("frame_rate")
        timecode = format_timecode(view.time.start, FrameRate.parse(rate)) if rate else ""
        rows.append(
            (view.path, f"{float(view.time.start):.3f}", f"{float(view.time.end):.3f}",
             timecode, view.event.get("label", ""), len(view.event.get("regions", ())))
        )  # fmt: skip
    out.table(
        f"Events of document {doc.id}",
        ["path", "start s", "end s", "timecode", "label", "regions"],
        rows,
        rows,
    )


def _document_record(doc: Document) -> dict[str, Any]:
    return {
        "id": str(doc.id),
        "datastore": str(doc.datastore),
        "mid": doc.mid,
        "schema_version": doc.schema_version,
        "created_at": doc.created_at.isoformat(),
        "document": doc.data,
    }


@doc_app.command("put")
def doc_put(
    ctx: typer.Context,
    datastore: DataStoreArg,
    source: Annotated[str, typer.Argument(help="Document file (JSON), or - for stdin.")],
    mid: MidOpt,
    stream: Annotated[
        bool,
        typer.Option(
            "--stream",
            help="Upload the file as a blob, then validate and index it streamed, in bounded "
            "memory (the default for files over max_document_bytes).",
        ),
    ] = False,
    submit: Annotated[
        bool,
        typer.Option(
            "--async", help="Hand the write to a worker (reeldb worker); print the request id."
        ),
    ] = False,
    wait: Annotated[bool, typer.Option(help="With --async: wait until it is done.")] = False,
) -> None:
    """Validate and store a new document for a MID (any size: large files are streamed)."""
    state = get_state(ctx)
    db = state.db
    path = Path(source)
    large = (
        source != "-" and path.is_file() and path.stat().st_size > db.settings.max_document_bytes
    )
    if submit:
        namespace = datastore.split("/", 1)[0]
        record = upload_file(db, namespace, path, state.out)
        found, _ = db.submit_write(datastore, _parse_mid(mid), blob=record.id)
        if wait:
            found = db.wait_write_request(found.id, timeout=24 * 3600)
        show_request(state.out, found)
        return
    if stream or large:
        doc = stream_document(db, datastore, _parse_mid(mid), path, state.out)
    else:
        doc = db.put_document(datastore, _parse_mid(mid), read_json(source, "document"))
    if state.out.json:
        state.out.data({"id": str(doc.id), "mid": doc.mid, "schema_version": doc.schema_version})
    else:
        size = len(doc.body) if doc.blob is None else path.stat().st_size
        state.out.line(f"stored document {doc.id} ({size} bytes)")


@doc_app.command("get")
def doc_get(
    ctx: typer.Context,
    datastore: DataStoreArg,
    mid: Annotated[
        list[str] | None, typer.Option("--mid", "-m", help="Latest document for this MID.")
    ] = None,
    document_id: Annotated[str | None, typer.Option("--id", help="A DocumentID.")] = None,
    events: Annotated[bool, typer.Option(help="Print the events table instead.")] = False,
) -> None:
    """Print a document: the latest for a MID, or one by DocumentID."""
    state = get_state(ctx)
    if (document_id is None) == (not mid):
        raise ValidationError("give either --mid key=value ... or --id DOCUMENT_ID")
    if document_id is not None:
        doc = state.db.get_document(document_id, datastore=datastore)
    else:
        doc = state.db.latest_document(datastore, _parse_mid(mid or []))
    if events:
        _events_table(state.out, doc)
    elif state.out.json:
        state.out.data(_document_record(doc))
    else:
        state.out.data(doc.data)


@doc_app.command("list")
def doc_list(
    ctx: typer.Context,
    datastore: DataStoreArg,
    mid: MidOpt,
    limit: Annotated[int, typer.Option(help="Page size (1-1000).")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
) -> None:
    """List the documents of a MID, newest first."""
    state = get_state(ctx)
    page = state.db.list_documents(datastore, _parse_mid(mid), limit=limit, cursor=cursor)
    if state.out.json:
        state.out.data(page)
        return
    state.out.table(
        "Documents (newest first)",
        ["document id", "schema", "created", "bytes"],
        [(i.id, f"v{i.schema_version}", i.created_at.isoformat(), i.size) for i in page.items],
        page,
    )
    if page.next_cursor:
        state.out.line(f"more: --cursor {page.next_cursor}")


# -- queries and the index -------------------------------------------------------------------


@app.command("query")
def query(
    ctx: typer.Context,
    datastore: DataStoreArg,
    text: Annotated[
        str,
        typer.Argument(
            help='The query: text (event.label = "face") or its JSON form ({"field": ...}).'
        ),
    ],
    document: Annotated[
        str | None,
        typer.Option("--document", "-D", help="Query the events of this DocumentID instead."),
    ] = None,
    all_versions: Annotated[
        bool, typer.Option(help="Also superseded versions of each MID (DataStore queries).")
    ] = False,
    limit: Annotated[int, typer.Option(help="Page size (1-1000).")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
    submit: Annotated[
        bool,
        typer.Option(
            "--submit", help="Run it asynchronously: print a request id (see reeldb queries)."
        ),
    ] = False,
) -> None:
    """Find the documents of a DataStore, or the events of one document, that match a query.

    The query language is in docs/query-language.md.
    """
    state = get_state(ctx)
    db = state.db
    spec: Any = _json.loads(text, what="JSON query") if text.lstrip().startswith("{") else text
    if submit:
        if document is not None:
            raise ValidationError("--submit runs DataStore-level queries, not --document ones")
        _show_query_request(state.out, db.submit_query(datastore, spec, all_versions=all_versions))
        return
    if document is not None:
        db.get_document(document, datastore=datastore)  # the document must be in this DataStore
        events = db.query_document(document, spec, limit=limit, cursor=cursor)
        if state.out.json:
            state.out.data(events)
        else:
            state.out.table(
                f"Events of document {document} that match",
                ["path", "start s", "end s", "label", "regions"],
                [
                    (
                        m.path,
                        f"{float(m.time.start):.3f}",
                        f"{float(m.time.end):.3f}",
                        m.event.get("label", ""),
                        ", ".join(str(i) for i in m.region_indexes),
                    )
                    for m in events.items
                ],
                events,
            )
        next_cursor = events.next_cursor
    else:
        docs = db.query_datastore(
            datastore, spec, all_versions=all_versions, limit=limit, cursor=cursor
        )
        if state.out.json:
            state.out.data(docs)
        else:
            _matches_table(state.out, "Documents that match", docs)
            if docs.total is not None:
                state.out.line(f"{docs.total} matching document(s) in all")
        next_cursor = docs.next_cursor
    if next_cursor and not state.out.json:
        state.out.line(f"more: --cursor {next_cursor}")


def _generations_table(out: Output, generations: list[Any]) -> None:
    out.table(
        "Index generations",
        ["name", "state", "read by queries", "documents", "rows", "created"],
        [
            (
                g.name,
                g.state,
                "yes" if g.in_alias else "no",
                g.docs,
                g.rows,
                g.created_at.isoformat(timespec="seconds"),
            )
            for g in generations
        ],  # fmt: skip
        generations,
    )


@index_app.command("status")
def index_status(ctx: typer.Context, datastore: DataStoreArg) -> None:
    """Show a DataStore's index generations and which ones queries read."""
    state = get_state(ctx)
    _generations_table(state.out, state.db.index_status(datastore))


@index_app.command("rebuild")
def index_rebuild(
    ctx: typer.Context,
    datastore: DataStoreArg,
    batch_size: Annotated[int, typer.Option(help="Documents per transaction.")] = 500,
) -> None:
    """Rebuild a DataStore's index from its documents; queries go on meanwhile.

    A rebuild that was interrupted is resumed.
    """
    state = get_state(ctx)
    if batch_size < 1:
        raise ValidationError("--batch-size must be at least 1")
    with progress_bar("rebuilding {task.description}", disable=state.out.json) as bar:
        task = bar.add_task(datastore, total=None)
        generation = state.db.rebuild_index(
            datastore,
            batch_size=batch_size,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if state.out.json:
        state.out.data(generation)
    else:
        state.out.line(
            f"rebuilt {datastore}: generation {generation.name}, {generation.docs} documents, "
            f"{generation.rows} rows"
        )


def _matches_table(out: Output, title: str, page: Any) -> None:
    rows = [(m.id, _json.dumps(m.mid).decode()) for m in page.items]
    out.table(title, ["document id", "mid"], rows, page)


def _show_query_request(out: Output, request: Any) -> None:
    if out.json:
        out.data(request)
        return
    out.line(f"query request {request.id} on {request.datastore}: {request.state}")
    if request.state == "done":
        out.line(f"{request.found} matching document(s): reeldb queries results {request.id}")
    elif request.state == "failed":
        out.line(f"failed: {request.error}")
    else:
        out.line(f"follow it with: reeldb queries wait {request.id}")


@queries_app.command("status")
def queries_status(
    ctx: typer.Context, request_id: Annotated[str, typer.Argument(help="The request id.")]
) -> None:
    """Show where an asynchronous query stands."""
    state = get_state(ctx)
    _show_query_request(state.out, state.db.get_query_request(request_id))


@queries_app.command("wait")
def queries_wait(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request id.")],
    timeout: Annotated[
        float | None, typer.Option(help="Give up after this many seconds (default: never).")
    ] = None,
) -> None:
    """Wait until an asynchronous query is done or failed; exit 1 if it failed or timed out."""
    state = get_state(ctx)
    spinner = not state.out.json and sys.stderr.isatty()
    waiting = Console(stderr=True).status(f"waiting for query {request_id}")
    with waiting if spinner else contextlib.nullcontext():
        request = state.db.wait_query(request_id, timeout=timeout)
    _show_query_request(state.out, request)
    if request.state != "done":
        raise typer.Exit(1)


@queries_app.command("results")
def queries_results(
    ctx: typer.Context,
    request_id: Annotated[str, typer.Argument(help="The request id.")],
    limit: Annotated[int, typer.Option(help="Page size (1-1000).")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
) -> None:
    """Page through the documents a finished asynchronous query found."""
    state = get_state(ctx)
    docs = state.db.query_results(request_id, limit=limit, cursor=cursor)
    if state.out.json:
        state.out.data(docs)
        return
    _matches_table(state.out, f"Documents query {request_id} found ({docs.total} in all)", docs)
    if docs.next_cursor:
        state.out.line(f"more: --cursor {docs.next_cursor}")


# -- API keys and audit -----------------------------------------------------------------------


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    principal: Annotated[str, typer.Argument(help="Who the key acts as, e.g. app:detector.")],
    description: Annotated[str, typer.Option(help="Free text: what uses the key.")] = "",
    system_admin: Annotated[
        bool, typer.Option("--system-admin", help="Also make the principal a system admin.")
    ] = False,
) -> None:
    """Create an API key; its secret is printed once and never stored."""
    state = get_state(ctx)
    if system_admin:
        state.db.grant_system_admin(principal)
    new = state.db.create_api_key(principal, description=description)
    if state.out.json:
        state.out.data({"key": new.key, "secret": new.secret})
        return
    state.out.line(f"API key {new.key.key_id} for {principal} (shown once, keep it now):")
    state.out.line(new.secret)


@keys_app.command("list")
def keys_list(
    ctx: typer.Context,
    principal: Annotated[str | None, typer.Option(help="Only this principal's keys.")] = None,
) -> None:
    """List API keys (never their secrets)."""
    state = get_state(ctx)
    keys = state.db.list_api_keys(principal)
    state.out.table(
        "API keys",
        ["key id", "principal", "description", "created", "revoked"],
        [
            (
                k.key_id,
                k.principal,
                k.description,
                k.created_at.isoformat(),
                k.revoked_at.isoformat() if k.revoked_at else "",
            )
            for k in keys
        ],
        keys,
    )


@keys_app.command("revoke")
def keys_revoke(
    ctx: typer.Context, key_id: Annotated[str, typer.Argument(help="The key id (keys list).")]
) -> None:
    """Revoke an API key: the service refuses it from the next request on."""
    state = get_state(ctx)
    key = state.db.revoke_api_key(key_id)
    if state.out.json:
        state.out.data(key)
    else:
        state.out.line(f"revoked API key {key.key_id} of {key.principal}")


@audit_app.command("list")
def audit_list(
    ctx: typer.Context,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Only this namespace.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Page size (1-1000).")] = 50,
    cursor: Annotated[str | None, typer.Option(help="next_cursor of the previous page.")] = None,
) -> None:
    """List audit entries, newest first."""
    state = get_state(ctx)
    page = state.db.list_audit(namespace, limit=limit, cursor=cursor)
    if state.out.json:
        state.out.data(page)
        return
    state.out.table(
        "Audit log (newest first)",
        ["at", "principal", "action", "namespace", "target", "status", "request id"],
        [
            (
                e.at.isoformat(),
                e.principal,
                e.action,
                e.namespace or "",
                e.target,
                e.status,
                e.request_id,
            )
            for e in page.items
        ],
        page,
    )
    if page.next_cursor:
        state.out.line(f"more: --cursor {page.next_cursor}")


def main() -> None:
    """Run the CLI (the ``reeldb`` console script)."""
    app()
