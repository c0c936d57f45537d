// The timeline: lanes of timed items on a zoomable, pannable time axis drawn on a <canvas>,
// with an overview strip whose brush picks the visible window. Built for 100k+ items: each
// lane keeps its items sorted by start (typed arrays, binary search), draws only what is in
// view, and aggregates into per-pixel counts when there are more items than pixels.

import type { BoxJson } from "./api";

export interface TimedBox extends BoxJson {
  label: string;
  /** Own time range (a region's), else the item's. */
  start?: number;
  end?: number;
}

export interface TimedItem {
  start: number;
  end: number;
  label: string;
  lane: string;
  boxes: TimedBox[];
  /** What the item is: an annotation id or a JSON pointer into the document. */
  ref: string;
}

export class Lane {
  readonly name: string;
  items: TimedItem[] = [];
  starts = new Float64Array(0);
  ends = new Float64Array(0);
  maxDuration = 0;

  constructor(name: string) {
    this.name = name;
  }

  /** Sort and index the items (after adding some). */
  seal(): void {
    this.items.sort((a, b) => a.start - b.start || a.end - b.end);
    const n = this.items.length;
    this.starts = new Float64Array(n);
    this.ends = new Float64Array(n);
    let longest = 0;
    for (let i = 0; i < n; i++) {
      const item = this.items[i];
      this.starts[i] = item.start;
      this.ends[i] = item.end;
      longest = Math.max(longest, item.end - item.start);
    }
    this.maxDuration = longest;
  }

  /** Index of the first item whose start is >= t. */
  lowerBound(t: number): number {
    let lo = 0;
    let hi = this.starts.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.starts[mid] < t) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** The index range of items that may overlap [t0, t1] (check `ends` for the exact set). */
  range(t0: number, t1: number): [number, number] {
    return [this.lowerBound(t0 - this.maxDuration), this.lowerBound(t1 + Number.EPSILON)];
  }

  /** Items active at instant t: start <= t < end (or t == start for instants). */
  activeAt(t: number): TimedItem[] {
    const [from, to] = this.range(t, t);
    const out: TimedItem[] = [];
    for (let i = from; i < to; i++) {
      const s = this.starts[i];
      const e = this.ends[i];
      if (s <= t && (t < e || s === e)) out.push(this.items[i]);
    }
    return out;
  }
}

export function buildLanes(items: TimedItem[]): Lane[] {
  const byName = new Map<string, Lane>();
  for (const item of items) {
    let lane = byName.get(item.lane);
    if (!lane) byName.set(item.lane, (lane = new Lane(item.lane)));
    lane.items.push(item);
  }
  const lanes = [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
  lanes.forEach((lane) => lane.seal());
  return lanes;
}

/** The boxes active at instant t, each with its own time range checked. */
export function boxesAt(lanes: Lane[], t: number): TimedBox[] {
  const out: TimedBox[] = [];
  for (const lane of lanes) {
    for (const item of lane.activeAt(t)) {
      for (const box of item.boxes) {
        if (box.start !== undefined && box.end !== undefined) {
          if (!(box.start <= t && (t < box.end || box.start === box.end))) continue;
        }
        out.push(box);
      }
    }
  }
  return out;
}

export interface FrameStats {
  draws: number;
  lastDrawMs: number;
  drawMs: number[];
  mode: "detail" | "aggregate" | "empty";
  drawnItems: number;
}

const LANE_HEIGHT = 22;
const LABEL_WIDTH = 230;
const AXIS_HEIGHT = 22;
const OVERVIEW_HEIGHT = 34;
const PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
  "#ff9da7", "#9c755f", "#bab0ac"];

export interface TimelineCallbacks {
  onSelect?: (t: number) => void;
  onWindow?: (t0: number, t1: number) => void;
}

/** Draws lanes on a canvas and handles zoom (wheel), pan (drag), brush and selection (click). */
export class TimelineCanvas {
  readonly canvas: HTMLCanvasElement;
  lanes: Lane[] = [];
  extent: [number, number] = [0, 1];
  t0 = 0;
  t1 = 1;
  selected: number | null = null;
  hover: number | null = null;
  stats: FrameStats = { draws: 0, lastDrawMs: 0, drawMs: [], mode: "empty", drawnItems: 0 };
  private readonly ctx: CanvasRenderingContext2D;
  private readonly callbacks: TimelineCallbacks;
  private pending = false;
  private markedFirstRender = false;
  private drag: { kind: "pan" | "brush"; x: number; t0: number; t1: number; moved: boolean } | null =
    null;
  private readonly resizeObserver: ResizeObserver;

