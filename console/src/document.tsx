// A document: coordinates, versions of its MID, the collapsible 5-level tree, raw JSON, queries.

import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import {
  dsPath,
  enc,
  get,
  post,
  type DocumentInfo,
  type DocumentOut,
  type EventMatch,
  type Page,
  type RegionJson,
} from "./api";
import { QueryEditor } from "./query";
import { frameRate, seconds } from "./timeline";
import { ErrorBox, Json, links, Loading, midText, Section, useAsync, when } from "./ui";

const PAGE = 200;

export function DocumentView({ id }: { id: string }) {
  const found = useAsync(async () => {
    const info = await get<DocumentInfo>(`/documents/${enc(id)}/info`);
    const [doc, versions] = await Promise.all([
      get<DocumentOut>(`/documents/${enc(id)}`),
      get<Page<DocumentInfo>>(`${dsPath(info.datastore)}/documents`, { mid: JSON.stringify(info.mid), limit: 100 }),
    ]);
    return { info, doc, versions: versions.items };
  }, [id]);
  const [tab, setTab] = useState<"tree" | "json">("tree");
  const [events, setEvents] = useState<EventMatch[] | null>(null);
  const run = async (query: string) => {
    const page = await post<Page<EventMatch>>(`/documents/${enc(id)}/query`, { query, limit: 1000 });
    setEvents(page.items);
    return { rows: page.items.length };
  };
  const info = found.data?.info;
  const [ns] = info?.datastore.split("/") ?? [""];
  return (
    <>
      <nav class="crumbs">
        <a href={links.home()}>Namespaces</a>
        {info && (
          <>
            {" "}
            / <a href={links.namespace(ns)}>{ns}</a> / <a href={links.datastore(info.datastore)}>{info.datastore}</a>
          </>
        )}{" "}
        / document
      </nav>
      <h1>
        Document <span class="mono">{id}</span>
      </h1>
      <Loading when={found.loading} />
      <ErrorBox error={found.error} />
      {found.data && info && (
        <>
          <div class="grid">
            <Section title="Coordinates">
              <dl>
                <dt>DataStore</dt>
                <dd>{info.datastore}</dd>
                <dt>MID</dt>
                <dd data-testid="document-mid">{midText(info.mid)}</dd>
                <dt>schema version</dt>
                <dd>{info.schema_version}</dd>
                <dt>written</dt>
                <dd>{when(info.created_at)}</dd>
                <dt>size</dt>
                <dd>{info.size} bytes</dd>
              </dl>
              <p>
                <a class="button" href={links.docTimeline(id)} data-testid="open-timeline">
                  Open timeline
                </a>
              </p>
            </Section>
            <Section title="Versions of this MID (newest first)">
              <ol class="versions" data-testid="versions">
                {found.data.versions.map((v, i) => (
                  <li class={v.id === id ? "current" : ""}>
                    <a href={links.document(v.id)} class="mono">
                      {v.id}
                    </a>{" "}
                    {i === 0 && <span class="tag">latest</span>} {when(v.created_at)}
                  </li>
                ))}
              </ol>
            </Section>
          </div>
          <Section title="Body">
            <div class="tabs">
              <button class={tab === "tree" ? "active" : ""} onClick={() => setTab("tree")}>
                Tree
              </button>
              <button class={tab === "json" ? "active" : ""} onClick={() => setTab("json")} data-testid="raw-json-tab">
                Raw JSON
              </button>
            </div>
            {tab === "tree" ? <DocTree doc={found.data.doc} /> : <Json value={found.data.doc.data} />}
          </Section>
          <Section title="Query this document's events" id="document-query">
            <QueryEditor label="Events that match (text form)" initial='event.label = "face"' placeholder='region.person = "Bob"' run={run} />
            {events && <EventTable events={events} />}
          </Section>
        </>
      )}
    </>
  );
}

