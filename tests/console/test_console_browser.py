"""The web console in Debian's Chromium against a live `reeldb serve` on loopback.

Each test signs in, works through one screen as a person would (clicks, typing, the wheel)
and checks what the page shows, reading the timeline's drawn boxes from the page state
(`window.__reeldbConsole`). Screenshots go to docs/img with REELDB_SCREENSHOTS=1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from console_world import DEMO_MID, Console, screenshot, sign_in

pytestmark = pytest.mark.slow

STATE = "window.__reeldbConsole"


def test_signing_in_shows_only_the_namespaces_of_the_keys_roles(
    page: Any, console: Console, tmp_path: Path
) -> None:
    page.fill("#api-key", "rdb_0000000000000000_not-a-key")
    page.click("button[type=submit]")
    page.wait_for_selector(".error")
    assert "401" in page.inner_text(".error")
    screenshot(page, "sign-in", tmp_path)

    sign_in(page, console.reader_key)
    page.wait_for_selector("[data-namespace=demo]")
    assert page.inner_text("[data-testid=principal]") == "app:promo-tools"
    assert page.locator("[data-namespace]").all_inner_texts()[0].startswith("demo")
    assert page.locator("[data-namespace=secret-ns]").count() == 0
    assert page.evaluate("sessionStorage.getItem('reeldb.apiKey')") == console.reader_key
    page.click("text=Sign out")
    page.wait_for_selector("#api-key")
    assert page.evaluate("sessionStorage.getItem('reeldb.apiKey')") is None

    sign_in(page, console.admin_key)
    page.wait_for_selector("[data-namespace=secret-ns]")
    assert page.locator("[data-namespace=demo] [data-testid=datastore-link]").inner_text() == (
        "demo/face_detection/1"
    )
    page.reload()  # the key is kept for the tab's session
    page.wait_for_selector("[data-namespace=secret-ns]")
    screenshot(page, "home", tmp_path)


def test_a_revoked_key_is_signed_out(page: Any, console: Console) -> None:
    made = console.api("POST", "/v1/keys", json={"principal": "app:promo-tools"}).json()
    secret = next(v for v in made.values() if isinstance(v, str) and v.startswith("rdb_"))
    sign_in(page, secret)
    page.wait_for_selector("[data-namespace=demo]")
    key_id = secret.split("_")[1]  # rdb_<key_id>_<secret>
    assert console.api("DELETE", f"/v1/keys/{key_id}").status_code in (200, 204)
    page.click("[data-namespace=demo] h2 a")
    page.wait_for_selector("#api-key")
    assert "sign in again" in page.inner_text("[role=alert]")
    assert page.evaluate("sessionStorage.getItem('reeldb.apiKey')") is None


def test_browsing_to_a_document_its_versions_tree_and_raw_json(
    page: Any, console: Console, tmp_path: Path
) -> None:
    sign_in(page, console.admin_key)
    page.click("[data-namespace=demo] [data-testid=datastore-link]")
    page.wait_for_selector("[data-testid=query-results] tbody tr")
    assert page.inner_text("[data-testid=document-count]") == "3"
    rows = page.locator("[data-testid=query-results] tbody tr")
    assert rows.count() == 2  # the latest version of each of the 2 MIDs
    screenshot(page, "datastore", tmp_path)

    page.fill("input[name=mid-title_id]", DEMO_MID["title_id"])
    page.fill("input[name=mid-video_stream_id]", DEMO_MID["video_stream_id"])
    page.click("text=List versions")
    page.wait_for_selector(f"a:has-text('{console.document_ids[1]}')")
    page.click(f"a:has-text('{console.document_ids[0]}')")

    page.wait_for_selector("[data-testid=doc-tree]")
    assert "title_id=80100172" in page.inner_text("[data-testid=document-mid]")
    versions = page.locator("[data-testid=versions] li")
    assert versions.count() == 2
    assert "latest" in versions.nth(0).inner_text()
    # Open the five levels: asset (open) → track 0 → component 0 → event 1 → its regions.
    tree = page.locator("[data-testid=doc-tree]")
    tree.locator("[data-level=track] >> nth=0").locator("button.toggle").first.click()
    tree.locator("[data-level=component] >> nth=0").locator("button.toggle").first.click()
    tree.locator("[data-level=event] >> nth=1").locator("button.toggle").first.click()
    regions = tree.locator("[data-level=region]")
    assert regions.count() == 2
    assert "person=Bob" in regions.nth(1).inner_text()
    assert "1.251–1.752 s" in tree.locator("[data-level=event] >> nth=1").inner_text()
    screenshot(page, "document", tmp_path)

    page.click("[data-testid=raw-json-tab]")
    raw = page.inner_text("pre.json")
    assert '"title": "The Demo Movie"' in raw
    assert '"frame_rate": "24000/1001"' in raw


def test_schema_versions_side_by_side_with_a_diff_and_the_compatibility_mode(
    page: Any, console: Console, tmp_path: Path
) -> None:
    sign_in(page, console.admin_key)
    page.goto(console.url + "/#/ns/demo/schemas/face_detection")
    page.wait_for_selector("[data-testid=schema-diff]")
    assert page.locator("[data-testid=compatibility]").input_value() == "BACKWARD"
    added = page.locator("[data-testid=schema-diff] .added").all_inner_texts()
    assert any('"emotion"' in line for line in added), added
    assert page.locator("[data-testid=schema-diff] .removed").count() == 0
    screenshot(page, "schema", tmp_path)
    # The select changes at once; the mode is stored when the page's PUT is answered.
    with page.expect_response(
        lambda r: r.request.method == "PUT" and r.url.endswith("/compatibility")
    ) as answered:
        page.select_option("[data-testid=compatibility]", "FULL")
    assert answered.value.ok, answered.value.text()
    page.wait_for_function(
        "document.querySelector('[data-testid=compatibility]').value === 'FULL' && "
        "!document.querySelector('.error')"
    )
    listed = console.api("GET", "/v1/namespaces/demo/schemas", params={"limit": 1000}).json()
    mode = {s["name"]: s["compatibility"] for s in listed["items"]}["face_detection"]
    assert mode == "FULL"
    console.api("PUT", "/v1/namespaces/demo/schemas/face_detection/compatibility",
                json={"mode": "BACKWARD"})  # fmt: skip


def test_queries_show_results_and_syntax_errors_at_their_position(
    page: Any, console: Console, tmp_path: Path
) -> None:
    sign_in(page, console.admin_key)
    page.goto(console.url + "/#/ns/demo/ds/face_detection/1")
    page.wait_for_selector("[data-testid=query-results] tbody tr")
    query = page.locator("#datastore-query textarea")
    query.fill('track.kind = "video" and region.person = "Bob"')
    page.click("#datastore-query button[type=submit]")
    page.wait_for_function(f"{STATE}.query && {STATE}.query.rows === 2")

    query.fill('event.label = "face" and\n  event.confidence == 0.9')
    page.click("#datastore-query button[type=submit]")
    page.wait_for_selector("[data-testid=query-error]")
    error = page.evaluate(f"{STATE}.query.error")
    assert (error["line"], error["column"]) == (2, 21)
    shown = page.inner_text("[data-testid=query-error]")
    assert "line 2, column 21" in shown
    assert page.inner_text("[data-testid=query-error-mark]") == "="
    assert page.locator("[data-testid=query-results]").count() == 1  # the last results stay
    screenshot(page, "query-error", tmp_path)

    # A document-level query, from a result row to the document.
    query.fill("count(event) >= 0")
    page.click("#datastore-query button[type=submit]")
    page.wait_for_function(f"{STATE}.query && {STATE}.query.error === null")
    page.click(f"[data-testid=query-results] a:has-text('{console.document_ids[0]}')")
    page.wait_for_selector("#document-query textarea")
    page.fill("#document-query textarea", 'region.person = "Bob"')
    page.click("#document-query button[type=submit]")
    page.wait_for_selector("[data-testid=event-results] tbody tr")
    rows = page.locator("[data-testid=event-results] tbody tr").all_inner_texts()
    assert len(rows) == 2
    assert rows[0].startswith("/tracks/0/components/0/events/1")
    screenshot(page, "document-query", tmp_path)
    page.fill("#document-query textarea", "event.nope = 1")
    page.click("#document-query button[type=submit]")
    page.wait_for_selector("#document-query [role=alert]")
    assert "event.nope" in page.inner_text("#document-query [role=alert]")


def _click_at_instant(page: Any, t: float) -> None:
    canvas = page.locator("[data-testid=timeline-canvas]")
    box = canvas.bounding_box()
    x = page.evaluate(f"{STATE}.xAt({t})")
    page.mouse.click(box["x"] + x, box["y"] + 80)


def test_document_timeline_draws_the_boxes_active_at_a_selected_instant(
    page: Any, console: Console, tmp_path: Path
) -> None:
    sign_in(page, console.admin_key)
    page.goto(console.url + f"/#/doc/{console.document_ids[0]}")
    page.click("[data-testid=open-timeline]")
    page.wait_for_function(f"{STATE}.timeline && !{STATE}.timeline.loading")
    timeline = page.evaluate(f"{STATE}.timeline")
    assert timeline["items"] == 6
    assert timeline["lanes"] == [
        "track 0 video / face_detector / face",
        "track 1 subtitle / subtitle_import / line",
    ]
    assert timeline["stats"]["draws"] >= 1

    # Event 1 of the latest document spans frames 30-42 at 24000/1001 fps: 1.25125-1.75175 s.
    _click_at_instant(page, 1.5)
    page.wait_for_function(f"{STATE}.boxes.length === 2")
    selected = page.evaluate(f"{STATE}.timeline.selected")
    assert abs(selected - 1.5) < 0.02
    boxes = sorted(page.evaluate(f"{STATE}.boxes"), key=lambda b: b["label"])
    assert [b["label"] for b in boxes] == ["Alice", "Bob"]
    # Normalized coordinates, drawn to scale on a 1920x1080 frame.
    assert boxes[1]["px"] == pytest.approx({"x": 0.55 * 1920, "y": 0.18 * 1080,
                                            "w": 0.15 * 1920, "h": 0.3 * 1080})  # fmt: skip
    assert page.evaluate(f"{STATE}.frame") == {"width": 1920, "height": 1080, "normalized": True}
    screenshot(page, "timeline-document", tmp_path)

    _click_at_instant(page, 0.5)  # event 0: frames 6-18, Alice only
    page.wait_for_function(f"{STATE}.boxes.length === 1")
    assert page.evaluate(f"{STATE}.boxes[0].label") == "Alice"
    _click_at_instant(page, 0.9)  # between events
    page.wait_for_function(f"{STATE}.boxes.length === 0")

    # A frame in pixels: the same boxes, scaled to it.
    page.fill("input[name=frame-width]", "1280")
    page.fill("input[name=frame-height]", "720")
    page.press("input[name=frame-height]", "Enter")
    _click_at_instant(page, 1.5)
    page.wait_for_function(f"{STATE}.boxes.length === 2 && {STATE}.frame.width === 1280")
    bob = next(b for b in page.evaluate(f"{STATE}.boxes") if b["label"] == "Bob")
    assert bob["px"]["x"] == pytest.approx(0.55 * 1280)

    # The wheel zooms in around the pointer; a drag pans; the overview brush picks a window.
    before = page.evaluate(f"{STATE}.timeline.window")
    canvas = page.locator("[data-testid=timeline-canvas]").bounding_box()
    page.mouse.move(canvas["x"] + page.evaluate(f"{STATE}.xAt(2)"), canvas["y"] + 80)
    page.mouse.wheel(0, -400)
    page.wait_for_function(
        f"{STATE}.timeline.window[1] - {STATE}.timeline.window[0] < {(before[1] - before[0]) / 2}"
    )
    zoomed = page.evaluate(f"{STATE}.timeline.window")
    assert zoomed[0] < 2 < zoomed[1]
    x = canvas["x"] + page.evaluate(f"{STATE}.xAt(2)")
    page.mouse.move(x, canvas["y"] + 80)
    page.mouse.down()
    page.mouse.move(x - 200, canvas["y"] + 80, steps=5)
    page.mouse.up()
    panned = page.evaluate(f"{STATE}.timeline.window")
    assert panned[0] > zoomed[0]
    assert panned[1] - panned[0] == pytest.approx(zoomed[1] - zoomed[0])
    left = canvas["x"] + 230 + 10
    page.mouse.move(left, canvas["y"] + 15)
    page.mouse.down()
    page.mouse.move(left + 100, canvas["y"] + 15, steps=4)
    page.mouse.up()
    brushed = page.evaluate(f"{STATE}.timeline.window")
    assert brushed[0] < 0.3 and brushed[1] - brushed[0] < 1
    # The keyboard: arrows pan, Enter selects the middle of the window.
    page.focus("[data-testid=timeline-canvas]")
    page.keyboard.press("ArrowRight")
    moved = page.evaluate(f"{STATE}.timeline.window")
    assert moved[0] > brushed[0]
    page.keyboard.press("Enter")
    page.wait_for_function(
        f"Math.abs({STATE}.timeline.selected - {(moved[0] + moved[1]) / 2}) < 1e-9"
    )


def test_association_timeline_shows_annotation_lanes_and_boxes(
    page: Any, console: Console, tmp_path: Path
) -> None:
    sign_in(page, console.admin_key)
    page.goto(console.url + "/#/ns/demo")
    page.fill("input[name=association-id]", "80100172")
    page.click("text=Open timeline")
    page.wait_for_function(f"{STATE}.timeline && !{STATE}.timeline.loading")
    timeline = page.evaluate(f"{STATE}.timeline")
    assert timeline["lanes"] == ["CHARACTER_IN_FRAME", "REVIEW_NOTE"]
    assert timeline["items"] == 20 + 13 + 2
    # At 4.5 s: Alice, Bob (no Bob every third second) and a review note (4-6 s).
    _click_at_instant(page, 4.5)
    page.wait_for_function(f"{STATE}.boxes.length === 3")
    labels = sorted(b["label"] for b in page.evaluate(f"{STATE}.boxes"))
    assert labels == ["Alice", "Bob", "Please change the colour of the gloves to rich black"]
    page.select_option("select:near(:text('Lanes by'))", "characterName")
    page.wait_for_function(f"{STATE}.timeline.lanes.length === 3")
    assert page.evaluate(f"{STATE}.timeline.lanes") == [
        "CHARACTER_IN_FRAME / Alice",
        "CHARACTER_IN_FRAME / Bob",
        "REVIEW_NOTE / —",
    ]
    _click_at_instant(page, 3.5)  # second 3: no Bob
    page.wait_for_function(f"{STATE}.boxes.length === 1")
    screenshot(page, "timeline-association", tmp_path)


def test_annotation_search_and_an_edit_refused_with_the_error_inline(
    page: Any, console: Console, tmp_path: Path
) -> None:
    sign_in(page, console.admin_key)
    page.goto(console.url + "/#/ns/demo/annotations")
    page.select_option("select[name=type]", "CHARACTER_IN_FRAME")
    page.fill("input[name=association]", "MOVIE_ID:80100172")
    page.fill("input[name=start]", "2.5")
    page.fill("input[name=end]", "3.5")
    picker = page.locator("[data-testid=box-picker]").bounding_box()
    page.mouse.move(picker["x"] + 0.5 * picker["width"], picker["y"] + 0.1 * picker["height"])
    page.mouse.down()
    page.mouse.move(picker["x"] + 0.9 * picker["width"], picker["y"] + 0.9 * picker["height"])
    page.mouse.up()
    page.fill("form.query textarea", 'data.characterName = "Bob"')
    page.click("form.query button[type=submit]")
    page.wait_for_selector("[data-testid=annotation-results] tbody tr")
    rows = page.locator("[data-testid=annotation-results] tbody tr")
    assert rows.count() == 1  # Bob at 2-3 s (none at 3 s), in the right half of the frame
    assert '"characterName":"Bob"' in rows.nth(0).inner_text()
    assert '"start":2' in rows.nth(0).inner_text()
    screenshot(page, "annotation-search", tmp_path)

    rows.nth(0).locator("a").first.click()
    page.wait_for_selector("[data-testid=annotation-editor] [data-field=spatial] textarea")
    spatial = page.locator("[data-field=spatial] textarea")
    spatial.fill('{"x": 0.55, "y": 0.22, "w": -0.15, "h": 0.3}')
    page.click("[data-testid=annotation-editor] button[type=submit]")
    error = page.locator("[data-field=spatial] [data-testid=field-error]")
    error.wait_for()
    assert "/data/spatial/w" in error.inner_text()
    assert "less than the minimum of 0" in error.inner_text()
    assert page.locator("[data-field=characterName] [data-testid=field-error]").count() == 0
    assert spatial.get_attribute("aria-invalid") == "true"
    screenshot(page, "annotation-edit", tmp_path)

    spatial.fill("{not json")  # refused in the page, before any request
    page.locator("[data-field=spatial] [data-testid=field-error]").get_by_text(
        "not valid JSON"
    ).wait_for()
    assert page.locator("[data-testid=annotation-editor] button[type=submit]").is_disabled()

    spatial.fill('{"x": 0.55, "y": 0.22, "w": 0.2, "h": 0.3}')
    page.click("[data-testid=annotation-editor] button[type=submit]")
    page.wait_for_selector("[data-testid=saved]")
    page.locator("[data-testid=annotation-versions] li").nth(1).wait_for()
    assert page.locator("[data-field=spatial] [data-testid=field-error]").count() == 0


def test_async_writes_are_listed_with_their_progress(
    page: Any, console: Console, tmp_path: Path
) -> None:
    document = {"asset": {"title": "Async"}, "tracks": []}
    submitted = console.api(
        "POST",
        "/v1/namespaces/demo/datastores/face_detection/1/documents/async",
        json={"mid": {"title_id": "9", "video_stream_id": "a"}, "document": document},
    )
    assert submitted.status_code == 202, submitted.text
    sign_in(page, console.admin_key)
    page.goto(console.url + "/#/ns/demo/requests")
    row = page.locator(f"[data-testid=write-requests] tr:has-text('{submitted.json()['id']}')")
    row.wait_for()
    row.locator("text=INDEXED").wait_for(timeout=30_000)
    assert row.locator("progress").get_attribute("value") == "1"
    screenshot(page, "requests", tmp_path)


# Records 2 s of a changing canvas into a WebM in the page: a playable video of our own.
RECORD_VIDEO = """async () => {
  const canvas = document.createElement("canvas");
  canvas.width = 320;
  canvas.height = 180;
  const g = canvas.getContext("2d");
  const recorder = new MediaRecorder(canvas.captureStream(25), {mimeType: "video/webm"});
  const chunks = [];
  recorder.ondataavailable = (e) => chunks.push(e.data);
  const stopped = new Promise((resolve) => (recorder.onstop = resolve));
  recorder.start();
  const t0 = performance.now();
  await new Promise((resolve) => {
    const frame = () => {
      g.fillStyle = `hsl(${(performance.now() - t0) / 10}, 50%, 50%)`;
      g.fillRect(0, 0, 320, 180);
      if (performance.now() - t0 < 2000) requestAnimationFrame(frame);
      else resolve();
    };
    frame();
  });
  recorder.stop();
  await stopped;
  return URL.createObjectURL(new Blob(chunks, {type: "video/webm"}));
}"""


def test_a_video_and_the_timeline_stay_in_sync(page: Any, console: Console) -> None:
    sign_in(page, console.admin_key)
    page.goto(console.url + f"/#/timeline/doc/{console.document_ids[0]}")
    page.wait_for_function(f"{STATE}.timeline && !{STATE}.timeline.loading")
    url = page.evaluate(RECORD_VIDEO)
    page.fill("input[placeholder='https://…/movie.mp4']", url)
    page.click("text=Load video")
    page.wait_for_function("document.querySelector('video.frame-video').readyState >= 1")
    video = "document.querySelector('video.frame-video')"
    # Seeking the video selects that instant on the timeline, and draws its boxes.
    page.evaluate(f"{video}.currentTime = 1.5")
    page.wait_for_function(f"{STATE}.timeline.selected === 1.5 && {STATE}.boxes.length === 2")
    # Selecting an instant on the timeline seeks the video.
    _click_at_instant(page, 0.5)
    page.wait_for_function(f"Math.abs({video}.currentTime - {STATE}.timeline.selected) < 0.05")
    assert page.evaluate(f"{STATE}.boxes.length") == 1
    # Playing moves the selected instant along.
    page.evaluate(f"{video}.play()")
    page.wait_for_function(f"{STATE}.timeline.selected > 0.9")
    assert page.evaluate(f"{video}.paused") is False
