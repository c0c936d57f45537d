"""`reeldb.analytics.export_iceberg`: the four tables read back independently, row for row.

The tables are read from the Parquet files the current snapshot lists (pyiceberg only lists
them) by pyarrow or by DuckDB (its ``read_parquet``: DuckDB's iceberg extension would be
downloaded at run time), and compared with what the test wrote through reeldb's public API.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Transaction

import reeldb
from reeldb.analytics import IcebergExport, _iceberg, export_iceberg, warehouse_io
from reeldb.errors import ConfigError, ConflictError, NotFoundError, ValidationError
from reeldb.model.document import Document
from reeldb.testing import BOUNDING_BOX, FACE_DETECTION, face_document

DS = "vision/face_detection/1"
NS = "vision"
TAG = {
    "type": "CONTENT_TAG",
    "version": 0,
    "description": "A tag",
    "keys": {"properties": {"label": {"type": "string", "mandatory": True}}},
}


@pytest.fixture
def vision(tmp_path: Path) -> Iterator[reeldb.Database]:
    with reeldb.connect(f"sqlite:///{tmp_path / 'db' / 'reel.db'}") as db:
        db.create_namespace(NS)
        db.add_schema(NS, copy.deepcopy(FACE_DETECTION))
        db.create_datastore(DS, mid_keys=["title_id"], schema="face_detection")
        db.add_schema(NS, copy.deepcopy(BOUNDING_BOX))
        db.add_schema(NS, copy.deepcopy(TAG))
        yield db


def _frames_document() -> dict[str, Any]:
    doc = face_document(2, person="Bob", title="frames")
    doc["tracks"][0]["components"][0]["events"][1]["time_range"] = {
        "start_frame": 240,
        "end_frame": 252,
    }
    doc["tracks"][0]["components"][0]["events"][0]["regions"].append(
        {
            "bounding_box": {"x": 0.5, "y": 0.5, "w": 0.1, "h": 0.1},
            "time_range": {"start": 0, "end": 0.25},
        }
    )
    return doc


# -- reading back, independently ------------------------------------------------------------


Reader = Callable[[Path, str], list[dict[str, Any]]]


def data_files(warehouse: Path, name: str, catalog: str | None = None) -> list[str]:
    """The Parquet files of a table's current snapshot, as pyiceberg lists them."""
    uri = catalog or f"sqlite:///{warehouse / 'catalog.db'}"
    cat = SqlCatalog("reeldb", uri=uri.replace("postgresql://", "postgresql+psycopg://"))
    try:
        table = cat.load_table(("reeldb", name))
    finally:
        cat.engine.dispose()
    return [task.file.file_path.removeprefix("file://") for task in table.scan().plan_files()]


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def read_table_duckdb(warehouse: Path, name: str) -> list[dict[str, Any]]:
    """Every row of a table, read by DuckDB from the files of its current snapshot."""
    files = data_files(warehouse, name)
    if not files:
        return []
    with duckdb.connect() as con:
        # Files written before a column was added lack it: union_by_name reads it as NULL.
        # Times as microseconds (DuckDB's TIMESTAMPTZ to Python needs pytz).
        result = con.execute(
            "SELECT * REPLACE (epoch_us(created_at) AS created_at) FROM "
            "read_parquet(?, union_by_name = true, hive_partitioning = false)",
            [files],
        )
        names = [d[0] for d in result.description]
        rows = [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    for row in rows:
        row["created_at"] = EPOCH + timedelta(microseconds=row["created_at"])
    return rows


def read_table(warehouse: Path, name: str, catalog: str | None = None) -> list[dict[str, Any]]:
    """Every row of a table, read by pyarrow from the files of its current snapshot."""
    files = data_files(warehouse, name, catalog)
    parts = [pq.read_table(f) for f in files]
    if not parts:
        return []
    whole = pa.concat_tables(parts, promote_options="permissive")
    return whole.to_pylist()


def _sorted(rows: list[dict[str, Any]], *keys: str) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda row: tuple(row[k] for k in keys))