function EventTable({ events }: { events: EventMatch[] }) {
  return (
    <table class="results" data-testid="event-results">
      <thead>
        <tr>
          <th>path</th>
          <th>start (s)</th>
          <th>end (s)</th>
          <th>event</th>
          <th>regions</th>
        </tr>
      </thead>
      <tbody>
        {events.map((e) => (
          <tr>
            <td class="mono">{e.path}</td>
            <td>{e.time.start.toFixed(3)}</td>
            <td>{e.time.end.toFixed(3)}</td>
            <td>{attrs(e.event)}</td>
            <td>{e.regions.map((r) => attrs(r)).join("; ")}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The scalar attributes of a level, `name=value` (the structural keys left out). */
function attrs(value: Record<string, unknown>): string {
  return Object.entries(value)
    .filter(([k, v]) => !["tracks", "components", "events", "regions"].includes(k) && (typeof v !== "object" || v === null))
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(", ");
}

function Node({ label, detail, count, children, open: initiallyOpen = false, level }: {
  label: string;
  detail?: string;
  count?: number;
  children?: () => ComponentChildren;
  open?: boolean;
  level: string;
}) {
  const [open, setOpen] = useState(initiallyOpen);
  const leaf = !children;
  return (
    <li class={`node ${level}`} data-level={level}>
      <button class="toggle" disabled={leaf} onClick={() => setOpen(!open)} aria-expanded={open}>
        {leaf ? "·" : open ? "▾" : "▸"}
      </button>
      <span class="node-label">{label}</span>
      {count !== undefined && <span class="muted"> ({count})</span>}
      {detail && <span class="muted"> {detail}</span>}
      {open && children && <ul>{children()}</ul>}
    </li>
  );
}

function More<T>({ items, render }: { items: T[]; render: (item: T, i: number) => ComponentChildren }) {
  const [shown, setShown] = useState(PAGE);
  return (
    <>
      {items.slice(0, shown).map(render)}
      {items.length > shown && (
        <li>
          <button class="link" onClick={() => setShown(shown + PAGE * 5)}>
            show more ({items.length - shown} left)
          </button>
        </li>
      )}
    </>
  );
}

function fmtRange(range: [number, number] | null): string {
  return range ? `${range[0].toFixed(3)}–${range[1].toFixed(3)} s` : "";
}

function DocTree({ doc }: { doc: DocumentOut }) {
  const body = doc.data;
  const tracks = body.tracks ?? [];
  return (
    <ul class="tree" data-testid="doc-tree">
      <Node level="asset" label="asset" detail={attrs(body.asset ?? {})} count={tracks.length} open={true}>
        {() =>
          tracks.map((track, t) => {
            const rate = frameRate(track.frame_rate);
            const components = track.components ?? [];
            return (
              <Node level="track" label={`track ${t}`} detail={attrs(track)} count={components.length}>
                {() =>
                  components.map((component, c) => {
                    const events = component.events ?? [];
                    return (
                      <Node level="component" label={`component ${c}`} detail={attrs(component)} count={events.length}>
                        {() => (
                          <More
                            items={events}
                            render={(event, e) => {
                              const regions = event.regions ?? [];
                              return (
                                <Node
                                  level="event"
                                  label={`event ${e}`}
                                  detail={`${fmtRange(seconds(event.time_range, rate))} ${attrs(event)}`}
                                  count={regions.length}
                                  children={regions.length ? () => regions.map((r, i) => <RegionNode region={r} index={i} rate={rate} />) : undefined}
                                />
                              );
                            }}
                          />
                        )}
                      </Node>
                    );
                  })
                }
              </Node>
            );
          })
        }
      </Node>
    </ul>
  );
}

function RegionNode({ region, index, rate }: { region: RegionJson; index: number; rate: number | null }) {
  const b = region.bounding_box;
  const box = b ? `box x=${b.x} y=${b.y} w=${b.w} h=${b.h}` : "";
  return <Node level="region" label={`region ${index}`} detail={`${box} ${fmtRange(seconds(region.time_range, rate))} ${attrs(region)}`} />;
}
