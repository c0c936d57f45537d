// Asynchronous writes (live progress) and reprocessing jobs of a namespace.

import { useEffect, useState } from "preact/hooks";
import { ApiError, enc, get, type Page, type WriteRequestOut } from "./api";
import { ErrorBox, links, Section, when } from "./ui";

const POLL_MS = 2000;

function usePoll<T>(load: () => Promise<T>, deps: unknown[]): { data: T | null; error: unknown; updated: Date | null } {
  const [state, setState] = useState<{ data: T | null; error: unknown; updated: Date | null }>({ data: null, error: null, updated: null });
  useEffect(() => {
    let stop = false;
    let timer = 0;
    const tick = async () => {
      try {
        const data = await load();
        if (!stop) setState({ data, error: null, updated: new Date() });
      } catch (error) {
        if (!stop) setState((s) => ({ ...s, error, updated: new Date() }));
      }
      if (!stop && document.visibilityState !== "hidden") timer = window.setTimeout(tick, POLL_MS);
      else if (!stop) timer = window.setTimeout(tick, POLL_MS * 5);
    };
    tick();
    return () => {
      stop = true;
      clearTimeout(timer);
    };
  }, deps);
  return state;
}

/** The states of a write, in order (``FAILED`` ends it anywhere). */
const STATES = ["PENDING", "VALIDATED", "PERSISTED", "INDEXED"];

/** Progress of a write from its state: PENDING → VALIDATED → PERSISTED → INDEXED. */
function progress(r: WriteRequestOut): number {
  const at = STATES.indexOf(r.state);
  return at < 0 ? 1 : at / (STATES.length - 1);
}

export function RequestsView({ namespace }: { namespace: string }) {
  const base = `/namespaces/${enc(namespace)}`;
  const writes = usePoll(() => get<Page<WriteRequestOut>>(`${base}/requests`, { limit: 100 }), [namespace]);
  const jobs = usePoll(async () => {
    try {
      return { available: true, page: await get<Page<Record<string, unknown>>>(`${base}/jobs`, { limit: 100 }) };
    } catch (e) {
      if (e instanceof ApiError && (e.status === 404 || e.status === 405)) return { available: false, page: null };
      throw e;
    }
  }, [namespace]);
  return (
    <>
      <nav class="crumbs">
        <a href={links.home()}>Namespaces</a> / <a href={links.namespace(namespace)}>{namespace}</a> / writes and jobs
      </nav>
      <h1>Asynchronous writes and jobs in {namespace}</h1>
      <p class="muted">Refreshed every {POLL_MS / 1000} s{writes.updated && ` · last ${writes.updated.toLocaleTimeString()}`}.</p>
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
        {jobs.data?.page && jobs.data.page.items.length === 0 && <p class="muted">No job.</p>}
        {jobs.data?.page && jobs.data.page.items.length > 0 && (
          <table class="results" data-testid="jobs">
            <thead>
              <tr>
                <th>job</th>
                <th>state</th>
                <th>progress</th>
                <th>changed / skipped / failed</th>
                <th>updated</th>
              </tr>
            </thead>
            <tbody>
              {jobs.data.page.items.map((j) => {
                const p = (j.progress ?? {}) as Record<string, number>;
                const total = Number(p.total ?? 0);
                const done = Number(p.done ?? 0);
                return (
                  <tr>
                    <td>
                      {String(j.name ?? "")} <div class="mono small muted">{String(j.id ?? "")}</div>
                    </td>
                    <td>
                      <span class="state">{String(j.state ?? "")}</span>
                      {j.round ? <span class="muted"> (round {String(j.round)})</span> : null}
                      {j.error ? <div class="error small">{String(j.error)}</div> : null}
                    </td>
                    <td>
                      {total > 0 ? (
                        <>
                          <progress max={total} value={done} />{" "}
                          <span class="muted small">
                            {done.toLocaleString()} / {total.toLocaleString()}
                          </span>
                        </>
                      ) : (
                        "—"
                      )}
                    </td>
                    <td>
                      {Number(p.changed ?? 0)} / {Number(p.skipped ?? 0)} / {Number(p.failed ?? 0)}
                    </td>
                    <td>{when(String(j.updated_at ?? j.created_at ?? ""))}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        )}
      </Section>
    </>
  );
}