def expected_documents(docs: list[Document]) -> list[dict[str, Any]]:
    return [
        {
            "document_id": str(d.id),
            "namespace": d.datastore.namespace,
            "datastore": str(d.datastore),
            "mid": orjson.dumps(d.mid, option=orjson.OPT_SORT_KEYS).decode(),
            "schema_version": d.schema_version,
            "created_at": d.created_at,
            "size": len(d.body),
            "asset_title": d.data["asset"]["title"],
            "properties": d.data["asset"],
        }
        for d in docs
    ]


def expected_events(docs: list[Document]) -> list[dict[str, Any]]:
    out = []
    for d in docs:
        for view in d.events():
            _, _, t, _, c, _, e = view.path.split("/")
            out.append(
                {
                    "document_id": str(d.id),
                    "datastore": str(d.datastore),
                    "created_at": d.created_at,
                    "track": int(t),
                    "component": int(c),
                    "event": int(e),
                    "time_start": float(view.time.start),
                    "time_end": float(view.time.end),
                    "regions": len(view.event.get("regions", [])),
                    "track_kind": view.track["kind"],
                    "component_algorithm": view.component["algorithm"],
                    "event_label": view.event["label"],
                    "event_confidence": view.event.get("confidence"),
                    "properties": {k: v for k, v in view.event.items() if k != "regions"},
                }
            )
    return out


def expected_regions(docs: list[Document]) -> list[dict[str, Any]]:
    out = []
    for d in docs:
        for view in d.events():
            _, _, t, _, c, _, e = view.path.split("/")
            for r, region in enumerate(view.event.get("regions", [])):
                box = region["bounding_box"]
                tr = region.get("time_range")
                out.append(
                    {
                        "document_id": str(d.id),
                        "track": int(t),
                        "component": int(c),
                        "event": int(e),
                        "region": r,
                        "x": box["x"],
                        "y": box["y"],
                        "w": box["w"],
                        "h": box["h"],
                        "time_start": None if tr is None else float(tr["start"]),
                        "time_end": None if tr is None else float(tr["end"]),
                        "region_person": region.get("person"),
                        "properties": region,
                    }
                )
    return out


def expected_annotations(db: reeldb.Database, ids: list[str]) -> list[dict[str, Any]]:
    out = []
    for ident in ids:
        for a in db.annotations.versions(NS, ident):
            data = a.data
            box = data.get("boundingBox")
            tr = data.get("boxTimeRange")
            out.append(
                {
                    "id": str(a.id),
                    "version": a.version,
                    "namespace": NS,
                    "type": a.type.name,
                    "type_version": a.type.version,
                    "deleted": a.deleted,
                    "created_at": a.created_at,
                    "associations": [x.to_json() for x in a.associations],
                    "time_start": None if tr is None else float(tr["start"]),
                    "time_end": None if tr is None else float(tr["end"]),
                    "box_x0": None if box is None else float(box["x"]),
                    "box_y1": None if box is None else float(box["y"] + box["h"]),
                    "data": data,
                    "data_label": data.get("label"),
                }
            )
    return out


