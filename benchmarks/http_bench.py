"""HTTP throughput and latency of ``reeldb serve`` against a bare ASGI app; prints one JSON object.

For each worker count (``--workers``, default 1 and 2), on loopback, with the load generator in
a separate process (``wrk`` with a Lua script written at run time; a small asyncio client in a
subprocess when ``wrk`` is missing), each server started in its own process group and killed
with it afterwards:

1. ``baseline``: a raw ASGI hello-world app (no framework), served by the same uvicorn with the
   same worker count and options (``python -m uvicorn bench_hello:app --workers N
   --no-access-log``).
2. ``fastapi_hello``: the same answer from one FastAPI route, same uvicorn: the framework's floor.
3. ``reeldb serve --demo --no-access-log`` on a fresh SQLite file in a temporary directory:
   * ``healthz``: ``GET /healthz`` (FastAPI, middleware, metrics; no key, no database).
   * ``get``: ``GET /v1/documents/{id}`` of the demo document (API key, role check; the
     document and the key's authentication come from the worker's caches after the first).
   * ``post``: ``POST .../demo/datastores/face_detection/1/documents`` of the demo document's
     data under a new MID per request (validation, the document write, the audit write).
   * ``ann_get``: ``GET /v1/namespaces/demo/annotations/{id}`` of a demo annotation.
   * ``ann_post``: ``POST /v1/namespaces/demo/annotations`` of a ``CHARACTER_IN_FRAME`` on a
     new entity per request (validation, the annotation write with its index rows, audit).
4. ``get_uncached``: the same GET from a second ``reeldb serve`` on the same file with
   ``REELDB_DOCUMENT_CACHE_BYTES=0``: every answer reads the document from SQLite.

Every scenario is run once unmeasured (``--warmup`` seconds) and then ``--runs`` times for
``--duration`` seconds at each ``--connections`` level (best reported). Non-2xx answers and
socket errors are counted; more than 1% of them in any scenario fails the run (exit status 1,
after the JSON). ``get_vs_baseline`` = reeldb GET/s / baseline req/s of the same run. The
issue's targets are judged on the 2-worker run at the first connection level.

Usage::

    python benchmarks/http_bench.py [--duration 10] [--workers 1,2] [--connections 16]
        [--threads 1] [--warmup 2] [--runs 1] [--quiet-wait 0] [--synchronous full|normal]
        [--load-generator auto|wrk|python] [--quick] [--tmpdir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import os
import platform
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

DATASTORE_PATH = "/v1/namespaces/demo/datastores/face_detection/1"
ANNOTATIONS_PATH = "/v1/namespaces/demo/annotations"
DEMO_MID = {"title_id": "80100172", "video_stream_id": "vs-1080p-01"}
MAX_ERROR_RATE = 0.01
TARGET_WORKERS = 2
TARGETS = {
    "get_per_s": 4000,
    "get_vs_baseline": 0.30,
    "post_per_s": 1500,
    "p99_ms_below": 20.0,
}
MARKER = "HTTPBENCH "
STARTUP_TIMEOUT = 60.0
REQUEST_TIMEOUT = 5.0  # seconds; wrk --timeout too
SCENARIOS = ("baseline", "fastapi_hello", "healthz", "get", "post", "ann_get", "ann_post")
CONTENDED_CORES = 0.25  # other work on the machine above this during a measurement: noted

HELLO_APP = '''\
"""A bare ASGI app: the floor of what uvicorn can serve (written by http_bench.py)."""

BODY = b'{"status":"ok"}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"15")]


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
'''

FASTAPI_HELLO_APP = '''\
"""The same answer from one FastAPI route: the framework's own floor (written by http_bench.py)."""

from fastapi import FastAPI
from fastapi.responses import Response

app = FastAPI()


