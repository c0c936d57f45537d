// The timeline screen: lanes on a canvas, a brush, and the boxes active at the selected instant
// drawn to scale on a frame-sized canvas (over a video when the user gives a playable URL).

import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import { enc, encId, get, type Annotation, type DocumentOut, type Page } from "./api";
import { pageState, type DrawnBox } from "./state";
import {
  boxesAt,
  buildLanes,
  formatTime,
  frameRate,
  seconds,
  TimelineCanvas,
  type Lane,
  type TimedBox,
  type TimedItem,
} from "./timeline";
import { ErrorBox, links, Loading } from "./ui";

export type TimelineSource =
  | { kind: "doc"; id: string }
  | { kind: "assoc"; namespace: string; type: string; id: string };

/** Annotations fetched for one window at most (pages of 10,000). */
const WINDOW_CAP = 50_000;

function sourceName(source: TimelineSource): string {
  return source.kind === "doc" ? `document ${source.id}` : `${source.type}:${source.id} in ${source.namespace}`;
}

// -- items from a document ---------------------------------------------------------------------

export function documentItems(doc: DocumentOut): TimedItem[] {
  const out: TimedItem[] = [];
  (doc.data.tracks ?? []).forEach((track, t) => {
    const rate = frameRate(track.frame_rate);
    const kind = typeof track.kind === "string" ? ` ${track.kind}` : "";
    (track.components ?? []).forEach((component, c) => {
      const algorithm = typeof component.algorithm === "string" ? component.algorithm : `component ${c}`;
      (component.events ?? []).forEach((event, e) => {
        const span = seconds(event.time_range, rate);
        if (!span) return;
        const label = typeof event.label === "string" ? event.label : "event";
        const boxes: TimedBox[] = (event.regions ?? [])
          .filter((r) => r.bounding_box)
          .map((r) => {
            const own = seconds(r.time_range, rate);
            const name = ["person", "label", "name"].map((k) => r[k]).find((v) => typeof v === "string");
            return { ...r.bounding_box, label: (name as string | undefined) ?? label, start: own?.[0], end: own?.[1] };
          });
        out.push({
          start: span[0],
          end: span[1],
          label,
          lane: `track ${t}${kind} / ${algorithm} / ${label}`,
          boxes,
          ref: `/tracks/${t}/components/${c}/events/${e}`,
        });
      });
    });
  });
  return out;
}

// -- items from annotations --------------------------------------------------------------------

const isRange = (v: unknown): v is { start: number; end: number } =>
  !!v && typeof v === "object" && typeof (v as { start?: unknown }).start === "number" && typeof (v as { end?: unknown }).end === "number";
const isBox = (v: unknown): v is { x: number; y: number; w: number; h: number } =>
  !!v && typeof v === "object" && ["x", "y", "w", "h"].every((k) => typeof (v as Record<string, unknown>)[k] === "number");

export function annotationLabel(a: Annotation): string {
  for (const key of ["characterName", "label", "name", "comment"]) {
    const v = a.data[key];
    if (typeof v === "string") return v;
  }
  return a.type.name;
}

export function annotationItem(a: Annotation, groupBy: string): TimedItem | null {
  const time = Object.values(a.data).find(isRange);
  if (!time) return null;
  const label = annotationLabel(a);
  const boxes = Object.values(a.data)
    .filter(isBox)
    .map((b) => ({ x: b.x, y: b.y, w: b.w, h: b.h, label }));
  const extra = groupBy === "type" ? "" : ` / ${String(a.data[groupBy] ?? "—")}`;
  return { start: time.start, end: time.end, label, lane: `${a.type.name}${extra}`, boxes, ref: a.id };
}

// -- the screen --------------------------------------------------------------------------------