def project(rows: list[dict[str, Any]], like: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows cut to the keys of the expected rows, JSON columns decoded."""
    keys = like[0].keys() if like else ()
    out = []
    for row in rows:
        picked = {k: row.get(k) for k in keys}
        for k in ("properties", "data"):
            if k in picked and isinstance(picked[k], str):
                picked[k] = orjson.loads(picked[k])
        out.append(picked)
    return out


def check_all(
    db: reeldb.Database,
    wh: Path,
    docs: list[Document],
    ann_ids: list[str],
    read: Reader = read_table,
) -> None:
    want = _sorted(expected_documents(docs), "document_id")
    got = _sorted(read(wh, "documents"), "document_id")
    assert project(got, want) == want
    assert [r["seq"] for r in got] == sorted({r["seq"] for r in got})  # one per document
    for name, expect, keys in (
        ("events", expected_events, ("document_id", "track", "component", "event")),
        ("regions", expected_regions, ("document_id", "track", "component", "event", "region")),
    ):
        want = _sorted(expect(docs), *keys)
        got = _sorted(read(wh, name), *keys)
        assert project(got, want) == want, name
    want = _sorted(expected_annotations(db, ann_ids), "id", "version")
    got = _sorted(read(wh, "annotations"), "id", "version")
    assert len(got) == len(want)  # every version once
    assert project(got, want) == want


# -- the tests --------------------------------------------------------------------------


def _annotate(db: reeldb.Database) -> list[str]:
    ann = db.annotations
    video = {"type": "VIDEO", "id": "video-42"}
    box = ann.create(
        NS,
        "BOUNDING_BOX",
        [video],
        {
            "boundingBox": {"x": 10, "y": 20, "w": 30, "h": 40},
            "boxTimeRange": {"start": 1, "end": 2},
        },
    )
    tag = ann.create(NS, "CONTENT_TAG", [video, {"type": "MOVIE", "id": "1"}], {"label": "noir"})
    gone = ann.create(NS, "CONTENT_TAG", [video], {"label": "oops"})
    ann.update(NS, tag.id, expected_version=1, data={"label": "neo-noir"})
    ann.delete(NS, gone.id)
    return [str(box.id), str(tag.id), str(gone.id)]


def test_export_reads_back_row_for_row_and_is_incremental(
    vision: reeldb.Database, tmp_path: Path
) -> None:
    db = vision
    docs = [
        db.put_document(DS, {"title_id": "1"}, face_document(3, title="one")),
        db.put_document(DS, {"title_id": "2"}, _frames_document()),
        db.put_document(DS, {"title_id": "1"}, face_document(1, title="one again")),
    ]
    ids = _annotate(db)
    first = export_iceberg(db)
    wh = tmp_path / "db" / "warehouse"  # the default: beside the SQLite file
    assert first.warehouse == wh.as_uri()
    assert first.rows == {"documents": 3, "events": 6, "regions": 7, "annotations": 5}
    assert first.documents == {DS: 3}
    assert first.annotations == {NS: 5}
    check_all(db, wh, docs, ids)

    # Nothing new: nothing appended, not even a commit.
    again = export_iceberg(db)
    assert again.rows == {"documents": 0, "events": 0, "regions": 0, "annotations": 0}
    assert again.commits == 0

    # New documents, an update of an OLD annotation (a new version of an old id), a new one.
    docs.append(db.put_document(DS, {"title_id": "3"}, face_document(2, title="three")))
    box_id = ids[0]
    db.annotations.update(
        NS,
        box_id,
        expected_version=1,
        data={
            "boundingBox": {"x": 1, "y": 2, "w": 3, "h": 4},
            "boxTimeRange": {"start": 5, "end": 6},
        },
    )
    ids.append(
        str(
            db.annotations.create(
                NS, "CONTENT_TAG", [{"type": "VIDEO", "id": "v"}], {"label": "x"}
            ).id
        )
    )
    second = export_iceberg(db)
    assert second.rows == {"documents": 1, "events": 2, "regions": 2, "annotations": 2}
    check_all(db, wh, docs, ids)


def test_many_changed_annotations_are_read_by_page(vision: reeldb.Database, tmp_path: Path) -> None:
    db = vision
    made = db.annotations.create_many(
        NS,
        [
            {
                "type": "CONTENT_TAG",
                "associations": [{"type": "VIDEO", "id": str(i)}],
                "data": {"label": f"l{i}"},
            }
            for i in range(150)
        ],
    )
    wh = tmp_path / "wh"
    assert export_iceberg(db, warehouse=str(wh), batch_rows=40).rows["annotations"] == 150
    for a in made[::2]:  # 75 changed annotations in one page: read again with bodies
        db.annotations.update(NS, a.id, expected_version=1, data={"label": "changed"})
    result = export_iceberg(db, warehouse=str(wh), tables=["annotations"])
    assert result.rows == {"annotations": 75}
    check_all_annotations = _sorted(read_table(wh, "annotations"), "id", "version")
    want = _sorted(expected_annotations(db, [str(a.id) for a in made]), "id", "version")
    assert project(check_all_annotations, want) == want


def test_a_killed_export_resumes_without_gaps_or_duplicates(
    vision: reeldb.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = vision
    docs = [
        db.put_document(DS, {"title_id": str(i)}, face_document(3, title=str(i))) for i in range(4)
    ]
    ids = _annotate(db)
    wh = tmp_path / "wh"
    commits = {"n": 0}
    real = Transaction.commit_transaction

    def dying(self: Transaction) -> Any:
        commits["n"] += 1
        if commits["n"] == 4:
            raise KeyboardInterrupt  # killed while committing the 4th batch
        return real(self)

    monkeypatch.setattr(Transaction, "commit_transaction", dying)
    with pytest.raises(KeyboardInterrupt):
        export_iceberg(db, warehouse=str(wh), batch_rows=2)  # cuts documents mid-way
    monkeypatch.setattr(Transaction, "commit_transaction", real)
    cat = SqlCatalog("reeldb", uri=f"sqlite:///{wh / 'catalog.db'}")
    marks = [
        cat.load_table(("reeldb", t)).properties.get(f"reeldb.watermark.{DS}")
        for t in ("events", "regions")
    ]
    cat.engine.dispose()
    assert any(m is not None and ":" in m for m in marks), marks  # a document was cut
    export_iceberg(db, warehouse=str(wh), batch_rows=2)
    check_all(db, wh, docs, ids)


def test_a_schema_that_gains_a_property_adds_a_column(
    vision: reeldb.Database, tmp_path: Path
) -> None:
    db = vision
    wh = tmp_path / "wh"
    docs = [db.put_document(DS, {"title_id": "1"}, face_document(1))]
    export_iceberg(db, warehouse=str(wh))
    v2 = copy.deepcopy(FACE_DETECTION)
    v2["levels"]["event"]["properties"]["shot"] = {"type": "int"}
    assert db.add_schema(NS, v2).version == 2
    docs.append(db.put_document(DS, {"title_id": "2"}, face_document(2, shot=7)))
    export_iceberg(db, warehouse=str(wh))
    rows = _sorted(read_table(wh, "events"), "document_id", "event")
    assert [(r["document_id"], r["event_shot"]) for r in rows] == [
        (str(docs[0].id), None),
        (str(docs[1].id), 7),
        (str(docs[1].id), 7),
    ]
    cat = SqlCatalog("reeldb", uri=f"sqlite:///{wh / 'catalog.db'}")
    field = cat.load_table(("reeldb", "events")).schema().find_field("event_shot")
    cat.engine.dispose()
    assert str(field.field_type) == "long"


def test_since_skips_older_data_for_good(vision: reeldb.Database, tmp_path: Path) -> None:
    db = vision
    old = db.put_document(DS, {"title_id": "1"}, face_document(1))
    old_tag = db.annotations.create(
        NS, "CONTENT_TAG", [{"type": "VIDEO", "id": "v"}], {"label": "a"}
    )
    time.sleep(0.01)
    cut = datetime.now(UTC)
    time.sleep(0.01)
    new = db.put_document(DS, {"title_id": "2"}, face_document(1))
    new_tag = db.annotations.create(
        NS, "CONTENT_TAG", [{"type": "VIDEO", "id": "v"}], {"label": "b"}
    )
    wh = tmp_path / "wh"
    result = export_iceberg(db, warehouse=str(wh), since=cut)
    assert result.rows["documents"] == 1 and result.rows["annotations"] == 1
    assert export_iceberg(db, warehouse=str(wh)).rows["annotations"] == 0  # the floor stays
    assert [r["document_id"] for r in read_table(wh, "documents")] == [str(new.id)]
    assert [r["id"] for r in read_table(wh, "annotations")] == [str(new_tag.id)]
    assert str(old.id) and str(old_tag.id)


def test_blob_documents_are_streamed(vision: reeldb.Database, tmp_path: Path) -> None:
    db = vision
    body = face_document(5, title="big")
    blob = db.blobs.put(NS, [orjson.dumps(body)])
    doc = db.put_document_from_blob(DS, {"title_id": "b"}, blob.id)
    wh = tmp_path / "wh"
    export_iceberg(db, warehouse=str(wh), tables=["documents", "events", "regions"])
    full = db.get_document(doc.id)
    check = [full]
    want = _sorted(expected_events(check), "event")
    assert project(_sorted(read_table(wh, "events"), "event"), want) == want
    want = _sorted(expected_regions(check), "event")
    assert project(_sorted(read_table(wh, "regions"), "event"), want) == want


def test_catalog_on_postgresql(vision: reeldb.Database, tmp_path: Path, postgres_url: str) -> None:
    db = vision
    docs = [db.put_document(DS, {"title_id": "1"}, face_document(2))]
    ids = _annotate(db)
    wh = tmp_path / "wh"
    result = export_iceberg(db, warehouse=str(wh), catalog=postgres_url)
    assert result.catalog.startswith("postgresql://")
    assert export_iceberg(db, warehouse=str(wh), catalog=postgres_url).commits == 0
    want = _sorted(expected_annotations(db, ids), "id", "version")
    got = _sorted(read_table(wh, "annotations", postgres_url), "id", "version")
    assert project(got, want) == want
    want = expected_documents(docs)
    assert project(read_table(wh, "documents", postgres_url), want) == want


def test_bad_input_gives_clear_errors(vision: reeldb.Database, tmp_path: Path) -> None:
    db = vision
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="is not a writable directory"):
        export_iceberg(db, warehouse=str(blocker / "wh"))
    with pytest.raises(ConfigError, match="the catalog is a SQL database"):
        export_iceberg(db, warehouse=str(tmp_path / "wh"), catalog="mysql://x@y/z")
    with pytest.raises(ConfigError, match="cannot open the Iceberg catalog"):
        export_iceberg(
            db, warehouse=str(tmp_path / "wh"), catalog="postgresql://nobody@127.0.0.1:1/none"
        )
    with pytest.raises(ValidationError, match="unknown Iceberg table"):
        export_iceberg(db, tables=["movies"])
    with pytest.raises(ValidationError, match="batch_rows"):
        export_iceberg(db, batch_rows=0)
    with pytest.raises(NotFoundError):
        export_iceberg(db, datastores=["vision/nope/1"])
    with reeldb.connect("memory:") as memory, pytest.raises(ConfigError, match="in-memory"):
        export_iceberg(memory)


def test_a_concurrent_export_is_refused(
    vision: reeldb.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = vision
    db.put_document(DS, {"title_id": "1"}, face_document(1))
    wh = tmp_path / "wh"
    export_iceberg(db, warehouse=str(wh))
    db.put_document(DS, {"title_id": "2"}, face_document(1))
    real = Transaction.commit_transaction
    state = {"raced": False}

    def racing(self: Transaction) -> Any:
        if not state["raced"]:  # another export commits first, from the same starting point
            state["raced"] = True
            monkeypatch.setattr(Transaction, "commit_transaction", real)
            export_iceberg(db, warehouse=str(wh), tables=["documents"])
        return real(self)

    monkeypatch.setattr(Transaction, "commit_transaction", racing)
    with pytest.raises(ConflictError, match="changed during the export"):
        export_iceberg(db, warehouse=str(wh), tables=["documents"])
    assert len(read_table(wh, "documents")) == 2  # no duplicate


def test_result_is_a_dataclass() -> None:
    assert IcebergExport("file:///w", "sqlite:///c").rows == {}


def test_export_from_a_postgresql_database(postgres_url: str, tmp_path: Path) -> None:
    with reeldb.connect(postgres_url) as db:
        db.create_namespace(NS)
        db.add_schema(NS, copy.deepcopy(FACE_DETECTION))
        db.create_datastore(DS, mid_keys=["title_id"], schema="face_detection")
        db.add_schema(NS, copy.deepcopy(BOUNDING_BOX))
        db.add_schema(NS, copy.deepcopy(TAG))
        docs = [
            db.put_document(DS, {"title_id": "1"}, face_document(2)),
            db.put_document(DS, {"title_id": "2"}, _frames_document()),
        ]
        ids = _annotate(db)
        wh = tmp_path / "wh"
        export_iceberg(db, warehouse=str(wh))
        docs.append(db.put_document(DS, {"title_id": "1"}, face_document(1, title="again")))
        db.annotations.update(NS, ids[1], expected_version=2, data={"label": "later"})
        assert export_iceberg(db, warehouse=str(wh)).rows == {
            "documents": 1,
            "events": 1,
            "regions": 1,
            "annotations": 1,
        }
        check_all(db, wh, docs, ids)


def test_duckdb_reads_the_four_tables_row_for_row(vision: reeldb.Database, tmp_path: Path) -> None:
    db = vision
    wh = tmp_path / "wh"
    docs = [
        db.put_document(DS, {"title_id": "1"}, face_document(3, title="one")),
        db.put_document(DS, {"title_id": "2"}, _frames_document()),
    ]
    ids = _annotate(db)
    export_iceberg(db, warehouse=str(wh))
    check_all(db, wh, docs, ids, read_table_duckdb)
    # A schema that gains a property (a column added), more documents and versions.
    v2 = copy.deepcopy(FACE_DETECTION)
    v2["levels"]["event"]["properties"]["shot"] = {"type": "int"}
    db.add_schema(NS, v2)
    docs.append(db.put_document(DS, {"title_id": "3"}, face_document(2, shot=4)))
    db.annotations.update(NS, ids[1], expected_version=2, data={"label": "later"})
    tag = copy.deepcopy(TAG)  # an annotation type that gains a property: data_score
    tag["keys"]["properties"]["score"] = {"type": "float"}
    del tag["version"]
    assert db.add_schema(NS, tag).version == 1
    scored = db.annotations.create(
        NS, "CONTENT_TAG", [{"type": "VIDEO", "id": "v"}], {"label": "s", "score": 0.5}
    )
    ids.append(str(scored.id))
    export_iceberg(db, warehouse=str(wh))
    check_all(db, wh, docs, ids, read_table_duckdb)
    scores = {r["id"]: r["data_score"] for r in read_table_duckdb(wh, "annotations")}
    assert scores[str(scored.id)] == 0.5 and scores[ids[0]] is None
    shots = {
        (r["document_id"], r["event"]): r["event_shot"] for r in read_table_duckdb(wh, "events")
    }
    assert shots[str(docs[2].id), 0] == 4 and shots[str(docs[0].id), 0] is None


def _many(db: reeldb.Database, n: int) -> list[str]:
    """Annotations of two types, some updated twice and some deleted: versions to page."""
    made = db.annotations.create_many(
        NS,
        [
            {
                "type": "CONTENT_TAG",
                "associations": [{"type": "VIDEO", "id": str(i)}],
                "data": {"label": f"l{i}"},
            }
            if i % 3
            else {
                "type": "BOUNDING_BOX",
                "associations": [{"type": "VIDEO", "id": str(i)}, {"type": "MOVIE", "id": "m"}],
                "data": {
                    "boundingBox": {"x": i, "y": 0.5, "w": 1, "h": 2.25},
                    "boxTimeRange": {"start": i, "end": i + 0.5},
                },
            }
            for i in range(n)
        ],
    )
    for i, a in list(enumerate(made))[1::4]:
        for version in (1, 2):
            data: dict[str, Any] = (
                {"label": f"v{version + 1}"}
                if i % 3
                else {
                    "boundingBox": {"x": 0, "y": version, "w": 3, "h": 4},
                    "boxTimeRange": {"start": version, "end": 9},
                }
            )
            db.annotations.update(NS, a.id, expected_version=version, data=data)
    for a in made[2::5]:
        db.annotations.delete(NS, a.id)
    return [str(a.id) for a in made]


@pytest.mark.parametrize("path", ["arrow", "python"])
def test_pages_cut_inside_an_annotation_and_both_body_paths(
    vision: reeldb.Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    db = vision
    ids = _many(db, 40)
    monkeypatch.setattr(_iceberg, "_PAGE", 7)  # pages end inside an annotation's versions
    if path == "python":  # the value-by-value path taken when Arrow's JSON reader refuses
        monkeypatch.setattr(_iceberg, "_parsed", lambda *args: None)
    wh = tmp_path / "wh"
    result = export_iceberg(db, warehouse=str(wh), tables=["annotations"], batch_rows=9)
    versions = sum(len(db.annotations.versions(NS, i)) for i in ids)
    assert result.rows == {"annotations": versions}
    want = _sorted(expected_annotations(db, ids), "id", "version")
    got = _sorted(read_table(wh, "annotations"), "id", "version")
    assert project(got, want) == want
    more = _many(db, 10)
    assert export_iceberg(db, warehouse=str(wh), tables=["annotations"]).rows == {
        "annotations": sum(len(db.annotations.versions(NS, i)) for i in more)
    }
    want = _sorted(expected_annotations(db, ids + more), "id", "version")
    got = _sorted(read_table_duckdb(wh, "annotations"), "id", "version")
    assert project(got, want) == want


def test_values_arrow_would_convert_otherwise_go_value_by_value(
    vision: reeldb.Database, tmp_path: Path
) -> None:
    db = vision
    kinds = {
        "type": "KINDS",
        "version": 0,
        "description": "every scalar kind",
        "keys": {
            "properties": {
                "n": {"type": "int"},
                "f": {"type": "float"},
                "b": {"type": "bool"},
                "s": {"type": "string"},
                "when": {"type": "time_range"},
            }
        },
    }
    db.add_schema(NS, kinds)
    video = [{"type": "VIDEO", "id": "v"}]
    plain = db.annotations.create(
        NS,
        "KINDS",
        video,
        {"n": 2**62, "f": 3, "b": True, "s": "é", "when": {"start": 1, "end": 2}},
    )
    frames = db.annotations.create(
        NS, "KINDS", video, {"f": 1.5, "when": {"start_frame": 24, "end_frame": 48, "rate": 24}}
    )
    wh = tmp_path / "wh"
    export_iceberg(db, warehouse=str(wh), tables=["annotations"])
    rows = {r["id"]: r for r in read_table(wh, "annotations")}
    got = rows[str(plain.id)]
    assert (got["data_n"], got["data_f"], got["data_b"], got["data_s"]) == (2**62, 3.0, True, "é")
    assert (got["time_start"], got["time_end"]) == (1.0, 2.0)
    got = rows[str(frames.id)]
    assert (got["data_n"], got["data_f"], got["time_start"], got["time_end"]) == (
        None,
        1.5,
        1.0,
        2.0,
    )
    assert "data_when" not in got  # structured values are in `data` and the time columns


def test_export_to_an_s3_warehouse(
    vision: reeldb.Database, tmp_path: Path, s3_warehouse: str
) -> None:
    from pyarrow import fs

    db = vision
    docs = [db.put_document(DS, {"title_id": "1"}, face_document(2))]
    ids = _annotate(db)
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    first = export_iceberg(db, warehouse=s3_warehouse, catalog=catalog)
    assert first.warehouse == s3_warehouse
    assert first.rows == {"documents": 1, "events": 2, "regions": 2, "annotations": 5}
    db.annotations.update(NS, ids[1], expected_version=2, data={"label": "later"})
    assert export_iceberg(db, warehouse=s3_warehouse, catalog=catalog).rows["annotations"] == 1

    # Read back by pyarrow straight from the bucket (the files pyiceberg lists).
    endpoint = s3_warehouse.split("endpoint=")[1].split("&")[0]
    bucket = s3_warehouse.removeprefix("s3://").split("/")[0]
    s3 = fs.S3FileSystem(
        endpoint_override=endpoint,
        region="us-east-1",
        access_key="testing-key-id",
        secret_key="testing-secret-key",
    )
    cat = SqlCatalog("reeldb", uri=catalog, **warehouse_io(s3_warehouse)[1])  # metadata on S3

    def read(name: str) -> list[dict[str, Any]]:
        table = cat.load_table(("reeldb", name))
        files = [task.file.file_path for task in table.scan().plan_files()]
        assert files and all(f.startswith(f"s3://{bucket}/lake/") for f in files)
        parts = [pq.read_table(f.removeprefix("s3://"), filesystem=s3) for f in files]
        return pa.concat_tables(parts, promote_options="permissive").to_pylist()

    try:
        want = _sorted(expected_annotations(db, ids), "id", "version")
        got = _sorted(read("annotations"), "id", "version")
        assert project(got, want) == want
        want = expected_documents(docs)
        assert project(read("documents"), want) == want
        assert len(read("events")) == 2
    finally:
        cat.engine.dispose()


def test_bad_s3_warehouses_are_config_errors(vision: reeldb.Database, tmp_path: Path) -> None:
    catalog = f"sqlite:///{tmp_path / 'catalog.db'}"
    with pytest.raises(ConfigError, match="must not hold credentials"):
        export_iceberg(vision, warehouse="s3://key:secret@bucket/x", catalog=catalog)
    with pytest.raises(ConfigError, match="unknown parameter color"):
        export_iceberg(vision, warehouse="s3://bucket/x?color=red", catalog=catalog)
    with pytest.raises(ConfigError, match="endpoint must be an http"):
        export_iceberg(vision, warehouse="s3://bucket/x?endpoint=ftp://h", catalog=catalog)
    with pytest.raises(ConfigError, match="a warehouse on S3 needs a catalog"):
        export_iceberg(vision, warehouse="s3://bucket/x")
