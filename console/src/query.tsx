// The query editor: text form of the query language, with a syntax error shown at its position.

import type { ComponentChildren } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError } from "./api";
import { pageState } from "./state";
import { ErrorBox } from "./ui";

export interface QueryRun {
  rows: number;
}

/** A caret under the offending column of the offending line. */
function ErrorAt({ text, line, column, message }: { text: string; line: number; column: number; message: string }) {
  const lines = text.split("\n");
  const shown = lines[line - 1] ?? "";
  return (
    <div class="error query-error" role="alert" data-testid="query-error">
      <div>
        <strong>Syntax error</strong> at line {line}, column {column}: {message}
      </div>
      <pre class="caret">
        {shown.slice(0, column - 1)}
        <mark data-testid="query-error-mark">{shown.slice(column - 1, column) || " "}</mark>
        {shown.slice(column)}
        {"\n"}
        {" ".repeat(Math.max(0, column - 1))}^
      </pre>
    </div>
  );
}

export function QueryEditor({
  initial,
  placeholder,
  run,
  label,
  autoRun = false,
  children,
}: {
  autoRun?: boolean;
  children?: ComponentChildren;
  initial: string;
  placeholder: string;
  label: string;
  run: (query: string) => Promise<QueryRun>;
}) {
  const [text, setText] = useState(initial);
  const [ran, setRan] = useState(text);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    setRan(text);
    try {
      const result = await run(text);
      pageState.query = { rows: result.rows, error: null };
    } catch (e) {
      setError(e);
      const p = e instanceof ApiError ? e.problem : null;
      pageState.query = {
        rows: 0,
        error: { message: p?.detail ?? String(e), line: p?.line, column: p?.column },
      };
    } finally {
      setBusy(false);
    }
  };
  useEffect(() => {
    if (autoRun) submit(new Event("submit"));
  }, []);
  const problem = error instanceof ApiError ? error.problem : null;
  return (
    <form class="query" onSubmit={submit}>
      <label>
        {label}
        <textarea
          name="query"
          rows={3}
          spellcheck={false}
          placeholder={placeholder}
          value={text}
          onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) submit(e);
          }}
        />
      </label>
      {children}
      <button type="submit" disabled={busy}>
        {busy ? "Running…" : "Run query"}
      </button>
      <span class="muted"> Ctrl+Enter runs it. See docs/query-language.md.</span>
      {problem && problem.line && problem.column ? (
        <ErrorAt text={ran} line={problem.line} column={problem.column} message={problem.detail ?? ""} />
      ) : (
        <ErrorBox error={error} />
      )}
    </form>
  );
}
