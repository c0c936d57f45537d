"""Contract: every SearchStore adapter indexes, answers and rebuilds like this.

Everything goes through the port (`Store`): documents are cut into rows with
`reeldb.index.rows`, queries are parsed and checked with `reeldb.query`, and answers are
compared with the reference evaluator `reeldb.query.oracle`. Streamed documents (an ingest
reserved, staged in batches and published) must be indexed exactly as written ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any
from uuid import UUID, uuid4

import orjson
import pytest
from uuid_utils.compat import uuid7

from reeldb.errors import ConflictError, NotFoundError, StaleSchemaError
from reeldb.index.rows import DocumentRows, RowCutter, columns_for, document_rows
from reeldb.model.datastore import DataStore, DataStoreRef
from reeldb.query import Expr, check_query, parse_query, searchable_fields
from reeldb.query.oracle import document_matches, matching_events
from reeldb.schema.model import CompatibilityMode, SchemaVersion
from reeldb.store import NewDocument, Store
from reeldb.store.base import DocumentBatch, DocumentRecord, IngestStart, IngestState
from reeldb.testing import NOW

FIELDS = searchable_fields(
    {
        "asset": {"title": {"type": "text"}, "year": {"type": "int"}},
        "track": {"lang": {"type": "keyword"}},
        "event": {
            "label": {"type": "keyword"},
            "confidence": {"type": "float"},
            "mood": {"type": "keyword"},
        },
        "region": {"person": {"type": "keyword"}},
    }
)
COLUMNS = columns_for(FIELDS)
Hit = tuple[int, UUID, str]


def q(text: str) -> Expr:
    expr = parse_query(text)
    check_query(expr, FIELDS)
    return expr


def region(person: str, x: float = 0.1, w: float = 0.2) -> dict[str, Any]:
    return {"bounding_box": {"x": x, "y": x, "w": w, "h": w}, "person": person}


def event(start: float, label: str = "face", *people: str, **extra: Any) -> dict[str, Any]:
    found = {"regions": [region(p, 0.1 * i) for i, p in enumerate(people)]} if people else {}
    return {"time_range": {"start": start, "end": start + 1}, "label": label, **found, **extra}


def media(
    *events: dict[str, Any], title: str = "calm day", year: int = 2026, lang: str = "en"
) -> dict[str, Any]:
    component = {"algorithm": "detector", "events": list(events)}
    track = {"lang": lang, "frame_rate": "24", "components": [component]}
    return {"asset": {"title": title, "year": year}, "tracks": [track]}


def rows(data: dict[str, Any]) -> DocumentRows:
    return document_rows(data, COLUMNS)


def batch(
    ds: DataStore, docs: Sequence[tuple[str, dict[str, Any]]], *, index: bool, version: int = 1
) -> DocumentBatch:
    """Documents as one batch, with their index rows unless ``index`` is False."""
    new = [NewDocument(uuid7(), mid, NOW, orjson.dumps(data)) for mid, data in docs]
    cut = [rows(data) for _, data in docs] if index else []
    return DocumentBatch(ds.id, version, new, columns=COLUMNS, index=cut)


def put(
    store: Store, ds: DataStore, docs: Sequence[tuple[str, dict[str, Any]]], *, index: bool = True
) -> list[Hit]:
    written = batch(ds, docs, index=index)
    [seqs] = store.put_document_batches([written])
    assert isinstance(seqs, list)
    return [(seq, d.id, d.mid_key) for seq, d in zip(seqs, written.documents, strict=True)]


def search(store: Store, ds: DataStore, text: str, *, all_versions: bool = False) -> list[Hit]:
    return store.search_documents(
        ds.id, q(text), all_versions=all_versions, limit=1000, after_seq=0
    )


def cut_records(records: list[DocumentRecord]) -> list[tuple[int, DocumentRows]]:
    return [(r.seq, rows(orjson.loads(r.body))) for r in records]


@pytest.fixture
def make_datastore(
    store: Store, make_schema: Callable[..., SchemaVersion]
) -> Callable[[int], DataStore]:
    store.create_namespace("vision", "", NOW)
    store.add_schema_version(make_schema("vision", "faces", 1), CompatibilityMode.BACKWARD, [])

    def make(version: int) -> DataStore:
        ref = DataStoreRef("vision", "faces", version)
        return store.create_datastore(ref, ("id",), "faces", 1, "", NOW)

    return make


@pytest.fixture
def ds(make_datastore: Callable[[int], DataStore]) -> DataStore:
    return make_datastore(1)


def test_latest_version_per_mid_all_versions_and_paging(store: Store, ds: DataStore) -> None:
    a1, b1 = put(store, ds, [("a", media(event(0, "face", "Alice"))), ("b", media(event(0)))])
    [a2] = put(store, ds, [("a", media(event(1, "face", "Alice")))])
    b2, c1 = put(store, ds, [("b", media(event(0, "car"))), ("c", media(event(2, "face", "Al")))])
    assert search(store, ds, 'event.label = "face"') == [a2, c1]
    assert search(store, ds, 'event.label = "face"', all_versions=True) == [a1, b1, a2, c1]
    assert search(store, ds, 'region.person = "Alice"') == [a2]  # only a's latest
    assert search(store, ds, 'region.person = "Alice"', all_versions=True) == [a1, a2]
    assert search(store, ds, 'event.label = "car"') == [b2]
    assert search(store, ds, 'event.label = "dog"') == []
    expr, pages, after = q('event.label = "face"'), [], 0
    while page := store.search_documents(ds.id, expr, all_versions=True, limit=3, after_seq=after):
        pages.append(page)
        after = page[-1][0]
    assert pages == [[a1, b1, a2], [c1]]
    assert store.search_documents(ds.id, expr, all_versions=False, limit=1, after_seq=a2[0]) == [c1]


def test_count_matches_within_and_beyond_the_budget(store: Store, ds: DataStore) -> None:
    many = [event(i, "face" if i % 3 else "car", "Alice", confidence=i / 300) for i in range(300)]
    put(store, ds, [(m, media(*many)) for m in "abcd"])
    put(store, ds, [("a", media(*many, title="storm")), ("e", media(event(0, "car")))])
    for text in ('event.label = "face"', "event.confidence >= 0.5", 'not event.label = "x"'):
        for all_versions in (False, True):
            found = search(store, ds, text, all_versions=all_versions)
            counted = store.count_matches(ds.id, q(text), all_versions=all_versions, budget=10**9)
            assert counted == len(found) > 0, text
    assert (
        store.count_matches(ds.id, q("event.confidence >= 0.5"), all_versions=True, budget=10**9)
        == 5
    )
    assert (
        store.count_matches(ds.id, q('not event.label = "x"'), all_versions=False, budget=1) is None
    )
    assert (
        store.count_matches(ds.id, q('event.label = "dog"'), all_versions=True, budget=10**9) == 0
    )


def test_search_events_in_time_order_with_context_and_paging(store: Store, ds: DataStore) -> None:
    later = event(3, "face", "Alice", "Bob", "Alice", mood="calm")
    data = media(later, event(1, "car", "Alice"), event(2, "face"), event(0.5, "face", "Bob"))
    data["tracks"].append(
        {"lang": "fr", "components": [{"algorithm": "other", "events": [event(2, "face")]}]}
    )
    [(seq, _, _)] = put(store, ds, [("a", data)])
    [(other, _, _)] = put(store, ds, [("b", media(event(0, "face", "Alice")))])
    hits = store.search_events(ds.id, seq, q('event.label = "face"'), limit=100, offset=0)
    assert [h.path for h in hits] == [(0, 0, 3), (0, 0, 2), (1, 0, 0), (0, 0, 0)]
    assert [(h.start, h.end) for h in hits] == [(0.5, 1.5), (2.0, 3.0), (2.0, 3.0), (3.0, 4.0)]
    assert [h.regions for h in hits] == [(0,), (), (), (0, 1, 2)]
    last = hits[-1]
    assert last.event == later
    assert last.track == {"lang": "en", "frame_rate": "24"}
    assert last.component == {"algorithm": "detector"}
    assert hits[2].track == {"lang": "fr"} and hits[2].component == {"algorithm": "other"}
    alice = store.search_events(ds.id, seq, q('region.person = "Alice"'), limit=100, offset=0)
    assert [(h.path, h.regions) for h in alice] == [((0, 0, 1), (0,)), ((0, 0, 0), (0, 2))]
    paged = [
        store.search_events(ds.id, seq, q('event.label = "face"'), limit=3, offset=offset)
        for offset in (0, 3, 6)
    ]
    assert paged == [hits[:3], hits[3:], []]
    assert store.search_events(ds.id, seq, q('event.label = "dog"'), limit=10, offset=0) == []
    assert len(store.search_events(ds.id, other, q('event.label = "face"'), limit=9, offset=0)) == 1


ORACLE_DOCS: list[dict[str, Any]] = [
    media(event(0, "face", "Alice"), event(1.5, "car", "Bob"), title="Storms and heavy rain"),
    media(
        event(2, "face", "Carol", mood="calm"), event(3, "face", mood="calm"), year=1999, lang="fr"
    ),
    media(event(10, "car", mood="tense"), title="a storm warning", year=2001),
    {"asset": {"title": "nothing below", "year": 2026}},
    media(event(0.5, "face", "Bob", "Alice"), event(1, "face", "Alice"), lang="de"),
]
ORACLE_QUERIES = [
    'event.label = "face"',
    'track.lang != "en"',
    'region.person in ("Alice", "Carol")',
    "asset.title contains storm",
    'asset.title contains "heavy rains"',
    "event.time_range overlaps(1, 2)",
    "region.bounding_box intersects(0.25, 0.25, 0.5, 0.5)",
    "region.bounding_box within(0, 0, 0.3, 0.3)",
    'not event.mood = "calm"',
    'count(event where event.label = "face") >= 2',
    'asset.year > 2000 and region.person = "Bob"',
    'event.confidence >= 0.5 or not asset.title contains "storm"',
]


@pytest.mark.parametrize("text", ORACLE_QUERIES)
def test_answers_agree_with_the_oracle(store: Store, ds: DataStore, text: str) -> None:
    stored = put(store, ds, [(f"m{i}", data) for i, data in enumerate(ORACLE_DOCS)])
    expr = q(text)
    expected = [
        hit for hit, data in zip(stored, ORACLE_DOCS, strict=True) if document_matches(expr, data)
    ]
    assert 0 < len(expected) < len(ORACLE_DOCS), "the query should select some documents"
    assert search(store, ds, text) == expected
    for (seq, _, _), data in zip(stored, ORACLE_DOCS, strict=True):
        want = [(m.path, m.start, m.end, m.regions) for m in matching_events(expr, data)]
        hits = store.search_events(ds.id, seq, expr, limit=100, offset=0)
        assert [(h.path, h.start, h.end, h.regions) for h in hits] == want, data


def test_rebuild_fills_a_generation_queries_do_not_read_until_the_swap(
    store: Store, ds: DataStore
) -> None:
    data = media(event(0, "face", "Alice"))
    d1, d2 = put(store, ds, [("a", data), ("b", data)])
    [d3] = put(store, ds, [("c", data)], index=False)
    [old] = store.index_generations(ds.id)
    assert old.in_alias and old.state == "active" and old.docs == 2
    gen = store.begin_index_rebuild(ds.id, COLUMNS)
    assert (gen.state, gen.in_alias, gen.docs) == ("building", False, 0) and gen.id != old.id
    assert gen.columns == tuple(COLUMNS)
    assert store.index_checkpoint(gen.id) == 0
    store.index_documents(ds.id, gen, [(d[0], rows(data)) for d in (d1, d2, d3)])
    assert store.index_checkpoint(gen.id) == d3[0]
    # The building generation holds d3, but queries still read the old one only.
    assert search(store, ds, 'region.person = "Alice"') == [d1, d2]
    assert store.index_coverage(ds.id) == (2, 3)
    resumed = store.begin_index_rebuild(ds.id, COLUMNS)
    assert (resumed.id, resumed.docs, resumed.in_alias) == (gen.id, 3, False)
    [d4] = put(store, ds, [("d", data)])
    [d5] = put(store, ds, [("e", data)], index=False)
    assert search(store, ds, 'region.person = "Alice"') == [d1, d2, d4]
    caught: list[int] = []

    def catch_up(records: list[DocumentRecord]) -> list[tuple[int, DocumentRows]]:
        caught.extend(r.seq for r in records)
        return cut_records(records)

    store.finish_index_rebuild(ds.id, resumed, catch_up)
    assert caught == [d4[0], d5[0]]
    [final] = store.index_generations(ds.id)
    assert (final.id, final.state, final.in_alias, final.docs) == (gen.id, "active", True, 5)
    assert search(store, ds, 'region.person = "Alice"') == [d1, d2, d3, d4, d5]
    assert store.index_coverage(ds.id) == (5, 5)
    [d6] = put(store, ds, [("f", data)])  # written to the new one
    assert search(store, ds, 'region.person = "Alice"')[-1] == d6
    assert [g.id for g in store.index_generations(ds.id)] == [gen.id]


def test_a_failed_catch_up_leaves_the_old_index_serving(store: Store, ds: DataStore) -> None:
    [d1] = put(store, ds, [("a", media(event(0, "face", "Alice")))])
    [old] = store.index_generations(ds.id)
    gen = store.begin_index_rebuild(ds.id, COLUMNS)

    def refuse(records: list[DocumentRecord]) -> list[tuple[int, DocumentRows]]:
        raise RuntimeError("the schema moved")

    with pytest.raises(RuntimeError, match="the schema moved"):
        store.finish_index_rebuild(ds.id, gen, refuse)
    assert [g.id for g in store.index_generations(ds.id) if g.in_alias] == [old.id]
    assert search(store, ds, 'region.person = "Alice"') == [d1]
    assert store.index_coverage(ds.id) == (1, 1)


def test_index_coverage_counts_indexed_and_stored_documents(store: Store, ds: DataStore) -> None:
    assert store.index_coverage(ds.id) == (0, 0)
    assert store.index_generations(ds.id) == []
    put(store, ds, [("a", media(event(0))), ("b", media(event(1)))])
    [unindexed] = put(store, ds, [("c", media(event(2)))], index=False)
    assert store.index_coverage(ds.id) == (2, 3)
    store.put_documents(ds.id, 1, [NewDocument(uuid7(), "d", NOW, b"{}")])
    assert store.index_coverage(ds.id) == (2, 4)
    assert unindexed not in search(store, ds, 'event.label = "face"', all_versions=True)
    # Index rows are written with their documents, all or none, batch by batch.
    face = media(event(0))
    results = store.put_document_batches(
        [
            batch(ds, [("e", face)], index=True),
            batch(ds, [("f", face)], index=True, version=2),  # stale: nothing is stored
            batch(ds, [("g", face)], index=False),
        ]
    )
    assert isinstance(results[1], StaleSchemaError)
    assert store.index_coverage(ds.id) == (3, 6)
    found = search(store, ds, 'event.label = "face"', all_versions=True)
    assert [mid for _, _, mid in found] == ["a", "b", "e"]


def test_an_index_answers_only_for_its_own_datastore(
    store: Store, make_datastore: Callable[[int], DataStore]
) -> None:
    one, two = make_datastore(1), make_datastore(2)
    [in_one] = put(store, one, [("a", media(event(0, "face", "Alice")))])
    [in_two] = put(store, two, [("a", media(event(0, "face", "Alice")))])
    [only_two] = put(store, two, [("b", media(event(0, "face", "Alice")))])
    for ds, expected in ((one, [in_one]), (two, [in_two, only_two])):
        for all_versions in (False, True):
            assert (
                search(store, ds, 'region.person = "Alice"', all_versions=all_versions) == expected
            )
        count = store.count_matches(
            ds.id, q("event.time_range overlaps(0, 1)"), all_versions=True, budget=10**9
        )
        assert count == len(expected)
    # A sequence number that is not one of the first DataStore's documents.
    face = q('event.label = "face"')
    assert store.search_events(one.id, only_two[0], face, limit=9, offset=0) == []
    assert store.index_coverage(one.id) == (1, 1) and store.index_coverage(two.id) == (2, 2)
    gen = store.begin_index_rebuild(one.id, COLUMNS)
    store.finish_index_rebuild(one.id, gen, cut_records)
    assert search(store, two, 'region.person = "Alice"') == [in_two, only_two]
    assert [g.in_alias for g in store.index_generations(two.id)] == [True]
    assert search(store, one, 'region.person = "Alice"') == [in_one]


# -- streamed documents: reserved, staged in batches, published -------------------------------


def cut_in_batches(data: dict[str, Any]) -> list[DocumentRows]:
    """A document's rows in several batches, as an ingest stages them (one per event)."""
    cutter = RowCutter(COLUMNS, chunk_bytes=120)
    batches = []
    cutter.document(data.get("asset"))
    for t, track in enumerate(data.get("tracks") or []):
        cutter.track(t, {k: v for k, v in track.items() if k != "components"})
        for c, component in enumerate(track.get("components") or []):
            cutter.component(c, {k: v for k, v in component.items() if k != "events"})
            for e, item in enumerate(component.get("events") or []):
                cutter.event(e, item)
                batches.append(cutter.take())
            cutter.end_component()
        cutter.end_track()
    cutter.end_document()
    batches.append(cutter.take())
    return batches


