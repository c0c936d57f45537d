"""`db.reprocess`: each processor end to end on annotations and documents (issue 9).

Small data, cut into many partitions and small batches, so that every job crosses partition
and batch boundaries. The functions are in ``reprocess_functions.py`` beside this file.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import orjson
import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from reprocess_support import (
    COPY,
    DS,
    NS,
    add_boxes,
    add_documents,
    add_notes,
    add_tags,
    history,
    latest_documents,
)

import reeldb
from reeldb.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    QueryError,
    ValidationError,
)
from reeldb.reprocess import Job, load_spec, read_rows

FN = "reprocess_functions:"
LIMITS = {"partitions": 4, "batch": 3}


def _spec(
    processor: dict[str, Any], source: dict[str, Any] | None = None, **more: Any
) -> dict[str, Any]:
    return {
        "name": "test",
        "source": {"namespace": NS, **(source or {"annotation_type": "TAG"})},
        "processor": processor,
        "limits": {**LIMITS, **more.pop("limits", {})},
        **more,
    }


def _run(db: reeldb.Database, spec: dict[str, Any], **kwargs: Any) -> Job:
    job = db.reprocess.submit(spec)
    done = db.reprocess.run(job.id, **kwargs)
    assert done.state == "done", done.error
    return done


def _counts(job: Job) -> tuple[int, int, int, int, int]:
    p = job.progress
    return p.total, p.done, p.changed, p.skipped, p.failed


BACKFILL = _spec({"kind": "backfill", "function": FN + "add_source"})


# -- backfill -------------------------------------------------------------------------------


def test_backfill_of_annotations_writes_one_new_version_each(rdb: reeldb.Database) -> None:
    tags = add_tags(rdb, [f"tag {n}" for n in range(40)])
    boxes = add_boxes(rdb, 6)  # another type: left alone
    gone = tags.pop(7)
    rdb.annotations.delete(NS, gone)
    before = history(rdb)
    job = _run(rdb, BACKFILL)
    assert _counts(job) == (46, 46, 39, 7, 0)
    assert job.progress.partitions == job.progress.partitions_done == 4
    after = history(rdb)
    principal = f"job:{job.id}"
    for ident in tags:
        [(_, _, first), (tv, by, second)] = after[ident]
        assert first == before[ident][0][2]
        assert (tv, by, second) == (0, principal, {**first, "source": "job"})
    for ident in [*boxes, gone]:
        assert after[ident] == before[ident]
    # The same job again changes nothing: every item is skipped.
    again = _run(rdb, BACKFILL)
    assert _counts(again) == (46, 46, 0, 46, 0)
    assert history(rdb) == after


def test_backfill_of_documents_writes_each_mids_latest_once(rdb: reeldb.Database) -> None:
    add_documents(rdb, 30, mids=10)  # 3 versions per MID
    before = latest_documents(rdb)
    spec = _spec({"kind": "backfill", "function": FN + "upper_title"}, {"datastore": DS})
    job = _run(rdb, spec)
    # Every document is an item; superseded versions are skipped, the latest ones changed.
    assert _counts(job) == (30, 30, 10, 20, 0)
    assert rdb.count_documents(DS) == 40
    after = latest_documents(rdb)
    assert sorted(after) == sorted(before)
    for mid, document in after.items():
        title = before[mid]["asset"]["title"]
        assert document == {**before[mid], "asset": {"title": title.upper()}}
    again = _run(rdb, spec)
    assert again.progress.changed == 0
    assert rdb.count_documents(DS) == 40


def test_a_filter_picks_the_documents_a_job_changes(mdb: reeldb.Database) -> None:
    add_documents(mdb, 20, mids=20)  # t0..t19: odd ones are "cat"
    spec = _spec(
        {"kind": "backfill", "function": FN + "upper_title"},
        {"datastore": DS, "filter": "asset.title contains cat"},
    )
    job = _run(mdb, spec)
    assert _counts(job) == (20, 20, 10, 10, 0)
    titles = {mid: doc["asset"]["title"] for mid, doc in latest_documents(mdb).items()}
    assert titles == {f"t{i}": f"CAT {i}" if i % 2 else f"dog {i}" for i in range(20)}
    for bad in ("asset.title =", "asset.nothing = 1"):
        with pytest.raises(QueryError):
            mdb.reprocess.submit(
                _spec(
                    {"kind": "backfill", "function": FN + "upper_title"},
                    {"datastore": DS, "filter": bad},
                )
            )


def test_a_filter_picks_the_annotations_of_a_type_a_job_changes(mdb: reeldb.Database) -> None:
    labels = [f"{'cat' if n % 3 == 0 else 'dog'} {n}" for n in range(24)]
    tags = dict(zip(add_tags(mdb, labels), labels, strict=True))
    add_boxes(mdb, 4)  # another type
    before = history(mdb)
    where = 'data.label in ("cat 0", "cat 3", "dog 4") or data.label = "dog 23"'
    job = _run(
        mdb,
        _spec(
            {"kind": "backfill", "function": FN + "add_source"},
            {"annotation_type": "TAG", "filter": where},
        ),
    )
    assert _counts(job) == (28, 28, 4, 24, 0)  # the boxes are filtered out by type
    after = history(mdb)
    changed = {ident for ident in tags if after[ident] != before[ident]}
    assert {tags[i] for i in changed} == {"cat 0", "cat 3", "dog 4", "dog 23"}
    # A filter on what a backfill wrote: the four are found again, and not changed twice.
    again = _spec(
        {"kind": "backfill", "function": FN + "add_source", "options": {"value": "again"}},
        {"annotation_type": "TAG", "filter": 'data.source = "job" and not data.label = "dog 4"'},
    )
    assert _counts(_run(mdb, again)) == (28, 28, 3, 25, 0)
    for bad, message in (
        ("data.label =", "expected"),
        ("data.nothing = 1", "nothing"),
        ("asset.title = 1", "no field asset.title"),
    ):
        with pytest.raises(QueryError, match=message):
            mdb.reprocess.submit(
                _spec(
                    {"kind": "backfill", "function": FN + "add_source"},
                    {"annotation_type": "TAG", "filter": bad},
                )
            )


# -- migrate --------------------------------------------------------------------------------


def test_migrate_moves_annotations_to_the_target_type_version(rdb: reeldb.Database) -> None:
    boxes = add_boxes(rdb, 30)
    tags = add_tags(rdb, ["a", "b"])
    before = history(rdb)
    spec = _spec(
        {"kind": "migrate", "function": FN + "label_box", "target_version": 1},
        {"annotation_type": "BOUNDING_BOX@0"},
    )
    job = _run(rdb, spec)
    assert _counts(job) == (32, 32, 30, 2, 0)
    after = history(rdb)
    for ident in boxes:
        [(tv1, _, first), (tv2, _, second)] = after[ident]
        assert (tv1, tv2) == (0, 1)
        assert second == {**first, "label": f"box-{first['boundingBox']['x']}"}
    assert all(after[t] == before[t] for t in tags)
    again = _run(rdb, spec)  # now at v1: not of the source type any more
    assert again.progress.changed == 0 and history(rdb) == after


def test_migrate_that_breaks_validation_sends_items_to_dead_letters(
    mdb: reeldb.Database,
) -> None:
    boxes = add_boxes(mdb, 20)
    spec = _spec(
        {"kind": "migrate", "function": FN + "bad_label", "target_version": 1},
        {"annotation_type": "BOUNDING_BOX"},
        limits={"max_attempts": 3, "backoff": 5},  # validation is never retried
    )
    job = _run(mdb, spec)
    assert _counts(job) == (20, 20, 10, 0, 10)
    letters = mdb.reprocess.dead_letters(job.id)
    odd = sorted(boxes[1::2])
    assert [d.item for d in letters] == odd
    assert all(d.attempts == 1 and d.error.startswith("ValidationError") for d in letters)
    assert all("/label" in d.error for d in letters)
    page = mdb.reprocess.dead_letters(job.id, after=odd[4], limit=3)
    assert [d.item for d in page] == odd[5:8]
    after = history(mdb)
    for n, ident in enumerate(boxes):
        assert len(after[ident]) == (1 if n % 2 else 2)


def test_migrate_copies_documents_into_another_datastore(rdb: reeldb.Database) -> None:
    add_documents(rdb, 24, mids=8)
    source = latest_documents(rdb)
    spec = _spec({"kind": "migrate", "target_datastore": COPY}, {"datastore": DS})
    job = _run(rdb, spec)
    assert _counts(job) == (24, 24, 8, 16, 0)
    assert rdb.count_documents(COPY) == 8
    assert latest_documents(rdb, COPY) == source
    assert latest_documents(rdb) == source and rdb.count_documents(DS) == 24
    # Run again: the copies are already there.
    assert _run(rdb, spec).progress.changed == 0
    assert rdb.count_documents(COPY) == 8
    # With a function: the copies change, the originals stay.
    spec["processor"]["function"] = FN + "upper_title"
    assert _run(rdb, spec).progress.changed == 8
    copied = latest_documents(rdb, COPY)
    assert {m: d["asset"]["title"] for m, d in copied.items()} == {
        m: d["asset"]["title"].upper() for m, d in source.items()
    }
    assert latest_documents(rdb) == source


# -- reindex --------------------------------------------------------------------------------


def _drop_text_index(url: str) -> None:
    """Lose the annotations' full-text rows behind reeldb's back (what a reindex repairs)."""
    if url.startswith("postgresql"):
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DELETE FROM annotation_text")
    else:
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("DELETE FROM annotation_text")
        conn.close()


def test_reindex_of_annotations_repairs_search_and_keeps_versions(shared_url: str) -> None:
    with reeldb.connect(shared_url) as db:
        from reprocess_support import setup

        setup(db)
        tags = add_notes(db, [f"heron {n}" for n in range(25)])
        add_boxes(db, 5)
        db.annotations.update(NS, tags[0], expected_version=1, data={"comment": "heron again"})
        assert len(db.annotations.search(NS, text="heron", limit=100).items) == 25
        before = history(db)
    _drop_text_index(shared_url)
    with reeldb.connect(shared_url) as db:
        assert db.annotations.search(NS, text="heron", limit=100).items == ()
        job = _run(db, _spec({"kind": "reindex"}, {"annotations": True}))
        # Checked in bulk first: the 5 boxes (no text) lost nothing and change nothing.
        assert _counts(job) == (30, 30, 25, 5, 0)
        hits = db.annotations.search(NS, text="heron", limit=100).items
        assert sorted(str(h.annotation.id) for h in hits) == sorted(tags)
        assert [h.annotation.version for h in hits if str(h.annotation.id) == tags[0]] == [2]
        assert history(db) == before  # no new version


def boxed(db: reeldb.Database) -> set[str]:
    """The annotations whose box meets x = 5.5, y = 1.5."""
    found = db.annotations.search(NS, box=(5.5, 1.5, 0.01, 0.01), limit=100).items
    return {str(h.annotation.id) for h in found}


def test_reindex_on_sqlite_writes_only_the_annotations_whose_rows_differ(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'reel.db'}"
    with reeldb.connect(url) as db:
        from reprocess_support import setup

        setup(db)
        notes = add_notes(db, [f"heron {n}" for n in range(20)])
        boxes = add_boxes(db, 7)
        add_tags(db, ["a", "b", "c"])
        db.annotations.delete(NS, boxes[0], expected_version=1)
    with sqlite3.connect(tmp_path / "reel.db") as conn:
        pks = {
            ident: conn.execute(
                "SELECT pk FROM annotations WHERE id = ?", (UUID(ident).bytes,)
            ).fetchone()[0]
            for ident in (notes[3], notes[11], boxes[5])
        }
        conn.execute(
            "DELETE FROM annotation_text WHERE rowid >> 12 IN (?, ?)",
            (
                pks[notes[3]],
                pks[notes[11]],
            ),
        )
        conn.execute("UPDATE annotation_space SET x0 = 50, x1 = 60 WHERE pk = ?", (pks[boxes[5]],))
    conn.close()
    everything = _spec({"kind": "reindex"}, {"annotations": True})  # 4 partitions, batches of 3
    with reeldb.connect(url) as db:
        before = history(db)
        # Checked page by page: 27 annotations already right (or deleted) change nothing.
        assert _counts(_run(db, {**everything, "dry_run": True})) == (30, 30, 3, 27, 0)
        assert len(db.annotations.search(NS, text="heron", limit=100).items) == 18
        notes_only = _spec({"kind": "reindex"}, {"annotation_type": "NOTE"})
        assert _counts(_run(db, notes_only)) == (30, 30, 2, 28, 0)
        assert boxes[5] not in boxed(db)
        assert len(db.annotations.search(NS, text="heron", limit=100).items) == 20
        assert _counts(_run(db, everything)) == (30, 30, 1, 29, 0)
        assert boxes[5] in boxed(db)
        assert _counts(_run(db, everything)) == (30, 30, 0, 30, 0)
        assert history(db) == before  # no new version


def test_reindex_of_a_datastore_swaps_in_a_new_generation(mdb: reeldb.Database) -> None:
    add_documents(mdb, 12, mids=6)
    [old] = mdb.index_status(DS)
    found = mdb.query_datastore(DS, "asset.title contains cat", limit=100).items
    job = _run(mdb, _spec({"kind": "reindex"}, {"datastore": DS}))
    assert job.progress.partitions == 1 and _counts(job) == (12, 12, 12, 0, 0)
    [new] = mdb.index_status(DS)
    assert new.id != old.id and new.name != old.name
    assert (new.state, new.in_alias, new.docs) == ("active", True, 12)
    assert mdb.query_datastore(DS, "asset.title contains cat", limit=100).items == found
    dry = _run(mdb, _spec({"kind": "reindex"}, {"datastore": DS}, dry_run=True))
    assert dry.progress.done == 12 and mdb.index_status(DS) == [new]


# -- export-iceberg -------------------------------------------------------------------------


def _iceberg_rows(warehouse: Path, table: str) -> list[dict[str, Any]]:
    catalog = SqlCatalog("reeldb", uri=f"sqlite:///{warehouse / 'catalog.db'}")
    try:
        loaded = catalog.load_table(("reeldb", table))
    finally:
        catalog.engine.dispose()
    files = [t.file.file_path.removeprefix("file://") for t in loaded.scan().plan_files()]
    if not files:
        return []
    whole = pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")
    return whole.to_pylist()


def test_export_iceberg_writes_tables_that_pyarrow_reads_back(
    fdb: reeldb.Database, tmp_path: Path
) -> None:
    tags = add_tags(fdb, [f"t{n}" for n in range(15)])
    fdb.annotations.update(NS, tags[3], expected_version=1, data={"label": "changed"})
    add_documents(fdb, 6, mids=3)
    warehouse = tmp_path / "warehouse"
    sink = {"kind": "iceberg", "warehouse": str(warehouse)}
    job = _run(fdb, _spec({"kind": "export-iceberg"}, {"annotations": True}, sink=sink))
    assert job.progress.partitions == 1 and job.progress.changed == 16
    rows = _iceberg_rows(warehouse, "annotations")
    got = sorted((r["id"], r["version"], r["type"], orjson.loads(r["data"])) for r in rows)
    want = sorted(
        (ident, n + 1, "TAG", data)
        for ident, vs in history(fdb).items()
        for n, (_, _, data) in enumerate(vs)
    )
    assert got == want
    docs = _run(fdb, _spec({"kind": "export-iceberg"}, {"datastore": DS}, sink=sink))
    assert docs.state == "done"
    documents = _iceberg_rows(warehouse, "documents")
    assert len(documents) == 6 and {r["datastore"] for r in documents} == {DS}
    assert len(_iceberg_rows(warehouse, "events")) == 12
    # Incremental: run again, nothing new, nothing appended.
    _run(fdb, _spec({"kind": "export-iceberg"}, {"annotations": True}, sink=sink))
    assert len(_iceberg_rows(warehouse, "annotations")) == 16


# -- custom, to files -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_custom_writes_one_row_per_source_row_to_files(
    mdb: reeldb.Database, tmp_path: Path, kind: str
) -> None:
    tags = add_tags(mdb, [f"label {n}" for n in range(23)])
    add_boxes(mdb, 4)  # the function makes no row of them
    mdb.annotations.update(NS, tags[5], expected_version=1, data={"label": "newer"})
    sink = {"kind": kind, "path": str(tmp_path / "out")}
    spec = _spec({"kind": "custom", "function": FN + "tag_row"}, {"annotations": True}, sink=sink)
    job = _run(mdb, spec)
    assert _counts(job) == (27, 27, 23, 4, 0)
    rows = read_rows(tmp_path / "out" / str(job.id))
    want = [
        {"id": ident, "version": len(vs), "label": vs[-1][2]["label"]}
        for ident, vs in history(mdb).items()
        if ident in tags
    ]
    key = lambda row: row["id"]  # noqa: E731
    assert sorted(rows, key=key) == sorted(want, key=key)
    files = sorted(p.name for p in (tmp_path / "out" / str(job.id)).iterdir())
    assert all(f.startswith("part-") and f.endswith(f".{kind}") for f in files)
    assert len(files) > 4  # one per batch: many partitions and batches


def test_custom_of_documents_to_parquet(mdb: reeldb.Database, tmp_path: Path) -> None:
    add_documents(mdb, 10, mids=5)
    sink = {"kind": "parquet", "path": str(tmp_path / "out")}
    spec = _spec({"kind": "custom", "function": FN + "document_rows"}, {"datastore": DS}, sink=sink)
    job = _run(mdb, spec)
    rows = read_rows(tmp_path / "out" / str(job.id))
    latest = latest_documents(mdb)
    want = [
        {"title_id": mid, "title": doc["asset"]["title"], "event": f"0/0/{e}", "label": "face"}
        for mid, doc in latest.items()
        for e in range(2)
    ]
    assert sorted((r["title_id"], r["title"], r["event"], r["label"]) for r in rows) == sorted(
        tuple(w.values()) for w in want
    )
    assert _counts(job) == (10, 10, 5, 5, 0)


# -- dry run --------------------------------------------------------------------------------


def test_a_function_is_told_what_the_api_returns_of_each_annotation_but_its_data(
    mdb: reeldb.Database, tmp_path: Path
) -> None:
    tags = add_tags(mdb, ["a", "b", "c"])
    mdb.annotations.update(NS, tags[1], expected_version=1, data={"label": "b2"})
    log = tmp_path / "contexts.jsonl"
    spec = _spec({"kind": "backfill", "function": FN + "log_context", "options": {"log": str(log)}})
    assert _counts(_run(mdb, spec)) == (3, 3, 0, 3, 0)
    told = sorted((orjson.loads(line) for line in log.read_bytes().splitlines()), key=str)
    expected = [
        {k: v for k, v in mdb.annotations.get(NS, tag).to_json().items() if k != "data"}
        for tag in tags
    ]
    assert told == sorted(expected, key=str)
    assert told[0]["type"] == {"name": "TAG", "version": 0}


def test_dry_run_counts_what_would_change_and_writes_nothing(
    mdb: reeldb.Database, tmp_path: Path
) -> None:
    add_tags(mdb, [f"x{n}" for n in range(12)])
    add_documents(mdb, 8, mids=4)
    before, documents = history(mdb), mdb.count_documents(DS)
    job = mdb.reprocess.submit(BACKFILL, dry_run=True)
    assert job.spec.dry_run and job.to_json()["dry_run"] is True
    assert _counts(mdb.reprocess.run(job.id)) == (12, 12, 12, 0, 0)
    doc_spec = _spec({"kind": "backfill", "function": FN + "upper_title"}, {"datastore": DS})
    assert _run(mdb, {**doc_spec, "dry_run": True}).progress.changed == 4
    migrate = _spec({"kind": "migrate", "target_datastore": COPY}, {"datastore": DS})
    assert _run(mdb, {**migrate, "dry_run": True}).progress.changed == 4
    sink = {"kind": "jsonl", "path": str(tmp_path / "out")}
    custom = _spec({"kind": "custom", "function": FN + "tag_row"}, sink=sink, dry_run=True)
    dry = _run(mdb, custom)
    assert dry.progress.changed == 12
    assert list((tmp_path / "out" / str(dry.id)).glob("part-*")) == []
    assert history(mdb) == before
    assert mdb.count_documents(DS) == documents and mdb.count_documents(COPY) == 0
    # The same job for real does what the dry run counted.
    assert _run(mdb, BACKFILL).progress.changed == 12


# -- specs ----------------------------------------------------------------------------------


def test_a_malformed_spec_lists_each_problem_with_its_place() -> None:
    with pytest.raises(ValidationError) as caught:
        load_spec(
            {
                "name": "",
                "source": {"namespace": NS, "annotations": True},
                "processor": {"kind": "polish"},
                "limits": {"batch": 0, "rate": -1},
                "surprise": 1,
            }
        )
    pointers = {v.pointer for v in caught.value.violations}
    assert {"/name", "/processor/kind", "/limits/batch", "/limits/rate", "/surprise"} <= pointers
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"source": {"namespace": NS}}, "/source", "exactly one"),
        (
            {"source": {"namespace": NS, "annotations": True, "filter": "a = 1"}},
            "/source",
            "filter",
        ),
        ({"processor": {"kind": "backfill"}}, "", "needs a function"),
        ({"processor": {"kind": "migrate"}}, "", "target_version"),
        ({"processor": {"kind": "reindex"}, "sink": {"kind": "jsonl", "path": "x"}}, "", "sink"),
        (
            {"processor": {"kind": "custom", "function": "m:f"}, "sink": {"kind": "jsonl"}},
            "",
            "path",
        ),
        ({"processor": {"kind": "reindex", "function": "m:f"}}, "", "no function"),
        (
            {
                "source": {"namespace": NS, "datastore": DS},
                "processor": {"kind": "migrate", "target_datastore": DS},
            },
            "",
            "must differ",
        ),
        ({"source": {"namespace": NS, "datastore": "audio/x/1"}}, "/source", "not in namespace"),
    ]
    for change, pointer, words in cases:
        spec = {**_spec({"kind": "reindex"}, {"annotations": True}), **change}
        with pytest.raises(ValidationError) as caught:
            load_spec(spec)
        [violation] = caught.value.violations
        assert violation.pointer.startswith(pointer or "/") and words in violation.message, change


def test_specs_load_from_toml_and_json(tmp_path: Path) -> None:
    toml = f"""
