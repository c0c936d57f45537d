"""The ``reeldb`` command line, driven through typer's CliRunner (and twice as a real process)."""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import reeldb
from reeldb.cli import app
from reeldb.config import SETTINGS
from reeldb.demo import CHARACTER_IN_FRAME, LABELED_BASE
from reeldb.testing import FACE_DETECTION, face_document

# A wide, colourless console: rich tables keep whole UUIDs and timestamps in their cells.
RUNNER = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "FORCE_COLOR": None})

DATASTORE = "vision/face_detection/1"
MID_ARGS = ("--mid", "title_id=1", "--mid", "video_stream_id=v")
STORED = re.compile(
    r"stored document ([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)
BAD_W = "/tracks/0/components/0/events/0/regions/0/bounding_box/w"
BAD_CONFIDENCE = "/tracks/0/components/0/events/1/confidence"
TYPE_CHANGE = "$.tracks[*].components[*].events[*].confidence"

Cli = Callable[..., Result]


def invoke(*args: str, input: str | bytes | None = None) -> Result:
    """Run ``reeldb ARGS`` in-process; stdout and stderr are captured separately."""
    return RUNNER.invoke(app, list(args), input=input)


def write_json(path: Path, value: Any) -> str:
    path.write_text(json.dumps(value))
    return path.name


def assert_error(result: Result, message: str | None = None, *, contains: str = "") -> None:
    """Exit code 1, nothing on stdout, exactly one ``error: ...`` line on stderr."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    if message is not None:
        assert lines[0] == f"error: {message}"
    assert contains in lines[0]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/reel.db"


@pytest.fixture
def cli(url: str) -> Cli:
    """``reeldb --database sqlite:///<tmp_path>/reel.db ARGS``."""

    def run(*args: str, input: str | bytes | None = None) -> Result:
        return invoke("--database", url, *args, input=input)

    return run


def create_vision(cli: Cli, schema_file: str) -> None:
    """Namespace ``vision``, schema ``face_detection`` and DataStore vision/face_detection/1,
    made through the CLI from a schema file."""
    result = cli("namespace", "create", "vision", "--admin", "user:alice")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "created namespace vision\n", "")
    result = cli("schema", "add", schema_file, "-n", "vision")
    assert result.exit_code == 0, result.output
    assert result.stdout == "added schema vision/face_detection v1 (document)\n"
    result = cli(
        "datastore", "create", DATASTORE,
        "--mid-keys", "title_id,video_stream_id", "--schema", "face_detection",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == f"created DataStore {DATASTORE} (face_detection v1)\n"


@pytest.fixture(scope="module")
def vision_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file made once by `create_vision`; `vision` copies it (fast setup)."""
    directory = tmp_path_factory.mktemp("vision")
    schema_file = directory / "face_detection.json"
    write_json(schema_file, FACE_DETECTION)
    with pytest.MonkeyPatch.context() as mp:
        for key in [key for key in os.environ if key.startswith("REELDB_")]:
            mp.delenv(key)
        mp.chdir(directory)
        url = f"sqlite:///{directory}/reel.db"
        create_vision(lambda *args: invoke("--database", url, *args), str(schema_file))
    # closed cleanly: everything is in the one file (no WAL left behind; the empty
    # reel.db-lock is the writers' queue)
    assert sorted(p.name for p in directory.glob("reel.db*")) == ["reel.db", "reel.db-lock"]
    return directory / "reel.db"


@pytest.fixture
def vision(cli: Cli, tmp_path: Path, vision_template: Path) -> Cli:
    """`cli` on a copy of `vision_template`, plus document files in the working directory."""
    shutil.copyfile(vision_template, tmp_path / "reel.db")
    write_json(tmp_path / "doc.json", face_document())
    bad = face_document()
    bad["tracks"][0]["components"][0]["events"][0]["regions"][0]["bounding_box"]["w"] = -0.1
    write_json(tmp_path / "bad_w.json", bad)
    bad["tracks"][0]["components"][0]["events"][1]["confidence"] = 3
    write_json(tmp_path / "bad_two.json", bad)
    (tmp_path / "broken.json").write_text('{"asset": ')
    return cli


def put(cli: Cli, document: dict[str, Any]) -> str:
    """Store a document (from standard input) for MID title_id=1, video_stream_id=v."""
    result = cli("doc", "put", DATASTORE, "-", *MID_ARGS, input=json.dumps(document))
    assert result.exit_code == 0, result.output
    match = STORED.match(result.stdout)
    assert match, result.stdout
    return match.group(1)


def first_line(result: Result) -> str:
    """The first line of a command's standard output."""
    return result.stdout.splitlines()[0]


KEY_LINE = re.compile(r"^  (rdb_[0-9a-f]{16}_[A-Za-z0-9_-]{43})$", re.MULTILINE)


def table_rows(text: str) -> list[list[str]]:
    """The body rows of every rich table in ``text``, as lists of stripped cells."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]


# -- init, demo and the database URL ----------------------------------------------------------


def test_init(cli: Cli, url: str) -> None:
    result = cli("init")
    assert result.exit_code == 0
    assert first_line(result) == f"reeldb database ready at {url} (0 namespaces, 0 DataStores)"
    assert result.stderr == ""


def test_init_creates_a_system_admin_key_once(cli: Cli, url: str) -> None:
    first = cli("init")
    assert first.stdout.splitlines()[1].startswith("system administrator user:admin: API key")
    key = KEY_LINE.search(first.stdout)
    assert key is not None, first.stdout
    again = cli("init")
    assert again.stdout == f"reeldb database ready at {url} (0 namespaces, 0 DataStores)\n"
    with reeldb.connect(url) as db:
        principal = db.authenticate(key.group(1))
        assert (principal.name, principal.system_admin) == ("user:admin", True)
        assert db.list_system_admins() == ["user:admin"]
        assert [k.description for k in db.list_api_keys()] == ["bootstrap key (reeldb init)"]


def test_init_admin_principal(cli: Cli, url: str) -> None:
    result = cli("init", "--admin", "user:root")
    assert "system administrator user:root" in result.stdout
    with reeldb.connect(url) as db:
        assert db.list_system_admins() == ["user:root"]


def test_init_json(cli: Cli, url: str) -> None:
    result = cli("-o", "json", "init")
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out.pop("admin_key").startswith("rdb_")
    assert out == {"database": url, "namespaces": 0, "datastores": 0}
    again = json.loads(cli("-o", "json", "init").stdout)
    assert again["admin_key"] is None


def test_init_counts_what_the_database_holds(vision: Cli, url: str) -> None:
    result = vision("init")
    assert result.exit_code == 0
    assert first_line(result) == f"reeldb database ready at {url} (1 namespaces, 1 DataStores)"


def test_default_database_is_under_the_working_directory(tmp_path: Path) -> None:
    result = invoke("init")
    assert result.exit_code == 0, result.output
    expected = (
        "reeldb database ready at sqlite:///reeldb-data/reel.db (0 namespaces, 0 DataStores)\n"
    )
    assert first_line(result) + "\n" == expected
    assert (tmp_path / "reeldb-data" / "reel.db").is_file()


def test_database_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_url = f"sqlite:///{tmp_path}/from-env.db"
    monkeypatch.setenv("REELDB_DATABASE", env_url)
    result = invoke("init")
    assert result.exit_code == 0, result.output
    assert first_line(result) == f"reeldb database ready at {env_url} (0 namespaces, 0 DataStores)"
    assert (tmp_path / "from-env.db").is_file()
    assert not (tmp_path / "reeldb-data").exists()


def test_database_flag_beats_environment(monkeypatch: pytest.MonkeyPatch, cli: Cli) -> None:
    monkeypatch.setenv("REELDB_DATABASE", "mysql://x")
    result = cli("init")
    assert result.exit_code == 0, result.output


def test_init_prints_database_path_with_brackets_verbatim(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x[b]y/reel.db"
    result = invoke("--database", url, "init")
    assert result.exit_code == 0, result.output
    assert first_line(result) == f"reeldb database ready at {url} (0 namespaces, 0 DataStores)"


def test_demo_loads_once(cli: Cli, url: str) -> None:
    first = cli("demo")
    assert first.exit_code == 0, first.output
    assert first.stderr == ""
    lines = first.stdout.splitlines()
    assert lines[0] == f"reeldb demo at {url} (loaded now)"
    assert lines[1] == "Schemas in demo"
    assert ["TEMPORAL_SPATIAL_BASE (built-in)", "properties", "v0", "NONE"] in table_rows(
        first.stdout
    )
    assert lines[-1] == (
        "Try: reeldb doc get demo/face_detection/1 --mid title_id=80100172 "
        "--mid video_stream_id=vs-1080p-01"
    )
    second = cli("demo")
    assert second.exit_code == 0, second.output
    assert second.stdout.splitlines()[0] == f"reeldb demo at {url}"
    assert "loaded now" not in second.stdout
    # the second run shows the same tour: nothing was loaded twice
    assert table_rows(second.stdout) == table_rows(first.stdout)


def test_demo_json(cli: Cli, url: str) -> None:
    first = cli("-o", "json", "demo")
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    assert set(data) == {"database", "loaded", "datastore", "schemas", "latest"}
    assert data["database"] == url
    assert data["loaded"] is True
    assert data["datastore"]["ref"] == {
        "namespace": "demo",
        "analysis_type": "face_detection",
        "version": 1,
    }
    assert {s["name"] for s in data["schemas"]} >= {"face_detection", "TEMPORAL_SPATIAL_BASE"}
    assert data["latest"]["mid"] == {"title_id": "80100172", "video_stream_id": "vs-1080p-01"}
    assert data["latest"]["document"]["asset"] == {"title": "The Demo Movie"}
    second = json.loads(cli("-o", "json", "demo").stdout)
    assert second["loaded"] is False
    assert second["latest"] == data["latest"]


# -- namespaces, roles and DataStores ---------------------------------------------------------


def test_create_namespace_schema_datastore_from_files(cli: Cli, tmp_path: Path) -> None:
    create_vision(cli, write_json(tmp_path / "face_detection.json", FACE_DETECTION))
    result = cli("init")
    assert first_line(result).endswith("(1 namespaces, 1 DataStores)")


def test_namespace_list(vision: Cli) -> None:
    result = vision("namespace", "list")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "Namespaces"
    [row] = table_rows(result.stdout)
    assert row[:2] == ["vision", ""]
    data = json.loads(vision("-o", "json", "namespace", "list").stdout)
    assert [n["name"] for n in data] == ["vision"]


def test_namespace_create_json_and_duplicate(cli: Cli) -> None:
    result = cli("-o", "json", "namespace", "create", "audio", "--description", "Sound")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["name"], data["description"]) == ("audio", "Sound")
    assert_error(cli("namespace", "create", "audio"), "namespace audio already exists")


def test_roles(vision: Cli) -> None:
    result = vision("role", "grant", "vision", "app:x", "writer")
    assert (result.exit_code, result.stdout, result.stderr) == (
        0,
        "app:x is writer in vision\n",
        "",
    )

    result = vision("role", "list", "vision")
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0] == "Roles in vision"
    assert [row[:2] for row in table_rows(result.stdout)] == [
        ["app:x", "writer"],
        ["user:alice", "admin"],
    ]
    grants = json.loads(vision("-o", "json", "role", "list", "vision").stdout)
    assert {(g["principal"], g["role"]) for g in grants} == {
        ("app:x", "writer"),
        ("user:alice", "admin"),
    }

    result = vision("role", "revoke", "vision", "app:x")
    assert (result.exit_code, result.stdout) == (0, "app:x has no role in vision now\n")
    assert_error(
        vision("role", "revoke", "vision", "app:x"), "app:x has no role in namespace vision"
    )
    assert [row[0] for row in table_rows(vision("role", "list", "vision").stdout)] == ["user:alice"]


def test_role_grant_unknown_role(vision: Cli) -> None:
    assert_error(
        vision("role", "grant", "vision", "app:x", "superuser"),
        "unknown role 'superuser': use one of admin, writer, reader",
    )


def test_datastore_list_and_show(vision: Cli) -> None:
    put(vision, face_document())
    expected = [DATASTORE, "title_id, video_stream_id", "face_detection v1", "1", ""]
    for args in (("datastore", "list"), ("datastore", "list", "-n", "vision")):
        result = vision(*args)
        assert result.exit_code == 0
        assert table_rows(result.stdout) == [expected]
    result = vision("-o", "json", "datastore", "show", DATASTORE)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["mid_keys"] == ["title_id", "video_stream_id"]
    assert (data["schema_name"], data["schema_version"], data["documents"]) == (
        "face_detection",
        1,
        1,
    )
    assert table_rows(vision("datastore", "show", DATASTORE).stdout) == [expected]


# -- documents --------------------------------------------------------------------------------


def test_doc_put_from_file_and_stdin_then_get(vision: Cli) -> None:
    result = vision("doc", "put", DATASTORE, "doc.json", *MID_ARGS)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    match = re.fullmatch(STORED.pattern + r" \((\d+) bytes\)\n", result.stdout)
    assert match, result.stdout
    first_id, first_size = match.group(1), int(match.group(2))

    second_doc = face_document(3, person="Bob")
    result = vision("doc", "put", DATASTORE, "-", *MID_ARGS, input=json.dumps(second_doc))
    assert result.exit_code == 0, result.output
    match = re.fullmatch(STORED.pattern + r" \((\d+) bytes\)\n", result.stdout)
    assert match, result.stdout
    second_id, second_size = match.group(1), int(match.group(2))
    assert second_id != first_id
    assert second_size > first_size > 0
    listed = vision("-o", "json", "doc", "list", DATASTORE, *MID_ARGS).stdout
    sizes = {item["id"]: item["size"] for item in json.loads(listed)["items"]}
    assert sizes == {first_id: first_size, second_id: second_size}

    latest = vision("doc", "get", DATASTORE, *MID_ARGS)
    assert latest.exit_code == 0, latest.output
    assert json.loads(latest.stdout) == second_doc

    by_id = vision("doc", "get", DATASTORE, "--id", first_id)
    assert by_id.exit_code == 0, by_id.output
    assert json.loads(by_id.stdout) == face_document()


def test_doc_put_and_get_json(vision: Cli) -> None:
    result = vision("-o", "json", "doc", "put", DATASTORE, "doc.json", *MID_ARGS)
    assert result.exit_code == 0, result.output
    stored = json.loads(result.stdout)
    mid = {"title_id": "1", "video_stream_id": "v"}
    assert stored == {"id": stored["id"], "mid": mid, "schema_version": 1}

    result = vision("-o", "json", "doc", "get", DATASTORE, "--id", stored["id"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert set(record) == {"id", "datastore", "mid", "schema_version", "created_at", "document"}
    assert (record["id"], record["datastore"], record["mid"]) == (stored["id"], DATASTORE, mid)
    assert record["document"] == face_document()


def test_doc_mid_as_json(vision: Cli) -> None:
    doc_id = put(vision, face_document())
    mid = '{"title_id": "1", "video_stream_id": "v"}'
    result = vision("-o", "json", "doc", "get", DATASTORE, "--mid", mid)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["id"] == doc_id


def test_doc_get_events(vision: Cli) -> None:
    doc_id = put(vision, face_document(2))
    result = vision("doc", "get", DATASTORE, *MID_ARGS, "--events")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == f"Events of document {doc_id}"
    assert table_rows(result.stdout) == [
        ["/tracks/0/components/0/events/0", "0.000", "0.500", "00:00:00:00", "face", "1"],
        ["/tracks/0/components/0/events/1", "1.000", "1.500", "00:00:00:23", "face", "1"],
    ]


def test_doc_list_pages_with_cursor(vision: Cli) -> None:
    ids = [put(vision, face_document(n)) for n in (1, 2, 3)]
    newest_first = ids[::-1]

    seen: list[str] = []
    page_args = ("doc", "list", DATASTORE, *MID_ARGS, "--limit", "1")
    cursor: tuple[str, ...] = ()
    for _ in range(3):
        result = vision(*page_args, *cursor)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines()[0] == "Documents (newest first)"
        [row] = table_rows(result.stdout)
        assert row[1] == "v1"
        seen.append(row[0])
        last = result.stdout.splitlines()[-1]
        if len(seen) < 3:
            assert re.fullmatch(r"more: --cursor \S+", last), last
            cursor = ("--cursor", last.removeprefix("more: --cursor "))
        else:
            assert "more:" not in result.stdout
    assert seen == newest_first


def test_doc_list_json(vision: Cli) -> None:
    ids = [put(vision, face_document(n)) for n in (1, 2)]
    result = vision("-o", "json", "doc", "list", DATASTORE, *MID_ARGS, "--limit", "1")
    assert result.exit_code == 0, result.output
    page = json.loads(result.stdout)
    assert set(page) == {"items", "next_cursor"}
    assert [item["id"] for item in page["items"]] == [ids[1]]
    assert page["items"][0]["mid"] == {"title_id": "1", "video_stream_id": "v"}
    cursor = page["next_cursor"]
    assert isinstance(cursor, str)
    args = ("-o", "json", "doc", "list", DATASTORE, *MID_ARGS, "--limit", "1", "--cursor", cursor)
    page = json.loads(vision(*args).stdout)
    assert [item["id"] for item in page["items"]] == [ids[0]]
    assert page["next_cursor"] is None


# -- schemas ----------------------------------------------------------------------------------


def test_schema_show_json_schema(vision: Cli) -> None:
    result = vision("schema", "show", "face_detection", "-n", "vision", "--json-schema")
    assert result.exit_code == 0, result.output
    compiled = json.loads(result.stdout)
    assert compiled["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert compiled["title"] == "face_detection"
    assert compiled["type"] == "object"
    assert compiled["required"] == ["asset"]
    assert compiled["x-reeldb"]["lineage"] == ["vision/face_detection v1"]


def test_schema_show_text(vision: Cli) -> None:
    result = vision("schema", "show", "face_detection", "-n", "vision")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("vision/face_detection v1 (document)")
    assert "is a:" not in result.stdout
    rows = table_rows(result.stdout)
    assert ["event.label", "keyword", "yes", "vision/face_detection v1"] in rows
    assert ["event.confidence", "float", "", "vision/face_detection v1"] in rows


def test_schema_show_lineage(vision: Cli, tmp_path: Path) -> None:
    labeled = write_json(tmp_path / "labeled.json", LABELED_BASE)
    character = write_json(tmp_path / "character.json", CHARACTER_IN_FRAME)
    assert vision("schema", "add", labeled, "-n", "vision").exit_code == 0
    result = vision("schema", "add", character, "-n", "vision")
    assert result.stdout == "added schema vision/CHARACTER_IN_FRAME v1 (properties)\n"

    result = vision("schema", "show", "CHARACTER_IN_FRAME", "-n", "vision")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:3] == [
        "vision/CHARACTER_IN_FRAME v1 (properties) ML character recognition result",
        "is a: reeldb/TEMPORAL_SPATIAL_BASE v0, vision/LABELED_BASE v1",
        "Properties",
    ]
    assert table_rows(result.stdout) == [
        ["temporal", "time_range", "", "reeldb/TEMPORAL_SPATIAL_BASE v0"],
        ["spatial", "bounding_box", "", "reeldb/TEMPORAL_SPATIAL_BASE v0"],
        ["label", "string", "yes", "vision/LABELED_BASE v1"],
        ["characterName", "string", "yes", "vision/CHARACTER_IN_FRAME v1"],
    ]


def test_schema_list(vision: Cli) -> None:
    result = vision("schema", "list", "-n", "vision")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "Schemas in vision"
    assert table_rows(result.stdout) == [
        ["face_detection", "document", "v1", "BACKWARD"],
        ["TEMPORAL_SPATIAL_BASE (built-in)", "properties", "v0", "NONE"],
    ]
    subjects = json.loads(vision("-o", "json", "schema", "list", "-n", "vision").stdout)
    assert {(s["name"], s["builtin"]) for s in subjects} == {
        ("face_detection", False),
        ("TEMPORAL_SPATIAL_BASE", True),
    }


def test_schema_versions(vision: Cli, tmp_path: Path) -> None:
    v2 = copy.deepcopy(FACE_DETECTION)
    v2["levels"]["event"]["properties"]["note"] = {"type": "text"}
    result = vision("schema", "add", write_json(tmp_path / "v2.json", v2), "-n", "vision")
    assert result.stdout == "added schema vision/face_detection v2 (document)\n"

    result = vision("schema", "versions", "face_detection", "-n", "vision")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "Versions of vision/face_detection"
    assert [row[:2] for row in table_rows(result.stdout)] == [
        ["v1", "document"],
        ["v2", "document"],
    ]
    versions = json.loads(
        vision("-o", "json", "schema", "versions", "face_detection", "-n", "vision").stdout
    )
    assert [v["ref"]["version"] for v in versions] == [1, 2]
    assert all("resolved" not in v for v in versions)
    # the DataStore moved to the new version
    assert (
        json.loads(vision("-o", "json", "datastore", "show", DATASTORE).stdout)["schema_version"]
        == 2
    )


def stored_versions(cli: Cli) -> list[int]:
    result = cli("-o", "json", "schema", "versions", "face_detection", "-n", "vision")
    assert result.exit_code == 0, result.output
    return [v["ref"]["version"] for v in json.loads(result.stdout)]


@pytest.fixture
def candidates(tmp_path: Path) -> tuple[str, str]:
    """A compatible (new optional property) and an incompatible (float -> keyword) version."""
    ok = copy.deepcopy(FACE_DETECTION)
    ok["levels"]["event"]["properties"]["note"] = {"type": "text"}
    bad = copy.deepcopy(FACE_DETECTION)
    bad["levels"]["event"]["properties"]["confidence"] = {"type": "keyword"}
    return write_json(tmp_path / "ok.json", ok), write_json(tmp_path / "bad.json", bad)


def test_schema_check_compatible(vision: Cli, candidates: tuple[str, str]) -> None:
    put(vision, face_document())
    result = vision("schema", "check", candidates[0], "-n", "vision")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "vision/face_detection v2 is compatible (BACKWARD; 1 stored documents checked)\n"
    )
    assert result.stderr == ""
    assert stored_versions(vision) == [1]


def test_schema_check_incompatible(vision: Cli, candidates: tuple[str, str]) -> None:
    result = vision("schema", "check", candidates[1], "-n", "vision")
    assert result.exit_code == 1
    assert result.stderr == ""
    assert "vision/face_detection v2 is incompatible (BACKWARD)" in result.stdout
    [problem] = [line for line in result.stdout.splitlines() if TYPE_CHANGE in line]
    assert "TYPE" in problem
    assert "property type changed from float to keyword" in problem
    assert stored_versions(vision) == [1]

    result = vision("-o", "json", "schema", "check", candidates[1], "-n", "vision")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["compatible"] is False
    assert report["mode"] == "BACKWARD"
    assert report["incompatibilities"] == [
        {
            "path": TYPE_CHANGE,
            "message": "property type changed from float to keyword",
            "rule": "TYPE",
        }
    ]
    assert stored_versions(vision) == [1]


def test_schema_add_incompatible(vision: Cli, candidates: tuple[str, str]) -> None:
    assert_error(
        vision("schema", "add", candidates[1], "-n", "vision"),
        contains="schema vision/face_detection v2 is incompatible (BACKWARD): " + TYPE_CHANGE,
    )
    result = vision("-o", "json", "schema", "add", candidates[1], "-n", "vision")
    assert result.exit_code == 1
    assert result.stdout == ""
    detail = json.loads(result.stderr)
    assert detail["error"] == "IncompatibleSchemaError"
    assert [i["rule"] for i in detail["incompatibilities"]] == ["TYPE"]
    assert stored_versions(vision) == [1]


def test_schema_set_compatibility(vision: Cli, candidates: tuple[str, str]) -> None:
    result = vision("schema", "set-compatibility", "face_detection", "NONE", "-n", "vision")
    assert result.exit_code == 0, result.output
    assert result.stdout == "vision/face_detection now uses NONE\n"
    assert ["face_detection", "document", "v1", "NONE"] in table_rows(
        vision("schema", "list", "-n", "vision").stdout
    )
    result = vision("schema", "check", candidates[1], "-n", "vision")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "vision/face_detection v2 is compatible (NONE; 0 stored documents checked)\n"
    )
    assert_error(
        vision("schema", "set-compatibility", "face_detection", "SOMETIMES", "-n", "vision"),
        contains="unknown compatibility mode 'SOMETIMES'",
    )


def test_namespace_from_environment(monkeypatch: pytest.MonkeyPatch, vision: Cli) -> None:
    monkeypatch.setenv("REELDB_NAMESPACE", "vision")
    result = vision("schema", "list")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "Schemas in vision"
    result = vision("schema", "show", "face_detection", "--json-schema")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["title"] == "face_detection"


# -- errors -----------------------------------------------------------------------------------

ERRORS = {
    "mid-missing-key": (
        ["doc", "put", DATASTORE, "doc.json", "--mid", "title_id=1"],
        "MID does not match the DataStore's MID schema: /video_stream_id: missing MID key "
        "(required by the DataStore's MID schema)",
    ),
    "mid-not-key-value": (
        ["doc", "get", DATASTORE, "--mid", "title_id"],
        "--mid 'title_id': write key=value, e.g. --mid title_id=80100172",
    ),
    "unknown-datastore": (
        ["doc", "put", "vision/nope/1", "doc.json", *MID_ARGS],
        "DataStore vision/nope/1 does not exist",
    ),
    "bad-datastore-text": (
        ["doc", "get", "foo/bar", *MID_ARGS],
        "invalid DataStore 'foo/bar': write it as namespace/analysis_type/version, "
        "e.g. vision/object_detection/2",
    ),
    "missing-document-file": (
        ["doc", "put", DATASTORE, "missing.json", *MID_ARGS],
        "cannot read document file missing.json: No such file or directory",
    ),
    "missing-schema-file": (
        ["schema", "add", "missing.json", "-n", "vision"],
        "cannot read schema file missing.json: No such file or directory",
    ),
    "bad-cursor": (
        ["doc", "list", DATASTORE, *MID_ARGS, "--cursor", "garbage"],
        "invalid cursor 'garbage': pass the next_cursor of a previous page",
    ),
    "bad-limit": (
        ["doc", "list", DATASTORE, *MID_ARGS, "--limit", "0"],
        "limit must be an integer from 1 to 1000",
    ),
    "unknown-schema": (
        ["schema", "show", "nope", "-n", "vision"],
        "schema nope does not exist in namespace vision",
    ),
    "unknown-schema-version": (
        ["schema", "show", "face_detection", "-n", "vision", "--version", "9"],
        "schema vision/face_detection has no version 9 (latest is 1)",
    ),
    "get-needs-mid-or-id": (
        ["doc", "get", DATASTORE],
        "give either --mid key=value ... or --id DOCUMENT_ID",
    ),
    "bad-document-id": (
        ["doc", "get", DATASTORE, "--id", "nonsense"],
        "invalid DocumentID 'nonsense': expected a UUID",
    ),
    "unknown-document-id": (
        ["doc", "get", DATASTORE, "--id", "01a20844-81ff-755d-8677-6c7ef6f44b8d"],
        "document 01a20844-81ff-755d-8677-6c7ef6f44b8d does not exist in DataStore "
        "vision/face_detection/1",
    ),
}


@pytest.mark.parametrize(("args", "message"), list(ERRORS.values()), ids=list(ERRORS))
def test_error_is_one_line(vision: Cli, args: list[str], message: str) -> None:
    assert_error(vision(*args), message)


def test_invalid_document_names_the_pointer(vision: Cli) -> None:
    result = vision("doc", "put", DATASTORE, "bad_w.json", *MID_ARGS)
    assert_error(
        result,
        contains="document does not match face_detection v1 of DataStore vision/face_detection/1; "
        f"nothing was stored: {BAD_W}: ",
    )
    assert "-0.1" in result.stderr
    assert json.loads(vision("-o", "json", "datastore", "show", DATASTORE).stdout)["documents"] == 0


def test_invalid_document_verbose(vision: Cli) -> None:
    result = vision("-v", "doc", "put", DATASTORE, "bad_two.json", *MID_ARGS)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert "reeldb.errors.ValidationError: document does not match" in result.stderr
    error_line, *violations = result.stderr[result.stderr.index("\nerror: ") + 1 :].splitlines()
    assert error_line.startswith("error: document does not match face_detection v1")
    assert [v.split(": ")[0] for v in violations] == [f"  {BAD_W}", f"  {BAD_CONFIDENCE}"]


def test_invalid_document_json_error(vision: Cli) -> None:
    result = vision("-o", "json", "doc", "put", DATASTORE, "bad_two.json", *MID_ARGS)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    detail = json.loads(result.stderr)
    assert set(detail) == {"error", "message", "violations"}
    assert detail["error"] == "ValidationError"
    assert detail["message"].startswith("document does not match face_detection v1")
    assert [v["pointer"] for v in detail["violations"]] == [BAD_W, BAD_CONFIDENCE]
    assert all(v["message"] for v in detail["violations"])


def test_malformed_schema_file_names_the_file(vision: Cli) -> None:
    assert_error(
        vision("schema", "add", "broken.json", "-n", "vision"),
        contains="schema file broken.json is not valid JSON",
    )


def test_malformed_document_from_stdin(vision: Cli) -> None:
    result = vision("doc", "put", DATASTORE, "-", *MID_ARGS, input='{"asset": ')
    assert_error(result, contains="not valid JSON")


def test_malformed_document_file_names_the_file(vision: Cli) -> None:
    assert_error(vision("doc", "put", DATASTORE, "broken.json", *MID_ARGS), contains="broken.json")


@pytest.mark.parametrize(
    ("database", "message"),
    [
        (
            "mysql://x",
            "unsupported database URL 'mysql://x': use sqlite:///path/to/reel.db, memory: or "
            "postgresql://user@host/dbname "
            "(set it with --database, REELDB_DATABASE or 'database' in reeldb.toml)",
        ),
    ],
)
def test_unsupported_database_url(database: str, message: str) -> None:
    assert_error(invoke("--database", database, "init"), message)
    result = invoke("-o", "json", "--database", database, "init")
    assert result.exit_code == 1
    assert json.loads(result.stderr) == {"error": "ConfigError", "message": message}


def test_unreachable_postgresql_is_one_line_without_the_password() -> None:
    result = invoke("--database", "postgresql://reel:s3cret@127.0.0.1:1/reel", "init")
    assert_error(result, contains="cannot connect to PostgreSQL at postgresql://reel@127.0.0.1:1")
    assert "s3cret" not in result.stderr


def test_verbose_config_error_has_traceback() -> None:
    result = invoke("-v", "--database", "mysql://x", "init")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert "reeldb.errors.ConfigError" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: unsupported database URL 'mysql://x'")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["doc", "put", DATASTORE], "Missing argument"),
        (["datastore", "create", "vision/x/1", "--schema", "face_detection"], "Missing option"),
        (["schema", "list"], "Missing option"),
        (["-o", "yaml", "init"], "Invalid value"),
        (["frobnicate"], "No such command"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, args: list[str], expected: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


# -- user text containing rich markup ---------------------------------------------------------


def test_namespace_description_with_closing_tag(cli: Cli) -> None:
    assert cli("namespace", "create", "ns", "--description", "boxes [/x] here").exit_code == 0
    result = cli("namespace", "list")
    assert result.exit_code == 0, result.output
    assert table_rows(result.stdout)[0][:2] == ["ns", "boxes [/x] here"]


def test_namespace_description_with_brackets(cli: Cli) -> None:
    assert cli("namespace", "create", "ns", "--description", "[red]x[/red] [x, y]").exit_code == 0
    result = cli("namespace", "list")
    assert result.exit_code == 0, result.output
    assert table_rows(result.stdout)[0][:2] == ["ns", "[red]x[/red] [x, y]"]


def test_schema_description_with_closing_tag(vision: Cli, tmp_path: Path) -> None:
    definition = {"name": "tag", "description": "a [/b] c", "properties": {"v": {"type": "string"}}}
    schema_file = write_json(tmp_path / "tag.json", definition)
    assert vision("schema", "add", schema_file, "-n", "vision").exit_code == 0
    result = vision("schema", "show", "tag", "-n", "vision")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "vision/tag v1 (properties) a [/b] c"


def test_event_label_with_brackets(vision: Cli) -> None:
    document = face_document(1)
    document["tracks"][0]["components"][0]["events"][0]["label"] = "[/face]"
    put(vision, document)
    result = vision("doc", "get", DATASTORE, *MID_ARGS, "--events")
    assert result.exit_code == 0, result.output
    assert table_rows(result.stdout)[0][4] == "[/face]"


# -- help and entry points --------------------------------------------------------------------


def test_help_settings(tmp_path: Path) -> None:
    result = invoke("--help-settings")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == (
        "database (REELDB_DATABASE, default 'sqlite:///./reeldb-data/reel.db'): "
        "Database URL: sqlite:///path/to/reel.db, memory: or "
        "postgresql://user[:password]@host[:port]/dbname."
    )
    assert [line.split(" ")[:2] for line in lines] == [
        [s.name, f"(REELDB_{s.name.upper()},"] for s in SETTINGS
    ]
    assert not (tmp_path / "reeldb-data").exists()


def test_help_lists_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    commands = ("init", "demo", "serve", "namespace", "role", "schema", "datastore", "doc", "keys")
    for command in (*commands, "audit"):
        assert re.search(rf"^\W*{command}\s", result.stdout, re.MULTILINE), command


@pytest.mark.slow
def test_python_dash_m() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reeldb", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout
    assert "reeldb" in result.stdout


@pytest.mark.slow
def test_console_script() -> None:
    script = Path(sys.executable).parent / "reeldb"
    assert script.is_file()
    assert os.access(script, os.X_OK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REELDB_")}
    result = subprocess.run(
        [str(script), "--database", "mysql://x", "init"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: unsupported database URL 'mysql://x': use sqlite:///path/to/reel.db, "
        "memory: or postgresql://user@host/dbname "
        "(set it with --database, REELDB_DATABASE or 'database' in reeldb.toml)"
    ]


# -- API keys and audit -----------------------------------------------------------------------


def test_keys_create_list_revoke(cli: Cli, url: str) -> None:
    created = cli("keys", "create", "app:detector", "--description", "shot detector")
    assert created.exit_code == 0, created.output
    first, secret = created.stdout.splitlines()
    key_id = first.split()[2]
    assert first == f"API key {key_id} for app:detector (shown once, keep it now):"
    assert secret.startswith(f"rdb_{key_id}_")
    listed = cli("keys", "list")
    rows = table_rows(listed.stdout)
    assert [row[:3] for row in rows] == [[key_id, "app:detector", "shot detector"]]
    assert secret not in listed.stdout
    as_json = json.loads(cli("-o", "json", "keys", "list").stdout)
    assert "secret" not in as_json[0] and "secret_hash" not in as_json[0]
    with reeldb.connect(url) as db:
        assert db.authenticate(secret).name == "app:detector"
    revoked = cli("keys", "revoke", key_id)
    assert revoked.stdout == f"revoked API key {key_id} of app:detector\n"
    with reeldb.connect(url) as db, pytest.raises(reeldb.UnauthenticatedError):
        db.authenticate(secret)
    assert table_rows(cli("keys", "list").stdout)[0][4] != ""


def test_keys_create_json_shows_the_secret_once(cli: Cli, url: str) -> None:
    out = json.loads(cli("-o", "json", "keys", "create", "user:bob", "--system-admin").stdout)
    assert out["key"]["principal"] == "user:bob"
    with reeldb.connect(url) as db:
        assert db.authenticate(out["secret"]).system_admin


def test_keys_errors(cli: Cli) -> None:
    assert_error(
        cli("keys", "revoke", "0123456789abcdef"), "API key 0123456789abcdef does not exist"
    )
    assert_error(cli("keys", "create", "not a principal"), contains="invalid principal")


def test_audit_list(cli: Cli, url: str) -> None:
    from datetime import UTC, datetime

    from reeldb.auth import AuditEntry

    with reeldb.connect(url) as db:
        db.create_namespace("vision")
        db.record_audit(
            [
                AuditEntry(0, datetime.now(UTC), "user:a", "role.grant", "vision", "/x", "r1", 200),
                AuditEntry(
                    0, datetime.now(UTC), "user:b", "key.create", None, "/v1/keys", "r2", 201
                ),
            ]
        )
    rows = table_rows(cli("audit", "list").stdout)
    assert [(r[1], r[2], r[5]) for r in rows] == [
        ("user:b", "key.create", "201"),
        ("user:a", "role.grant", "200"),
    ]
    only = json.loads(cli("-o", "json", "audit", "list", "-n", "vision").stdout)
    assert [e["request_id"] for e in only["items"]] == ["r1"]
    paged = cli("audit", "list", "--limit", "1")
    assert "more: --cursor " in paged.stdout


def test_serve_refuses_workers_on_a_memory_database() -> None:
    assert_error(
        invoke("--database", "memory:", "serve", "--workers", "2"),
        "an in-memory database cannot be shared by several workers",
    )


# -- queries and the index ----------------------------------------------------------------------


def test_query_a_datastore_and_a_document(vision: Cli) -> None:
    first = put(vision, face_document(3, person="Alice"))
    result = vision("query", DATASTORE, 'region.person = "Alice"')
    assert result.exit_code == 0, result.output
    [[doc_id, mid]] = table_rows(result.stdout)
    assert doc_id == first and json.loads(mid) == {"title_id": "1", "video_stream_id": "v"}
    result = vision(
        "-o", "json", "query", DATASTORE, '{"field": "event.label", "op": "=", "value": "car"}'
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"items": [], "next_cursor": None, "total": 0}
    result = vision("query", DATASTORE, "event.time_range overlaps(1, 1.2)", "--document", first)
    assert result.exit_code == 0, result.output
    assert [row[0] for row in table_rows(result.stdout)] == ["/tracks/0/components/0/events/1"]
    result = vision(
        "-o", "json", "query", DATASTORE, 'event.label = "face"', "--document", first,
        "--limit", "2",
    )  # fmt: skip
    page = json.loads(result.stdout)
    assert len(page["items"]) == 2 and page["next_cursor"]
    assert page["items"][0]["regions"][0]["person"] == "Alice"


def test_asynchronous_queries(vision: Cli) -> None:
    first = put(vision, face_document(3, person="Alice"))
    result = vision("-o", "json", "query", DATASTORE, 'region.person = "Alice"', "--submit")
    assert result.exit_code == 0, result.output
    request_id = json.loads(result.stdout)["id"]
    result = vision("queries", "wait", request_id, "--timeout", "30")
    assert result.exit_code == 0, result.output
    assert f"query request {request_id}" in result.stdout and ": done" in result.stdout
    assert "1 matching document(s)" in result.stdout
    result = vision("queries", "results", request_id)
    assert result.exit_code == 0, result.output
    assert [row[0] for row in table_rows(result.stdout)] == [first]
    result = vision("-o", "json", "queries", "status", request_id)
    assert json.loads(result.stdout)["state"] == "done"
    assert_error(vision("queries", "status", "nope"), contains="invalid query request id")
    assert_error(
        vision("query", DATASTORE, "count(event) > 1", "--submit", "--document", first),
        contains="--submit runs DataStore-level queries",
    )


@pytest.mark.parametrize(
    ("query", "contains"),
    [
        ('event.label == "x"', "(line 1, column 14)"),
        ("event.lable = 1", "did you mean event.label?"),
        ('{"field": "event.label"', "JSON query"),
    ],
)
def test_bad_queries_are_one_line_errors(vision: Cli, query: str, contains: str) -> None:
    put(vision, face_document(1))
    assert_error(vision("query", DATASTORE, query), contains=contains)


def test_index_status_and_rebuild(vision: Cli) -> None:
    put(vision, face_document(2))
    result = vision("index", "status", DATASTORE)
    assert result.exit_code == 0, result.output
    assert [row[:4] for row in table_rows(result.stdout)] == [["g1", "active", "yes", "1"]]
    result = vision("index", "rebuild", DATASTORE, "--batch-size", "1")
    assert result.exit_code == 0, result.output
    assert result.stdout == f"rebuilt {DATASTORE}: generation g2, 1 documents, 2 rows\n"
    status = json.loads(vision("-o", "json", "index", "status", DATASTORE).stdout)
    assert [(g["name"], g["in_alias"]) for g in status] == [("g2", True)]
    assert_error(vision("index", "rebuild", DATASTORE, "--batch-size", "0"), contains="batch-size")
    assert_error(vision("index", "status", "vision/nothing/1"), contains="does not exist")
