"""Contract: every AnnotationStore adapter stores, versions and searches annotations like this.

Everything goes through the port (`Store`): writes are `AnnotationWrite` objects built here
the way `reeldb.annotations` builds them (stems as FTS tokens, facets as JSON), searches are
`AnnotationQuery` objects, and pages are followed through the ``after`` the store returns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any
from uuid import UUID

import orjson
import pytest
from uuid_utils.compat import uuid7

from reeldb.auth.model import AuditEntry
from reeldb.errors import AlreadyExistsError, NotFoundError, VersionConflictError
from reeldb.index.sqlite import fts_token
from reeldb.query import parse_query
from reeldb.query.fulltext import stems
from reeldb.store import Store
from reeldb.store.base import AnnotationQuery, AnnotationRecord, AnnotationWrite
from reeldb.testing import NOW

NS = "vision"
TSB = "reeldb/TEMPORAL_SPATIAL_BASE v0"
LINEAGES = {
    ("NOTE", 1): ("vision/NOTE v1", TSB),
    ("NOTE", 2): ("vision/NOTE v2", TSB),
    ("CHARACTER", 1): ("vision/CHARACTER v1", TSB, "vision/LABELED v1"),
    ("TAG", 1): ("vision/TAG v1",),
}
V1, V2, S1 = ("VIDEO", "v1"), ("VIDEO", "v2"), ("SHOT", "s1")


def tokens(text: str) -> str:
    return " ".join(fts_token(s) for s in stems(text))


def write(
    ident: UUID,
    expected: int = 0,
    *,
    namespace: str = NS,
    kind: tuple[str, int] = ("NOTE", 1),
    links: Sequence[tuple[str, str]] = (V1,),
    time: tuple[float, float] | None = None,
    box: tuple[float, float, float, float] | None = None,
    texts: dict[str, str] | None = None,
    facets: dict[str, Any] | None = None,
    deleted: bool = False,
    data: dict[str, Any] | None = None,
    by: str | None = None,
) -> AnnotationWrite:
    """A write as the service makes it; ``box`` is ``(x0, y0, x1, y1)``."""
    content = dict(data or {})
    content.setdefault("texts", texts or {})
    body = {"associations": [{"type": t, "id": i} for t, i in links], "data": content}
    return AnnotationWrite(
        id=ident,
        namespace=namespace,
        expected_version=expected,
        type_name=kind[0],
        type_version=kind[1],
        lineage=LINEAGES[kind],
        deleted=deleted,
        created_at=NOW + timedelta(seconds=expected),
        created_by=by,
        body=orjson.dumps(body),
        associations=tuple(links),
        time=time,
        box=box,
        texts=tuple((name, tokens(value)) for name, value in (texts or {}).items()),
        facets=orjson.dumps(facets or {}),
    )


def put(store: Store, *writes: AnnotationWrite) -> None:
    store.put_annotations(list(writes))


def data_of(record: AnnotationRecord) -> dict[str, Any]:
    found: dict[str, Any] = orjson.loads(record.body)
    return found


def query(**fields: Any) -> AnnotationQuery:
    fields.setdefault("namespace", NS)
    if isinstance(fields.get("where"), str):
        fields["where"] = parse_query(fields["where"])
    return AnnotationQuery(**fields)


def find(store: Store, q: AnnotationQuery) -> list[UUID]:
    """Every page of a search, following ``after``."""
    return [r.id for r in pages(store, q)]


def pages(store: Store, q: AnnotationQuery) -> list[AnnotationRecord]:
    out: list[AnnotationRecord] = []
    after = None
    for _ in range(1000):
        records, after = store.search_annotations(replace(q, after=after))
        assert len(records) <= q.limit
        out += records
        if after is None:
            return out
        assert records
    raise AssertionError("the pages never end")


@pytest.fixture
def ns(store: Store) -> Store:
    store.create_namespace(NS, "", NOW)
    store.create_namespace("other", "", NOW)
    return store


# -- put, get, versions -----------------------------------------------------------------------


def test_put_get_and_versions(ns: Store) -> None:
    store = ns
    a = uuid7()
    first = write(a, data={"n": 1}, by="user:alice")
    put(store, first)
    record = store.get_annotation(NS, a)
    assert (record.id, record.namespace, record.version, record.latest) == (a, NS, 1, 1)
    assert (record.type_name, record.type_version, record.deleted) == ("NOTE", 1, False)
    assert (record.created_at, record.created_by, record.body) == (NOW, "user:alice", first.body)
    assert record.score is None
    second = write(a, 1, kind=("NOTE", 2), links=(V2, S1), data={"n": 2})
    put(store, second)
    now, old = store.get_annotation(NS, a), store.get_annotation(NS, a, 1)
    assert (now.version, now.latest, now.type_version, now.body) == (2, 2, 2, second.body)
    assert (old.version, old.latest, old.type_version, old.body) == (1, 2, 1, first.body)
    assert store.get_annotation(NS, a, 2) == now
    assert [(r.version, data_of(r)["data"]["n"]) for r in store.annotation_versions(NS, a)] == [
        (1, 1),
        (2, 2),
    ]
    for missing in ((NS, a, 3), (NS, a, 0), ("other", a, None), (NS, uuid7(), None)):
        with pytest.raises(NotFoundError):
            store.get_annotation(*missing)
    with pytest.raises(NotFoundError):
        store.annotation_versions("other", a)
    with pytest.raises(NotFoundError):
        store.annotation_versions(NS, uuid7())


def test_audit_entries_are_stored_with_the_write(ns: Store) -> None:
    entry = AuditEntry(0, NOW, "user:alice", "annotation.create", NS, "/x", "req-1", 201)
    ns.put_annotations([write(uuid7())], [entry])
    [logged] = ns.list_audit(NS, limit=10, before_seq=None)
    assert (logged.principal, logged.action) == ("user:alice", "annotation.create")
    assert logged.request_id == "req-1"


# -- expected versions ----------------------------------------------------------------------


def test_expected_version_semantics(ns: Store) -> None:
    store = ns
    a = uuid7()
    put(store, write(a))
    with pytest.raises(AlreadyExistsError):  # 0: must not exist
        put(store, write(a))
    with pytest.raises(AlreadyExistsError):  # ids are unique across namespaces
        put(store, write(a, namespace="other"))
    put(store, write(a, 1))
    for wrong in (1, 3):
        with pytest.raises(VersionConflictError) as caught:
            put(store, write(a, wrong))
        assert caught.value.current == 2
    with pytest.raises(NotFoundError):  # an update of an id that does not exist
        put(store, write(uuid7(), 1))
    with pytest.raises(NotFoundError):  # nor in this namespace
        put(store, write(a, 2, namespace="other"))
    put(store, write(a, 2, deleted=True))
    with pytest.raises(VersionConflictError) as caught:  # a tombstone is final
        put(store, write(a, 3))
    assert caught.value.current == 3
    with pytest.raises(VersionConflictError):
        put(store, write(a, 3, deleted=True))
    assert [r.version for r in store.annotation_versions(NS, a)] == [1, 2, 3]
    assert store.get_annotation(NS, a).deleted


@pytest.mark.parametrize("failure", ["stale", "taken", "missing", "namespace"])
def test_a_batch_whose_last_write_fails_stores_nothing(ns: Store, failure: str) -> None:
    store = ns
    old, taken = uuid7(), uuid7()
    put(store, write(old, texts={"comment": "before"}), write(taken))
    put(store, write(old, 1, time=(0, 1), texts={"comment": "before"}))
    fresh = [uuid7(), uuid7()]
    last = {
        "stale": write(taken, 2),
        "taken": write(taken),
        "missing": write(uuid7(), 1),
        "namespace": write(taken, 1, namespace="other"),
    }[failure]
    batch = [
        write(fresh[0], links=(S1,), time=(5, 6), texts={"comment": "after"}),
        write(old, 2, links=(S1,), time=(5, 6), texts={"comment": "after"}),
        write(fresh[1], links=(S1,), box=(0, 0, 1, 1)),
        last,
    ]
    error = {"stale": VersionConflictError, "taken": AlreadyExistsError}.get(failure, NotFoundError)
    with pytest.raises(error):
        store.put_annotations(batch)
    for ident in fresh:
        with pytest.raises(NotFoundError):
            store.get_annotation(NS, ident)
    assert store.get_annotation(NS, old).version == 2
    assert store.count_annotations(NS) == 2
    assert find(store, query(associations=(S1,))) == []
    assert find(store, query(time=(5, 6))) == []
    assert find(store, query(text=(tokens("after"),))) == []
    assert find(store, query(text=(tokens("before"),))) == [old]
    assert find(store, query(associations=(V1,), time=(0, 1))) == [old]
    put(store, *batch[:3])  # the same writes without the bad one go through
    assert store.count_annotations(NS) == 4


def test_batches_commit_together_and_fail_alone(ns: Store) -> None:
    store = ns
    a, b, c = uuid7(), uuid7(), uuid7()
    put(store, write(a))
    results = store.put_annotation_batches(
        [
            ([write(b)], []),
            ([write(c), write(a, 5)], []),  # stale: c is not stored either
            ([write(a, 1, links=(S1,))], []),
        ]
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], VersionConflictError) and results[1].current == 1
    assert store.get_annotation(NS, b).version == 1
    assert store.get_annotation(NS, a).version == 2
    with pytest.raises(NotFoundError):
        store.get_annotation(NS, c)
    assert find(store, query(associations=(S1,))) == [a]
    assert store.count_annotations(NS) == 2
    assert store.put_annotation_batches([]) == []


def test_a_single_failing_batch_is_reported_not_raised(ns: Store) -> None:
    a = uuid7()
    put(ns, write(a))
    [result] = ns.put_annotation_batches([([write(a, 7)], [])])
    assert isinstance(result, VersionConflictError)


# -- tombstones, counts, settings -------------------------------------------------------------


def test_tombstones_leave_search_and_count(ns: Store) -> None:
    store = ns
    a, b = uuid7(), uuid7()
    facets = {"label": "car"}
    shape: dict[str, Any] = {"time": (1, 2), "box": (0, 0, 1, 1), "texts": {"comment": "gloves"}}
    put(store, write(a, links=(V1, S1), facets=facets, **shape), write(b, links=(V1,), **shape))
    searches = [
        query(),
        query(associations=(V1,)),
        query(associations=(S1, V1)),
        query(types=("vision/NOTE v1",)),
        query(types=(TSB,)),
        query(time=(1.5, 1.5)),
        query(box=(0.5, 0.5, 0.5, 0.5)),
        query(text=(tokens("glove"),)),
        query(text=(tokens("glove"),), sort="relevance"),
        query(where='data.label = "car"', kinds={"label": "keyword"}),
    ]
    assert [a in find(store, q) for q in searches] == [True] * len(searches)
    assert store.count_annotations(NS) == 2
    put(store, write(a, 1, deleted=True, links=(V1, S1), facets=facets, **shape))
    assert [find(store, q) for q in searches[:-1]] == [[b]] * 2 + [[]] + [[b]] * 6
    assert find(store, searches[-1]) == []
    assert store.count_annotations(NS) == 1
    tomb = store.get_annotation(NS, a)
    assert (tomb.version, tomb.deleted, tomb.latest) == (2, True, 2)
    assert [r.deleted for r in store.annotation_versions(NS, a)] == [False, True]
    put(store, write(b, 1, deleted=True))
    assert store.count_annotations(NS) == 0
    assert [find(store, q) for q in searches] == [[]] * len(searches)


def test_count_annotations_counts_live_ones_per_namespace(ns: Store) -> None:
    store = ns
    assert store.count_annotations(NS) == 0
    a, b, c = uuid7(), uuid7(), uuid7()
    put(store, write(a), write(b, kind=("TAG", 1)), write(c, namespace="other"))
    assert (store.count_annotations(NS), store.count_annotations("other")) == (2, 1)
    put(store, write(a, 1, kind=("TAG", 1)))  # an update, even of the type, counts once
    put(store, write(b, 1, kind=("NOTE", 2)))
    assert store.count_annotations(NS) == 2
    assert find(store, query(types=("vision/TAG v1",))) == [a]
    assert find(store, query(types=("vision/NOTE v",))) == [b]
    put(store, write(a, 2, deleted=True))
    assert (store.count_annotations(NS), store.count_annotations("other")) == (1, 1)
    assert store.count_annotations("nowhere") == 0


def test_association_type_settings(ns: Store) -> None:
    store = ns
    assert store.association_types(NS) is None
    store.set_association_types(NS, ["VIDEO", "MOVIE_ID", "VIDEO"])
    assert store.association_types(NS) == ("MOVIE_ID", "VIDEO")
    assert store.association_types("other") is None
    store.set_association_types(NS, ["SHOT"])
    assert store.association_types(NS) == ("SHOT",)
    store.set_association_types(NS, [])
    assert store.association_types(NS) == ()
    store.set_association_types(NS, None)
    assert store.association_types(NS) is None
    with pytest.raises(NotFoundError):
        store.set_association_types("nowhere", ["VIDEO"])


# -- search -----------------------------------------------------------------------------------


@pytest.fixture
def sample(ns: Store) -> dict[str, UUID]:
    """Six annotations (created in this order) and a look-alike in another namespace."""
    ids = {name: uuid7() for name in "abcdef"}
    put(
        ns,
        write(
            ids["a"],
            time=(0, 10),
            box=(0, 0, 0.5, 0.5),
            texts={"comment": "a red car chase"},
            facets={"label": "car", "score": 3},
        ),
        write(
            ids["b"],
            kind=("NOTE", 2),
            links=(V1, S1),
            time=(10, 12),
            box=(0.5, 0.5, 1, 1),
            texts={"comment": "blue gloves", "color": "red"},
            facets={"label": "face", "score": 1},
        ),
        write(
            ids["c"],
            kind=("CHARACTER", 1),
            links=(S1,),
            time=(20, 20),
            box=(0.25, 0.25, 0.25, 0.75),
            texts={"characterName": "Alice running"},
            facets={"label": "face"},
        ),
        write(
            ids["d"],
            kind=("TAG", 1),
            links=(V2,),
            texts={"comment": "cars chased, red"},
            facets={"label": "car"},
        ),
        write(ids["e"], box=(0.75, 0, 1, 0.25)),
        write(ids["f"], links=(V2,), time=(5, 6), facets={"score": 5}),
    )
    put(ns, write(uuid7(), namespace="other", time=(0, 10), texts={"comment": "red car"}))
    return ids


SEARCHES: list[tuple[dict[str, Any], str]] = [
    ({}, "afbcde"),  # by (start, creation), untimed last
    ({"types": ("vision/NOTE v1",)}, "afe"),
    ({"types": ("vision/NOTE v",)}, "afbe"),
    ({"types": ("vision/NOTE v2", "vision/TAG v1")}, "bd"),
    ({"types": (TSB,)}, "afbce"),
    ({"types": (TSB,), "subtypes": False}, ""),
    ({"types": ("vision/LABELED v",)}, "c"),
    ({"types": ("vision/NOTE v",), "subtypes": False}, "afbe"),
    ({"associations": (V1,)}, "abe"),
    ({"associations": (S1, V1)}, "b"),
    ({"associations": (V2, S1)}, ""),
    ({"associations": (("VIDEO", "none"),)}, ""),
    ({"time": (10, 10)}, "ab"),  # closed: touching counts
    ({"time": (6, 9)}, "af"),
    ({"time": (20, 25)}, "c"),  # zero-length range
    ({"time": (0, 12), "time_op": "within"}, "afb"),
    ({"time": (5, 6), "time_op": "within"}, "f"),
    ({"time": (20, 20), "time_op": "within"}, "c"),
    ({"box": (0.5, 0.5, 0.5, 0.5)}, "ab"),  # a point on both corners (x0, y0, x1, y1)
    ({"box": (0.25, 0.5, 0.25, 0.6)}, "ac"),  # a segment on the zero-width box
    ({"box": (0.9, 0.1, 0.9, 0.1)}, "e"),
    ({"box": (0, 0, 1, 1), "box_op": "within"}, "abce"),
    ({"box": (0, 0, 0.5, 0.5), "box_op": "within"}, "a"),
    ({"box": (0.25, 0.25, 0.25, 0.75), "box_op": "within"}, "c"),
    ({"text": (tokens("car"),)}, "ad"),
    ({"text": (tokens("red"),)}, "abd"),
    ({"text": (tokens("red"),), "text_fields": ("comment",)}, "ad"),
    ({"text": (tokens("red"),), "text_fields": ("color", "characterName")}, "b"),
    ({"text": (tokens("red"),), "text_fields": ("nope",)}, ""),
    ({"text": tuple(tokens("red cars").split())}, "a"),  # a phrase, in one field
    ({"text": tuple(tokens("car red").split())}, ""),
    ({"text": tuple(tokens("gloves red").split())}, ""),  # not across fields
    ({"text": (tokens("runs"),)}, "c"),
    ({"where": 'data.label = "car"'}, "ad"),
    ({"where": 'data.label in ("face", "dog")'}, "bc"),
    ({"where": 'not data.label = "car"'}, "fbce"),
    ({"where": 'data.label != "car"'}, "bc"),  # a missing value never compares
    ({"where": "data.score >= 3"}, "af"),
    ({"where": "data.score > 2.5 and data.score < 4"}, "a"),
    ({"where": 'data.score < 2 or data.label = "car"'}, "abd"),
    ({"where": "data.comment contains cars"}, "ad"),
    ({"associations": (V1,), "time": (0, 11), "box": (0.4, 0.4, 0.6, 0.6)}, "ab"),
    ({"associations": (V1,), "time": (11, 30), "text": (tokens("glove"),)}, "b"),
    ({"types": (TSB,), "where": "data.score < 5", "time": (0, 30)}, "ab"),
]
KINDS = {"label": "keyword", "score": "int", "comment": "text"}


@pytest.mark.parametrize(("fields", "want"), SEARCHES, ids=[str(f) for f, _ in SEARCHES])
def test_search_with_each_condition(
    ns: Store, sample: dict[str, UUID], fields: dict[str, Any], want: str
) -> None:
    if "where" in fields:
        fields = {**fields, "kinds": KINDS}
    expected = [sample[name] for name in want]
    assert find(ns, query(**fields)) == expected
    assert find(ns, query(**fields, limit=1)) == expected
    assert find(ns, query(**fields, sort="-time")) == expected[::-1]
    created = [sample[name] for name in sorted(want)]  # written in the order a to f
    assert find(ns, query(**fields, sort="created", limit=2)) == created
    assert find(ns, query(**fields, sort="-created", limit=2)) == created[::-1]
    if "text" in fields:
        ranked = pages(ns, query(**fields, sort="relevance", limit=1))
        assert sorted(r.id for r in ranked) == sorted(expected)
        scores = [r.score for r in ranked]
        assert all(s is not None for s in scores) and scores == sorted(scores)  # type: ignore[type-var]


def test_records_found_are_current_versions(ns: Store, sample: dict[str, UUID]) -> None:
    a = sample["a"]
    put(ns, write(a, 1, time=(100, 101), data={"v": 2}))
    [record] = ns.search_annotations(query(time=(100, 100)))[0]
    assert (record.id, record.version, record.latest, data_of(record)["data"]["v"]) == (a, 2, 2, 2)
    assert find(ns, query(time=(0, 1))) == []  # the old time is gone
    assert find(ns, query(text=tuple(tokens("red car").split()))) == []  # and the old text
    assert find(ns, query(where='data.label = "car"', kinds=KINDS)) == [sample["d"]]


@pytest.mark.parametrize("sort", ["time", "-time", "created", "-created", "relevance"])
def test_cursor_paging_over_ties_and_untimed_annotations(ns: Store, sort: str) -> None:
    made = []
    for i in range(40):
        ident = uuid7()
        made.append(ident)
        time = None if i % 7 == 3 else (float(i % 5), float(i % 5 + i % 3))
        texts = {"comment": " ".join(["take"] * (1 + i % 4))}
        put(ns, write(ident, links=(V1,) if i % 2 else (V1, S1), time=time, texts=texts))
    q = query(sort=sort, text=(tokens("take"),) if sort == "relevance" else ())
    whole = find(ns, replace(q, limit=1000))
    assert sorted(whole) == sorted(made)
    for limit in (1, 3, 39, 40):
        assert find(ns, replace(q, limit=limit)) == whole
        assert find(ns, replace(q, limit=limit, associations=(S1,))) == [
            i for i in whole if made.index(i) % 2 == 0
        ]
    if sort == "created":
        assert whole == made
    if sort == "-created":
        assert whole == made[::-1]
    if sort in ("time", "-time"):
        starts = {ident: (math.inf if i % 7 == 3 else i % 5, i) for i, ident in enumerate(made)}
        keys = [starts[i] for i in whole]
        assert keys == sorted(keys, reverse=sort == "-time")


# -- the link driver's span ---------------------------------------------------------------


def test_a_long_annotation_far_before_the_window_is_found_from_its_association(ns: Store) -> None:
    store = ns
    long, short = uuid7(), [uuid7() for _ in range(30)]
    put(store, write(long, links=(V1, S1), time=(0, 1000)))
    put(store, *(write(s, links=(V1,), time=(2000 + i, 2000.5 + i)) for i, s in enumerate(short)))
    put(store, *(write(uuid7(), links=(V2,), time=(900, 901)) for _ in range(5)))
    assert find(store, query(associations=(V1,), time=(900, 901))) == [long]
    assert find(store, query(associations=(V1,), time=(1000, 1000))) == [long]
    assert find(store, query(associations=(V1,), time=(1000.25, 1999))) == []
    assert find(store, query(associations=(V1,), time=(999, 2000))) == [long, short[0]]
    assert find(store, query(associations=(V1, S1), time=(500, 500))) == [long]
    assert find(store, query(associations=(V1,), time=(0, 1000), time_op="within")) == [long]
    assert find(store, query(associations=(V1,), time=(900, 901), sort="-time")) == [long]
    # It shrinks: no longer found there. Another long one, on a new association, is.
    put(store, write(long, 1, links=(V1,), time=(0, 10)))
    assert find(store, query(associations=(V1,), time=(900, 901))) == []
    later = uuid7()
    put(store, write(later, links=(("SCENE", "x"),), time=(10, 10)))
    put(store, write(later, 1, links=(("SCENE", "x"), V1), time=(100.5, 1999.75)))
    assert find(store, query(associations=(V1,), time=(1500, 1500))) == [later]
    assert find(store, query(associations=(("SCENE", "x"),), time=(1999.75, 3000))) == [later]
    assert find(store, query(associations=(V1,), time=(1999.75, 2000))) == [later, short[0]]


# -- time and box bounds that 32 bits cannot hold ------------------------------------------


def test_within_holds_for_bounds_32_bits_cannot_hold(ns: Store) -> None:
    a = uuid7()
    put(ns, write(a, time=(0.1, 0.2), box=(0.1, 0.1, 0.3, 0.2)))
    near = [(0.1, 0.20000000000000004), (0.09999999999999999, 0.2)]
    put(ns, *(write(uuid7(), time=t, box=(t[0], 0.1, 0.3, t[1])) for t in near))
    for links in ((), (V1,)):
        assert find(ns, query(associations=links, time=(0.1, 0.2), time_op="within")) == [a]
        within = query(associations=links, box=(0.1, 0.1, 0.3, 0.2), box_op="within")
        assert find(ns, within) == [a]


def boxed(box: tuple[float, ...], area: tuple[float, ...], op: str) -> bool:
    x0, y0, x1, y1 = area
    if op == "within":
        return x0 <= box[0] and box[2] <= x1 and y0 <= box[1] and box[3] <= y1
    return box[0] <= x1 and box[2] >= x0 and box[1] <= y1 and box[3] >= y0


def test_every_way_into_the_index_agrees_with_brute_force(ns: Store) -> None:
    """Enough annotations for the store to start from the R*Tree, the type or the link."""
    made: list[tuple[UUID, tuple[float, float], tuple[float, ...], tuple[str, str]]] = []
    writes = []
    for i in range(1500):
        ident = uuid7()
        time = (i * 0.1, i * 0.1 + (i % 7) * 0.1)
        box = (i % 10 * 0.1, i % 13 * 0.1, i % 10 * 0.1 + 0.3, i % 13 * 0.1 + 0.1 * (i % 3))
        link = V1 if i % 4 else S1
        kind = ("NOTE", 1) if i % 3 else ("TAG", 1)
        made.append((ident, time, box, link))
        writes.append(write(ident, kind=kind, links=(link,), time=time, box=box))
    ns.put_annotations(writes)
    for start, end in ((10.1, 20.3), (0.3, 0.3), (100.7, 149.9), (0, 1000)):
        for op in ("overlaps", "within"):
            if op == "within":
                want = [m for m in made if start <= m[1][0] and m[1][1] <= end]
            else:
                want = [m for m in made if m[1][0] <= end and m[1][1] >= start]
            order = sorted(want, key=lambda m: (m[1][0], made.index(m)))
            assert find(ns, query(time=(start, end), time_op=op, limit=1000)) == [
                m[0] for m in order
            ]
            assert find(ns, query(time=(start, end), time_op=op, associations=(V1,))) == [
                m[0] for m in order if m[3] == V1
            ]
            both = query(time=(start, end), time_op=op, types=("vision/NOTE v1",), limit=500)
            assert find(ns, both) == [m[0] for m in order if made.index(m) % 3]
    for area in ((0.2, 0.3, 0.5, 0.7), (0.3, 0.3, 0.3, 0.3), (0, 0, 1.2, 1.4)):
        for op in ("intersects", "within"):
            hit = [m for m in made if boxed(m[2], area, op)]  # made is in time order
            assert find(ns, query(box=area, box_op=op, limit=1000)) == [m[0] for m in hit]
            assert find(ns, query(box=area, box_op=op, associations=(S1,))) == [
                m[0] for m in hit if m[3] == S1
            ]


# -- where: comparisons as the index makes them ------------------------------------------------


WHERE_CASES: list[tuple[str, str]] = [
    ('data.e < "a"', "ac"),  # a number sorts before any text
    ("data.e > 0", "abc"),  # and any text after every number
    ("data.e != 1", "bc"),  # a missing value never compares
    ("data.e = 1", "a"),
    ('data.e in (1, "a")', "ab"),
    ("not data.e = 1", "bcd"),
    ('data.label < "a"', "a"),  # texts compare byte-wise: "B" < "a" < "b" < "ä"
    ('data.label >= "b"', "bc"),
    ('data.label > "b"', "c"),
]


@pytest.mark.parametrize(("where", "want"), WHERE_CASES, ids=[w for w, _ in WHERE_CASES])
def test_where_compares_numbers_and_texts_as_sqlite_json_does(
    ns: Store, where: str, want: str
) -> None:
    facets: dict[str, dict[str, Any]] = {
        "a": {"e": 1, "label": "B"},
        "b": {"e": "a", "label": "b"},
        "c": {"e": 2.5, "label": "ä"},
        "d": {},
    }
    ids = {name: uuid7() for name in facets}
    put(ns, *(write(ids[name], facets=value) for name, value in facets.items()))
    q = query(where=where, kinds={"e": "enum", "label": "keyword"})
    assert find(ns, q) == [ids[name] for name in want]


# -- full text: long texts, long words, relevance -------------------------------------------


def test_phrases_are_found_anywhere_in_long_texts(ns: Store) -> None:
    far, many, wide = uuid7(), uuid7(), uuid7()
    word = "ä" * 700  # its token is longer than any index keeps a word
    put(
        ns,
        write(far, texts={"comment": "filler " * 20_000 + "zebra crossing"}),
        write(many, texts={"comment": "alpha " * 300 + "alpha omega"}),
        write(wide, texts={"comment": f"the {word} word"}),
    )
    assert find(ns, query(text=tuple(tokens("zebra crossing").split()))) == [far]
    assert find(ns, query(text=tuple(tokens("filler zebra").split()))) == [far]
    assert find(ns, query(text=tuple(tokens("alpha omega").split()))) == [many]
    assert find(ns, query(text=tuple(tokens("omega alpha").split()))) == []
    assert find(ns, query(text=tuple(tokens(f"the {word}").split()))) == [wide]
    assert find(ns, query(text=tuple(tokens(f"{word} word").split()))) == [wide]
    assert find(ns, query(text=(tokens("ä" * 699),))) == []


def test_relevance_is_bm25_over_text_fields(ns: Store) -> None:
    """FTS5's bm25 (k1 = 1.2, b = 0.75) of the best field, over every namespace's texts."""
    texts = {
        "a": {"comment": "red car red", "color": "red"},
        "b": {"comment": "a blue car"},
        "c": {"comment": "red red red red red gloves and more words"},
        "d": {"comment": "car car car"},
    }
    ids = {name: uuid7() for name in texts}
    put(ns, *(write(ids[name], texts=value) for name, value in texts.items()))
    filler = [{"comment": f"filler text number {i}"} for i in range(12)] + [{"comment": "red"}]
    put(ns, *(write(uuid7(), namespace="other", texts=value) for value in filler))
    rows = [tokens(v).split() for t in [*texts.values(), *filler] for v in t.values()]
    avgdl = sum(len(row) for row in rows) / len(rows)

    def bm25(row: list[str], word: str) -> float:
        hits = sum(1 for r in rows if word in r)
        idf = max(math.log((len(rows) - hits + 0.5) / (hits + 0.5)), 1e-6)
        f = float(row.count(word))
        return -(idf * ((f * 2.2) / (f + 1.2 * (0.25 + 0.75 * len(row) / avgdl))))

    for word in ("red", "car"):
        want = sorted(
            (
                min(bm25(tokens(v).split(), word) for v in t.values() if word in tokens(v).split()),
                ids[name],
            )
            for name, t in texts.items()
            if any(word in tokens(v).split() for v in t.values())
        )
        ranked = pages(ns, query(text=(word,), sort="relevance", limit=1))
        assert [r.id for r in ranked] == [ident for _, ident in want]
        assert [r.score for r in ranked] == pytest.approx([score for score, _ in want], rel=1e-12)


# -- history (reeldb migrate-backend) ---------------------------------------------------------


def test_history_lists_every_version_of_every_annotation_in_id_order(ns: Store) -> None:
    store = ns
    ids = sorted(uuid7() for _ in range(5))
    for a in ids:
        put(store, write(a, data={"n": 1}, by="user:alice"))
    put(store, write(ids[1], 1, data={"n": 2}))
    put(store, write(ids[1], 2, deleted=True, data={"n": 2}))
    put(store, write(ids[3], 1, kind=("NOTE", 2), data={"n": 2}))
    put(store, write(uuid7(), namespace="other"))
    everything = store.annotation_history(NS, after=None, limit=100)
    counts = {ids[1]: 3, ids[3]: 2}
    assert [(r.id, r.version) for r in everything] == [
        (a, v) for a in ids for v in range(1, counts.get(a, 1) + 1)
    ]
    deleted = [r for r in everything if r.id == ids[1]]
    assert [(r.deleted, r.latest) for r in deleted] == [(False, 3), (False, 3), (True, 3)]
    assert everything[0].created_by == "user:alice"
    assert everything[0] == store.get_annotation(NS, ids[0])
    # Pages of annotations (not versions), after a cursor; bodies can be left out.
    page = store.annotation_history(NS, after=ids[0], limit=2, bodies=False)
    assert [(r.id, r.version) for r in page] == [(ids[1], 1), (ids[1], 2), (ids[1], 3), (ids[2], 1)]
    assert {r.body for r in page} == {b""}
    assert store.annotation_history(NS, after=ids[-1], limit=10) == []
    assert len(store.annotation_history("other", after=None, limit=10)) == 1
    assert store.annotation_history("nobody", after=None, limit=10) == []


def test_heads_pair_each_current_version_with_the_one_of_an_instant(ns: Store) -> None:
    """Version ``v`` of these writes is stored at ``NOW + (v - 1)`` seconds."""
    store = ns
    ids = sorted(uuid7() for _ in range(4))
    for a in ids:
        put(store, write(a, data={"n": 1}))
    for v in (1, 2):  # ids[1] reaches version 3, ids[2] is deleted at version 2
        put(store, write(ids[1], v, data={"n": v + 1}))
    put(store, write(ids[2], 1, deleted=True))
    put(store, write(uuid7(), namespace="other"))

    def heads(at: Any, after: UUID | None = None, limit: int = 100) -> list[Any]:
        return [
            (c.id, c.version, None if r is None else r.version, c.deleted)
            for c, r in store.annotation_heads(NS, after=after, limit=limit, at=at)
        ]

    now = [
        (ids[0], 1, 1, False), (ids[1], 3, 3, False), (ids[2], 2, 2, True), (ids[3], 1, 1, False)
    ]  # fmt: skip
    assert heads(None) == now
    assert heads(NOW + timedelta(seconds=5)) == now
    # At NOW + 1 s, ids[1] was at version 2 and ids[2] was live; before NOW, nothing was.
    assert heads(NOW + timedelta(seconds=1)) == [
        (ids[0], 1, 1, False), (ids[1], 3, 2, False), (ids[2], 2, 2, True), (ids[3], 1, 1, False)
    ]  # fmt: skip
    assert heads(NOW + timedelta(microseconds=999_999)) == [
        (ids[0], 1, 1, False), (ids[1], 3, 1, False), (ids[2], 2, 1, True), (ids[3], 1, 1, False)
    ]  # fmt: skip
    assert heads(NOW - timedelta(microseconds=1)) == [(a, v, None, d) for a, v, _, d in now]
    # The older version is read whole; pages follow the cursor.
    [(current, then)] = store.annotation_heads(
        NS, after=ids[0], limit=1, at=NOW + timedelta(seconds=1)
    )
    assert then == store.get_annotation(NS, ids[1], 2)
    assert current == store.get_annotation(NS, ids[1])
    assert heads(None, after=ids[1], limit=1) == [now[2]]
    assert heads(None, after=ids[-1]) == []
    assert len(store.annotation_heads("other", after=None, limit=10, at=None)) == 1
