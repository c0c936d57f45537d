"""Blobs and asynchronous writes over HTTP and the client: upload streamed, run by a worker."""

from __future__ import annotations

import copy
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

import reeldb
from reeldb.errors import AlreadyExistsError, NotFoundError, ValidationError
from reeldb.testing import FACE_DETECTION, MID, face_document
from reeldb.workflows.writes import SIGNATURE_HEADER, Worker

DS = "vision/face_detection/1"


@pytest.fixture
def world(live: Any) -> Iterator[Any]:
    db: reeldb.Database = live.db
    for namespace in ("vision", "other"):
        db.create_namespace(namespace, admins=["user:alice"])
        db.add_schema(namespace, copy.deepcopy(FACE_DETECTION))
        db.create_datastore(
            f"{namespace}/face_detection/1",
            mid_keys=["title_id", "video_stream_id"],
            schema="face_detection",
        )
    with Worker(db, name="api-test", poll=0.05):
        yield live


@pytest.fixture
def client(world: Any) -> Iterator[Any]:
    with world.client() as remote:
        yield remote


def _chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_a_blob_is_uploaded_streamed_then_written_asynchronously(world: Any, client: Any) -> None:
    document = face_document(title="streamed")
    body = orjson.dumps(document)
    record = client.blobs.create("vision", size=len(body))
    assert record.state == "open"
    stored = client.blobs.upload("vision", record.id, _chunks(body))
    assert (stored.state, stored.size) == ("stored", len(body))
    assert stored.sha256 == hashlib.sha256(body).hexdigest()
    request, created = client.submit_write(DS, MID, blob=record.id)
    assert created and request.state.value in ("PENDING", "VALIDATED", "PERSISTED", "INDEXED")
    done = client.wait_write_request(request.id, timeout=30)
    assert done.state.value == "INDEXED", done.error
    assert set(done.steps) == {"validate", "persist", "index"}
    assert done.document_id is not None
    # The document is read back streamed from its blob, byte for byte.
    raw = httpx.get(
        f"{world.url}/v1/documents/{done.document_id}",
        headers={"Authorization": f"Bearer {world.admin_key}"},
    )
    assert raw.status_code == 200
    assert raw.headers["etag"] == f'"{done.document_id}"'
    assert orjson.loads(raw.content)["data"] == document
    assert client.get_document(done.document_id).data == document
    assert world.db.query_datastore(DS, 'asset.title contains "streamed"').items


def test_an_inline_async_write_with_an_idempotency_key_runs_once(world: Any, client: Any) -> None:
    first, created = client.submit_write(DS, MID, document=face_document(), idempotency_key="k-1")
    again, created_again = client.submit_write(
        DS, MID, document=face_document(), idempotency_key="k-1"
    )
    assert created and not created_again
    assert again.id == first.id
    assert client.wait_write_request(first.id, timeout=30).state.value == "INDEXED"
    assert world.db.count_documents(DS) == 1


def test_an_invalid_document_fails_with_every_violation_and_stores_nothing(
    world: Any, client: Any
) -> None:
    bad = face_document()
    events = bad["tracks"][0]["components"][0]["events"]
    events[0]["time_range"] = {"start": 5, "end": 1}
    events[-1]["label"] = 7
    request, _ = client.submit_write(DS, MID, document=bad)
    done = client.wait_write_request(request.id, timeout=30)
    assert done.state.value == "FAILED"
    assert done.error is not None and done.error["step"] == "validate"
    pointers = {v["pointer"] for v in done.error["violations"]}
    assert "/tracks/0/components/0/events/0/time_range" in pointers
    assert f"/tracks/0/components/0/events/{len(events) - 1}/label" in pointers
    assert world.db.count_documents(DS) == 0