  constructor(canvas: HTMLCanvasElement, callbacks: TimelineCallbacks = {}) {
    this.canvas = canvas;
    const ctx = canvas.getContext("2d", { alpha: false });
    if (!ctx) throw new Error("no 2D canvas");
    this.ctx = ctx;
    this.callbacks = callbacks;
    canvas.tabIndex = 0;
    canvas.setAttribute("role", "application");
    canvas.setAttribute("aria-label", "Timeline: arrow keys pan, + and - zoom, Enter selects the middle");
    canvas.addEventListener("keydown", this.onKey);
    canvas.addEventListener("wheel", this.onWheel, { passive: false });
    canvas.addEventListener("pointerdown", this.onDown);
    canvas.addEventListener("pointermove", this.onMove);
    canvas.addEventListener("pointerup", this.onUp);
    canvas.addEventListener("pointerleave", () => {
      this.hover = null;
      this.request();
    });
    this.resizeObserver = new ResizeObserver(() => this.request());
    this.resizeObserver.observe(canvas);
  }

  destroy(): void {
    this.resizeObserver.disconnect();
    this.canvas.removeEventListener("wheel", this.onWheel);
    this.canvas.removeEventListener("keydown", this.onKey);
  }

  setData(lanes: Lane[], extent?: [number, number]): void {
    this.lanes = lanes;
    if (extent) {
      this.extent = extent;
      [this.t0, this.t1] = extent;
      this.callbacks.onWindow?.(this.t0, this.t1);
    }
    this.request();
  }

  setWindow(t0: number, t1: number): void {
    const [e0, e1] = this.extent;
    const span = Math.max(1e-6, Math.min(t1 - t0, (e1 - e0) * 1.05));
    let a = Math.max(e0 - span * 0.02, t0);
    let b = a + span;
    if (b > e1 + span * 0.02) {
      b = e1 + span * 0.02;
      a = b - span;
    }
    this.t0 = a;
    this.t1 = b;
    this.callbacks.onWindow?.(a, b);
    this.request();
  }

  select(t: number | null): void {
    this.selected = t;
    this.request();
    if (t !== null) this.callbacks.onSelect?.(t);
  }

  get height(): number {
    return OVERVIEW_HEIGHT + AXIS_HEIGHT + Math.max(1, this.lanes.length) * LANE_HEIGHT + 4;
  }

