"""``reeldb ann``: annotations on the command line, checked against the library's answers."""

from __future__ import annotations

import copy
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

import reeldb
from reeldb.annotations import Annotation
from reeldb.cli import app
from reeldb.demo import CHARACTER_IN_FRAME, LABELED_BASE
from reeldb.testing import BOUNDING_BOX

# A wide, colourless console: rich tables keep whole UUIDs and timestamps in their cells.
RUNNER = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "FORCE_COLOR": None})

UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
CREATED = re.compile(rf"created annotation ({UUID}) \((\S+ v\d+), version 1\)\n")
UNKNOWN_ID = "01a20844-81ff-755d-8677-6c7ef6f44b8d"

BOX_V1 = {  # REQUIREMENTS E4: v1 adds an optional label
    "type": "BOUNDING_BOX",
    "version": 1,
    "description": "adds a label",
    "keys": {
        "properties": {
            "boundingBox": {"type": "bounding_box", "mandatory": True},
            "boxTimeRange": {"type": "time_range", "mandatory": True},
            "label": {"type": "string", "mandatory": False},
        }
    },
}
REVIEW_NOTE = {
    "name": "REVIEW_NOTE",
    "extends": ["TEMPORAL_SPATIAL_BASE"],
    "properties": {"comment": {"type": "text", "mandatory": True}},
}
E2_DATA = {
    "boundingBox": {"x": 120, "y": 80, "w": 200, "h": 150},
    "boxTimeRange": {"start": 10, "end": 12.5},
}
E7_COMMENT = "Please change the colour of the gloves to rich black"

Cli = Callable[..., Result]


def invoke(*args: str, input: str | bytes | None = None) -> Result:
    return RUNNER.invoke(app, list(args), input=input)


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


