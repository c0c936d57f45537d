// Annotations: the search form (type, association, time, a box drawn on a canvas, text, where)
// and the editor, whose validation errors are shown inline next to the field they point at.

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api, enc, get, post, type Annotation, type AnnotationHit, type Page, type Violation } from "./api";
import { QueryEditor } from "./query";
import { ErrorBox, links, Loading, navigate, Section, useAsync, when } from "./ui";

interface SearchForm {
  type: string;
  association: string;
  start: string;
  end: string;
  text: string;
  box: [number, number, number, number] | null;
}

/** A canvas on which the user drags a box (normalized 0..1 coordinates). */
function BoxPicker({ box, onBox }: { box: SearchForm["box"]; onBox: (b: SearchForm["box"]) => void }) {
  const ref = useRef<HTMLCanvasElement>(null);
  const drag = useRef<{ x: number; y: number } | null>(null);
  useEffect(() => {
    const canvas = ref.current!;
    const ctx = canvas.getContext("2d")!;
    ctx.fillStyle = "#1f2937";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (box) {
      ctx.strokeStyle = "#22d3ee";
      ctx.lineWidth = 2;
      ctx.strokeRect(box[0] * canvas.width, box[1] * canvas.height, box[2] * canvas.width, box[3] * canvas.height);
    }
  }, [box]);
  const at = (e: PointerEvent): [number, number] => {
    const r = ref.current!.getBoundingClientRect();
    return [Math.min(1, Math.max(0, (e.clientX - r.left) / r.width)), Math.min(1, Math.max(0, (e.clientY - r.top) / r.height))];
  };
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return (
    <canvas
      ref={ref}
      width={320}
      height={180}
      class="box-picker"
      data-testid="box-picker"
      onPointerDown={(e) => {
        const [x, y] = at(e);
        drag.current = { x, y };
        (e.target as HTMLCanvasElement).setPointerCapture(e.pointerId);
      }}
      onPointerMove={(e) => {
        if (!drag.current) return;
        const [x, y] = at(e);
        const d = drag.current;
        onBox([round(Math.min(x, d.x)), round(Math.min(y, d.y)), round(Math.abs(x - d.x)), round(Math.abs(y - d.y))]);
      }}
      onPointerUp={() => (drag.current = null)}
    />
  );
}