def start_of(ds: DataStore, data: dict[str, Any], mid: str = "s") -> IngestStart:
    batches = cut_in_batches(data)
    return IngestStart(
        uuid4(),
        ds.id,
        1,
        uuid7(),
        mid,
        NOW,
        uuid4(),
        len(orjson.dumps(data)),
        COLUMNS,
        sum(len(b.rows) for b in batches),
        sum(len(b.chunks) for b in batches),
    )


def stage_all(store: Store, start: IngestStart, data: dict[str, Any]) -> IngestState:
    rows_at = chunks_at = events = 0
    state = store.get_ingest(start.id)
    for part in cut_in_batches(data):
        events += len(part.events)
        state = store.stage_ingest(
            start.id, part, rows_at=rows_at, chunks_at=chunks_at, events=events
        )
        rows_at += len(part.rows)
        chunks_at += len(part.chunks)
    return state


STREAMED = media(
    event(2, "face", "Alice", "Bob"),
    event(0.5, "car"),
    event(1, "face", "Carol", mood="calm"),
    title="heavy storms",
)


def test_a_streamed_document_is_invisible_until_published_then_indexed_as_written(
    store: Store, ds: DataStore
) -> None:
    start = start_of(ds, STREAMED)
    begun = store.begin_ingest(start)
    assert (begun.id, begun.document_id, begun.state) == (start.id, start.document_id, "staging")
    assert (begun.rows, begun.chunks, begun.rows_done) == (start.rows, start.chunks, 0)
    assert store.begin_ingest(start) == begun  # idempotent: the same reservation
    [written] = put(store, ds, [("w", STREAMED)])  # written meanwhile: a later number
    assert written[0] > begun.doc_seq
    with pytest.raises(ConflictError, match="rows staged; it cannot be published"):
        store.publish_ingest(start.id)
    state = stage_all(store, start, STREAMED)
    assert (state.rows_done, state.chunks_done, state.state) == (
        start.rows,
        start.chunks,
        "staging",
    )
    assert state.events_done == 3
    assert search(store, ds, 'event.label = "face"') == [written]  # staged rows are invisible
    assert store.index_coverage(ds.id) == (1, 1)
    record = store.publish_ingest(start.id)
    assert (record.seq, record.id, record.mid_key, record.blob) == (
        begun.doc_seq,
        start.document_id,
        "s",
        start.blob,
    )
    assert (record.body, record.size, record.schema_version) == (b"", start.size, 1)
    assert store.publish_ingest(start.id) == record  # idempotent
    assert store.get_ingest(start.id).state == "published"
    streamed = (record.seq, record.id, "s")
    assert store.index_coverage(ds.id) == (2, 2)
    for text in ORACLE_QUERIES:
        expr = q(text)
        want = [streamed, written] if document_matches(expr, STREAMED) else []
        assert search(store, ds, text) == want, text
        hits = store.search_events(ds.id, record.seq, expr, limit=100, offset=0)
        same = store.search_events(ds.id, written[0], expr, limit=100, offset=0)
        assert hits == same, text
    assert store.locate_document(start.document_id).seq == record.seq


