// Browsing: namespaces, DataStores, schemas (versions, diff, compatibility), documents by MID.

import { useState } from "preact/hooks";
import {
  api,
  dsPath,
  enc,
  get,
  getAll,
  post,
  type DataStoreOut,
  type DocumentInfo,
  type DocumentMatch,
  type NamespaceOut,
  type Page,
  type SchemaSummary,
  type SchemaVersionOut,
  type Whoami,
} from "./api";
import { diffLines, stableJson, withContext } from "./diff";
import { QueryEditor } from "./query";
import { ErrorBox, Json, links, Loading, navigate, Section, useAsync, when } from "./ui";

const ALL_DOCUMENTS = "count(event) >= 0";

export function Home({ who }: { who: Whoami }) {
  const found = useAsync(async (signal) => {
    const namespaces = (await get<Page<NamespaceOut>>("/namespaces", { limit: 1000 }, signal)).items;
    const stores = await Promise.all(
      namespaces.map((ns) =>
        get<Page<DataStoreOut>>(`/namespaces/${enc(ns.name)}/datastores`, { limit: 1000 }, signal).then(
          (p) => p.items,
          () => [] as DataStoreOut[],
        ),
      ),
    );
    return namespaces.map((ns, i) => ({ ns, stores: stores[i] }));
  }, []);
  return (
    <>
      <h1>Namespaces and DataStores</h1>
      <p class="muted">
        Signed in as <strong>{who.name}</strong>
        {Object.keys(who.roles).length > 0 &&
          ` — roles: ${Object.entries(who.roles)
            .map(([ns, role]) => `${role} in ${ns}`)
            .join(", ")}`}
        . You see only the namespaces where you hold a role.
      </p>
      <Loading when={found.loading} />
      <ErrorBox error={found.error} />
      {found.data?.length === 0 && <p>No namespace is visible to this key.</p>}
      <div class="grid" data-testid="namespaces">
        {found.data?.map(({ ns, stores }) => (
          <section class="card namespace" data-namespace={ns.name}>
            <h2>
              <a href={links.namespace(ns.name)}>{ns.name}</a>
            </h2>
            <p class="muted">{ns.description}</p>
            <table>
              <thead>
                <tr>
                  <th>DataStore</th>
                  <th>MID keys</th>
                  <th>schema</th>
                </tr>
              </thead>
              <tbody>
                {stores.length === 0 && (
                  <tr>
                    <td colSpan={3} class="muted">
                      No DataStore yet.
                    </td>
                  </tr>
                )}
                {stores.map((ds) => (
                  <tr>
                    <td>
                      <a href={links.datastore(ds.datastore)} data-testid="datastore-link">
                        {ds.datastore}
                      </a>
                    </td>
                    <td>{ds.mid_keys.join(", ")}</td>
                    <td>
                      <a href={links.schema(ds.namespace, ds.schema_name)}>
                        {ds.schema_name} v{ds.schema_version}
                      </a>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
            <p class="actions">
              <a href={links.annotations(ns.name)}>Annotations</a> ·{" "}
              <a href={links.requests(ns.name)}>Writes and jobs</a>
            </p>
          </section>
        ))}
      </div>
    </>
  );
}

export function NamespaceView({ namespace }: { namespace: string }) {
  const base = `/namespaces/${enc(namespace)}`;
  const found = useAsync(
    async () => ({
      ns: await get<NamespaceOut>(base),
      stores: await getAll<DataStoreOut>(`${base}/datastores`),
      schemas: await getAll<SchemaSummary>(`${base}/schemas`),
    }),
    [namespace],
  );
  const [assoc, setAssoc] = useState({ type: "MOVIE_ID", id: "" });
  return (
    <>
      <nav class="crumbs">
        <a href={links.home()}>Namespaces</a> / {namespace}
      </nav>
      <h1>Namespace {namespace}</h1>
      <Loading when={found.loading} />
      <ErrorBox error={found.error} />
      {found.data && (
        <div class="grid">
          <Section title="DataStores">
            <ul>
              {found.data.stores.map((ds) => (
                <li>
                  <a href={links.datastore(ds.datastore)}>{ds.datastore}</a>{" "}
                  <span class="muted">{ds.description}</span>
                </li>
              ))}
            </ul>
          </Section>
          <Section title="Schemas">
            <table>
              <thead>
                <tr>
                  <th>name</th>
                  <th>kind</th>
                  <th>latest</th>
                  <th>compatibility</th>
                </tr>
              </thead>
              <tbody>
                {found.data.schemas.map((s) => (
                  <tr>
                    <td>
                      <a href={links.schema(s.namespace, s.name)}>{s.name}</a>
                      {s.builtin && <span class="tag">built-in</span>}
                    </td>
                    <td>{s.kind}</td>
                    <td>v{s.latest_version}</td>
                    <td>{s.compatibility}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </Section>
          <Section title="Annotations and timelines">
            <p>
              <a href={links.annotations(namespace)}>Search and edit annotations</a> ·{" "}
              <a href={links.requests(namespace)}>Asynchronous writes and jobs</a>
            </p>
            <form
              class="inline"
              onSubmit={(e) => {
                e.preventDefault();
                navigate(links.assocTimeline(namespace, assoc.type, assoc.id));
              }}
            >
              <label>
                Entity type <input value={assoc.type} onInput={(e) => setAssoc({ ...assoc, type: (e.target as HTMLInputElement).value })} />
              </label>
              <label>
                id <input name="association-id" value={assoc.id} placeholder="80100172" onInput={(e) => setAssoc({ ...assoc, id: (e.target as HTMLInputElement).value })} />
              </label>
              <button type="submit" disabled={!assoc.id || !assoc.type}>
                Open timeline
              </button>
            </form>
          </Section>
        </div>
      )}
    </>
  );
}

export function DataStoreView({ datastore }: { datastore: string }) {
  const path = dsPath(datastore);
  const [ns] = datastore.split("/");
  const found = useAsync(
    async () => ({
      ds: await get<DataStoreOut>(path),
      count: (await get<{ count: number }>(`${path}/count`)).count,
    }),
    [datastore],
  );
  const [matches, setMatches] = useState<{ items: DocumentMatch[]; total?: number | null; query: string } | null>(null);
  const [allVersions, setAllVersions] = useState(false);
  const run = async (query: string) => {
    const page = await post<Page<DocumentMatch>>(`${path}/query`, { query, limit: 200, all_versions: allVersions });
    setMatches({ items: page.items, total: page.total, query });
    return { rows: page.items.length };
  };
  return (
    <>
      <nav class="crumbs">
        <a href={links.home()}>Namespaces</a> / <a href={links.namespace(ns)}>{ns}</a> / {datastore}
      </nav>
      <h1>DataStore {datastore}</h1>
      <Loading when={found.loading} />
      <ErrorBox error={found.error} />
      {found.data && (
        <div class="grid">
          <Section title="About">
            <dl>
              <dt>documents</dt>
              <dd data-testid="document-count">{found.data.count}</dd>
              <dt>MID keys</dt>
              <dd>{found.data.ds.mid_keys.join(", ")}</dd>
              <dt>schema</dt>
              <dd>
                <a href={links.schema(ns, found.data.ds.schema_name)}>
                  {found.data.ds.schema_name} v{found.data.ds.schema_version}
                </a>
              </dd>
              <dt>created</dt>
              <dd>{when(found.data.ds.created_at)}</dd>
            </dl>
            <p class="muted">{found.data.ds.description}</p>
          </Section>
          <Section title="Find the documents of a MID">
            <MidLookup datastore={datastore} keys={found.data.ds.mid_keys} />
          </Section>
        </div>
      )}
      <Section title="Query the DataStore" id="datastore-query">
        <QueryEditor
          label="Documents whose events match (text form)"
          initial={ALL_DOCUMENTS}
          placeholder='event.label = "face" and event.confidence > 0.9'
          run={run}
          autoRun={true}
        >
          <label class="checkbox">
            <input type="checkbox" checked={allVersions} onChange={(e) => setAllVersions((e.target as HTMLInputElement).checked)} />{" "}
            also superseded versions of each MID
          </label>
        </QueryEditor>
        {matches && (
          <>
            <p class="muted" data-testid="query-summary">
              {matches.items.length} document{matches.items.length === 1 ? "" : "s"} shown
              {matches.total != null && ` of ${matches.total} matching`}
              {allVersions ? "" : " (the latest version of each MID)"}.
            </p>
            <table class="results" data-testid="query-results">
              <thead>
                <tr>
                  <th>DocumentID</th>
                  {found.data?.ds.mid_keys.map((k) => <th>{k}</th>)}
                  <th />
                </tr>
              </thead>
              <tbody>
                {matches.items.map((m) => (
                  <tr>
                    <td>
                      <a href={links.document(m.id)} class="mono">
                        {m.id}
                      </a>
                    </td>
                    {found.data?.ds.mid_keys.map((k) => (
                      <td>
                        <a href={links.document(m.id)}>{m.mid[k]}</a>
                      </td>
                    ))}
                    <td>
                      <a href={links.docTimeline(m.id)}>timeline</a>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        )}
      </Section>
    </>
  );
}

function MidLookup({ datastore, keys }: { datastore: string; keys: string[] }) {
  const [mid, setMid] = useState<Record<string, string>>(Object.fromEntries(keys.map((k) => [k, ""])));
  const [docs, setDocs] = useState<DocumentInfo[] | null>(null);
  const [error, setError] = useState<unknown>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      const page = await get<Page<DocumentInfo>>(`${dsPath(datastore)}/documents`, { mid: JSON.stringify(mid), limit: 100 });
      setDocs(page.items);
    } catch (err) {
      setError(err);
      setDocs(null);
    }
  };
  return (
    <form onSubmit={submit} class="inline">
      {keys.map((k) => (
        <label>
          {k}{" "}
          <input name={`mid-${k}`} value={mid[k]} onInput={(e) => setMid({ ...mid, [k]: (e.target as HTMLInputElement).value })} />
        </label>
      ))}
      <button type="submit">List versions</button>
      <ErrorBox error={error} />
      {docs && (
        <ul>
          {docs.length === 0 && <li>No document for this MID.</li>}
          {docs.map((d, i) => (
            <li>
              <a href={links.document(d.id)} class="mono">
                {d.id}
              </a>{" "}
              {i === 0 && <span class="tag">latest</span>} {when(d.created_at)} · {d.size} bytes
            </li>
          ))}
        </ul>
      )}
    </form>
  );
}

const MODES = ["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"];

export function SchemaView({ namespace, name }: { namespace: string; name: string }) {
  const base = `/namespaces/${enc(namespace)}/schemas/${enc(name)}`;
  const found = useAsync(async () => {
    const versions = await getAll<SchemaVersionOut>(`${base}/versions`);
    const summaries = await getAll<SchemaSummary>(`/namespaces/${enc(namespace)}/schemas`);
    return { versions, summary: summaries.find((s) => s.name === name) ?? null };
  }, [namespace, name]);
  const versions = found.data?.versions ?? [];
  const [left, setLeft] = useState<number | null>(null);
  const [right, setRight] = useState<number | null>(null);
  const [modeError, setModeError] = useState<unknown>(null);
  const a = versions.find((v) => v.version === left) ?? versions[Math.max(0, versions.length - 2)];
  const b = versions.find((v) => v.version === right) ?? versions[versions.length - 1];
  const setMode = async (mode: string) => {
    setModeError(null);
    try {
      await api("PUT", `${base}/compatibility`, { body: { mode } });
      found.reload();
    } catch (e) {
      setModeError(e);
    }
  };
  const diff = a && b ? withContext(diffLines(stableJson(a.definition), stableJson(b.definition))) : [];
  return (
    <>
      <nav class="crumbs">
        <a href={links.home()}>Namespaces</a> / <a href={links.namespace(namespace)}>{namespace}</a> / schema {name}
      </nav>
      <h1>Schema {name}</h1>
      <Loading when={found.loading} />
      <ErrorBox error={found.error} />
      {found.data?.summary && (
        <p>
          Kind <strong>{found.data.summary.kind}</strong> · compatibility mode{" "}
          <select
            data-testid="compatibility"
            value={found.data.summary.compatibility}
            disabled={found.data.summary.builtin}
            onChange={(e) => setMode((e.target as HTMLSelectElement).value)}
          >
            {MODES.map((m) => (
              <option value={m}>{m}</option>
            ))}
          </select>{" "}
          <span class="muted">(changing it needs the admin role)</span>
        </p>
      )}
      <ErrorBox error={modeError} />
      {versions.length > 0 && a && b && (
        <>
          <p class="inline">
            Compare{" "}
            <select value={a.version} onChange={(e) => setLeft(Number((e.target as HTMLSelectElement).value))}>
              {versions.map((v) => (
                <option value={v.version}>v{v.version}</option>
              ))}
            </select>{" "}
            with{" "}
            <select value={b.version} onChange={(e) => setRight(Number((e.target as HTMLSelectElement).value))}>
              {versions.map((v) => (
                <option value={v.version}>v{v.version}</option>
              ))}
            </select>
          </p>
          <div class="side-by-side">
            <Section title={`v${a.version}`}>
              <p class="muted">{when(a.created_at)}</p>
              <Json value={a.definition} />
            </Section>
            <Section title={`v${b.version}`}>
              <p class="muted">{when(b.created_at)}</p>
              <Json value={b.definition} />
            </Section>
          </div>
          <Section title={`Diff v${a.version} → v${b.version}${a.version === b.version ? " (the same version)" : ""}`}>
            <pre class="diff" data-testid="schema-diff">
              {diff.map((line) => (
                <div class={line.kind}>
                  {line.kind === "added" ? "+ " : line.kind === "removed" ? "- " : line.kind === "skipped" ? "" : "  "}
                  {line.text}
                </div>
              ))}
            </pre>
          </Section>
        </>
      )}
    </>
  );
}
