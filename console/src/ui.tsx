// Small shared pieces: routing by location.hash, async loading, errors, links.

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "./api";

export function useHash(): string {
  const [hash, setHash] = useState(location.hash || "#/");
  useEffect(() => {
    const on = () => setHash(location.hash || "#/");
    window.addEventListener("hashchange", on);
    return () => window.removeEventListener("hashchange", on);
  }, []);
  return hash;
}

export function navigate(hash: string): void {
  location.hash = hash;
}

export interface Async<T> {
  data: T | null;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Run `load` when `deps` change; keeps the latest answer only. */
export function useAsync<T>(load: (signal: AbortSignal) => Promise<T>, deps: unknown[]): Async<T> {
  const [state, setState] = useState<{ data: T | null; error: unknown; loading: boolean }>({
    data: null,
    error: null,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    const controller = new AbortController();
    setState((s) => ({ ...s, loading: true, error: null }));
    load(controller.signal).then(
      (data) => !controller.signal.aborted && setState({ data, error: null, loading: false }),
      (error) =>
        !controller.signal.aborted && setState({ data: null, error, loading: false }),
    );
    return () => controller.abort();
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  if (error instanceof ApiError) {
    const p = error.problem;
    return (
      <div class="error" role="alert">
        <strong>{p.title ?? `HTTP ${p.status}`}</strong> ({p.status}): {p.detail}
        {p.violations && (
          <ul>
            {p.violations.map((v) => (
              <li>
                <code>{v.pointer || "/"}</code>: {v.message}
              </li>
            ))}
          </ul>
        )}
      </div>
    );
  }
  return (
    <div class="error" role="alert">
      {String(error)}
    </div>
  );
}

export function Loading({ when }: { when: boolean }) {
  return when ? <div class="muted">Loading…</div> : null;
}

export function Section({ title, children, id }: { title: string; children: ComponentChildren; id?: string }) {
  return (
    <section class="card" id={id}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

const JSON_SHOWN = 2_000_000;

/** Pretty JSON; a very large value is cut (the API has it whole). */
export function Json({ value }: { value: unknown }) {
  const text = JSON.stringify(value, null, 2);
  if (text.length <= JSON_SHOWN) return <pre class="json">{text}</pre>;
  return (
    <>
      <p class="muted">
        Showing the first {JSON_SHOWN.toLocaleString()} of {text.length.toLocaleString()} characters.
      </p>
      <pre class="json">{text.slice(0, JSON_SHOWN)}</pre>
    </>
  );
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "";
  return iso.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC");
}

export const midText = (mid: Record<string, string>): string =>
  Object.entries(mid)
    .map(([k, v]) => `${k}=${v}`)
    .join(", ");

/** Hash links of the console's screens. */
export const links = {
  home: () => "#/",
  namespace: (ns: string) => `#/ns/${enc(ns)}`,
  datastore: (ds: string) => {
    const [ns, type, version] = ds.split("/");
    return `#/ns/${enc(ns)}/ds/${enc(type)}/${enc(version)}`;
  },
  schema: (ns: string, name: string) => `#/ns/${enc(ns)}/schemas/${enc(name)}`,
  document: (id: string) => `#/doc/${enc(id)}`,
  docTimeline: (id: string) => `#/timeline/doc/${enc(id)}`,
  assocTimeline: (ns: string, type: string, id: string) =>
    `#/timeline/assoc/${enc(ns)}/${enc(type)}/${enc(id)}`,
  annotations: (ns: string) => `#/ns/${enc(ns)}/annotations`,
  annotation: (ns: string, id: string) => `#/ns/${enc(ns)}/annotations/${enc(id)}`,
  requests: (ns: string) => `#/ns/${enc(ns)}/requests`,
};

function enc(s: string): string {
  return encodeURIComponent(s);
}