def table_rows(text: str) -> list[list[str]]:
    """The body rows of every rich table in ``text``, as lists of stripped cells."""
    return [
        [cell.strip() for cell in line.strip().strip("│").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result


def as_json(result: Result) -> Any:
    return json.loads(ok(result).stdout)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Namespace ``vision`` with BOUNDING_BOX v0 and v1, CHARACTER_IN_FRAME and REVIEW_NOTE."""
    path = tmp_path_factory.mktemp("ann") / "reel.db"
    with reeldb.connect(f"sqlite:///{path}") as db:
        db.create_namespace("vision")
        for definition in (BOUNDING_BOX, BOX_V1, LABELED_BASE, CHARACTER_IN_FRAME, REVIEW_NOTE):
            db.add_schema("vision", copy.deepcopy(definition))
    return path


@pytest.fixture
def url(tmp_path: Path, template: Path) -> str:
    shutil.copyfile(template, tmp_path / "reel.db")
    return f"sqlite:///{tmp_path}/reel.db"


@pytest.fixture
def cli(url: str) -> Cli:
    """``reeldb --database <a copy of the template> ARGS``."""

    def run(*args: str, input: str | bytes | None = None) -> Result:
        return invoke("--database", url, *args, input=input)

    return run


@pytest.fixture
def db(url: str) -> Iterator[reeldb.Database]:
    """The library on the same database file, to compare answers."""
    with reeldb.connect(url) as database:
        yield database


def create_e2(cli: Cli) -> str:
    """Marken's E2 on video-42 through the CLI; returns its id."""
    result = ok(
        cli(
            "ann", "create", "vision", "--type", "BOUNDING_BOX@0", "--assoc", "VIDEO:video-42",
            "--data", json.dumps(E2_DATA),
        )
    )  # fmt: skip
    match = CREATED.fullmatch(result.stdout)
    assert match, result.stdout
    assert match.group(2) == "BOUNDING_BOX v0"
    return match.group(1)


def character(name: str, start: float, x: float) -> dict[str, Any]:
    return {
        "type": "CHARACTER_IN_FRAME",
        "associations": [{"type": "VIDEO", "id": "video-42"}],
        "data": {
            "label": "character",
            "characterName": name,
            "temporal": {"start": start, "end": start + 10},
            "spatial": {"x": x, "y": x, "w": 0.2, "h": 0.2},
        },
    }


def load_characters(db: reeldb.Database) -> list[Annotation]:
    """AT-08 in small: Alice 70-80 s upper left, Bob 70-80 s lower right, Alice 200-210 s
    lower right."""
    return db.annotations.create_many(
        "vision",
        [character("Alice", 70, 0.1), character("Bob", 70, 0.6), character("Alice", 200, 0.6)],
    )


# -- create, get, versions --------------------------------------------------------------------


def test_create_and_get_match_the_library(cli: Cli, db: reeldb.Database) -> None:
    ident = create_e2(cli)
    stored = db.annotations.get("vision", ident)
    assert (stored.version, stored.data) == (1, E2_DATA)
    assert [str(a) for a in stored.associations] == ["VIDEO:video-42"]
    assert as_json(cli("-o", "json", "ann", "get", "vision", ident)) == stored.to_json()
    result = ok(cli("ann", "get", "vision", ident))
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        f"annotation {ident} version 1",
        "type: BOUNDING_BOX v0",
        "associations: VIDEO:video-42",
        f"created: {stored.created_at.isoformat()}",
    ]
    assert json.loads("\n".join(lines[4:])) == E2_DATA


def test_create_json_is_the_stored_annotation(cli: Cli, db: reeldb.Database) -> None:
    created = as_json(
        cli(
            "-o", "json", "ann", "create", "vision", "-t", "BOUNDING_BOX", "-a", "VIDEO:v",
            "-a", "SHOT_ID:7", "--data", json.dumps(E2_DATA),
        )
    )  # fmt: skip
    assert created == db.annotations.get("vision", created["id"]).to_json()
    # NAME without @VERSION is the latest version
    assert created["type"] == {"name": "BOUNDING_BOX", "version": 1}
    assert created["associations"] == [{"type": "VIDEO", "id": "v"}, {"type": "SHOT_ID", "id": "7"}]


def test_association_ids_may_hold_colons(cli: Cli, db: reeldb.Database) -> None:
    result = ok(
        cli(
            "ann", "create", "vision", "--type", "BOUNDING_BOX", "--assoc",
            "URN:isan:0000-0000-9E59:1", "--data", json.dumps(E2_DATA),
        )
    )  # fmt: skip
    match = CREATED.fullmatch(result.stdout)
    assert match, result.stdout
    [link] = db.annotations.get("vision", match.group(1)).associations
    assert (link.type, link.id) == ("URN", "isan:0000-0000-9E59:1")


def test_data_from_a_file_and_from_stdin(cli: Cli, db: reeldb.Database, tmp_path: Path) -> None:
    (tmp_path / "e2.json").write_text(json.dumps(E2_DATA))
    args = ("-o", "json", "ann", "create", "vision", "-t", "BOUNDING_BOX", "-a", "VIDEO:v")
    from_file = as_json(cli(*args, "--data", "@e2.json"))
    from_stdin = as_json(cli(*args, "--data", "@-", input=json.dumps(E2_DATA)))
    assert from_file["data"] == from_stdin["data"] == E2_DATA
    assert db.annotations.count("vision") == 2


def test_update_versions_and_history(cli: Cli, db: reeldb.Database) -> None:
    ident = create_e2(cli)
    new_data = {**E2_DATA, "label": "graphic violence"}
    result = ok(
        cli(
            "ann", "update", "vision", ident, "--expected-version", "1",
            "--type", "BOUNDING_BOX@1", "--data", json.dumps(new_data),
        )
    )  # fmt: skip
    assert result.stdout == f"updated annotation {ident}: version 2\n"
    current = db.annotations.get("vision", ident)
    assert (current.version, current.type.version, current.data) == (2, 1, new_data)
    old = as_json(cli("-o", "json", "ann", "get", "vision", ident, "--version", "1"))
    assert old == db.annotations.get("vision", ident, 1).to_json()
    assert old["data"] == E2_DATA

    # --assoc replaces every association; what is not given is kept
    result = ok(
        cli(
            "ann", "update", "vision", ident, "--expected-version", "2",
            "--assoc", "MOVIE_ID:1234", "--assoc", "SHOT_ID:9",
        )
    )  # fmt: skip
    assert result.stdout == f"updated annotation {ident}: version 3\n"
    third = db.annotations.get("vision", ident)
    assert [str(a) for a in third.associations] == ["MOVIE_ID:1234", "SHOT_ID:9"]
    assert (third.data, third.type.version) == (new_data, 1)

    result = ok(cli("ann", "versions", "vision", ident))
    assert result.stdout.splitlines()[0] == f"Versions of annotation {ident}"
    assert [row[:2] + row[3:4] for row in table_rows(result.stdout)] == [
        ["1", "BOUNDING_BOX v0", ""],
        ["2", "BOUNDING_BOX v1", ""],
        ["3", "BOUNDING_BOX v1", ""],
    ]
    versions = as_json(cli("-o", "json", "ann", "versions", "vision", ident))
    assert versions == [v.to_json() for v in db.annotations.versions("vision", ident)]


def test_stale_expected_version(cli: Cli, db: reeldb.Database) -> None:
    ident = create_e2(cli)
    args = ("ann", "update", "vision", ident, "--data", json.dumps(E2_DATA))
    ok(cli(*args, "--expected-version", "1"))
    message = f"annotation {ident} is at version 2, not 1: read it again and retry"
    assert_error(cli(*args, "--expected-version", "1"), message)
    assert_error(cli("ann", "delete", "vision", ident, "--expected-version", "1"), message)
    result = cli("-o", "json", *args, "--expected-version", "1")
    assert result.exit_code == 1
    assert json.loads(result.stderr) == {"error": "VersionConflictError", "message": message}
    assert db.annotations.get("vision", ident).version == 2


def test_delete_keeps_history(cli: Cli, db: reeldb.Database) -> None:
    ident = create_e2(cli)
    result = ok(cli("ann", "delete", "vision", ident, "--expected-version", "1"))
    assert result.stdout == f"deleted annotation {ident}: version 2 is its tombstone\n"
    assert_error(
        cli("ann", "get", "vision", ident),
        f"annotation {ident} was deleted (version 2); earlier versions stay readable",
    )
    deleted = f"annotation {ident} is deleted (version 2)"
    assert_error(cli("ann", "delete", "vision", ident), deleted)
    assert_error(
        cli("ann", "update", "vision", ident, "--expected-version", "2", "--data", "{}"), deleted
    )
    assert as_json(cli("-o", "json", "ann", "get", "vision", ident, "--version", "1"))["data"] == (
        E2_DATA
    )
    tombstone = as_json(cli("-o", "json", "ann", "get", "vision", ident, "--version", "2"))
    assert tombstone["deleted"] is True
    result = ok(cli("ann", "get", "vision", ident, "--version", "2"))
    assert result.stdout.splitlines()[0] == f"annotation {ident} version 2 (deleted)"
    assert [row[3] for row in table_rows(ok(cli("ann", "versions", "vision", ident)).stdout)] == [
        "",
        "yes",
    ]
    assert as_json(cli("-o", "json", "ann", "search", "vision"))["items"] == []
    assert db.annotations.count("vision") == 0


def test_delete_json_is_the_tombstone(cli: Cli, db: reeldb.Database) -> None:
    ident = create_e2(cli)
    tombstone = as_json(cli("-o", "json", "ann", "delete", "vision", ident))
    assert tombstone == db.annotations.get("vision", ident, 2).to_json()
    assert (tombstone["version"], tombstone["deleted"], tombstone["data"]) == (2, True, E2_DATA)


# -- bulk create ------------------------------------------------------------------------------


def notes(count: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "REVIEW_NOTE",
            "associations": [{"type": "VIDEO", "id": "cut-v3"}],
            "data": {"comment": f"note {i}", "temporal": {"start": i, "end": i + 0.5}},
        }
        for i in range(count)
    ]


