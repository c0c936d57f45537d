"""`reeldb.analytics.export_iceberg`: the four tables read back independently, row for row.

The tables are read with pyarrow from the Parquet files the current snapshot lists (pyiceberg
only lists them), and compared with what the test wrote through reeldb's public API.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Transaction

import reeldb
from reeldb.analytics import IcebergExport, export_iceberg
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


def read_table(warehouse: Path, name: str, catalog: str | None = None) -> list[dict[str, Any]]:
    """Every row of a table, read by pyarrow from the files of its current snapshot."""
    uri = catalog or f"sqlite:///{warehouse / 'catalog.db'}"
    cat = SqlCatalog("reeldb", uri=uri.replace("postgresql://", "postgresql+psycopg://"))
    try:
        table = cat.load_table(("reeldb", name))
    finally:
        cat.engine.dispose()
    files = [task.file.file_path.removeprefix("file://") for task in table.scan().plan_files()]
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


def check_all(db: reeldb.Database, wh: Path, docs: list[Document], ann_ids: list[str]) -> None:
    want = _sorted(expected_documents(docs), "document_id")
    got = _sorted(read_table(wh, "documents"), "document_id")
    assert project(got, want) == want
    assert [r["seq"] for r in got] == sorted({r["seq"] for r in got})  # one per document
    for name, expect, keys in (
        ("events", expected_events, ("document_id", "track", "component", "event")),
        ("regions", expected_regions, ("document_id", "track", "component", "event", "region")),
    ):
        want = _sorted(expect(docs), *keys)
        got = _sorted(read_table(wh, name), *keys)
        assert project(got, want) == want, name
    want = _sorted(expected_annotations(db, ann_ids), "id", "version")
    got = _sorted(read_table(wh, "annotations"), "id", "version")
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
