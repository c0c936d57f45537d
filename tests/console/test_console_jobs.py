"""The console's reprocessing jobs: listed with live progress, steered, dead letters counted.

A job is submitted over HTTP and run by a thread of this process (`db.reprocess.run`, as a
`reeldb worker` would) on the database `reeldb serve` serves, while Chromium watches the page
poll. The service's embedded worker may take some of its partitions too: the job is shared.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest
from console_world import Console, screenshot, sign_in

import reeldb

pytestmark = pytest.mark.slow

JOBS = "window.__reeldbConsole.jobs"
SLOW_REINDEX = {
    "name": "reindex characters",
    "source": {"namespace": "demo", "annotation_type": "CHARACTER_IN_FRAME"},
    "processor": {"kind": "reindex"},
    "limits": {"rate": 4, "batch": 2, "partitions": 2},  # 35 items: ~9 s
}
# Called as loads(data, context), it fails on every item, in this process and in the
# service's embedded worker alike (both can import it): every item is a dead letter.
FAILING_FUNCTION = "json:loads"


def _job(page: Any, job_id: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = page.evaluate(JOBS) or []
    return next(j for j in found if j["id"] == job_id)


def _run_in_thread(console: Console, job_id: str) -> threading.Thread:
    def run() -> None:
        with reeldb.connect(console.db_url) as db:
            db.reprocess.run(job_id, threads=1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_job_with_dead_letters_shows_their_count_and_readers_cannot_steer(
    page: Any, console: Console
) -> None:
    spec = {
        "name": "a function that fails",
        "source": {"namespace": "demo", "annotation_type": "CHARACTER_IN_FRAME"},
        "processor": {"kind": "backfill", "function": FAILING_FUNCTION},
        "limits": {"partitions": 1, "max_attempts": 1, "backoff": 0},
        "dry_run": True,
    }
    with reeldb.connect(console.db_url) as db:
        job = db.reprocess.run(db.reprocess.submit(spec).id)
    failed = job.progress.failed
    assert job.state == "done" and failed > 0
    sign_in(page, console.reader_key)
    page.goto(console.url + "/#/ns/demo/requests")
    row = page.locator(f"[data-testid=jobs] tr[data-job='{job.id}']")
    row.wait_for()
    assert row.locator("[data-testid=dead-letters]").inner_text() == str(failed)
    assert _job(page, str(job.id))["dead"] == failed
    row.locator("summary").click()
    assert "positional argument" in row.locator("ul.dead-letters").inner_text()
    assert page.locator("[data-testid=jobs] button[data-action]").count() == 0  # a reader


def test_a_running_job_advances_live_is_paused_resumed_and_ends_done(
    page: Any, console: Console, tmp_path: Path
) -> None:
    submitted = console.api("POST", "/v1/namespaces/demo/jobs", json=SLOW_REINDEX)
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    sign_in(page, console.admin_key)
    page.goto(console.url + "/#/ns/demo/requests")
    row = page.locator(f"[data-testid=jobs] tr[data-job='{job_id}']")
    row.wait_for()
    assert row.locator("[data-testid=job-state]").inner_text() == "running"

    runner = _run_in_thread(console, job_id)
    # The page polls: the count it shows grows while the runner works, before the end.
    page.wait_for_function(
        f"(({JOBS}) || []).some(j => j.id === '{job_id}' && j.done >= 8 && j.done < j.total)"
    )
    shown = re.match(r"(\d+) / 35 \((\d+)%\)", row.locator("[data-testid=job-done]").inner_text())
    assert shown is not None and 0 < int(shown[1]) <= 35
    screenshot(page, "jobs", tmp_path)

    row.locator("button[data-action=pause]").click()
    row.locator("[data-testid=job-state]:text-is('paused')").wait_for()
    runner.join(timeout=30)  # the runner stops at its next checkpoint
    assert not runner.is_alive()
    paused_at = console.api("GET", f"/v1/jobs/{job_id}").json()["progress"]["done"]
    assert 0 < paused_at < 35
    row.locator("button[data-action=resume]").click()
    row.locator("[data-testid=job-state]:text-is('running')").wait_for()

    runner = _run_in_thread(console, job_id)
    row.locator("[data-testid=job-state]:text-is('done')").wait_for(timeout=60_000)
    runner.join(timeout=30)
    assert _job(page, job_id) == {"id": job_id, "state": "done", "done": 35, "total": 35, "dead": 0}
    assert row.locator("progress").get_attribute("value") == "35"
    assert row.locator("button[data-action]").count() == 0  # nothing left to steer


def test_cancelling_a_job_asks_first_and_ends_it(page: Any, console: Console) -> None:
    spec = {**SLOW_REINDEX, "name": "to cancel", "limits": {"rate": 1, "batch": 1}}
    job_id = console.api("POST", "/v1/namespaces/demo/jobs", json=spec).json()["id"]
    sign_in(page, console.admin_key)
    page.goto(console.url + "/#/ns/demo/requests")
    row = page.locator(f"[data-testid=jobs] tr[data-job='{job_id}']")
    row.wait_for()
    page.once("dialog", lambda dialog: dialog.dismiss())
    row.locator("button[data-action=cancel]").click()
    page.wait_for_timeout(500)
    assert console.api("GET", f"/v1/jobs/{job_id}").json()["state"] != "cancelled"
    page.once("dialog", lambda dialog: dialog.accept())
    row.locator("button[data-action=cancel]").click()
    row.locator("[data-testid=job-state]:text-is('cancelled')").wait_for()
    assert console.api("GET", f"/v1/jobs/{job_id}").json()["state"] == "cancelled"
    assert row.locator("button[data-action]").count() == 0