def test_create_from_a_json_list_in_batches(cli: Cli, db: reeldb.Database, tmp_path: Path) -> None:
    (tmp_path / "items.json").write_text(json.dumps(notes(25)))
    result = ok(cli("ann", "create", "vision", "--file", "items.json", "--batch-size", "10"))
    assert result.stdout == "created 25 annotations in 3 batches\n"
    assert db.annotations.count("vision") == 25


def test_create_from_json_lines_json_output(cli: Cli, db: reeldb.Database, tmp_path: Path) -> None:
    lines = "\n".join(json.dumps(item) for item in notes(5)) + "\n\n"
    (tmp_path / "items.jsonl").write_text(lines)
    created = as_json(cli("-o", "json", "ann", "create", "vision", "-f", "items.jsonl"))
    assert [a["data"]["comment"] for a in created] == [f"note {i}" for i in range(5)]
    assert created == [db.annotations.get("vision", a["id"]).to_json() for a in created]


def test_create_from_stdin(cli: Cli, db: reeldb.Database) -> None:
    result = ok(cli("ann", "create", "vision", "--file", "-", input=json.dumps(notes(3))))
    assert result.stdout == "created 3 annotations in 1 batch\n"
    lines = "\n".join(json.dumps(item) for item in notes(2))
    assert ok(cli("ann", "create", "vision", "-f", "-", input=lines)).stdout == (
        "created 2 annotations in 1 batch\n"
    )
    assert db.annotations.count("vision") == 5


