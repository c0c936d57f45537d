// Page state exposed for tests and benchmarks: window.__reeldbConsole.

import type { FrameStats, TimedBox } from "./timeline";

export interface DrawnBox {
  label: string;
  /** As stored (normalized 0..1 or pixels). */
  x: number;
  y: number;
  w: number;
  h: number;
  /** On the frame canvas, in frame pixels. */
  px: { x: number; y: number; w: number; h: number };
}

export interface ConsoleState {
  route: string;
  signedIn: boolean;
  principal: string | null;
  timeline: {
    source: string;
    lanes: string[];
    items: number;
    window: [number, number];
    extent: [number, number];
    selected: number | null;
    loading: boolean;
    /** Only part of an entity's annotations is loaded: the rest is fetched by window. */
    partial: boolean;
    firstRenderMs: number | null;
    stats: FrameStats | null;
  } | null;
  frame: { width: number; height: number; normalized: boolean } | null;
  boxes: DrawnBox[];
  query: { rows: number; error: { message: string; line?: number; column?: number } | null } | null;
  /** The reprocessing jobs listed on the writes-and-jobs screen (null elsewhere). */
  jobs: { id: string; state: string; done: number; total: number; dead: number | null }[] | null;
  /** Set by the timeline so a test or benchmark can pan it. */
  setWindow?: (t0: number, t1: number) => void;
  select?: (t: number) => void;
  /** The x (CSS pixels, from the timeline canvas's left edge) of instant t. */
  xAt?: (t: number) => number;
}

declare global {
  interface Window {
    __reeldbConsole: ConsoleState;
  }
}

export const pageState: ConsoleState = {
  route: location.hash,
  signedIn: false,
  principal: null,
  timeline: null,
  frame: null,
  boxes: [],
  query: null,
  jobs: null,
};
window.__reeldbConsole = pageState;

export type { TimedBox };