def test_staging_refuses_batches_out_of_turn_and_discarding_forgets_them(
    store: Store, ds: DataStore
) -> None:
    start = start_of(ds, STREAMED)
    store.begin_ingest(start)
    [first, *_] = cut_in_batches(STREAMED)
    store.stage_ingest(start.id, first, rows_at=0, chunks_at=0, events=1)
    with pytest.raises(ConflictError, match="another worker staged this batch"):
        store.stage_ingest(start.id, first, rows_at=0, chunks_at=0, events=1)
    too_many = DocumentRows(first.rows * (start.rows + 1), [], [], [])
    with pytest.raises(ConflictError, match="got more rows than it reserved"):
        store.stage_ingest(
            start.id, too_many, rows_at=len(first.rows), chunks_at=len(first.chunks), events=1
        )
    store.discard_ingest(start.id)
    store.discard_ingest(start.id)  # idempotent
    assert store.get_ingest(start.id).state == "discarded"
    with pytest.raises(ConflictError, match="is discarded, not staging"):
        store.stage_ingest(start.id, first, rows_at=len(first.rows), chunks_at=0, events=1)
    with pytest.raises(ConflictError, match="is discarded; it cannot be published"):
        store.publish_ingest(start.id)
    assert search(store, ds, 'region.person = "Alice"', all_versions=True) == []
    again = start_of(ds, STREAMED)  # the same document, streamed anew
    store.begin_ingest(again)
    stage_all(store, again, STREAMED)
    record = store.publish_ingest(again.id)
    assert search(store, ds, 'region.person = "Alice"') == [(record.seq, record.id, "s")]
    assert [
        h.path
        for h in store.search_events(
            ds.id, record.seq, q('event.label = "face"'), limit=9, offset=0
        )
    ] == [(0, 0, 2), (0, 0, 0)]
    with pytest.raises(NotFoundError, match="does not exist"):
        store.get_ingest(uuid4())
    with pytest.raises(NotFoundError, match="does not exist"):
        store.stage_ingest(uuid4(), first, rows_at=0, chunks_at=0, events=0)
    store.discard_ingest(uuid4())  # nothing to discard