def test_bulk_batch_is_all_or_nothing(cli: Cli, db: reeldb.Database, tmp_path: Path) -> None:
    items = notes(12)
    items[7]["data"] = {"comment": 3}
    (tmp_path / "items.json").write_text(json.dumps(items))
    # one batch: nothing stored, the library's message, pointers into the file
    assert_error(
        cli("ann", "create", "vision", "--file", "items.json"),
        "1 of 12 annotations are invalid; none was stored: /7/data/comment: 3 is not of type "
        '"string"',
    )
    assert db.annotations.count("vision") == 0
    # batches of 5: the first is stored, the second (with item 7) and the third are not
    assert_error(
        cli("ann", "create", "vision", "--file", "items.json", "--batch-size", "5"),
        "items 0-4 were stored; item 5 and later ones were not: 1 of 5 annotations are "
        'invalid; none was stored: /7/data/comment: 3 is not of type "string"',
    )
    assert db.annotations.count("vision") == 5
    result = cli("-o", "json", "ann", "create", "vision", "-f", "items.json", "--batch-size", "1")
    assert result.exit_code == 1
    detail = json.loads(result.stderr)
    assert detail["violations"] == [
        {"pointer": "/7/data/comment", "message": '3 is not of type "string"'}
    ]
    assert db.annotations.count("vision") == 12


def test_bulk_line_that_is_not_json(cli: Cli, db: reeldb.Database, tmp_path: Path) -> None:
    lines = [json.dumps(item) for item in notes(4)] + ["{oops"]
    (tmp_path / "items.jsonl").write_text("\n".join(lines))
    assert_error(
        cli("ann", "create", "vision", "-f", "items.jsonl", "--batch-size", "2"),
        contains="items 0-3 were stored; item 4 and later ones were not: line 5 of items file "
        "items.jsonl is not valid JSON",
    )
    assert db.annotations.count("vision") == 4


def test_create_help_says_batches_are_all_or_nothing() -> None:
    result = invoke("ann", "create", "--help")
    assert result.exit_code == 0
    assert "all or nothing" in " ".join(result.stdout.split())


# -- search and timeline ----------------------------------------------------------------------


def test_search_time_and_box(cli: Cli, db: reeldb.Database) -> None:
    alice, _bob, _later = load_characters(db)
    args = ("ann", "search", "vision", "--assoc", "VIDEO:video-42", "--time", "72,75")
    result = ok(cli(*args, "--box", "0,0,0.5,0.5"))
    assert result.stdout.splitlines()[0] == "Annotations in vision"
    [row] = table_rows(result.stdout)
    assert row[:4] == [str(alice.id), "CHARACTER_IN_FRAME v1", "70.000", "VIDEO:video-42"]
    assert '"characterName":"Alice"' in row[4]
    page = as_json(cli("-o", "json", *args, "--box", "0,0,0.5,0.5"))
    expected = db.annotations.search(
        "vision", associations=[{"type": "VIDEO", "id": "video-42"}], time=(72, 75),
        box=(0, 0, 0.5, 0.5),
    )  # fmt: skip
    assert page == {"items": [h.to_json() for h in expected.items], "next_cursor": None}
    assert [h["data"]["characterName"] for h in page["items"]] == ["Alice"]
    within = as_json(cli("-o", "json", *args, "--box", "0.5,0.5,0.5,0.5", "--box-op", "within"))
    assert [h["data"]["characterName"] for h in within["items"]] == ["Bob"]
    inside = as_json(cli("-o", "json", "ann", "search", "vision", "--time", "60,90", "--time-op",
                         "within"))  # fmt: skip
    assert {h["data"]["characterName"] for h in inside["items"]} == {"Alice", "Bob"}