export function AnnotationSearch({ namespace }: { namespace: string }) {
  const [form, setForm] = useState<SearchForm>({ type: "", association: "", start: "", end: "", text: "", box: null });
  const [hits, setHits] = useState<AnnotationHit[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const types = useAsync(
    () => get<Page<{ name: string; kind: string }>>(`/namespaces/${enc(namespace)}/schemas`, { limit: 1000 }),
    [namespace],
  );
  const body = (where: string) => {
    const out: Record<string, unknown> = { limit: 100 };
    if (form.type) out.type = form.type;
    if (form.association.includes(":")) {
      const [type, ...id] = form.association.split(":");
      out.associations = [{ type, id: id.join(":") }];
    }
    if (form.start || form.end) out.time = [Number(form.start || 0), Number(form.end || form.start || 0)];
    if (form.box) out.box = form.box;
    if (form.text) out.text = form.text;
    if (where.trim()) out.where = where;
    return out;
  };
  const run = async (where: string) => {
    const page = await post<Page<AnnotationHit>>(`/namespaces/${enc(namespace)}/annotations/search`, body(where));
    setHits(page.items);
    setNext(page.next_cursor);
    return { rows: page.items.length };
  };
  const set = (k: keyof SearchForm) => (e: Event) => setForm({ ...form, [k]: (e.target as HTMLInputElement).value });
  return (
    <>
      <nav class="crumbs">
        <a href={links.home()}>Namespaces</a> / <a href={links.namespace(namespace)}>{namespace}</a> / annotations
      </nav>
      <h1>Annotations in {namespace}</h1>
      <Section title="Search">
        <div class="search-form">
          <div class="fields">
            <label>
              Type{" "}
              <select name="type" value={form.type} onChange={set("type")}>
                <option value="">any</option>
                {types.data?.items
                  .filter((s) => s.kind === "properties")
                  .map((s) => (
                    <option value={s.name}>{s.name}</option>
                  ))}
              </select>
            </label>
            <label>
              Association <input name="association" placeholder="MOVIE_ID:80100172" value={form.association} onInput={set("association")} />
            </label>
            <label>
              Time from (s) <input name="start" type="number" step="any" value={form.start} onInput={set("start")} />
            </label>
            <label>
              to (s) <input name="end" type="number" step="any" value={form.end} onInput={set("end")} />
            </label>
            <label>
              Text <input name="text" placeholder="words" value={form.text} onInput={set("text")} />
            </label>
          </div>
          <div>
            <div class="muted">Box (drag on the frame; normalized):</div>
            <BoxPicker box={form.box} onBox={(box) => setForm({ ...form, box })} />
            <div class="muted">
              {form.box ? `x=${form.box[0]} y=${form.box[1]} w=${form.box[2]} h=${form.box[3]} ` : "no box "}
              {form.box && (
                <button class="link" onClick={() => setForm({ ...form, box: null })}>
                  clear
                </button>
              )}
            </div>
          </div>
        </div>
        <QueryEditor label="Where (data.* conditions, optional; needs a type)" initial="" placeholder='data.characterName = "Bob"' run={run} />
      </Section>
      {hits && (
        <Section title={`${hits.length} annotation${hits.length === 1 ? "" : "s"}${next ? " (first page)" : ""}`}>
          <table class="results" data-testid="annotation-results">
            <thead>
              <tr>
                <th>id</th>
                <th>type</th>
                <th>associations</th>
                <th>data</th>
                <th>v</th>
              </tr>
            </thead>
            <tbody>
              {hits.map((a) => (
                <tr>
                  <td>
                    <a class="mono" href={links.annotation(namespace, a.id)}>
                      {a.id.slice(0, 13)}…
                    </a>
                  </td>
                  <td>{a.type.name}</td>
                  <td>
                    {a.associations.map((s) => (
                      <a href={links.assocTimeline(namespace, s.type, s.id)} class="tag">
                        {s.type}:{s.id}
                      </a>
                    ))}
                  </td>
                  <td class="mono small">{JSON.stringify(a.data)}</td>
                  <td>{a.version}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </Section>
      )}
    </>
  );
}

/** The violations that point at `/data/<key>` or below, or at `prefix` when given. */
function violationsAt(violations: Violation[], prefix: string): Violation[] {
  return violations.filter((v) => v.pointer === prefix || v.pointer.startsWith(`${prefix}/`));
}

function FieldErrors({ violations }: { violations: Violation[] }) {
  if (!violations.length) return null;
  return (
    <ul class="field-errors" role="alert" data-testid="field-error">
      {violations.map((v) => (
        <li>
          <code>{v.pointer}</code>: {v.message}
        </li>
      ))}
    </ul>
  );
}

const textOf = (v: unknown): string => (typeof v === "string" ? v : JSON.stringify(v));

export function AnnotationEditor({ namespace, id }: { namespace: string; id: string }) {
  const path = `/namespaces/${enc(namespace)}/annotations/${enc(id)}`;
  const found = useAsync(async () => ({
    current: await get<Annotation>(path),
    versions: (await get<Page<Annotation>>(`${path}/versions`, { limit: 100 })).items,
  }), [namespace, id]);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [associations, setAssociations] = useState("");
  const [problem, setProblem] = useState<unknown>(null);
  const [saved, setSaved] = useState<number | null>(null);
  const [busy, setBusy] = useState(false);
  const current = found.data?.current;
  useEffect(() => {
    if (!current) return;
    setFields(Object.fromEntries(Object.entries(current.data).map(([k, v]) => [k, textOf(v)])));
    setAssociations(current.associations.map((a) => `${a.type}:${a.id}`).join("\n"));
  }, [current?.id, current?.version]);
  const kinds = Object.fromEntries(Object.entries(current?.data ?? {}).map(([k, v]) => [k, typeof v]));
  const violations = problem instanceof ApiError ? (problem.problem.violations ?? []) : [];
  const local: Violation[] = [];
  const data: Record<string, unknown> = {};
  for (const [k, text] of Object.entries(fields)) {
    if (kinds[k] === "string") data[k] = text;
    else if (text.trim() === "") continue;
    else {
      try {
        data[k] = JSON.parse(text);
      } catch {
        local.push({ pointer: `/data/${k}`, message: "not valid JSON" });
      }
    }
  }
  const save = async (e: Event) => {
    e.preventDefault();
    if (!current || local.length) return;
    setBusy(true);
    setProblem(null);
    try {
      const body = {
        expected_version: current.version,
        data,
        associations: associations
          .split("\n")
          .map((l) => l.trim())
          .filter(Boolean)
          .map((l) => {
            const [type, ...rest] = l.split(":");
            return { type, id: rest.join(":") };
          }),
      };
      const updated = await api<Annotation>("PATCH", path, { body });
      setSaved(updated.version);
      found.reload();
    } catch (err) {
      setProblem(err);
    } finally {
      setBusy(false);
    }
  };
  const shown = new Set<Violation>();
  const at = (prefix: string) => {
    const found = violationsAt(violations, prefix);
    found.forEach((v) => shown.add(v));
    return found;
  };
  const fieldList = Object.keys(fields);
  const rendered = (
    <>
      {fieldList.map((k) => {
        const errs = [...at(`/data/${k}`), ...violationsAt(local, `/data/${k}`)];
        const multiline = kinds[k] === "object";
        return (
          <div class={`field ${errs.length ? "invalid" : ""}`} data-field={k}>
            <label>
              <span class="field-name">
                data.{k} <span class="muted">({kinds[k] === "object" ? "JSON" : kinds[k]})</span>
              </span>
              {multiline ? (
                <textarea name={`data-${k}`} rows={2} spellcheck={false} value={fields[k]} aria-invalid={errs.length > 0} onInput={(e) => setFields({ ...fields, [k]: (e.target as HTMLTextAreaElement).value })} />
              ) : (
                <input name={`data-${k}`} value={fields[k]} aria-invalid={errs.length > 0} onInput={(e) => setFields({ ...fields, [k]: (e.target as HTMLInputElement).value })} />
              )}
            </label>
            <FieldErrors violations={errs} />
          </div>
        );
      })}
      <div class="field" data-field="associations">
        <label>
          <span class="field-name">associations (TYPE:ID, one a line)</span>
          <textarea name="associations" rows={2} value={associations} onInput={(e) => setAssociations((e.target as HTMLTextAreaElement).value)} />
        </label>
        <FieldErrors violations={at("/associations")} />
      </div>
    </>
  );
  const rest = violations.filter((v) => !shown.has(v));
  return (
    <>
      <nav class="crumbs">
        <a href={links.home()}>Namespaces</a> / <a href={links.namespace(namespace)}>{namespace}</a> /{" "}
        <a href={links.annotations(namespace)}>annotations</a> / {id}
      </nav>
      <h1>Annotation</h1>
      <Loading when={found.loading} />
      <ErrorBox error={found.error} />
      {current && (
        <div class="grid">
          <Section title={`${current.type.name} v${current.type.version} — version ${current.version}`}>
            <form onSubmit={save} class="editor" data-testid="annotation-editor">
              {rendered}
              {rest.length > 0 && <FieldErrors violations={rest} />}
              {problem && !(problem instanceof ApiError && problem.problem.violations) && <ErrorBox error={problem} />}
              <button type="submit" disabled={busy || local.length > 0}>
                Save as version {current.version + 1}
              </button>{" "}
              {saved !== null && !problem && <span class="ok" data-testid="saved">Saved version {saved}.</span>}
              <button type="button" class="link" onClick={() => navigate(links.annotations(namespace))}>
                Back to search
              </button>
            </form>
          </Section>
          <Section title="Versions">
            <ol data-testid="annotation-versions">
              {found.data?.versions.map((v) => (
                <li>
                  v{v.version} {v.deleted && <span class="tag">deleted</span>} {when(v.created_at)} {v.created_by ?? ""}
                </li>
              ))}
            </ol>
            <p>
              Timelines:{" "}
              {current.associations.map((s) => (
                <a class="tag" href={links.assocTimeline(namespace, s.type, s.id)}>
                  {s.type}:{s.id}
                </a>
              ))}
            </p>
          </Section>
        </div>
      )}
    </>
  );
}