  /** Redraw on the next animation frame (many requests, one draw). */
  request(): void {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.draw();
    });
  }

  private plotWidth(): number {
    return Math.max(10, this.canvas.clientWidth - LABEL_WIDTH);
  }

  /** Time at a CSS x in the plot area. */
  timeAt(x: number): number {
    return this.t0 + ((x - LABEL_WIDTH) / this.plotWidth()) * (this.t1 - this.t0);
  }

  xOf(t: number): number {
    return LABEL_WIDTH + ((t - this.t0) / (this.t1 - this.t0)) * this.plotWidth();
  }

  private overviewTime(x: number): number {
    const [e0, e1] = this.extent;
    return e0 + ((x - LABEL_WIDTH) / this.plotWidth()) * (e1 - e0);
  }

  private readonly onKey = (event: KeyboardEvent): void => {
    const span = this.t1 - this.t0;
    const mid = (this.t0 + this.t1) / 2;
    const keys: Record<string, () => void> = {
      ArrowLeft: () => this.setWindow(this.t0 - span / 10, this.t1 - span / 10),
      ArrowRight: () => this.setWindow(this.t0 + span / 10, this.t1 + span / 10),
      "+": () => this.setWindow(mid - span / 3, mid + span / 3),
      "=": () => this.setWindow(mid - span / 3, mid + span / 3),
      "-": () => this.setWindow(mid - span * 0.75, mid + span * 0.75),
      Enter: () => this.select(mid),
    };
    const action = keys[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  };

  private readonly onWheel = (event: WheelEvent): void => {
    event.preventDefault();
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left;
    if (Math.abs(event.deltaX) > Math.abs(event.deltaY)) {
      const dt = (event.deltaX / this.plotWidth()) * (this.t1 - this.t0);
      this.setWindow(this.t0 + dt, this.t1 + dt);
      return;
    }
    const anchor = x > LABEL_WIDTH ? this.timeAt(x) : (this.t0 + this.t1) / 2;
    const factor = Math.exp(event.deltaY * 0.002);
    this.setWindow(anchor - (anchor - this.t0) * factor, anchor + (this.t1 - anchor) * factor);
  };

  private readonly onDown = (event: PointerEvent): void => {
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left;
    const y = event.clientY - rect.top;
    if (x < LABEL_WIDTH) return;
    this.canvas.setPointerCapture(event.pointerId);
    this.drag = { kind: y < OVERVIEW_HEIGHT ? "brush" : "pan", x, t0: this.t0, t1: this.t1, moved: false };
  };

  private readonly onMove = (event: PointerEvent): void => {
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left;
    this.hover = x > LABEL_WIDTH ? this.timeAt(x) : null;
    const drag = this.drag;
    if (!drag) {
      this.request();
      return;
    }
    if (Math.abs(x - drag.x) > 2) drag.moved = true;
    if (!drag.moved) return;
    if (drag.kind === "pan") {
      const dt = ((drag.x - x) / this.plotWidth()) * (drag.t1 - drag.t0);
      this.setWindow(drag.t0 + dt, drag.t1 + dt);
    } else {
      const a = this.overviewTime(Math.min(drag.x, x));
      const b = this.overviewTime(Math.max(drag.x, x));
      this.setWindow(a, Math.max(b, a + 1e-3));
    }
  };

  private readonly onUp = (event: PointerEvent): void => {
    const drag = this.drag;
    this.drag = null;
    if (!drag || drag.moved) return;
    const rect = this.canvas.getBoundingClientRect();
    const x = event.clientX - rect.left;
    if (drag.kind === "brush") {
      // A click in the overview centres the window there.
      const t = this.overviewTime(x);
      const half = (this.t1 - this.t0) / 2;
      this.setWindow(t - half, t + half);
    } else {
      this.select(this.timeAt(x));
    }
  };

  draw(): void {
    const started = performance.now();
    const canvas = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const cssWidth = canvas.clientWidth;
    const cssHeight = this.height;
    if (canvas.width !== Math.round(cssWidth * dpr) || canvas.height !== Math.round(cssHeight * dpr)) {
      canvas.width = Math.round(cssWidth * dpr);
      canvas.height = Math.round(cssHeight * dpr);
      canvas.style.height = `${cssHeight}px`;
    }
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, cssWidth, cssHeight);
    this.drawOverview(cssWidth);
    this.drawAxis(cssWidth);
    let drawn = 0;
    let aggregated = false;
    this.lanes.forEach((lane, i) => {
      const [count, agg] = this.drawLane(lane, i, cssWidth);
      drawn += count;
      aggregated ||= agg;
    });
    this.drawCursors(cssHeight);
    const took = performance.now() - started;
    const stats = this.stats;
    stats.draws += 1;
    stats.lastDrawMs = took;
    stats.drawMs.push(took);
    if (stats.drawMs.length > 600) stats.drawMs.splice(0, stats.drawMs.length - 600);
    stats.mode = this.lanes.length === 0 ? "empty" : aggregated ? "aggregate" : "detail";
    stats.drawnItems = drawn;
    if (drawn > 0 && !this.markedFirstRender) {
      // The first frame with items on it: what "time to first render" measures.
      this.markedFirstRender = true;
      performance.mark("reeldb-timeline-first-render");
    }
  }

  private overviewCache: { key: string; image: HTMLCanvasElement } | null = null;

  /** The overview's density bars: drawn once per data, extent and size, then copied. */
  private overviewImage(plot: number, dpr: number): HTMLCanvasElement {
    const [e0, e1] = this.extent;
    const key = `${e0}|${e1}|${plot}|${dpr}|${this.lanes.length}|${this.lanes.reduce((n, l) => n + l.items.length, 0)}`;
    if (this.overviewCache?.key === key) return this.overviewCache.image;
    const image = this.overviewCache?.image ?? document.createElement("canvas");
    const h = OVERVIEW_HEIGHT - 8;
    image.width = Math.round(plot * dpr);
    image.height = Math.round(h * dpr);
    const ctx = image.getContext("2d")!;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, plot, h);
    // Density of all lanes over the whole extent, one bar per 2 pixels.
    const bins = Math.max(1, Math.floor(plot / 2));
    const counts = new Float64Array(bins);
    for (const lane of this.lanes) {
      let prev = lane.lowerBound(e0);
      for (let b = 0; b < bins; b++) {
        const next = lane.lowerBound(e0 + ((b + 1) / bins) * (e1 - e0));
        counts[b] += next - prev;
        prev = next;
      }
    }
    const peak = Math.sqrt(Math.max(1, ...counts));
    ctx.fillStyle = "#9ca3af";
    ctx.beginPath();
    for (let b = 0; b < bins; b++) {
      if (counts[b] === 0) continue;
      const bh = Math.max(1, (Math.sqrt(counts[b]) / peak) * h);
      ctx.rect(b * 2, h - bh, 2, bh);
    }
    ctx.fill();
    this.overviewCache = { key, image };
    return image;
  }

  private drawOverview(width: number): void {
    const ctx = this.ctx;
    const plot = this.plotWidth();
    ctx.fillStyle = "#f3f4f6";
    ctx.fillRect(LABEL_WIDTH, 2, plot, OVERVIEW_HEIGHT - 6);
    const [e0, e1] = this.extent;
    ctx.drawImage(this.overviewImage(plot, window.devicePixelRatio || 1), LABEL_WIDTH, 3, plot, OVERVIEW_HEIGHT - 8);
    // The brush: the visible window.
    const x0 = LABEL_WIDTH + ((this.t0 - e0) / (e1 - e0)) * plot;
    const x1 = LABEL_WIDTH + ((this.t1 - e0) / (e1 - e0)) * plot;
    ctx.fillStyle = "rgba(37, 99, 235, 0.18)";
    ctx.fillRect(x0, 1, Math.max(2, x1 - x0), OVERVIEW_HEIGHT - 4);
    ctx.strokeStyle = "#2563eb";
    ctx.strokeRect(x0 + 0.5, 1.5, Math.max(2, x1 - x0) - 1, OVERVIEW_HEIGHT - 5);
    ctx.fillStyle = "#374151";
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillText("overview (drag: brush)", 6, 20);
    void width;
  }

  private drawAxis(width: number): void {
    const ctx = this.ctx;
    const y = OVERVIEW_HEIGHT;
    const span = this.t1 - this.t0;
    const plot = this.plotWidth();
    const rough = span / Math.max(1, plot / 90);
    const mag = 10 ** Math.floor(Math.log10(rough));
    const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= rough) ?? 10 * mag;
    ctx.fillStyle = "#111827";
    ctx.font = "11px system-ui, sans-serif";
    ctx.strokeStyle = "#e5e7eb";
    ctx.beginPath();
    const first = Math.ceil(this.t0 / step) * step;
    const lanesBottom = y + AXIS_HEIGHT + this.lanes.length * LANE_HEIGHT;
    for (let t = first; t <= this.t1; t += step) {
      const x = Math.round(this.xOf(t)) + 0.5;
      ctx.moveTo(x, y + AXIS_HEIGHT - 6);
      ctx.lineTo(x, lanesBottom);
      ctx.fillText(formatTime(t, step), x + 3, y + 13);
    }
    ctx.stroke();
    ctx.fillText("time (wheel: zoom, drag: pan)", 6, y + 13);
    void width;
  }

  /** Draw one lane; returns [items drawn, whether it aggregated]. */
  private drawLane(lane: Lane, index: number, width: number): [number, boolean] {
    const ctx = this.ctx;
    const top = OVERVIEW_HEIGHT + AXIS_HEIGHT + index * LANE_HEIGHT;
    ctx.fillStyle = index % 2 ? "#f9fafb" : "#ffffff";
    ctx.fillRect(0, top, width, LANE_HEIGHT);
    ctx.fillStyle = "#111827";
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillText(truncate(`${lane.name} (${lane.items.length})`, 34), 6, top + 15);
    const color = PALETTE[index % PALETTE.length];
    const [from, to] = lane.range(this.t0, this.t1);
    const plot = this.plotWidth();
    const n = to - from;
    if (n <= plot) {
      ctx.fillStyle = color;
      ctx.beginPath();
      let drawn = 0;
      for (let i = from; i < to; i++) {
        const e = lane.ends[i];
        if (e < this.t0) continue;
        const x0 = Math.max(LABEL_WIDTH, this.xOf(lane.starts[i]));
        const x1 = Math.min(LABEL_WIDTH + plot, this.xOf(e));
        ctx.rect(x0, top + 4, Math.max(1, x1 - x0), LANE_HEIGHT - 8);
        drawn++;
      }
      ctx.fill();
      return [drawn, false];
    }
    // Aggregate: how many items start in each pixel column, as bar heights.
    const counts = new Uint32Array(plot);
    let prev = lane.lowerBound(this.t0);
    let peak = 1;
    for (let px = 0; px < plot; px++) {
      const next = lane.lowerBound(this.t0 + ((px + 1) / plot) * (this.t1 - this.t0));
      counts[px] = next - prev;
      if (counts[px] > peak) peak = counts[px];
      prev = next;
    }
    ctx.fillStyle = color;
    const h = LANE_HEIGHT - 6;
    ctx.beginPath();
    for (let px = 0; px < plot; px++) {
      if (counts[px] === 0) continue;
      const bh = Math.max(2, (counts[px] / peak) * h);
      ctx.rect(LABEL_WIDTH + px, top + 3 + h - bh, 1, bh);
    }
    ctx.fill();
    return [n, true];
  }

  private drawCursors(height: number): void {
    const ctx = this.ctx;
    const top = OVERVIEW_HEIGHT;
    if (this.hover !== null) {
      const x = Math.round(this.xOf(this.hover)) + 0.5;
      ctx.strokeStyle = "#9ca3af";
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, height);
      ctx.stroke();
    }
    if (this.selected !== null && this.selected >= this.t0 && this.selected <= this.t1) {
      const x = Math.round(this.xOf(this.selected)) + 0.5;
      ctx.strokeStyle = "#dc2626";
      ctx.lineWidth = 2;
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, height);
      ctx.stroke();
      ctx.lineWidth = 1;
      ctx.fillStyle = "#dc2626";
      ctx.fillText(`${this.selected.toFixed(3)} s`, x + 4, height - 6);
    }
  }
}