def test_search_is_a_and_exact_type(cli: Cli, db: reeldb.Database) -> None:
    load_characters(db)
    create_e2(cli)
    is_a = as_json(cli("-o", "json", "ann", "search", "vision", "-t", "TEMPORAL_SPATIAL_BASE"))
    assert [h["type"]["name"] for h in is_a["items"]] == ["CHARACTER_IN_FRAME"] * 3
    labeled = as_json(cli("-o", "json", "ann", "search", "vision", "-t", "LABELED_BASE"))
    assert len(labeled["items"]) == 3
    exact = cli("-o", "json", "ann", "search", "vision", "-t", "LABELED_BASE", "--exact-type")
    assert as_json(exact)["items"] == []
    boxes = as_json(cli("-o", "json", "ann", "search", "vision", "-t", "BOUNDING_BOX@0"))
    assert [h["type"] for h in boxes["items"]] == [{"name": "BOUNDING_BOX", "version": 0}]


def test_search_where(cli: Cli, db: reeldb.Database) -> None:
    load_characters(db)
    args = ("-o", "json", "ann", "search", "vision", "-t", "CHARACTER_IN_FRAME", "--where")
    bob = as_json(cli(*args, 'data.characterName = "Bob"'))
    assert [h["data"]["characterName"] for h in bob["items"]] == ["Bob"]
    as_json_form = {"field": "data.temporal", "overlaps": [205, 206]}
    late = as_json(cli(*args, json.dumps(as_json_form)))
    assert [h["data"]["temporal"]["start"] for h in late["items"]] == [200]


def test_search_text_with_highlights(cli: Cli, db: reeldb.Database) -> None:
    note = db.annotations.create(
        "vision",
        "REVIEW_NOTE",
        [{"type": "VIDEO", "id": "cut-v3"}],
        {
            "comment": E7_COMMENT,
            "temporal": {"start": 61, "end": 61.042},
            "spatial": {"x": 0.57, "y": 0.36, "w": 0.1, "h": 0.1},
        },
    )
    db.annotations.create_many("vision", notes(5))
    for words, marked in (("glove", "gloves"), ("changing", "change"), ("black", "black")):
        result = ok(cli("ann", "search", "vision", "--text", words))
        [row] = table_rows(result.stdout)
        assert row[0] == str(note.id)
        assert row[4] == f"comment: {E7_COMMENT}"
        page = as_json(cli("-o", "json", "ann", "search", "vision", "--text", words))
        [hit] = page["items"]
        assert hit["highlights"] == {"comment": E7_COMMENT.replace(marked, f"<em>{marked}</em>")}
        assert hit["score"] > 0
        expected = db.annotations.search("vision", text=words)
        assert page["items"] == [h.to_json() for h in expected.items]
    fields = ("ann", "search", "vision", "--text", "glove", "--field")
    assert len(table_rows(ok(cli(*fields, "comment")).stdout)) == 1
    assert table_rows(ok(cli(*fields, "other")).stdout) == []


