"""Group commit: concurrent document writes share transactions, each still all or none."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Iterator
from typing import Any

import pytest

import reeldb
from reeldb.api._group_commit import GroupCommitter
from reeldb.errors import BackendUnavailableError, DatabaseClosedError, ValidationError
from reeldb.testing import FACE_DETECTION, face_document

DS = "vision/face_detection/1"


@pytest.fixture
def db(tmp_path: Any) -> Iterator[reeldb.Database]:
    with reeldb.connect(f"sqlite:///{tmp_path / 'reel.db'}") as database:
        database.create_namespace("vision")
        database.add_schema("vision", copy.deepcopy(FACE_DETECTION))
        database.create_datastore(DS, mid_keys=["title_id"], schema="face_detection")
        yield database


def _mid(i: int) -> dict[str, str]:
    return {"title_id": f"t{i}"}


def test_concurrent_writes_share_transactions_and_all_land(db: reeldb.Database) -> None:
    committer = GroupCommitter()
    writes = [db.prepare_documents(DS, [(_mid(i), face_document(1))]) for i in range(40)]

    async def main() -> list[Any]:
        return await asyncio.gather(*(committer.commit(db, w) for w in writes))

    try:
        answers = asyncio.run(main())
    finally:
        committer.close()
    assert committer.groups < len(writes)  # fewer transactions than writes
    assert [doc.mid for [doc] in answers] == [_mid(i) for i in range(40)]
    for [doc] in answers:
        assert db.get_document(doc.id).body == doc.body
    assert db.count_documents(DS) == 40


def test_a_write_whose_schema_moved_is_validated_again(db: reeldb.Database) -> None:
    committer = GroupCommitter()
    kept = db.prepare_documents(DS, [(_mid(1), face_document(1))])
    broken = db.prepare_documents(DS, [(_mid(2), face_document(1, label="face"))])
    # v2 adds an optional event attribute "note" (a string): the first write still fits
    # it; the second is re-read with a number there and no longer does.
    evolved = copy.deepcopy(FACE_DETECTION)
    evolved["levels"]["event"]["properties"]["note"] = {"type": "keyword"}
    for _new, data in broken.pending:
        data["tracks"][0]["components"][0]["events"][0]["note"] = 7
    db.add_schema("vision", evolved)

    async def main() -> list[Any]:
        return await asyncio.gather(
            committer.commit(db, kept), committer.commit(db, broken), return_exceptions=True
        )

    try:
        [stored], refused = asyncio.run(main())
    finally:
        committer.close()
    assert stored.schema_version == 2
    assert db.get_document(stored.id).schema_version == 2
    assert isinstance(refused, ValidationError)
    assert "note" in refused.violations[0].pointer
    assert db.count_documents(DS) == 1


def test_a_failed_transaction_fails_each_of_its_writes(db: reeldb.Database) -> None:
    committer = GroupCommitter()
    writes = [db.prepare_documents(DS, [(_mid(i), face_document(1))]) for i in range(3)]
    db.close()

    async def main() -> list[Any]:
        return await asyncio.gather(
            *(committer.commit(db, w) for w in writes), return_exceptions=True
        )

    try:
        answers = asyncio.run(main())
    finally:
        committer.close()
    assert all(isinstance(a, DatabaseClosedError | BackendUnavailableError) for a in answers)
    assert len({id(a) for a in answers}) == 3  # each request raises its own exception


def test_closing_commits_what_is_queued_then_refuses(db: reeldb.Database) -> None:
    committer = GroupCommitter()
    write = db.prepare_documents(DS, [(_mid(1), face_document(1))])

    async def main() -> None:
        [doc] = await committer.commit(db, write)
        assert db.get_document(doc.id).id == doc.id
        committer.close()
        with pytest.raises(DatabaseClosedError, match="shutting down"):
            await committer.commit(db, db.prepare_documents(DS, [(_mid(2), face_document(1))]))

    asyncio.run(main())
    assert db.count_documents(DS) == 1


def test_group_limits_split_large_queues(db: reeldb.Database) -> None:
    committer = GroupCommitter(max_documents=3)
    writes = [db.prepare_documents(DS, [(_mid(i), face_document(1))]) for i in range(12)]

    async def main() -> list[Any]:
        return await asyncio.gather(*(committer.commit(db, w) for w in writes))

    try:
        answers = asyncio.run(main())
    finally:
        committer.close()
    assert committer.groups >= 4  # no transaction took more than three documents
    assert len(answers) == 12 and db.count_documents(DS) == 12
