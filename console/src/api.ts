// The console's only way to the server: the public /v1 HTTP API, with the signed-in key.

const KEY_STORAGE = "reeldb.apiKey";

/** Dispatched on window when the signed-in key is refused (401). */
export const SIGNED_OUT = "reeldb-signed-out";

export interface Violation {
  pointer: string;
  message: string;
}

/** An RFC 9457 problem+json answer. */
export interface Problem {
  type?: string;
  title?: string;
  status: number;
  detail?: string;
  violations?: Violation[];
  line?: number;
  column?: number;
  current_version?: number;
  [key: string]: unknown;
}

export class ApiError extends Error {
  readonly problem: Problem;

  constructor(problem: Problem) {
    super(problem.detail ?? problem.title ?? `HTTP ${problem.status}`);
    this.problem = problem;
  }

  get status(): number {
    return this.problem.status;
  }
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
  total?: number | null;
}

export function getKey(): string | null {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function setKey(key: string | null): void {
  if (key === null) sessionStorage.removeItem(KEY_STORAGE);
  else sessionStorage.setItem(KEY_STORAGE, key);
}

type Query = Record<string, string | number | boolean | null | undefined | string[]>;

function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value === null || value === undefined) continue;
    if (Array.isArray(value)) value.forEach((v) => params.append(name, v));
    else params.append(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

/** Call the API; throws ApiError (with the problem+json body) on any non-2xx answer. */
export async function api<T>(
  method: string,
  path: string,
  options: { query?: Query; body?: unknown; key?: string; signal?: AbortSignal } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const key = options.key ?? getKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(options.body);
  }
  let response: Response;
  try {
    response = await fetch(withQuery(`/v1${path}`, options.query), {
      method,
      headers,
      body,
      signal: options.signal,
    });
  } catch (error) {
    if ((error as Error).name === "AbortError") throw error;
    throw new ApiError({ status: 0, title: "Network error", detail: String(error) });
  }
  const text = await response.text();
  let parsed: unknown = null;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { detail: text };
    }
  }
  if (!response.ok) {
    const problem = (parsed ?? {}) as Problem;
    if (response.status === 401 && options.key === undefined && getKey() !== null) {
      // The signed-in key stopped working (revoked): back to the sign-in screen.
      setKey(null);
      window.dispatchEvent(new Event(SIGNED_OUT));
    }
    throw new ApiError({ ...problem, status: response.status });
  }
  return parsed as T;
}

export const get = <T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> =>
  api<T>("GET", path, { query, signal });

export const post = <T>(path: string, body: unknown): Promise<T> => api<T>("POST", path, { body });

/** Every page of a list (bounded: at most `max` items). */
export async function getAll<T>(path: string, query: Query = {}, max = 5000): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  do {
    const page: Page<T> = await get<Page<T>>(path, { ...query, limit: 1000, cursor });
    out.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

export const enc = encodeURIComponent;

/** Percent-encode an association id for a path segment (`/` and `.` too, as the API asks). */
export const encId = (id: string): string => enc(id).replace(/\./g, "%2E");

// -- shapes of the answers the console reads --------------------------------------------------

export interface Whoami {
  name: string;
  system_admin: boolean;
  roles: Record<string, string>;
  key_id?: string | null;
}

export interface NamespaceOut {
  name: string;
  description?: string | null;
  created_at: string;
}

export interface DataStoreOut {
  datastore: string;
  namespace: string;
  analysis_type: string;
  version: number;
  mid_keys: string[];
  schema_name: string;
  schema_version: number;
  description?: string | null;
  created_at: string;
}

export interface SchemaSummary {
  namespace: string;
  name: string;
  kind: string;
  compatibility: string;
  latest_version: number;
  versions: number[];
  builtin: boolean;
}

export interface SchemaVersionOut {
  namespace: string;
  name: string;
  version: number;
  kind: string;
  description?: string | null;
  definition: unknown;
  compatibility?: string;
  created_at?: string;
  [key: string]: unknown;
}

export type Mid = Record<string, string>;

export interface DocumentInfo {
  id: string;
  datastore: string;
  mid: Mid;
  schema_version: number;
  created_at: string;
  size: number;
}

export interface DocumentOut extends Omit<DocumentInfo, "size"> {
  data: MediaDocument;
}

export interface TimeRangeJson {
  start?: number;
  end?: number;
  start_frame?: number;
  end_frame?: number;
  rate?: string | number;
}

export interface BoxJson {
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface RegionJson {
  bounding_box: BoxJson;
  time_range?: TimeRangeJson;
  [key: string]: unknown;
}

export interface EventJson {
  time_range: TimeRangeJson;
  regions?: RegionJson[];
  [key: string]: unknown;
}

export interface ComponentJson {
  events?: EventJson[];
  [key: string]: unknown;
}

export interface TrackJson {
  frame_rate?: string | number;
  components?: ComponentJson[];
  [key: string]: unknown;
}

export interface MediaDocument {
  asset?: Record<string, unknown>;
  tracks?: TrackJson[];
}

export interface DocumentMatch {
  id: string;
  mid: Mid;
}

export interface EventMatch {
  path: string;
  time: { start: number; end: number; exact: [string, string] };
  event: Record<string, unknown>;
  track: Record<string, unknown>;
  component: Record<string, unknown>;
  regions: RegionJson[];
  region_indexes: number[];
}

export interface Association {
  type: string;
  id: string;
}

export interface Annotation {
  id: string;
  version: number;
  namespace: string;
  type: { name: string; version: number };
  associations: Association[];
  data: Record<string, unknown>;
  deleted: boolean;
  created_at: string;
  created_by: string | null;
}

export interface AnnotationHit extends Annotation {
  score?: number | null;
  highlights?: unknown;
}

export interface WriteRequestOut {
  id: string;
  datastore: string;
  mid: Mid;
  blob: string;
  state: string;
  document_id: string | null;
  error: string | null;
  created_by: string | null;
  created_at: string;
  updated_at: string;
  steps: unknown;
}

/** The DataStore path of a ref `ns/type/version`. */
export function dsPath(datastore: string): string {
  const [ns, type, version] = datastore.split("/");
  return `/namespaces/${enc(ns)}/datastores/${enc(type)}/${enc(version)}`;
}

export interface JobProgress {
  total: number;
  done: number;
  changed: number;
  skipped: number;
  failed: number;
  partitions: number;
  partitions_done: number;
  running: number;
}

/** A reprocessing job, as `GET /v1/namespaces/{ns}/jobs` lists it. */
export interface JobOut {
  id: string;
  namespace: string;
  name: string;
  state: string;
  round: number;
  dry_run: boolean;
  processor: string;
  sink: string;
  progress: JobProgress;
  error: string | null;
  created_by: string;
  created_at: string;
  updated_at: string;
  spec: Record<string, unknown>;
}

export interface DeadLetterOut {
  item: string;
  partition: number;
  attempts: number;
  state: string;
  at: string;
  error: string;
}