def test_search_sort_and_pages(cli: Cli, db: reeldb.Database) -> None:
    db.annotations.create_many("vision", notes(5))
    newest = as_json(cli("-o", "json", "ann", "search", "vision", "--sort", "-time"))
    comments = [h["data"]["comment"] for h in newest["items"]]
    assert comments == [f"note {i}" for i in range(4, -1, -1)]
    created = as_json(cli("-o", "json", "ann", "search", "vision", "--sort=-created"))
    assert [h["data"]["comment"] for h in created["items"]] == [
        h["data"]["comment"] for h in newest["items"]
    ]
    seen: list[str] = []
    cursor: tuple[str, ...] = ()
    for _ in range(3):
        result = ok(cli("ann", "search", "vision", "--limit", "2", *cursor))
        seen += [row[2] for row in table_rows(result.stdout)]
        last = result.stdout.splitlines()[-1]
        if last.startswith("more: --cursor "):
            cursor = ("--cursor", last.removeprefix("more: --cursor "))
    assert seen == ["0.000", "1.000", "2.000", "3.000", "4.000"]
    assert "more:" not in result.stdout
    every = as_json(cli("-o", "json", "ann", "search", "vision", "--limit", "2", "--all"))
    assert len(every["items"]) == 5 and every["next_cursor"] is None
    assert len(table_rows(ok(cli("ann", "search", "vision", "--limit", "2", "--all")).stdout)) == 5


def test_timeline(cli: Cli, db: reeldb.Database) -> None:
    alice, bob, later = load_characters(db)
    create_e2(cli)  # on video-42 too: boxTimeRange 10-12.5 is its time
    result = ok(cli("ann", "timeline", "vision", "VIDEO:video-42", "--start", "0", "--end", "100"))
    assert result.stdout.splitlines()[0] == "Timeline of VIDEO:video-42"
    rows = table_rows(result.stdout)
    assert [row[2:4] for row in rows] == [
        ["10.000", "12.500"],
        ["70.000", "80.000"],
        ["70.000", "80.000"],
    ]
    assert {row[0] for row in rows[1:]} == {str(alice.id), str(bob.id)}
    page = as_json(
        cli("-o", "json", "ann", "timeline", "vision", "VIDEO:video-42", "--start", "190",
            "--type", "CHARACTER_IN_FRAME")
    )  # fmt: skip
    expected = db.annotations.timeline(
        "vision", {"type": "VIDEO", "id": "video-42"}, 190, type="CHARACTER_IN_FRAME"
    )
    assert page == {"items": [a.to_json() for a in expected.items], "next_cursor": None}
    assert [a["id"] for a in page["items"]] == [str(later.id)]
    first = as_json(
        cli("-o", "json", "ann", "timeline", "vision", "VIDEO:video-42", "--limit", "1")
    )
    assert len(first["items"]) == 1 and first["next_cursor"]


# -- association types ------------------------------------------------------------------------


def test_association_types(cli: Cli, db: reeldb.Database) -> None:
    args = ("ann", "association-types", "vision")
    assert ok(cli(*args)).stdout == "annotations in vision may use any association type\n"
    assert ok(cli(*args, "--set", "VIDEO, MOVIE_ID")).stdout == (
        "annotations in vision may use association types: MOVIE_ID, VIDEO\n"
    )
    assert as_json(cli("-o", "json", *args)) == {
        "namespace": "vision",
        "association_types": ["MOVIE_ID", "VIDEO"],
    }
    assert db.annotations.association_types("vision") == ("MOVIE_ID", "VIDEO")
    create_e2(cli)
    assert_error(
        cli("ann", "create", "vision", "-t", "BOUNDING_BOX", "-a", "SHOT_ID:1", "--data",
            json.dumps(E2_DATA)),
        contains="association type SHOT_ID is not allowed in namespace vision "
        "(allowed: MOVIE_ID, VIDEO)",
    )  # fmt: skip
    assert ok(cli(*args, "--any")).stdout == "annotations in vision may use any association type\n"
    assert db.annotations.association_types("vision") is None
    assert_error(cli(*args, "--set", "A", "--any"), "give --set T1,T2 or --any, not both")
    assert_error(cli(*args, "--set", "1X"), contains="/types/0: '1X' is not an association type")


def test_association_types_may_be_set_to_none(cli: Cli) -> None:
    ok(cli("ann", "association-types", "vision", "--set", ""))


# -- errors -----------------------------------------------------------------------------------

