// The reeldb console: a single page on the public /v1 API, routed by location.hash.

import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { ApiError, api, get, getKey, setKey, SIGNED_OUT, type Whoami } from "./api";
import { AnnotationEditor, AnnotationSearch } from "./annotations";
import { DocumentView } from "./document";
import { DataStoreView, Home, NamespaceView, SchemaView } from "./browse";
import { RequestsView } from "./requests";
import { pageState } from "./state";
import { TimelineView } from "./timelineView";
import { ErrorBox, links, useHash } from "./ui";
import "./style.css";

function SignIn({ onSignedIn }: { onSignedIn: (who: Whoami) => void }) {
  const [key, setValue] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const trimmed = key.trim();
      const who = await api<Whoami>("GET", "/whoami", { key: trimmed });
      setKey(trimmed);
      onSignedIn(who);
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="signin">
      <h1>reeldb console</h1>
      <form onSubmit={submit} class="card">
        <label for="api-key">API key</label>
        <input
          id="api-key"
          name="api-key"
          type="password"
          autocomplete="off"
          placeholder="rdb_…"
          value={key}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
        />
        <button type="submit" disabled={busy || !key.trim()}>
          Sign in
        </button>
        <p class="muted">
          The key stays in this tab's session storage and is sent only to this server's{" "}
          <code>/v1</code> API. <code>reeldb keys create PRINCIPAL</code> makes one.
        </p>
        <ErrorBox error={error} />
      </form>
    </main>
  );
}

function Routed({ hash, who }: { hash: string; who: Whoami }) {
  const parts = hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  const [a, b, c, d, e] = parts;
  if (a === "doc" && b) return <DocumentView id={b} />;
  if (a === "timeline" && b === "doc" && c) return <TimelineView source={{ kind: "doc", id: c }} />;
  if (a === "timeline" && b === "assoc" && c && d && e)
    return <TimelineView source={{ kind: "assoc", namespace: c, type: d, id: e }} />;
  if (a === "ns" && b) {
    if (c === "ds" && d && e) return <DataStoreView datastore={`${b}/${d}/${e}`} />;
    if (c === "schemas" && d) return <SchemaView namespace={b} name={d} />;
    if (c === "annotations" && d) return <AnnotationEditor namespace={b} id={d} />;
    if (c === "annotations") return <AnnotationSearch namespace={b} />;
    if (c === "requests") return <RequestsView namespace={b} who={who} />;
    return <NamespaceView namespace={b} />;
  }
  return <Home who={who} />;
}

function App() {
  const hash = useHash();
  const [who, setWho] = useState<Whoami | null>(null);
  const [checking, setChecking] = useState(getKey() !== null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    if (!getKey()) return;
    get<Whoami>("/whoami").then(
      (w) => {
        setWho(w);
        setChecking(false);
      },
      (e) => {
        if (e instanceof ApiError && e.status === 401) setKey(null);
        else setError(e);
        setChecking(false);
      },
    );
  }, []);

  useEffect(() => {
    const signedOut = () => {
      setWho(null);
      setError(new ApiError({ status: 401, title: "Signed out", detail: "the API key was refused: sign in again" }));
    };
    window.addEventListener(SIGNED_OUT, signedOut);
    return () => window.removeEventListener(SIGNED_OUT, signedOut);
  }, []);

  useEffect(() => {
    pageState.route = hash;
    pageState.signedIn = who !== null;
    pageState.principal = who?.name ?? null;
  }, [hash, who]);

  const signOut = () => {
    setKey(null);
    setWho(null);
    location.hash = "#/";
  };

  if (checking) return <main class="muted">Checking the key…</main>;
  if (!who)
    return (
      <>
        <ErrorBox error={error} />
        <SignIn
          onSignedIn={(w) => {
            setError(null);
            setWho(w);
          }}
        />
      </>
    );
  return (
    <>
      <header class="topbar">
        <a href={links.home()} class="brand">
          reeldb
        </a>
        <span class="muted">console</span>
        <span class="spacer" />
        <span class="principal" data-testid="principal">
          {who.name}
          {who.system_admin ? " (system admin)" : ""}
        </span>
        <button class="link" onClick={signOut}>
          Sign out
        </button>
      </header>
      <main>
        <Routed hash={hash} who={who} />
      </main>
    </>
  );
}

render(<App />, document.getElementById("app")!);