@app.get("/")
async def hello() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")
'''

# The Lua side of wrk: counts answers by status class per thread and prints one JSON line.
LUA_COMMON = """
local threads = {}
local next_id = 0

function setup(thread)
   thread:set("id", next_id)
   next_id = next_id + 1
   table.insert(threads, thread)
end

n2xx, n3xx, n4xx, n5xx, nother, first_bad = 0, 0, 0, 0, 0, 0

function response(status, headers, body)
   if status >= 200 and status < 300 then n2xx = n2xx + 1
   else
      if first_bad == 0 then first_bad = status end
      if status < 400 and status >= 300 then n3xx = n3xx + 1
      elseif status < 500 and status >= 400 then n4xx = n4xx + 1
      elseif status < 600 and status >= 500 then n5xx = n5xx + 1
      else nother = nother + 1 end
   end
end

function done(summary, latency, requests)
   local c = {n2xx = 0, n3xx = 0, n4xx = 0, n5xx = 0, nother = 0}
   local bad = 0
   for _, thread in ipairs(threads) do
      for k, _ in pairs(c) do c[k] = c[k] + thread:get(k) end
      if bad == 0 then bad = thread:get("first_bad") end
   end
   local e = summary.errors
   io.write(string.format(
      '%s{"requests":%d,"duration_us":%d,"bytes":%d,' ..
      '"status_2xx":%d,"status_3xx":%d,"status_4xx":%d,"status_5xx":%d,"status_other":%d,' ..
      '"first_non_2xx_status":%d,' ..
      '"socket_errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},' ..
      '"latency_us":{"p50":%d,"p90":%d,"p99":%d,"p999":%d,"mean":%.1f,"max":%d}}\\n',
      "__MARKER__", summary.requests, summary.duration, summary.bytes,
      c.n2xx, c.n3xx, c.n4xx, c.n5xx, c.nother, bad,
      e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99),
      latency:percentile(99.9), latency.mean, latency.max))
end
"""


@dataclass(frozen=True)
class Load:
    """One HTTP request shape; ``body_parts`` = (before, after) the per-request counter."""

    method: str
    path: str
    headers: dict[str, str]
    body_parts: tuple[str, str] | None = None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without any ``REELDB_*`` setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELDB_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(extra)
    return env


def _group_cpu_seconds(pgid: int) -> dict[int, float] | None:
    """User + system CPU seconds of each live process in a process group (Linux /proc)."""
    ticks: dict[int, int] = {}
    try:
        entries = list(Path("/proc").iterdir())
    except OSError:
        return None
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        # fields[0] is field 3 (state): pgrp is field 5, utime 14, stime 15.
        if int(fields[2]) == pgid:
            ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    hz = os.sysconf("SC_CLK_TCK")
    return {pid: t / hz for pid, t in ticks.items()}


def _machine_cpu_seconds() -> tuple[float, float] | None:
    """Busy (not idle, not iowait) and iowait CPU seconds of the whole machine (/proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    ticks = [int(x) for x in first[1:9]]  # user nice system idle iowait irq softirq steal
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(ticks) - ticks[3] - ticks[4]) / hz, ticks[4] / hz


def _wait_quiet(limit: float) -> float:
    """Wait (up to ``limit`` s) until the machine was < ``CONTENDED_CORES`` busy for 1 s."""
    waited = 0.0
    while waited < limit:
        before = _machine_cpu_seconds()
        time.sleep(1.0)
        after = _machine_cpu_seconds()
        waited += 1.0
        if before is None or after is None or after[0] - before[0] < CONTENDED_CORES:
            break
    return waited


class Server:
    """A server started in its own process group; `stop` kills the whole group."""

    def __init__(self, name: str, command: list[str], cwd: Path, env: dict[str, str], port: int):
        self.name = name
        self.port = port
        self.log_path = cwd / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def wait_healthy(self, path: str, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self.proc.returncode} before answering:\n"
                    f"{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + path, timeout=1) as answer:
                    if answer.status == 200:
                        return
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not answer {path} in {timeout} s:\n{self.log_tail()}")

    def cpu_seconds(self) -> dict[int, float] | None:
        return _group_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        # uvicorn's worker processes may outlive their supervisor for a moment.
        if _group_cpu_seconds(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()


@contextlib.contextmanager
def running(server_factory: Callable[[], Server], health_path: str) -> Iterator[Server]:
    server = server_factory()
    try:
        server.wait_healthy(health_path)
        yield server
    finally:
        server.stop()


# -- load generators ------------------------------------------------------------------------


def _lua_string(text: str) -> str:
    level = "=" * 4
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def _wrk_script(load: Load) -> str:
    lines = [f"wrk.method = {_lua_string(load.method)}"]
    for name, value in load.headers.items():
        lines.append(f"wrk.headers[ {_lua_string(name)} ] = {_lua_string(value)}")
    if load.body_parts is not None:
        before, after = load.body_parts
        lines += [
            f"local before, after = {_lua_string(before)}, {_lua_string(after)}",
            "local counter = 0",
            "function request()",
            "   counter = counter + 1",
            '   local body = before .. id .. "-" .. counter .. after',
            "   return wrk.format(nil, nil, nil, body)",
            "end",
        ]
    return "\n".join(lines) + "\n" + LUA_COMMON.replace("__MARKER__", MARKER)


def _run_wrk(
    url: str, load: Load, seconds: float, connections: int, threads: int, tmp: Path
) -> dict[str, Any]:
    script = tmp / "load.lua"
    script.write_text(_wrk_script(load))
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        f"{REQUEST_TIMEOUT:g}s",
        "-s",
        str(script),
        url + load.path,
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            result: dict[str, Any] = orjson.loads(line[len(MARKER) :])
            return result
    raise RuntimeError(f"wrk printed no result ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def _run_python_load(
    url: str, load: Load, seconds: float, connections: int, tmp: Path
) -> dict[str, Any]:
    spec = {
        "url": url,
        "method": load.method,
        "path": load.path,
        "headers": load.headers,
        "body_parts": load.body_parts,
        "seconds": seconds,
        "connections": connections,
    }
    spec_path = tmp / "load.json"
    spec_path.write_bytes(orjson.dumps(spec))
    command = [sys.executable, str(Path(__file__).resolve()), "--load-worker", str(spec_path)]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith(MARKER):
            result: dict[str, Any] = orjson.loads(line[len(MARKER) :])
            return result
    raise RuntimeError(
        f"python load generator failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    )


async def _python_load(spec: dict[str, Any]) -> dict[str, Any]:
    """Closed-loop keep-alive HTTP/1.1 load: one task per connection, like wrk."""
    parsed = urllib.parse.urlsplit(spec["url"])
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    head = f"{spec['method']} {spec['path']} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in spec["headers"].items())
    body_parts = spec["body_parts"]
    latencies: list[float] = []
    counts = {"status_2xx": 0, "status_3xx": 0, "status_4xx": 0, "status_5xx": 0}
    counts["status_other"] = 0
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    first_bad = 0
    total_bytes = 0
    start = time.perf_counter()
    deadline = start + spec["seconds"]

    def request_bytes(conn: int, n: int) -> bytes:
        if body_parts is None:
            return (head + "\r\n").encode()
        body = f"{body_parts[0]}{conn}-{n}{body_parts[1]}".encode()
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def read_response(reader: asyncio.StreamReader) -> tuple[int, int]:
        raw = await reader.readuntil(b"\r\n\r\n")
        status = int(raw.split(b" ", 2)[1])
        length = 0
        for line in raw.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = await reader.readexactly(length)
        return status, len(raw) + len(body)

    async def connection(conn: int) -> None:
        nonlocal first_bad, total_bytes
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            errors["connect"] += 1
            return
        n = 0
        try:
            while time.perf_counter() < deadline:
                n += 1
                t0 = time.perf_counter()
                writer.write(request_bytes(conn, n))
                await writer.drain()
                status, size = await asyncio.wait_for(read_response(reader), REQUEST_TIMEOUT)
                latencies.append(time.perf_counter() - t0)
                total_bytes += size
                key = f"status_{status // 100}xx" if 200 <= status < 600 else "status_other"
                counts[key] += 1
                if not 200 <= status < 300 and first_bad == 0:
                    first_bad = status
        except TimeoutError:
            errors["timeout"] += 1
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            errors["read"] += 1
        finally:
            writer.close()

    await asyncio.gather(*(connection(i) for i in range(spec["connections"])))
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> int:
        if not latencies:
            return 0
        return round(latencies[min(len(latencies) - 1, int(len(latencies) * p / 100))] * 1e6)

    return {
        "requests": len(latencies),
        "duration_us": round(elapsed * 1e6),
        "bytes": total_bytes,
        **counts,
        "first_non_2xx_status": first_bad,
        "socket_errors": errors,
        "latency_us": {
            "p50": pct(50),
            "p90": pct(90),
            "p99": pct(99),
            "p999": pct(99.9),
            "mean": round(sum(latencies) / len(latencies) * 1e6, 1) if latencies else 0.0,
            "max": round(latencies[-1] * 1e6) if latencies else 0,
        },
    }


def _load_worker(spec_path: str) -> None:
    spec = orjson.loads(Path(spec_path).read_bytes())
    try:
        import uvloop  # optional; installed with uvicorn[standard]

        result = uvloop.run(_python_load(spec))
    except ImportError:
        result = asyncio.run(_python_load(spec))
    sys.stdout.write(MARKER + orjson.dumps(result).decode() + "\n")


# -- scenarios -------------------------------------------------------------------------------


@dataclass
class Runner:
    generator: str  # "wrk" or "python"
    threads: int
    duration: float
    warmup: float
    runs: int
    quiet_wait: float
    tmp: Path

    def measure(self, server: Server, load: Load, connections: int) -> dict[str, Any]:
        """Warm up, then the best (most 2xx/s) of ``runs`` timed runs."""
        if self.warmup > 0:
            self._run(server.url, load, self.warmup, connections)
        results = [self._measure_once(server, load, connections) for _ in range(self.runs)]
        best = max(results, key=lambda r: r["rps"])
        if self.runs > 1:
            best["rps_of_runs"] = [r["rps"] for r in results]
            # Errors of every run count, not only the best one's.
            best["errors_all_runs"] = sum(r["errors"] for r in results)
            best["error_rate"] = max(r["error_rate"] for r in results)
        return best

    def _measure_once(self, server: Server, load: Load, connections: int) -> dict[str, Any]:
        waited = _wait_quiet(self.quiet_wait) if self.quiet_wait > 0 else None
        machine0, cpu0 = _machine_cpu_seconds(), server.cpu_seconds()
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        raw = self._run(server.url, load, self.duration, connections)
        wall = time.perf_counter() - t0
        children1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine1, cpu1 = _machine_cpu_seconds(), server.cpu_seconds()
        out = _summarise(raw, connections)
        if waited is not None:
            out["waited_for_quiet_s"] = waited
        # CPU in cores (CPU seconds per second of the window; 2.0 = two cores busy).
        load_cpu = sum(children1[:2]) - sum(children0[:2])  # ru_utime + ru_stime
        out["load_generator_cpu_cores"] = round(load_cpu / wall, 2)
        server_cpu = None
        if cpu0 is not None and cpu1 is not None:
            by_process = sorted((cpu1[pid] - cpu0.get(pid, 0.0) for pid in cpu1), reverse=True)
            server_cpu = sum(by_process)
            out["server_cpu_cores"] = round(server_cpu / wall, 2)
            # How the work spread over the processes (uvicorn's workers share one socket).
            out["server_cpu_cores_by_process"] = [
                round(c / wall, 2) for c in by_process if c / wall >= 0.01
            ]
            if raw["requests"]:
                out["server_cpu_us_per_request"] = round(server_cpu / raw["requests"] * 1e6)
        if machine0 is not None and machine1 is not None:
            busy = (machine1[0] - machine0[0]) / wall
            out["machine_busy_cores"] = round(busy, 2)
            out["machine_iowait_cores"] = round((machine1[1] - machine0[1]) / wall, 2)
            if server_cpu is not None:
                # What neither the server nor the load generator used: other work on the machine.
                other = busy - (server_cpu + load_cpu) / wall
                out["other_cpu_cores"] = round(max(other, 0.0), 2)
        return out

    def _run(self, url: str, load: Load, seconds: float, connections: int) -> dict[str, Any]:
        if self.generator == "wrk":
            return _run_wrk(url, load, seconds, connections, self.threads, self.tmp)
        return _run_python_load(url, load, seconds, connections, self.tmp)


def _summarise(raw: dict[str, Any], connections: int) -> dict[str, Any]:
    seconds = raw["duration_us"] / 1e6
    requests = raw["requests"]
    socket_errors = sum(raw["socket_errors"].values())
    non_2xx = requests - raw["status_2xx"]
    errors = non_2xx + socket_errors
    attempts = max(requests + socket_errors, 1)
    lat = raw["latency_us"]
    return {
        "connections": connections,
        "seconds": round(seconds, 2),
        "requests": requests,
        "rps": round(raw["status_2xx"] / seconds, 1) if seconds else 0.0,
        "p50_ms": round(lat["p50"] / 1000, 2),
        "p90_ms": round(lat["p90"] / 1000, 2),
        "p99_ms": round(lat["p99"] / 1000, 2),
        "p999_ms": round(lat["p999"] / 1000, 2),
        "max_ms": round(lat["max"] / 1000, 2),
        "mean_ms": round(lat["mean"] / 1000, 2),
        "non_2xx": non_2xx,
        "status": {k: raw[k] for k in raw if k.startswith("status_") and raw[k]},
        "first_non_2xx_status": raw["first_non_2xx_status"] or None,
        "socket_errors": raw["socket_errors"],
        "errors": errors,
        "error_rate": round(errors / attempts, 5),
        "mb_read_per_s": round(raw["bytes"] / 1e6 / seconds, 2) if seconds else 0.0,
    }


def _http_json(method: str, url: str, key: str, body: Any = None) -> tuple[int, Any]:
    """One request outside the load run: a refusal fails with the server's own words."""
    data = None if body is None else orjson.dumps(body)
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(
            f"{method} {url} answered {exc.code}: {exc.read().decode(errors='replace')}"
        ) from exc


def _hello_server(tmp: Path, workers: int, app: str, name: str) -> Server:
    port = _free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--app-dir", str(tmp)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    command += ["--no-access-log", "--log-level", "warning"]
    return Server(f"{name}-w{workers}", command, tmp, _child_env({}), port)


def _reeldb_server(
    tmp: Path, database: str, workers: int, synchronous: str, name: str = "reeldb", **env: str
) -> Server:
    port = _free_port()
    extra = {"REELDB_SQLITE_SYNCHRONOUS": synchronous, **env}
    if workers > 1:  # as `reeldb serve` would make, but inside our temporary directory
        metrics = tmp / f"metrics-{name}-w{workers}"
        metrics.mkdir()
        extra["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
    command = [sys.executable, "-m", "reeldb", "-d", database, "serve", "--port", str(port)]
    command += ["--workers", str(workers), "--demo", "--no-access-log"]
    return Server(f"{name}-w{workers}", command, tmp, _child_env(extra), port)


def _init_database(tmp: Path, database: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "reeldb", "-d", database, "-o", "json", "init"],
        cwd=tmp,
        env=_child_env({}),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"reeldb init failed ({done.returncode}):\n{done.stderr}")
    key = orjson.loads(done.stdout)["admin_key"]
    if not key:
        raise RuntimeError(f"reeldb init printed no admin key: {done.stdout}")
    return str(key)


def run_workers(
    workers: int, connection_levels: list[int], runner: Runner, synchronous: str, tmp: Path
) -> dict[str, Any]:
    out: dict[str, Any] = {"workers": workers}
    hello_load = Load("GET", "/", {})
    for name, app in (("baseline", "bench_hello:app"), ("fastapi_hello", "bench_fastapi:app")):
        with running(lambda app=app, name=name: _hello_server(tmp, workers, app, name), "/") as h:
            out[name] = [runner.measure(h, hello_load, c) for c in connection_levels]

    db_dir = tmp / f"db-w{workers}"
    db_dir.mkdir()
    database = f"sqlite:///{db_dir / 'reel.db'}"
    key = _init_database(db_dir, database)
    auth = {"Authorization": f"Bearer {key}"}
    with running(lambda: _reeldb_server(tmp, database, workers, synchronous), "/healthz") as srv:
        mid = urllib.parse.quote(orjson.dumps(DEMO_MID).decode())
        _, latest = _http_json("GET", f"{srv.url}{DATASTORE_PATH}/documents/latest?mid={mid}", key)
        document_id, data = latest["id"], latest["data"]
        # One GET and one POST by hand first: a refusal fails here, with the server's words.
        _http_json("GET", f"{srv.url}/v1/documents/{document_id}", key)
        status, _ = _http_json(
            "POST",
            f"{srv.url}{DATASTORE_PATH}/documents",
            key,
            {"mid": {"title_id": "preflight", "video_stream_id": "vs-1"}, "document": data},
        )
        if status != 201:
            raise RuntimeError(f"the preflight POST answered {status}, not 201")
        _, before = _http_json("GET", f"{srv.url}{DATASTORE_PATH}/count", key)

        # {"mid": {"title_id": "bench-<thread or connection>-<n>", ...}, "document": data}
        post_before = '{"mid":{"title_id":"bench-'
        post_after = '","video_stream_id":"vs-1"},' + orjson.dumps({"document": data}).decode()[1:]
        post = Load(
            "POST",
            f"{DATASTORE_PATH}/documents",
            {**auth, "Content-Type": "application/json"},
            (post_before, post_after),
        )
        # Annotations: one of the demo movie's, and new ones on a new entity per request.
        _, listed = _http_json(
            "GET", f"{srv.url}{ANNOTATIONS_PATH}?association=MOVIE_ID:80100172&limit=1", key
        )
        annotation_id = listed["items"][0]["id"]
        ann_data = orjson.dumps(
            {
                "label": "character",
                "characterName": "Alice",
                "temporal": {"start": 1.0, "end": 1.5},
                "spatial": {"x": 0.1, "y": 0.2, "w": 0.15, "h": 0.3},
            }
        ).decode()
        ann_post = Load(
            "POST",
            ANNOTATIONS_PATH,
            {**auth, "Content-Type": "application/json"},
            (
                '{"type":"CHARACTER_IN_FRAME","associations":[{"type":"MOVIE_ID","id":"bench-',
                '"}],"data":' + ann_data + "}",
            ),
        )
        _, ann_before = _http_json("GET", f"{srv.url}{ANNOTATIONS_PATH}/count", key)
        scenarios = {
            "healthz": Load("GET", "/healthz", {}),
            "get": Load("GET", f"/v1/documents/{document_id}", auth),
            "post": post,
            "ann_get": Load("GET", f"{ANNOTATIONS_PATH}/{annotation_id}", auth),
            "ann_post": ann_post,
        }
        for name, load in scenarios.items():
            out[name] = [runner.measure(srv, load, c) for c in connection_levels]
        _, after = _http_json("GET", f"{srv.url}{DATASTORE_PATH}/count", key)
        _, ann_after = _http_json("GET", f"{srv.url}{ANNOTATIONS_PATH}/count", key)

    # The same GET with the document cache off: every answer reads the database.
    def uncached() -> Server:
        return _reeldb_server(
            tmp, database, workers, synchronous, "reeldb-uncached", REELDB_DOCUMENT_CACHE_BYTES="0"
        )

    with running(uncached, "/healthz") as srv:
        load = scenarios["get"]
        out["get_uncached"] = [runner.measure(srv, load, c) for c in connection_levels]

    # Every 2xx POST (warm-up runs included) must have stored a document.
    out["post_documents_stored"] = after["count"] - before["count"]
    out["post_2xx_measured"] = sum(p["status"].get("status_2xx", 0) for p in out["post"])
    out["ann_post_annotations_stored"] = ann_after["count"] - ann_before["count"]
    out["ann_post_2xx_measured"] = sum(p["status"].get("status_2xx", 0) for p in out["ann_post"])
    out["document_id"] = document_id
    out["post_body_bytes_about"] = len(post_before) + len(post_after) + len("0-1")
    for name in ("fastapi_hello", "healthz", "get", "get_uncached", "post", "ann_get", "ann_post"):
        for i, measured in enumerate(out[name]):
            base, floor = out["baseline"][i]["rps"], out["fastapi_hello"][i]["rps"]
            measured["vs_baseline"] = round(measured["rps"] / base, 3) if base else None
            if name != "fastapi_hello":
                measured["vs_fastapi_hello"] = round(measured["rps"] / floor, 3) if floor else None
    return out


def _targets(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's targets, judged on the first connection level of the 2-worker run."""
    run = next((r for r in runs if r["workers"] == TARGET_WORKERS), None)
    if run is None:
        return {"judged_on": None, "note": f"no run with {TARGET_WORKERS} workers", "met": None}
    get, post = run["get"][0], run["post"][0]
    ann_get, ann_post = run["ann_get"][0], run["ann_post"][0]
    checks = {
        "ann_get_per_s": (
            ann_get["rps"],
            TARGETS["get_per_s"],
            ann_get["rps"] >= TARGETS["get_per_s"],
        ),
        "ann_post_per_s": (
            ann_post["rps"],
            TARGETS["post_per_s"],
            ann_post["rps"] >= TARGETS["post_per_s"],
        ),
        "ann_get_p99_ms": (ann_get["p99_ms"], TARGETS["p99_ms_below"], ann_get["p99_ms"] < 20.0),
        "ann_post_p99_ms": (
            ann_post["p99_ms"],
            TARGETS["p99_ms_below"],
            ann_post["p99_ms"] < 20.0,
        ),
        "get_per_s": (get["rps"], TARGETS["get_per_s"], get["rps"] >= TARGETS["get_per_s"]),
        "get_vs_baseline": (
            get["vs_baseline"],
            TARGETS["get_vs_baseline"],
            get["vs_baseline"] is not None and get["vs_baseline"] >= TARGETS["get_vs_baseline"],
        ),
        "post_per_s": (post["rps"], TARGETS["post_per_s"], post["rps"] >= TARGETS["post_per_s"]),
        "get_p99_ms": (get["p99_ms"], TARGETS["p99_ms_below"], get["p99_ms"] < 20.0),
        "post_p99_ms": (post["p99_ms"], TARGETS["p99_ms_below"], post["p99_ms"] < 20.0),
    }
    result: dict[str, Any] = {
        "judged_on": {"workers": TARGET_WORKERS, "connections": get["connections"]},
    }
    for name, (measured, target, met) in checks.items():
        bound = "max" if name.endswith("p99_ms") else "min"
        result[name] = {"measured": measured, bound: target, "met": met}
    result["met"] = all(met for _, _, met in checks.values())
    return result


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One flat line per worker count and connection level: the numbers to read first."""
    out: dict[str, Any] = {}
    for run in runs:
        for i, base in enumerate(run["baseline"]):
            get, post = run["get"][i], run["post"][i]
            out[f"workers={run['workers']} connections={base['connections']}"] = {
                "baseline_rps": base["rps"],
                "fastapi_hello_rps": run["fastapi_hello"][i]["rps"],
                "healthz_rps": run["healthz"][i]["rps"],
                "get_rps": get["rps"],
                "get_p50_ms": get["p50_ms"],
                "get_p99_ms": get["p99_ms"],
                "get_vs_baseline": get["vs_baseline"],
                "get_vs_fastapi_hello": get["vs_fastapi_hello"],
                "get_uncached_rps": run["get_uncached"][i]["rps"],
                "get_uncached_p99_ms": run["get_uncached"][i]["p99_ms"],
                "get_uncached_vs_baseline": run["get_uncached"][i]["vs_baseline"],
                "post_rps": post["rps"],
                "post_p50_ms": post["p50_ms"],
                "post_p99_ms": post["p99_ms"],
            }
    return out


def _wrk_version() -> str | None:
    if shutil.which("wrk") is None:
        return None
    done = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].strip() if first else None


def _int_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError("a comma-separated list of positive integers")
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--workers", type=_int_list, default=[1, 2], help="e.g. 1,2")
    parser.add_argument("--connections", type=_int_list, default=[16], help="e.g. 16,64")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--runs", type=int, default=1, help="timed runs each; best reported")
    parser.add_argument(
        "--quiet-wait",
        type=float,
        default=0.0,
        help="before each timed run, wait up to this many seconds for the machine to be idle",
    )
    parser.add_argument("--synchronous", choices=("full", "normal"), default="full")
    parser.add_argument("--load-generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--quick", action="store_true", help="smoke test: 1 s, 1 worker, 4 conns")
    parser.add_argument("--tmpdir", default=None, help="where the temporary databases go")
    parser.add_argument("--load-worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.load_worker is not None:
        _load_worker(args.load_worker)
        return 0
    if args.quick:
        args.duration, args.warmup, args.workers, args.connections = 1.0, 0.5, [1], [4]
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.duration < 1:
        parser.error("--duration must be at least 1 (wrk counts whole seconds)")
    generator = args.load_generator
    if generator == "auto":
        generator = "wrk" if shutil.which("wrk") else "python"
    elif generator == "wrk" and shutil.which("wrk") is None:
        parser.error("wrk is not installed; use --load-generator python")

    # SIGTERM (e.g. a test timeout) unwinds like Ctrl-C, so the servers are always stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result: dict[str, Any] = {
        "benchmark": "http",
        "python": platform.python_version(),
        "reeldb": _version("reeldb"),
        "uvicorn": _version("uvicorn"),
        "fastapi": _version("fastapi"),
        "starlette": _version("starlette"),
        "uvloop": _version("uvloop"),
        "httptools": _version("httptools"),
        "sqlite": sqlite3.sqlite_version,
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs",
        "cpu_count": os.cpu_count(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load_generator": generator,
        "wrk": _wrk_version() if generator == "wrk" else None,
        "wrk_threads": args.threads if generator == "wrk" else None,
        "connections": args.connections,
        "duration_s": args.duration,
        "runs_per_scenario": args.runs,
        "quiet_wait_s": args.quiet_wait,
        "warmup_s": args.warmup,
        "synchronous": args.synchronous,
        "note": (
            "Closed loop: each connection sends its next request when the previous answer "
            "arrives, so latency percentiles are at that concurrency (no coordinated-omission "
            "correction). Load generator and servers share the machine's cores. rps counts "
            "2xx answers only. server_cpu_* is the CPU of the server's process group during "
            "the measured window."
        ),
    }
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="reeldb-http-bench-", dir=args.tmpdir) as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "bench_hello.py").write_text(HELLO_APP)
        (tmp_path / "bench_fastapi.py").write_text(FASTAPI_HELLO_APP)
        runner_tmp = tmp_path / "load"
        runner_tmp.mkdir()
        runner = Runner(
            generator,
            args.threads,
            args.duration,
            args.warmup,
            args.runs,
            args.quiet_wait,
            runner_tmp,
        )
        runs = [
            run_workers(w, args.connections, runner, args.synchronous, tmp_path)
            for w in args.workers
        ]
    result["runs"] = runs
    result["targets"] = _targets(runs)
    for run in runs:
        for name in SCENARIOS:
            for measured in run[name]:
                where = f"{name} workers={run['workers']} connections={measured['connections']}"
                if measured["requests"] == 0:
                    failures.append(f"{where}: no answers at all")
                elif measured["error_rate"] > MAX_ERROR_RATE:
                    failures.append(
                        f"{where}: {measured['errors']} errors of {measured['requests']} "
                        f"(first non-2xx status {measured['first_non_2xx_status']}, socket "
                        f"errors {measured['socket_errors']})"
                    )
        if run["post_documents_stored"] < run["post_2xx_measured"]:
            failures.append(
                f"workers={run['workers']}: {run['post_2xx_measured']} POSTs answered 2xx but "
                f"the DataStore grew by {run['post_documents_stored']} documents"
            )
    result["summary"] = _summary(runs)
    result["contended"] = [
        f"{name} workers={run['workers']} connections={measured['connections']}"
        for run in runs
        for name in SCENARIOS
        for measured in run[name]
        if (measured.get("other_cpu_cores") or 0) > CONTENDED_CORES
    ]
    result["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    result["errors_ok"] = not failures
    sys.stdout.write(orjson.dumps(result).decode() + "\n")
    if failures:
        sys.stderr.write("http_bench: the run is not valid:\n  " + "\n  ".join(failures) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