DATA = json.dumps(E2_DATA)
CREATE = ("ann", "create", "vision", "--type", "BOUNDING_BOX", "--assoc", "VIDEO:v")
ERRORS = {
    "bad-time": (
        ["ann", "search", "vision", "--time", "72"],
        "--time '72': write START,END, e.g. --time 72,75",
    ),
    "bad-time-number": (
        ["ann", "search", "vision", "--time", "1,soon"],
        "--time '1,soon': write START,END, e.g. --time 72,75",
    ),
    "time-backwards": (
        ["ann", "search", "vision", "--time", "5,1"],
        "time (start, end) needs start <= end",
    ),
    "bad-time-op": (
        ["ann", "search", "vision", "--time", "1,5", "--time-op", "inside"],
        "time_op is overlaps or within, not 'inside'",
    ),
    "bad-box": (
        ["ann", "search", "vision", "--box", "0,0,1"],
        "--box '0,0,1': write X,Y,W,H, e.g. --box 0,0,0.5,0.5",
    ),
    "bad-box-nan": (
        ["ann", "search", "vision", "--box", "0,0,nan,1"],
        "--box '0,0,nan,1': write X,Y,W,H, e.g. --box 0,0,0.5,0.5",
    ),
    "negative-box": (
        ["ann", "search", "vision", "--box", "0,0,-1,1"],
        "box (x, y, w, h) needs w >= 0 and h >= 0",
    ),
    "malformed-data": (
        [*CREATE, "--data", '{"boundingBox": '],
        "--data is not valid JSON: /: unexpected end of data at position 16",
    ),
    "data-not-an-object": (
        [*CREATE, "--data", "[1, 2]"],
        "--data is a JSON object of the type's properties, not [1,2]",
    ),
    "missing-data-file": (
        [*CREATE, "--data", "@nope.json"],
        "cannot read data file nope.json: No such file or directory",
    ),
    "invalid-data": (
        [*CREATE, "--data", '{"boundingBox": {"x": 0, "y": 0, "w": 1, "h": 1}}'],
        'the annotation is invalid: /data: "boxTimeRange" is a required property',
    ),
    "time-range-soon": (
        [
            *CREATE,
            "--data",
            '{"boundingBox": {"x": 0, "y": 0, "w": 1, "h": 1}, "boxTimeRange": "soon"}',
        ],
        'the annotation is invalid: /data/boxTimeRange: "soon" is not of type "object"',
    ),  # fmt: skip
    "unknown-type": (
        ["ann", "create", "vision", "--type", "NOPE", "--assoc", "VIDEO:v", "--data", "{}"],
        "the annotation is invalid: /type: schema NOPE does not exist in namespace vision",
    ),
    "unknown-type-version": (
        ["ann", "create", "vision", "-t", "BOUNDING_BOX@7", "-a", "VIDEO:v", "--data", DATA],
        "the annotation is invalid: /type: schema vision/BOUNDING_BOX has no version 7 "
        "(latest is 1)",
    ),
    "unknown-search-type": (
        ["ann", "search", "vision", "--type", "NOPE"],
        "unknown annotation type: schema NOPE does not exist in namespace vision",
    ),
    "assoc-without-colon": (
        ["ann", "create", "vision", "-t", "BOUNDING_BOX", "-a", "VIDEO", "--data", DATA],
        "--assoc 'VIDEO': write TYPE:ID, e.g. --assoc MOVIE_ID:81234567",
    ),
    "assoc-without-id": (
        ["ann", "search", "vision", "--assoc", "VIDEO:"],
        "--assoc 'VIDEO:': write TYPE:ID, e.g. --assoc MOVIE_ID:81234567",
    ),
    "timeline-association": (
        ["ann", "timeline", "vision", "video-42"],
        "association 'video-42': write TYPE:ID, e.g. MOVIE_ID:81234567",
    ),
    "create-needs-type": (
        ["ann", "create", "vision", "--assoc", "VIDEO:v"],
        "give --type NAME[@VERSION] and at least one --assoc TYPE:ID "
        "(or --file for many annotations)",
    ),
    "file-and-type": (
        ["ann", "create", "vision", "--file", "x.json", "--type", "X"],
        "--file holds the type, associations and data of each annotation: "
        "leave out --type, --assoc and --data",
    ),
    "missing-items-file": (
        ["ann", "create", "vision", "--file", "nope.json"],
        "cannot read items file nope.json: No such file or directory",
    ),
    "bad-batch-size": (
        ["ann", "create", "vision", "--file", "x.json", "--batch-size", "0"],
        "--batch-size must be from 1 to 10000",
    ),
    "unknown-namespace": (
        ["ann", "search", "nope"],
        "namespace nope does not exist",
    ),
    "bad-id": (
        ["ann", "get", "vision", "nonsense"],
        "'nonsense' is not an annotation id (a UUID)",
    ),
    "unknown-id": (
        ["ann", "versions", "vision", UNKNOWN_ID],
        f"annotation {UNKNOWN_ID} does not exist in namespace 'vision'",
    ),
    "bad-version": (
        ["ann", "get", "vision", UNKNOWN_ID, "--version", "0"],
        "an annotation version is a whole number from 1",
    ),
    "bad-sort": (
        ["ann", "search", "vision", "--sort", "newest"],
        "sort is one of time, -time, created, -created, relevance, not 'newest'",
    ),
    "relevance-needs-text": (
        ["ann", "search", "vision", "--sort", "relevance"],
        "sort by relevance needs text to search for",
    ),
    "where-needs-type": (
        ["ann", "search", "vision", "--where", 'data.label = "x"'],
        "a where condition needs a type: its fields are the type's properties",
    ),
    "where-unknown-field": (
        ["ann", "search", "vision", "-t", "LABELED_BASE", "--where", 'data.lable = "x"'],
        "annotation type LABELED_BASE has no field data.lable; did you mean data.label? "
        "(data fields: label) (line 1, column 1)",
    ),
    "bad-cursor": (
        ["ann", "search", "vision", "--cursor", "garbage"],
        "invalid cursor 'garbage': pass the next_cursor of a previous page of the same search",
    ),
    "bad-limit": (
        ["ann", "search", "vision", "--limit", "0"],
        "limit must be an integer from 1 to 1000",
    ),
    "timeline-backwards": (
        ["ann", "timeline", "vision", "VIDEO:v", "--start", "5", "--end", "1"],
        "the window's end is before its start",
    ),
}