name = "from toml"
[source]
namespace = "{NS}"
annotation_type = "TAG"
catch_up = true
[processor]
kind = "backfill"
function = "{FN}add_source"
options = {{ value = "toml" }}
[limits]
rate = 100
"""
    path = tmp_path / "job.toml"
    path.write_text(toml)
    for given in (path, str(path), toml):
        spec = load_spec(given)
        assert (spec.name, spec.source.catch_up, spec.limits.rate) == ("from toml", True, 100)
        assert spec.processor.options == {"value": "toml"} and spec.sink_kind == "reeldb"
    assert load_spec(orjson.dumps(spec.to_json()).decode()) == spec
    assert load_spec(spec, dry_run=True).dry_run
    with pytest.raises(ValidationError, match="not valid TOML"):
        load_spec("name = ")
    with pytest.raises(ValidationError, match="cannot read"):
        load_spec(str(tmp_path / "missing.toml"))


def test_submit_refuses_what_cannot_run(mdb: reeldb.Database) -> None:
    for function in (FN + "nothing_here", "no_such_module:f", FN + "not_callable", "not a ref"):
        with pytest.raises(ConfigError):
            mdb.reprocess.submit(_spec({"kind": "backfill", "function": function}))
    with pytest.raises(PermissionDeniedError):
        mdb.reprocess.submit(BACKFILL, plugins_only=True)
    with pytest.raises(NotFoundError):
        mdb.reprocess.submit(_spec({"kind": "reindex"}, {"datastore": "vision/nothing/1"}))
    with pytest.raises(NotFoundError):
        mdb.reprocess.submit(_spec({"kind": "reindex"}, {"annotation_type": "NOTHING"}))
    with pytest.raises(ValidationError):
        mdb.reprocess.submit({"name": "x"})
    assert mdb.reprocess.list_jobs() == []


# -- job states -----------------------------------------------------------------------------


def test_pause_resume_and_cancel_follow_the_state_rules(mdb: reeldb.Database) -> None:
    add_tags(mdb, ["a", "b", "c"])
    job = mdb.reprocess.submit(BACKFILL)
    with pytest.raises(ConflictError, match="only a job that is paused"):
        mdb.reprocess.resume(job.id)
    assert mdb.reprocess.pause(job.id).state == "paused"
    with pytest.raises(ConflictError):
        mdb.reprocess.pause(job.id)
    # A paused job does nothing when run.
    assert mdb.reprocess.run(job.id).state == "paused"
    assert mdb.reprocess.get(job.id).progress.done == 0
    assert mdb.reprocess.resume(job.id).state == "running"
    assert mdb.reprocess.run(job.id).state == "done"
    for move in (mdb.reprocess.pause, mdb.reprocess.resume, mdb.reprocess.cancel):
        with pytest.raises(ConflictError, match="is done"):
            move(job.id)
    other = mdb.reprocess.submit(BACKFILL)
    assert mdb.reprocess.pause(other.id).state == "paused"
    assert mdb.reprocess.cancel(other.id).state == "cancelled"
    for move in (mdb.reprocess.pause, mdb.reprocess.resume, mdb.reprocess.cancel):
        with pytest.raises(ConflictError, match="is cancelled"):
            move(other.id)
    with pytest.raises(ConflictError):
        mdb.reprocess.retry(other.id)
    assert mdb.reprocess.run(other.id).state == "cancelled"
    with pytest.raises(NotFoundError):
        mdb.reprocess.get("0190a4b2-0000-7000-8000-000000000000")
    with pytest.raises(ValidationError):
        mdb.reprocess.get("not-a-job")
    listed = mdb.reprocess.list_jobs(NS)
    assert [j.id for j in listed] == [other.id, job.id]
    assert [j.id for j in mdb.reprocess.list_jobs(NS, before=other.id)] == [job.id]
    assert listed[1].to_json(partitions=True)["partitions"][0]["state"] == "done"


def test_a_job_paused_mid_run_resumes_and_writes_each_item_once(rdb: reeldb.Database) -> None:
    tags = add_tags(rdb, [f"p{n}" for n in range(30)])
    job = rdb.reprocess.submit(BACKFILL)
    batches = []

    def pause_after_two(seen: Job) -> None:
        batches.append(seen.progress.done)
        if len(batches) == 2:
            rdb.reprocess.pause(seen.id)

    stopped = rdb.reprocess.run(job.id, threads=1, progress=pause_after_two)
    assert stopped.state == "paused"
    assert 0 < stopped.progress.done < 30 and stopped.progress.partitions_done < 4
    assert stopped.progress.running == 0  # handed back
    rdb.reprocess.resume(job.id)
    done = rdb.reprocess.run(job.id)
    assert done.state == "done" and done.progress.done == 30
    # The batch under way when the job was paused was written, but its checkpoint was
    # refused: redone after the resume, its items are skipped (already changed).
    assert done.progress.changed + done.progress.skipped == 30
    after = history(rdb)
    assert all(len(after[t]) == 2 and after[t][1][2]["source"] == "job" for t in tags)


def test_a_stopped_runner_hands_its_partition_back(mdb: reeldb.Database) -> None:
    tags = add_tags(mdb, [f"s{n}" for n in range(30)])
    job = mdb.reprocess.submit(BACKFILL)
    stop = threading.Event()
    stopped = mdb.reprocess.run(
        job.id, threads=1, stop=stop, progress=lambda j: stop.set() if j.progress.done else None
    )
    assert stopped.state == "running" and stopped.progress.done == 3
    assert stopped.progress.running == 0
    [held] = [p for p in stopped.partitions if p.cursor is not None]
    assert held.state == "running" and held.done == 3  # its lease ended: next runner takes it
    done = mdb.reprocess.run(job.id)
    assert _counts(done) == (30, 30, 30, 0, 0)
    assert all(len(v) == 2 for k, v in history(mdb).items() if k in tags)


# -- limits ---------------------------------------------------------------------------------


def test_the_rate_limit_is_the_whole_jobs(mdb: reeldb.Database) -> None:
    add_tags(mdb, [f"r{n}" for n in range(40)])
    limits = {"rate": 40, "concurrency": 4, "partitions": 4, "batch": 2}
    job = mdb.reprocess.submit({**BACKFILL, "limits": limits})
    started = time.perf_counter()
    done = mdb.reprocess.run(job.id)  # 4 threads, as the job's concurrency
    took = time.perf_counter() - started
    assert done.state == "done" and done.progress.changed == 40
    # 40 items at 40 per second: the first batch at once, the other 38 items take ~0.95 s.
    # The threads share the rate: not 40 per second each, nor 40 per second in all of them.
    assert 0.85 <= took < 2.5, took


def test_a_broken_partition_is_retried_then_fails_the_job(
    mdb: reeldb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reeldb.reprocess._sources import AnnotationSource

    tags = add_tags(mdb, [f"b{n}" for n in range(12)])
    items = AnnotationSource.items
    breaks = {"left": 1}

    def broken(self: Any, job: Any, partition: Any, cursor: Any, limit: int) -> Any:
        if partition.number == 1 and breaks["left"]:
            breaks["left"] -= 1
            raise RuntimeError("the source is down")
        return items(self, job, partition, cursor, limit)

    monkeypatch.setattr(AnnotationSource, "items", broken)
    spec = {**BACKFILL, "limits": {**LIMITS, "partitions": 3, "max_attempts": 2, "backoff": 0.01}}
    job = _run(mdb, spec)  # partition 1 broke once: handed back and taken again
    assert _counts(job) == (12, 12, 12, 0, 0)
    assert [p.attempts for p in job.partitions] == [1, 2, 1]
    assert all(len(v) == 2 for k, v in history(mdb).items() if k in tags)
    breaks["left"] = 99  # broken for good: after max_attempts, the job fails
    failed = mdb.reprocess.run(mdb.reprocess.submit(spec).id)
    assert failed.state == "failed"
    assert failed.error == "partition 1: RuntimeError: the source is down"
    with pytest.raises(ConflictError):
        mdb.reprocess.resume(failed.id)


def test_a_batch_written_but_not_checkpointed_counts_as_changed_when_done_again(
    mdb: reeldb.Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A crash between a batch's writes and its checkpoint: the next try reads the batch
    # again, finds each item already as the function makes it (written by this job), writes
    # nothing, and still counts it as changed.
    tags = add_tags(mdb, [f"c{n}" for n in range(12)])
    checkpoint = type(mdb.store).checkpoint_partition
    lost = {"left": 1}

    def crashing(self: Any, job_id: Any, number: int, owner: str, **kwargs: Any) -> Any:
        if kwargs["progress"].changed and lost["left"]:
            lost["left"] -= 1
            raise OSError("the machine went down before the checkpoint")
        return checkpoint(self, job_id, number, owner, **kwargs)

    monkeypatch.setattr(type(mdb.store), "checkpoint_partition", crashing)
    spec = {**BACKFILL, "limits": {**LIMITS, "partitions": 2, "backoff": 0.01}}
    job = _run(mdb, spec)
    assert lost["left"] == 0
    assert _counts(job) == (12, 12, 12, 0, 0)
    assert sorted(p.attempts for p in job.partitions) == [1, 2]
    assert all(len(v) == 2 for k, v in history(mdb).items() if k in tags)  # written once
    # Another job finds them done by someone else: skipped.
    assert _counts(_run(mdb, spec)) == (12, 12, 0, 12, 0)


def test_an_export_that_cannot_write_fails_the_job_at_once(
    fdb: reeldb.Database, tmp_path: Path
) -> None:
    add_tags(fdb, ["a"])
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    sink = {"kind": "iceberg", "warehouse": str(blocker / "warehouse")}
    spec = _spec({"kind": "export-iceberg"}, {"annotations": True}, sink=sink)
    failed = fdb.reprocess.run(fdb.reprocess.submit(spec).id)
    assert failed.state == "failed"
    assert failed.error is not None and failed.error.startswith("partition 0: ConfigError")
    assert [p.attempts for p in failed.partitions] == [1]  # a retry cannot cure it
