// Asynchronous writes (live progress) and reprocessing jobs of a namespace.

import { useEffect, useRef, useState } from "preact/hooks";
import {
  ApiError,
  enc,
  get,
  post,
  type DeadLetterOut,
  type JobOut,
  type Page,
  type Whoami,
  type WriteRequestOut,
} from "./api";
import { pageState } from "./state";
import { ErrorBox, links, Section, when } from "./ui";

const POLL_MS = 2000;
/** While a job runs, its progress is polled faster. */
const LIVE_POLL_MS = 1000;

interface Polled<T> {
  data: T | null;
  error: unknown;
  updated: Date | null;
  /** Poll again now (after an action). */
  refresh: () => void;
}

/** Load now, then every `every(data)` ms (5× slower while the tab is hidden). */
function usePoll<T>(load: () => Promise<T>, deps: unknown[], every: (data: T | null) => number = () => POLL_MS): Polled<T> {
  const [state, setState] = useState<{ data: T | null; error: unknown; updated: Date | null }>({ data: null, error: null, updated: null });
  const kick = useRef<() => void>(() => undefined);
  useEffect(() => {
    let stop = false;
    let timer = 0;
    let last: T | null = null;
    const tick = async () => {
      clearTimeout(timer);
      try {
        const data = await load();
        last = data;
        if (!stop) setState({ data, error: null, updated: new Date() });
      } catch (error) {
        if (!stop) setState((s) => ({ ...s, error, updated: new Date() }));
      }
      if (stop) return;
      const wait = every(last) * (document.visibilityState === "hidden" ? 5 : 1);
      clearTimeout(timer);
      timer = window.setTimeout(tick, wait);
    };
    kick.current = () => void tick();
    tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, deps);
  return { ...state, refresh: () => kick.current() };
}

/** The states of a write, in order (``FAILED`` ends it anywhere). */
const STATES = ["PENDING", "VALIDATED", "PERSISTED", "INDEXED"];

/** Progress of a write from its state: PENDING → VALIDATED → PERSISTED → INDEXED. */
function progress(r: WriteRequestOut): number {
  const at = STATES.indexOf(r.state);
  return at < 0 ? 1 : at / (STATES.length - 1);
}

/** A job's stop states: it will not move again. */
const FINISHED = ["done", "failed", "cancelled"];
/** Dead letters counted per job (the list API pages by 1000). */
const DEAD_LIMIT = 1000;
/** Jobs whose dead letters are counted at each refresh (the newest). */
const DEAD_COUNTED = 20;

interface JobRow {
  job: JobOut;
  /** Dead letters still waiting (``dead`` or ``retrying``), null when not counted. */
  dead: DeadLetterOut[] | null;
}

type JobsAnswer = { available: true; rows: JobRow[] } | { available: false };

async function loadJobs(namespace: string): Promise<JobsAnswer> {
  const base = `/namespaces/${enc(namespace)}/jobs`;
  let page: Page<JobOut>;
  try {
    page = await get<Page<JobOut>>(base, { limit: 100 });
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return { available: false };
    throw e;
  }
  const rows = await Promise.all(
    page.items.map(async (job, i): Promise<JobRow> => {
      if (job.progress.failed === 0) return { job, dead: [] };
      if (i >= DEAD_COUNTED) return { job, dead: null };
      const letters = await get<Page<DeadLetterOut>>(`${base}/${enc(job.id)}/dead-letters`, { limit: DEAD_LIMIT });
      return { job, dead: letters.items };
    }),
  );
  return { available: true, rows };
}

/** The role of the signed-in key lets it steer jobs in this namespace. */
function canWrite(who: Whoami | null, namespace: string): boolean {
  if (!who) return false;
  if (who.system_admin) return true;
  const role = who.roles[namespace];
  return role !== undefined && role !== "reader";
}

function JobProgressCell({ job }: { job: JobOut }) {
  const p = job.progress;
  const finished = job.state === "done";
  const total = p.total > 0 ? p.total : finished ? Math.max(p.done, 1) : 0;
  const value = finished ? total : p.done;
  const percent = total > 0 ? Math.round((value / total) * 100) : 0;
  return (
    <>
      {total > 0 ? <progress max={total} value={value} /> : <progress max={1} value={0} />}{" "}
      <span class="muted small" data-testid="job-done">
        {p.done.toLocaleString()} / {p.total.toLocaleString()} ({percent}%)
      </span>
      <div class="muted small">
        partitions {p.partitions_done}/{p.partitions}
        {p.running > 0 && ` · ${p.running} running`}
      </div>
    </>
  );
}

function JobActions({ job, dead, namespace, onDone }: { job: JobOut; dead: number; namespace: string; onDone: (e: unknown) => void }) {
  const [busy, setBusy] = useState(false);
  const act = async (action: string) => {
    if (action === "cancel" && !window.confirm(`Cancel job "${job.name}" for good?`)) return;
    setBusy(true);
    try {
      await post(`/namespaces/${enc(namespace)}/jobs/${enc(job.id)}/${action}`, {});
      onDone(null);
    } catch (e) {
      onDone(e);
    } finally {
      setBusy(false);
    }
  };
  const button = (action: string, label: string) => (
    <button class="small" data-action={action} disabled={busy} onClick={() => act(action)}>
      {label}
    </button>
  );
  return (
    <div class="job-actions">
      {job.state === "running" && button("pause", "Pause")}
      {job.state === "paused" && button("resume", "Resume")}
      {(job.state === "running" || job.state === "paused") && button("cancel", "Cancel")}
      {dead > 0 && job.state !== "cancelled" && button("retry", "Retry dead letters")}
    </div>
  );
}

function DeadLetters({ dead }: { dead: DeadLetterOut[] | null }) {
  if (dead === null) return <span class="muted">—</span>;
  const count = dead.length >= DEAD_LIMIT ? `${DEAD_LIMIT.toLocaleString()}+` : String(dead.length);
  if (dead.length === 0) return <span data-testid="dead-letters">0</span>;
  return (
    <details>
      <summary>
        <span class="error-text" data-testid="dead-letters">
          {count}
        </span>
      </summary>
      <ul class="small dead-letters">
        {dead.slice(0, 20).map((d) => (
          <li>
            <code>{d.item}</code> ({d.state}, {d.attempts} attempts): {d.error}
          </li>
        ))}
        {dead.length > 20 && <li class="muted">… {(dead.length - 20).toLocaleString()} more</li>}
      </ul>
    </details>
  );
}

function JobsTable({ rows, namespace, writer, refresh }: { rows: JobRow[]; namespace: string; writer: boolean; refresh: () => void }) {
  const [error, setError] = useState<unknown>(null);
  return (
    <>
      <ErrorBox error={error} />
      <table class="results" data-testid="jobs">
        <thead>
          <tr>
            <th>job</th>
            <th>state</th>
            <th>progress</th>
            <th>changed / skipped / failed</th>
            <th>dead letters</th>
            <th>updated</th>
            {writer && <th />}
          </tr>
        </thead>
        <tbody>
          {rows.map(({ job, dead }) => (
            <tr data-job={job.id} data-state={job.state}>
              <td>
                {job.name}
                {job.dry_run && <span class="tag">dry run</span>}
                <div class="muted small">
                  {job.processor} → {job.sink} · by {job.created_by}
                </div>
                <div class="mono small muted">{job.id}</div>
              </td>
              <td>
                <span class={`state job-${job.state}`} data-testid="job-state">
                  {job.state}
                </span>
                {job.round > 0 && <span class="muted"> (round {job.round})</span>}
                {job.error && <div class="error small">{job.error}</div>}
              </td>
              <td class="job-progress">
                <JobProgressCell job={job} />
              </td>
              <td>
                {job.progress.changed.toLocaleString()} / {job.progress.skipped.toLocaleString()} /{" "}
                {job.progress.failed.toLocaleString()}
              </td>
              <td>
                <DeadLetters dead={dead} />
              </td>
              <td>{when(job.updated_at)}</td>
              {writer && (
                <td>
                  <JobActions
                    job={job}
                    dead={dead?.length ?? 0}
                    namespace={namespace}
                    onDone={(e) => {
                      setError(e);
                      refresh();
                    }}
                  />
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}

export function RequestsView({ namespace, who }: { namespace: string; who: Whoami | null }) {
  const base = `/namespaces/${enc(namespace)}`;
  const writes = usePoll(() => get<Page<WriteRequestOut>>(`${base}/requests`, { limit: 100 }), [namespace]);
  const jobs = usePoll(
    () => loadJobs(namespace),
    [namespace],
    (data) => (data?.available && data.rows.some((r) => !FINISHED.includes(r.job.state)) ? LIVE_POLL_MS : POLL_MS),
  );
  useEffect(() => {
    const data = jobs.data;
    pageState.jobs = data?.available
      ? data.rows.map(({ job, dead }) => ({
          id: job.id,
          state: job.state,
          done: job.progress.done,
          total: job.progress.total,
          dead: dead?.length ?? null,
        }))
      : null;
  }, [jobs.data]);
  useEffect(() => () => void (pageState.jobs = null), []);
  const writer = canWrite(who, namespace);
  return (
    <>
      <nav class="crumbs">
        <a href={links.home()}>Namespaces</a> / <a href={links.namespace(namespace)}>{namespace}</a> / writes and jobs
      </nav>
      <h1>Asynchronous writes and jobs in {namespace}</h1>
      <p class="muted">
        Refreshed every {POLL_MS / 1000} s (every {LIVE_POLL_MS / 1000} s while a job runs)
        {jobs.updated && ` · last ${jobs.updated.toLocaleTimeString()}`}.
      </p>
      <Section title="Asynchronous writes">
        <ErrorBox error={writes.error} />
        {writes.data?.items.length === 0 && <p class="muted">No asynchronous write yet.</p>}
        {writes.data && writes.data.items.length > 0 && (
          <table class="results" data-testid="write-requests">
            <thead>
              <tr>
                <th>request</th>
                <th>DataStore</th>
                <th>state</th>
                <th>progress</th>
                <th>document</th>
                <th>updated</th>
              </tr>
            </thead>
            <tbody>
              {writes.data.items.map((r) => (
                <tr>
                  <td class="mono small">{r.id}</td>
                  <td>{r.datastore}</td>
                  <td>
                    <span class={`state ${r.state}`}>{r.state}</span>
                    {r.error && <div class="error small">{r.error}</div>}
                  </td>
                  <td>
                    <progress max={1} value={progress(r)} /> <span class="muted small">{Math.round(progress(r) * 100)}%</span>
                  </td>
                  <td>{r.document_id ? <a href={links.document(r.document_id)}>open</a> : "—"}</td>
                  <td>{when(r.updated_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </Section>
      <Section title="Reprocessing jobs">
        <ErrorBox error={jobs.error} />
        {jobs.data && !jobs.data.available && (
          <p class="muted" data-testid="jobs-unavailable">
            This server has no reprocessing jobs API (<code>/v1/namespaces/{namespace}/jobs</code> answered 404).
          </p>
        )}
        {jobs.data?.available && jobs.data.rows.length === 0 && (
          <p class="muted">
            No job. <code>reeldb reprocess run JOB.toml</code> or <code>POST /v1/namespaces/{namespace}/jobs</code> submits one.
          </p>
        )}
        {jobs.data?.available && jobs.data.rows.length > 0 && (
          <JobsTable rows={jobs.data.rows} namespace={namespace} writer={writer} refresh={jobs.refresh} />
        )}
      </Section>
    </>
  );
}