export function TimelineView({ source }: { source: TimelineSource }) {
  const canvasRef = useRef<HTMLCanvasElement>(null);
  const frameRef = useRef<HTMLCanvasElement>(null);
  const videoRef = useRef<HTMLVideoElement>(null);
  const timeline = useRef<TimelineCanvas | null>(null);
  const annotations = useRef(new Map<string, Annotation>());
  const covered = useRef<[number, number][]>([]);
  const started = useRef(performance.now());
  const latestWindow = useRef<[number, number]>([0, 1]);
  const windowTimer = useRef(0);
  const [lanes, setLanes] = useState<Lane[]>([]);
  const [items, setItems] = useState(0);
  const [error, setError] = useState<unknown>(null);
  const [loading, setLoading] = useState(true);
  const [partial, setPartial] = useState(false);
  const [selected, setSelected] = useState<number | null>(null);
  const [windowT, setWindowT] = useState<[number, number]>([0, 1]);
  const [frame, setFrame] = useState({ width: 1920, height: 1080 });
  const [coords, setCoords] = useState<"auto" | "normalized" | "pixels">("auto");
  const [groupBy, setGroupBy] = useState("type");
  const [videoUrl, setVideoUrl] = useState("");
  const [videoInput, setVideoInput] = useState("");
  const sourceKey = JSON.stringify(source);

  // The canvas and its interactions, once per source.
  useEffect(() => {
    const canvas = canvasRef.current!;
    const view = new TimelineCanvas(canvas, {
      onSelect: (t) => {
        setSelected(t);
        const video = videoRef.current;
        if (video && video.src && Math.abs(video.currentTime - t) > 0.05) video.currentTime = t;
      },
      onWindow: (t0, t1) => {
        // The page state follows every frame; the screen's text (and the fetch by window)
        // at most every 100 ms, so that panning redraws only the canvas.
        if (pageState.timeline) pageState.timeline.window = [t0, t1];
        latestWindow.current = [t0, t1];
        if (windowTimer.current === 0) {
          windowTimer.current = window.setTimeout(() => {
            windowTimer.current = 0;
            setWindowT(latestWindow.current);
          }, 100);
        }
      },
    });
    timeline.current = view;
    pageState.setWindow = (t0, t1) => view.setWindow(t0, t1);
    pageState.select = (t) => view.select(t);
    pageState.xAt = (t) => view.xOf(t);
    started.current = performance.now();
    return () => {
      clearTimeout(windowTimer.current);
      windowTimer.current = 0;
      view.destroy();
      timeline.current = null;
      pageState.setWindow = undefined;
      pageState.select = undefined;
      pageState.xAt = undefined;
      pageState.timeline = null;
      pageState.boxes = [];
      pageState.frame = null;
    };
  }, [sourceKey]);

  const rebuild = (all: TimedItem[], extent?: [number, number]) => {
    const built = buildLanes(all);
    setLanes(built);
    setItems(all.length);
    timeline.current?.setData(built, extent);
  };

  const annotationItems = (by: string): TimedItem[] =>
    [...annotations.current.values()].map((a) => annotationItem(a, by)).filter((i): i is TimedItem => i !== null);

  /** Fetch the annotations overlapping [t0, t1] (bounded); true when all of them came. */
  const fetchWindow = async (t0: number | null, t1: number | null): Promise<boolean> => {
    if (source.kind !== "assoc") return true;
    const path = `/namespaces/${enc(source.namespace)}/associations/${enc(source.type)}/${encId(source.id)}/timeline`;
    let cursor: string | null = null;
    let fetched = 0;
    do {
      const page: Page<Annotation> = await get<Page<Annotation>>(path, { start: t0, end: t1, limit: 10_000, cursor });
      page.items.forEach((a) => annotations.current.set(a.id, a));
      fetched += page.items.length;
      cursor = page.next_cursor;
    } while (cursor && fetched < WINDOW_CAP);
    return cursor === null;
  };

  /** Where an entity's annotations end, by bisection (a few requests of one item each). */
  const probeEnd = async (from: number): Promise<number> => {
    if (source.kind !== "assoc") return from;
    const path = `/namespaces/${enc(source.namespace)}/associations/${enc(source.type)}/${encId(source.id)}/timeline`;
    const any = async (start: number) =>
      (await get<Page<Annotation>>(path, { start, limit: 1 })).items.length > 0;
    let lo = from;
    let hi = Math.max(1, from * 2);
    for (let i = 0; i < 40 && (await any(hi)); i++) [lo, hi] = [hi, hi * 2];
    for (let i = 0; i < 24 && hi - lo > 0.5; i++) {
      const mid = (lo + hi) / 2;
      if (await any(mid)) lo = mid;
      else hi = mid;
    }
    return hi;
  };

  // Load the source.
  useEffect(() => {
    let cancelled = false;
    setLoading(true);
    setError(null);
    annotations.current.clear();
    covered.current = [];
    (async () => {
      let all: TimedItem[];
      let probedEnd = 0;
      if (source.kind === "doc") {
        const doc = await get<DocumentOut>(`/documents/${enc(source.id)}`);
        all = documentItems(doc);
      } else {
        const complete = await fetchWindow(null, null);
        setPartial(!complete);
        all = annotationItems(groupBy);
        // By start time: every annotation that starts before the last one loaded is here.
        const lastStart = all.reduce((m, i) => Math.max(m, i.start), 0);
        covered.current = [[-Infinity, complete ? Infinity : lastStart]];
        if (!complete) probedEnd = await probeEnd(lastStart);
      }
      if (cancelled) return;
      const end = all.reduce((m, i) => Math.max(m, i.end), probedEnd);
      const start = all.reduce((m, i) => Math.min(m, i.start), Infinity);
      const extent: [number, number] = [Math.min(0, start === Infinity ? 0 : start), Math.max(end, 1)];
      rebuild(all, extent);
      setLoading(false);
      // After the frame that draws them: how long from opening the screen to items drawn.
      requestAnimationFrame(() =>
        requestAnimationFrame(() => {
          const took = performance.now() - started.current;
          if (pageState.timeline) pageState.timeline.firstRenderMs = took;
        }),
      );
    })().catch((e) => {
      if (!cancelled) {
        setError(e);
        setLoading(false);
      }
    });
    return () => {
      cancelled = true;
    };
  }, [sourceKey]);

  // Lanes of annotations regrouped.
  useEffect(() => {
    if (source.kind === "assoc" && !loading) rebuild(annotationItems(groupBy));
  }, [groupBy]);

  // Fetch by window: when the loaded annotations did not cover the visible window.
  useEffect(() => {
    if (source.kind !== "assoc" || loading || !partial) return;
    const [t0, t1] = windowT;
    if (covered.current.some(([a, b]) => a <= t0 && b >= t1)) return;
    const timer = setTimeout(() => {
      const pad = (t1 - t0) / 2;
      fetchWindow(Math.max(0, t0 - pad), t1 + pad).then(() => {
        covered.current.push([t0 - pad, t1 + pad]);
        rebuild(annotationItems(groupBy));
      }, setError);
    }, 250);
    return () => clearTimeout(timer);
  }, [windowT, partial, loading]);

  const normalized = useMemo(() => {
    if (coords !== "auto") return coords === "normalized";
    let seen = 0;
    for (const lane of lanes) {
      for (const item of lane.items) {
        for (const b of item.boxes) {
          if (b.x + b.w > 1.0001 || b.y + b.h > 1.0001) return false;
          if (++seen > 5000) return true;
        }
      }
    }
    return true;
  }, [lanes, coords]);

  const active = useMemo(() => (selected === null ? [] : boxesAt(lanes, selected)), [lanes, selected]);

  // Draw the frame canvas.
  useEffect(() => {
    const canvas = frameRef.current;
    if (!canvas) return;
    const ctx = canvas.getContext("2d")!;
    const { width, height } = frame;
    const sx = normalized ? width : 1;
    const sy = normalized ? height : 1;
    ctx.clearRect(0, 0, width, height);
    if (!videoUrl) {
      ctx.fillStyle = "#1f2937";
      ctx.fillRect(0, 0, width, height);
      ctx.strokeStyle = "#374151";
      ctx.lineWidth = 1;
      for (let x = 0; x <= width; x += width / 10) {
        ctx.beginPath();
        ctx.moveTo(x, 0);
        ctx.lineTo(x, height);
        ctx.stroke();
      }
      for (let y = 0; y <= height; y += height / 10) {
        ctx.beginPath();
        ctx.moveTo(0, y);
        ctx.lineTo(width, y);
        ctx.stroke();
      }
    }
    const drawn: DrawnBox[] = active.map((b) => ({
      label: b.label,
      x: b.x,
      y: b.y,
      w: b.w,
      h: b.h,
      px: { x: b.x * sx, y: b.y * sy, w: b.w * sx, h: b.h * sy },
    }));
    const line = Math.max(2, width / 480);
    ctx.font = `${Math.round(height / 30)}px system-ui, sans-serif`;
    drawn.forEach((b, i) => {
      const color = ["#22d3ee", "#facc15", "#f472b6", "#4ade80", "#fb923c"][i % 5];
      ctx.strokeStyle = color;
      ctx.lineWidth = line;
      ctx.strokeRect(b.px.x, b.px.y, b.px.w, b.px.h);
      ctx.fillStyle = color;
      ctx.fillText(b.label, b.px.x + line, Math.max(height / 30, b.px.y - line * 2));
    });
    if (selected !== null) {
      ctx.fillStyle = "#f9fafb";
      ctx.fillText(`t = ${formatTime(selected, 0.001)} · ${drawn.length} box${drawn.length === 1 ? "" : "es"}`, 12, height - 16);
    }
    pageState.boxes = drawn;
    pageState.frame = { ...frame, normalized };
  }, [active, frame, normalized, videoUrl, selected]);

  // Page state for tests and benchmarks.
  useEffect(() => {
    const view = timeline.current;
    pageState.timeline = {
      source: sourceName(source),
      lanes: lanes.map((l) => l.name),
      items,
      window: latestWindow.current,
      extent: view ? view.extent : [0, 1],
      selected,
      loading,
      partial,
      firstRenderMs: pageState.timeline?.firstRenderMs ?? null,
      stats: view ? view.stats : null,
    };
  }, [lanes, items, windowT, selected, loading, partial]);

  // Playback drives the selected instant.
  useEffect(() => {
    const video = videoRef.current;
    if (!video || !videoUrl) return;
    let handle = 0;
    const follow = () => {
      timeline.current?.select(video.currentTime);
      if (!video.paused) handle = requestAnimationFrame(follow);
    };
    const onPlay = () => (handle = requestAnimationFrame(follow));
    const onSeek = () => timeline.current?.select(video.currentTime);
    video.addEventListener("play", onPlay);
    video.addEventListener("seeked", onSeek);
    return () => {
      cancelAnimationFrame(handle);
      video.removeEventListener("play", onPlay);
      video.removeEventListener("seeked", onSeek);
    };
  }, [videoUrl]);

  const stringKeys = useMemo(() => {
    const keys = new Set<string>();
    for (const a of annotations.current.values()) {
      for (const [k, v] of Object.entries(a.data)) if (typeof v === "string" && k !== "comment") keys.add(k);
      if (keys.size > 20) break;
    }
    return [...keys].sort();
  }, [items]);

  return (
    <>
      <nav class="crumbs">
        <a href={links.home()}>Namespaces</a> /{" "}
        {source.kind === "doc" ? (
          <a href={links.document(source.id)}>document</a>
        ) : (
          <a href={links.namespace(source.namespace)}>{source.namespace}</a>
        )}{" "}
        / timeline
      </nav>
      <h1>Timeline of {sourceName(source)}</h1>
      <ErrorBox error={error} />
      <Loading when={loading} />
      <p class="muted" data-testid="timeline-summary">
        {items.toLocaleString()} timed item{items === 1 ? "" : "s"} in {lanes.length} lane{lanes.length === 1 ? "" : "s"} · window{" "}
        {formatTime(windowT[0], 0.01)}–{formatTime(windowT[1], 0.01)}
        {partial && " · loaded by window (zoom in to fetch more)"}
        {selected !== null && ` · selected ${selected.toFixed(3)} s`}
      </p>
      <div class="toolbar">
        {source.kind === "assoc" && (
          <label>
            Lanes by{" "}
            <select value={groupBy} onChange={(e) => setGroupBy((e.target as HTMLSelectElement).value)}>
              <option value="type">type</option>
              {stringKeys.map((k) => (
                <option value={k}>type + {k}</option>
              ))}
            </select>
          </label>
        )}
        <button onClick={() => timeline.current && timeline.current.setWindow(...timeline.current.extent)}>Zoom to fit</button>
        <label>
          Go to instant (s){" "}
          <input
            type="number"
            step="0.001"
            name="instant"
            onChange={(e) => {
              const t = Number((e.target as HTMLInputElement).value);
              if (Number.isFinite(t)) timeline.current?.select(t);
            }}
          />
        </label>
      </div>
      <div class="timeline-wrap">
        <canvas ref={canvasRef} class="timeline" data-testid="timeline-canvas" />
      </div>
      <div class="frame-panel">
        <div class="frame-controls">
          <h2>Frame</h2>
          <label>
            Width <input type="number" name="frame-width" value={frame.width} onChange={(e) => setFrame({ ...frame, width: Math.max(16, Number((e.target as HTMLInputElement).value) || 1920) })} />
          </label>
          <label>
            Height <input type="number" name="frame-height" value={frame.height} onChange={(e) => setFrame({ ...frame, height: Math.max(16, Number((e.target as HTMLInputElement).value) || 1080) })} />
          </label>
          <label>
            Box coordinates{" "}
            <select value={coords} onChange={(e) => setCoords((e.target as HTMLSelectElement).value as typeof coords)}>
              <option value="auto">auto ({normalized ? "normalized" : "pixels"})</option>
              <option value="normalized">normalized 0–1</option>
              <option value="pixels">pixels</option>
            </select>
          </label>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              setVideoUrl(videoInput.trim());
            }}
          >
            <label>
              Video URL (optional){" "}
              <input value={videoInput} placeholder="https://…/movie.mp4" onInput={(e) => setVideoInput((e.target as HTMLInputElement).value)} />
            </label>
            <button type="submit">Load video</button>
          </form>
          <h3>Active at the selected instant</h3>
          {selected === null ? (
            <p class="muted">Click the timeline to select an instant.</p>
          ) : (
            <ul data-testid="active-boxes">
              {active.length === 0 && <li class="muted">no box</li>}
              {active.map((b) => (
                <li>
                  {b.label}: x={b.x} y={b.y} w={b.w} h={b.h}
                </li>
              ))}
            </ul>
          )}
        </div>
        <div class="frame-stage" style={{ aspectRatio: `${frame.width} / ${frame.height}` }}>
          {videoUrl && <video ref={videoRef} src={videoUrl} controls muted class="frame-video" />}
          <canvas ref={frameRef} width={frame.width} height={frame.height} class="frame" data-testid="frame-canvas" />
        </div>
      </div>
    </>
  );
}