def test_truncated_and_wrongly_encoded_blobs_fail_clearly(world: Any, client: Any) -> None:
    body = orjson.dumps(face_document())
    for payload, words in (
        (body[: len(body) // 2], "not valid JSON"),
        (body.decode().encode("utf-16"), "not UTF-8"),
    ):
        blob = client.blobs.put("vision", [payload])
        request, _ = client.submit_write(DS, MID, blob=blob.id)
        done = client.wait_write_request(request.id, timeout=30)
        assert done.state.value == "FAILED"
        assert done.error is not None and words in done.error["detail"]
    assert world.db.count_documents(DS) == 0


def test_uploads_must_match_their_declared_size(world: Any, client: Any) -> None:
    record = client.blobs.create("vision", size=10)
    with pytest.raises(ValidationError, match="longer than the 10 bytes"):
        client.blobs.upload("vision", record.id, [b"0123456789", b"x"])
    with pytest.raises(ValidationError, match="not the 10 announced"):
        client.blobs.upload("vision", record.id, [b"01234"])
    assert client.blobs.get(record.id, namespace="vision").state == "open"
    assert client.blobs.upload("vision", record.id, [b"0123456789"]).state == "stored"
    with pytest.raises(AlreadyExistsError):
        client.blobs.upload("vision", record.id, [b"0123456789"])


def test_blobs_and_requests_of_another_namespace_do_not_exist(world: Any, client: Any) -> None:
    blob = client.blobs.put("other", [orjson.dumps(face_document())])
    with pytest.raises(NotFoundError):
        client.blobs.get(blob.id, namespace="vision")
    with pytest.raises(NotFoundError):
        client.submit_write(DS, MID, blob=blob.id)
    with pytest.raises(NotFoundError):
        client.submit_write(DS, MID, blob="00000000-0000-4000-8000-000000000000")
    with pytest.raises(ValidationError):
        client.submit_write(DS, MID, blob="not-a-uuid")
    with pytest.raises(ValidationError):
        client.submit_write(DS, MID)  # neither a blob nor a document
    # A reader of `vision` only: another tenant's request is "not found".
    request, _ = client.submit_write("other/face_detection/1", MID, blob=blob.id)
    world.db.grant_role("vision", "user:rita", "reader")
    with world.client(world.key("user:rita")) as rita:
        with pytest.raises(NotFoundError):
            rita.get_write_request(request.id)
        with pytest.raises(NotFoundError):
            rita.blobs.get(blob.id, namespace="other")


def test_a_webhook_gets_the_final_state_signed(world: Any, client: Any) -> None:
    received: list[tuple[bytes, str]] = []
    answered = threading.Event()

    class Hook(http.server.BaseHTTPRequestHandler):
        calls = 0

        def do_POST(self) -> None:  # noqa: N802 - the handler's API
            Hook.calls += 1
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if Hook.calls == 1:  # the first call fails: the worker retries
                self.send_response(503)
                self.end_headers()
                return
            received.append((body, self.headers[SIGNATURE_HEADER]))
            self.send_response(204)
            self.end_headers()
            answered.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        request, _ = client.submit_write(DS, MID, document=face_document(), webhook=url)
        assert answered.wait(30)
    finally:
        server.shutdown()
        server.server_close()
    body, signature = received[0]
    assert json.loads(body)["id"] == str(request.id)
    assert json.loads(body)["state"] == "INDEXED"
    expected = hmac.new(world.db.webhook_secret(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(signature, f"sha256={expected}")


def test_metrics_show_the_queue_and_the_steps(world: Any, client: Any) -> None:
    request, _ = client.submit_write(DS, MID, document=face_document())
    client.wait_write_request(request.id, timeout=30)
    text = httpx.get(f"{world.url}/metrics").text
    assert 'reeldb_write_requests{state="PENDING"}' in text
    assert 'reeldb_write_step_seconds{quantile="0.99",step="index"}' in text


def test_requests_are_listed_newest_first_with_a_cursor(world: Any, client: Any) -> None:
    made = [client.submit_write(DS, MID, document=face_document())[0] for _ in range(3)]
    for found in made:
        client.wait_write_request(found.id, timeout=30)
    listed = client.list_write_requests("vision", limit=2)
    assert [r.id for r in listed] == [made[2].id, made[1].id]
    page = httpx.get(
        f"{world.url}/v1/namespaces/vision/requests",
        params={"limit": 2},
        headers={"Authorization": f"Bearer {world.admin_key}"},
    ).json()
    rest = httpx.get(
        f"{world.url}/v1/namespaces/vision/requests",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers={"Authorization": f"Bearer {world.admin_key}"},
    ).json()
    assert [r["id"] for r in rest["items"]] == [str(made[0].id)]


def test_the_worker_collects_unused_blobs_after_the_grace_period() -> None:
    with reeldb.connect("memory:", blob_grace=0.05) as db:
        db.create_namespace("vision")
        unused = db.blobs.put("vision", [b"{}"])
        time.sleep(0.1)
        with Worker(db, name="gc-test", poll=0.02, gc_every=0.0):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    db.blobs.get(unused.id, namespace="vision")
                except NotFoundError:
                    break
                time.sleep(0.02)
        with pytest.raises(NotFoundError):
            db.blobs.get(unused.id, namespace="vision")
        with pytest.raises(reeldb.NotFoundError):
            list(db.blobs.store.open(unused.id))


def test_a_file_is_uploaded_in_parts_and_resumed(world: Any, client: Any, tmp_path: Any) -> None:
    document = face_document(n_events=300)
    body = orjson.dumps(document)
    path = tmp_path / "doc.json"
    path.write_bytes(body)
    part = 10_000
    record = client.blobs.create("vision", size=len(body))
    # An upload that stopped after two parts (the second one sent twice: it is replaced).
    client.blobs.upload_part("vision", record.id, 1, [body[:part]])
    client.blobs.upload_part("vision", record.id, 2, [b"garbage"])
    client.blobs.upload_part("vision", record.id, 2, [body[part : 2 * part]])
    assert [(p.number, p.size) for p in client.blobs.parts("vision", record.id)] == [
        (1, part),
        (2, part),
    ]
    with pytest.raises(ValidationError, match="not the"):  # the parts do not add up yet
        client.blobs.complete("vision", record.id)
    sent: list[int] = []
    original = client.blobs.upload_part

    def counting(namespace: str, blob_id: Any, number: int, chunks: Any) -> Any:
        sent.append(number)
        return original(namespace, blob_id, number, chunks)

    client.blobs.upload_part = counting
    stored = client.blobs.upload_file("vision", path, blob_id=record.id, part_size=part)
    assert 1 not in sent and 2 not in sent and sent  # the parts already there are kept
    assert (stored.state, stored.size) == ("stored", len(body))
    assert stored.sha256 == hashlib.sha256(body).hexdigest()
    assert client.blobs.parts("vision", record.id) == []
    assert len(list(world.db.blobs.store.list())) == 1  # the parts' payloads are gone
    request, _ = client.submit_write(DS, MID, blob=record.id)
    assert client.wait_write_request(request.id, timeout=30).state.value == "INDEXED"


def test_a_gap_in_the_parts_is_refused(world: Any, client: Any) -> None:
    record = client.blobs.create("vision")
    client.blobs.upload_part("vision", record.id, 1, [b"{"])
    client.blobs.upload_part("vision", record.id, 3, [b"}"])
    with pytest.raises(ValidationError, match="part 2 of blob"):
        client.blobs.complete("vision", record.id)
    with pytest.raises(ValidationError):
        client.blobs.upload_part("vision", record.id, 0, [b"x"])


def test_an_upload_that_breaks_off_stores_nothing_and_frees_its_thread(
    world: Any, client: Any
) -> None:
    import socket
    from urllib.parse import urlsplit

    record = client.blobs.create("vision", size=1_000_000)
    where = urlsplit(world.url)
    before = threading.active_count()
    for _ in range(3):
        with socket.create_connection((where.hostname, where.port)) as sock:
            sock.sendall(
                f"PUT /v1/namespaces/vision/blobs/{record.id} HTTP/1.1\r\n"
                f"Host: {where.netloc}\r\nAuthorization: Bearer {world.admin_key}\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: 1000000\r\n\r\n".encode()
                + b"x" * 70_000
            )
        time.sleep(0.3)  # the service notices the disconnect
    deadline = time.monotonic() + 10
    while threading.active_count() > before + 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert threading.active_count() <= before + 2
    assert client.blobs.get(record.id, namespace="vision").state == "open"
    stored = client.blobs.upload("vision", record.id, [b"y" * 1_000_000])  # and again, whole
    assert (stored.state, stored.size) == ("stored", 1_000_000)