function truncate(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

export function formatTime(t: number, step = 1): string {
  const digits = step >= 1 ? 0 : Math.min(6, Math.ceil(-Math.log10(step)));
  if (Math.abs(t) < 60) return `${t.toFixed(digits)}s`;
  const sign = t < 0 ? "-" : "";
  const a = Math.abs(t);
  const h = Math.floor(a / 3600);
  const m = Math.floor((a % 3600) / 60);
  const s = (a % 60).toFixed(digits).padStart(digits ? digits + 3 : 2, "0");
  return h ? `${sign}${h}:${String(m).padStart(2, "0")}:${s}` : `${sign}${m}:${s}`;
}

// -- from the API's shapes to timed items ------------------------------------------------------

/** Seconds per frame of a frame rate ("24000/1001", "25", 23.976 meaning 24000/1001). */
export function frameRate(rate: string | number | undefined): number | null {
  if (rate === undefined || rate === null) return null;
  const text = String(rate);
  if (text.includes("/")) {
    const [n, d] = text.split("/").map(Number);
    return n / d;
  }
  const value = Number(text);
  const whole = Math.round(value);
  if (value !== whole && Math.abs(value - (whole * 1000) / 1001) < 0.006) return (whole * 1000) / 1001;
  return value;
}

export function seconds(
  range: { start?: number; end?: number; start_frame?: number; end_frame?: number; rate?: string | number } | undefined,
  trackRate: number | null,
): [number, number] | null {
  if (!range) return null;
  if (range.start !== undefined && range.end !== undefined) return [range.start, range.end];
  if (range.start_frame !== undefined && range.end_frame !== undefined) {
    const rate = frameRate(range.rate) ?? trackRate;
    if (!rate) return null;
    return [range.start_frame / rate, range.end_frame / rate];
  }
  return null;
}
