"""The console's timeline with 100k events, in Debian's Chromium against a live `reeldb serve`.

Writes a document of ``--events`` events (1 region each, in 10 lanes over 2 hours) and, as
the same-run baseline, one of ``--baseline-events``; optionally ``--annotations`` timed
annotations on one entity (the association timeline, fetched by window). For each, opens the
timeline screen in headless Chromium and reads the browser's performance API:

- ``first_render_ms``: navigation start to the first frame with items drawn (the
  ``reeldb-timeline-first-render`` mark): fetching, parsing, indexing and drawing.
- panning, zoomed out (the whole extent: per-pixel aggregation) and zoomed in (a 60 s
  window: items drawn one by one): the window moves on each of ``--frames`` animation
  frames; ``frame_ms`` is the interval between frames (requestAnimationFrame timestamps;
  16.7 ms at 60 Hz means no frame was dropped), ``draw_ms`` the canvas drawing alone.

Prints one JSON object. Needs /usr/bin/chromium (`make browser`) and the built console
(`make console`).
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

import reeldb
from reeldb.console import STATIC_DIR
from reeldb.demo import FACE_DETECTION

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
DATASTORE = "bench/face_detection/1"
DURATION = 7200.0  # seconds of media
ALGORITHMS = ["faces", "objects", "shots", "text", "logos"]
LABELS = ["a", "b"]

# Runs in the page: move the window on each animation frame, collect frame intervals and
# draw times. Resolves with {frame_ms: [...], draw_ms: [...]}.
PAN_SCRIPT = """
async ([span, frames]) => {
  const s = window.__reeldbConsole;
  const [e0, e1] = s.timeline.extent;
  const step = Math.max(span, e1 - e0) / frames / 2;
  let t0 = e0;
  s.setWindow(t0, t0 + span);
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const drawsBefore = s.timeline.stats.drawMs.length;
  const stamps = [];
  await new Promise((resolve) => {
    const tick = (now) => {
      stamps.push(now);
      if (stamps.length > frames) return resolve();
      t0 += step;
      s.setWindow(t0, t0 + span);
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  const frame_ms = stamps.slice(1).map((t, i) => t - stamps[i]);
  const draw_ms = s.timeline.stats.drawMs.slice(drawsBefore - s.timeline.stats.drawMs.length);
  return { frame_ms, draw_ms, mode: s.timeline.stats.mode, drawn: s.timeline.stats.drawnItems };
}
"""


def _document(events: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    lanes: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(events):
        algorithm, label = rng.choice(ALGORITHMS), rng.choice(LABELS)
        start = rng.uniform(0, DURATION - 5)
        x, y = rng.uniform(0, 0.8), rng.uniform(0, 0.8)
        lanes.setdefault((algorithm, label), []).append(
            {
                "time_range": {"start": round(start, 3),
                               "end": round(start + rng.uniform(0.2, 4), 3)},
                "label": label,
                "confidence": 0.9,
                "regions": [{"bounding_box": {"x": round(x, 3), "y": round(y, 3),
                                              "w": 0.1, "h": 0.15}}],
            }
        )  # fmt: skip
    components = [
        {"algorithm": algorithm, "events": [e for (a, _), es in lanes.items() if a == algorithm
                                            for e in es]}
        for algorithm in ALGORITHMS
    ]  # fmt: skip
    return {"asset": {"title": f"bench {events}"}, "tracks": [{"kind": "video",
            "frame_rate": "25", "components": components}]}  # fmt: skip


def _annotations(count: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        start = round(rng.uniform(0, DURATION - 5), 3)
        x, y = round(rng.uniform(0, 0.8), 3), round(rng.uniform(0, 0.8), 3)
        out.append(
            {
                "type": "BENCH_BOX",
                "associations": [{"type": "MOVIE_ID", "id": "bench"}],
                "data": {
                    "label": rng.choice(LABELS),
                    "temporal": {"start": start, "end": start + 2},
                    "spatial": {"x": x, "y": y, "w": 0.1, "h": 0.15},
                },
            }
        )
    return out


def _load(url: str, sizes: list[int], annotations: int, seed: int) -> tuple[str, list[str]]:
    with reeldb.connect(url) as db:
        admin = db.bootstrap()
        assert admin is not None
        db.create_namespace("bench")
        db.add_schema("bench", copy.deepcopy(FACE_DETECTION))
        db.add_schema("bench", {"name": "BENCH_BOX", "extends": ["TEMPORAL_SPATIAL_BASE"],
                                "properties": {"label": {"type": "keyword"}}})  # fmt: skip
        db.create_datastore(DATASTORE, mid_keys=["title_id"], schema="face_detection")
        ids = [
            str(db.put_document(DATASTORE, {"title_id": str(n)}, _document(n, seed)).id)
            for n in sizes
        ]
        batch = _annotations(annotations, seed)
        for start in range(0, len(batch), 10_000):
            db.annotations.create_many("bench", batch[start : start + 10_000])
        return admin.secret, ids


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if not ordered:
        return {}

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(len(ordered) * q))], 2)

    return {"p50": at(0.5), "p95": at(0.95), "max": round(ordered[-1], 2), "n": len(ordered)}


def _open(browser: Any, base: str, key: str, route: str) -> tuple[Any, Any, float]:
    """A fresh tab on the screen; the time from navigation start to the first items drawn."""
    context = browser.new_context(viewport={"width": 1600, "height": 900})
    context.add_init_script(f"sessionStorage.setItem('reeldb.apiKey', {json.dumps(key)})")
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(f"{base}/{route}")
    page.wait_for_function(
        "performance.getEntriesByName('reeldb-timeline-first-render').length > 0"
    )
    first = page.evaluate(
        "performance.getEntriesByName('reeldb-timeline-first-render')[0].startTime"
    )
    return context, page, float(first)


def _measure(
    browser: Any, base: str, key: str, route: str, frames: int, repeat: int
) -> dict[str, Any]:
    firsts = []
    for _ in range(repeat - 1):
        context, _page, first = _open(browser, base, key, route)
        firsts.append(first)
        context.close()
    context, page, first = _open(browser, base, key, route)
    firsts.append(first)
    first = sorted(firsts)[len(firsts) // 2]
    timeline = page.evaluate("window.__reeldbConsole.timeline")
    result: dict[str, Any] = {
        "items": timeline["items"],
        "lanes": len(timeline["lanes"]),
        "first_render_ms": round(first, 1),
        "first_render_runs_ms": [round(f, 1) for f in firsts],
    }
    extent = timeline["extent"]
    for name, span in (("zoomed_out", 0.9 * (extent[1] - extent[0])), ("zoomed_in_60s", 60.0)):
        pan = page.evaluate(PAN_SCRIPT, [span, frames])
        result[f"pan_{name}"] = {
            "mode": pan["mode"],
            "items_in_view": pan["drawn"],
            "frame_ms": _stats(pan["frame_ms"]),
            "draw_ms": _stats(pan["draw_ms"]),
            "frames_over_50ms": sum(1 for f in pan["frame_ms"] if f > 50),
        }
    result["extent_s"] = [round(t, 1) for t in extent]
    if timeline["partial"]:
        # Zoom into the end, which the first load did not cover: fetched by window.
        page.evaluate(f"window.__reeldbConsole.setWindow({extent[1] - 120}, {extent[1] - 60})")
        page.wait_for_function(
            f"window.__reeldbConsole.timeline.items > {timeline['items']}", timeout=60_000
        )
        result["items_after_window_fetch"] = page.evaluate("window.__reeldbConsole.timeline.items")
    page.evaluate("window.__reeldbConsole.select(3600)")
    page.wait_for_function("window.__reeldbConsole.timeline.selected === 3600")
    result["boxes_at_3600s"] = len(page.evaluate("window.__reeldbConsole.boxes"))
    context.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--baseline-events", type=int, default=1_000)
    parser.add_argument("--annotations", type=int, default=100_000, help="0 skips them")
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=3, help="opens per screen (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists() or not (STATIC_DIR / "index.html").is_file():
        sys.exit("console_bench needs /usr/bin/chromium (make browser) and make console")
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(dir=args.tmpdir) as work:
        url = f"sqlite:///{work}/reel.db"
        started = time.perf_counter()
        sizes = [args.events, args.baseline_events]
        key, (big, small) = _load(url, sizes, args.annotations, args.seed)
        load_s = time.perf_counter() - started
        port = _free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("reeldb")), "-d", url, "serve", "--port",
             str(port), "--no-access-log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(base + "/readyz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    sys.exit("reeldb serve did not start")
                time.sleep(0.1)
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                out: dict[str, Any] = {
                    "benchmark": "console_timeline",
                    "chromium": browser.version,
                    "load_data_s": round(load_s, 2),
                    "document": _measure(
                        browser, base, key, f"#/timeline/doc/{big}", args.frames, args.repeat
                    ),
                    "baseline_document": _measure(
                        browser, base, key, f"#/timeline/doc/{small}", args.frames, args.repeat
                    ),
                }
                if args.annotations:
                    out["association"] = _measure(
                        browser,
                        base,
                        key,
                        "#/timeline/assoc/bench/MOVIE_ID/bench",
                        args.frames,
                        args.repeat,
                    )
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=15)
    doc, baseline = out["document"], out["baseline_document"]
    out["first_render_ratio_to_baseline"] = round(
        doc["first_render_ms"] / max(1.0, baseline["first_render_ms"]), 2
    )
    print(json.dumps(out))


if __name__ == "__main__":
    main()