def test_an_ingest_needs_its_datastore_at_its_schema_version(store: Store, ds: DataStore) -> None:
    with pytest.raises(NotFoundError, match="DataStore #999 does not exist"):
        store.begin_ingest(replace(start_of(ds, STREAMED), datastore_id=999))
    with pytest.raises(StaleSchemaError, match="moved to schema version 1 during the write"):
        store.begin_ingest(replace(start_of(ds, STREAMED), schema_version=2))


def test_a_streamed_document_published_during_a_rebuild_is_in_the_new_generation(
    store: Store, ds: DataStore
) -> None:
    [first] = put(store, ds, [("a", media(event(0, "face", "Alice")))])
    start = start_of(ds, STREAMED)
    begun = store.begin_ingest(start)
    stage_all(store, start, STREAMED)
    [later] = put(store, ds, [("b", media(event(0, "face", "Alice")))])
    gen = store.begin_index_rebuild(ds.id, COLUMNS)
    store.index_documents(ds.id, gen, [(first[0], rows(media(event(0, "face", "Alice"))))])
    store.index_documents(ds.id, gen, [(later[0], rows(media(event(0, "face", "Alice"))))])
    assert store.index_checkpoint(gen.id) == later[0] > begun.doc_seq
    record = store.publish_ingest(start.id)  # behind the rebuild's checkpoint
    caught: list[int] = []

    def catch_up(records: list[DocumentRecord]) -> list[tuple[int, DocumentRows]]:
        caught.extend(r.seq for r in records)
        return [(r.seq, rows(STREAMED)) for r in records]

    store.finish_index_rebuild(ds.id, gen, catch_up)
    assert caught == [record.seq]
    streamed = (record.seq, record.id, "s")
    assert search(store, ds, 'region.person = "Alice"') == [first, streamed, later]
    assert store.index_coverage(ds.id) == (3, 3)
    # Reserved in a generation a rebuild then swapped away: refused, to be begun again.
    again = start_of(ds, STREAMED, mid="t")
    store.begin_ingest(again)
    stage_all(store, again, STREAMED)
    newer = store.begin_index_rebuild(ds.id, COLUMNS)
    store.finish_index_rebuild(
        ds.id,
        newer,
        lambda records: [
            (r.seq, rows(STREAMED if r.blob else orjson.loads(r.body))) for r in records
        ],
    )
    with pytest.raises(ConflictError, match="was dropped during the write; retry"):
        store.publish_ingest(again.id)
    assert search(store, ds, 'region.person = "Alice"') == [first, streamed, later]