@pytest.mark.parametrize(("args", "message"), list(ERRORS.values()), ids=list(ERRORS))
def test_error_is_one_line(cli: Cli, db: reeldb.Database, args: list[str], message: str) -> None:
    assert_error(cli(*args), message)
    assert db.annotations.count("vision") == 0


def test_invalid_data_as_json_names_every_violation(cli: Cli) -> None:
    bad = {"boundingBox": {"x": 0, "y": 0, "w": -1, "h": 1}, "boxTimeRange": "soon"}
    result = cli("-o", "json", *CREATE, "--data", json.dumps(bad))
    assert result.exit_code == 1
    assert result.stdout == ""
    detail = json.loads(result.stderr)
    assert detail["error"] == "ValidationError"
    assert [v["pointer"] for v in detail["violations"]] == [
        "/data/boundingBox/w",
        "/data/boxTimeRange",
    ]


def test_unknown_id_on_update_and_delete(cli: Cli) -> None:
    missing = f"annotation {UNKNOWN_ID} does not exist in namespace 'vision'"
    assert_error(cli("ann", "delete", "vision", UNKNOWN_ID), missing)
    assert_error(cli("ann", "update", "vision", UNKNOWN_ID, "--expected-version", "1"), missing)
    assert_error(
        cli("ann", "get", "vision", UNKNOWN_ID, "--version", "3"),
        f"annotation {UNKNOWN_ID} version 3 does not exist in namespace 'vision'",
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["ann", "update", "vision", UNKNOWN_ID], "Missing option '--expected-version'"),
        (["ann", "get", "vision"], "Missing argument"),
        (["ann", "timeline", "vision", "VIDEO:v", "--start", "soon"], "Invalid value"),
        (["ann", "frobnicate"], "No such command"),
    ],
)
def test_usage_errors_exit_2(cli: Cli, args: list[str], expected: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_ann_is_in_the_help() -> None:
    result = invoke("--help")
    assert re.search(r"^\W*ann\s+Annotations", result.stdout, re.MULTILINE), result.stdout
    result = invoke("ann", "--help")
    for verb in ("create", "get", "versions", "update", "delete", "search", "timeline"):
        assert re.search(rf"^\W*{verb}\s", result.stdout, re.MULTILINE), verb
    assert "association-types" in result.stdout
