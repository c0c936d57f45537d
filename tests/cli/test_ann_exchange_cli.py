"""``reeldb ann export`` and ``reeldb ann import``: W3C Web Annotations, COCO and CVAT."""

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
from reeldb.annotations import MAX_BATCH, Annotation, _exchange
from reeldb.cli import app
from reeldb.demo import CHARACTER_IN_FRAME, LABELED_BASE
from reeldb.testing import BOUNDING_BOX

RUNNER = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "FORCE_COLOR": None})

DETECTION = {
    "name": "DETECTION",
    "extends": ["TEMPORAL_SPATIAL_BASE"],
    "properties": {"label": {"type": "keyword"}, "note": {"type": "text"}},
}
REVIEW_NOTE = {
    "name": "REVIEW_NOTE",
    "extends": ["TEMPORAL_SPATIAL_BASE"],
    "properties": {"comment": {"type": "text", "mandatory": True}},
}
VIDEO = {"type": "VIDEO", "id": "video-42"}

COCO = {
    "images": [
        {"id": 1, "file_name": "frames/000010.jpg", "frame_id": 10},
        {"id": 2, "file_name": "frames/000011.jpg", "frame_id": 11},
    ],
    "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}],
    "annotations": [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 20, 30, 40]},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [0.5, 1.25, 100, 50.5]},
        {"id": 3, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4]},
    ],
}
CVAT = """<?xml version="1.0" encoding="utf-8"?>
<annotations>
  <version>1.1</version>
  <image id="0" name="frame_000000.png" width="1920" height="1080">
    <box label="face" occluded="0" xtl="10.00" ytl="20.50" xbr="110.25" ybr="220.50"/>
  </image>
  <track id="3" label="car">
    <box frame="4" outside="0" occluded="0" keyframe="1" xtl="1" ytl="2" xbr="11" ybr="22"/>
    <box frame="5" outside="1" occluded="0" keyframe="1" xtl="1" ytl="2" xbr="11" ybr="22"/>
  </track>
</annotations>
"""

Cli = Callable[..., Result]


def invoke(*args: str, input: str | bytes | None = None) -> Result:
    return RUNNER.invoke(app, list(args), input=input)


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    return result


def assert_error(result: Result, message: str) -> None:
    """Exit code 1, nothing on stdout, exactly the line ``error: <message>`` on stderr."""
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [f"error: {message}"], result.stderr


def comparable(annotation: Annotation) -> dict[str, Any]:
    """An annotation's JSON without when and by whom this copy was stored."""
    value = annotation.to_json()
    del value["created_at"], value["created_by"]
    return value


def everything(db: reeldb.Database) -> list[Annotation]:
    page = db.annotations.search("vision", sort="created", limit=1000)
    assert page.next_cursor is None
    return [hit.annotation for hit in page.items]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Namespace ``vision`` with BOUNDING_BOX, CHARACTER_IN_FRAME, DETECTION, REVIEW_NOTE."""
    path = tmp_path_factory.mktemp("exchange") / "reel.db"
    with reeldb.connect(f"sqlite:///{path}") as db:
        db.create_namespace("vision")
        for definition in (BOUNDING_BOX, LABELED_BASE, CHARACTER_IN_FRAME, DETECTION, REVIEW_NOTE):
            db.add_schema("vision", copy.deepcopy(definition))
    return path


def database(tmp_path: Path, template: Path, name: str) -> str:
    shutil.copyfile(template, tmp_path / name)
    return f"sqlite:///{tmp_path / name}"


@pytest.fixture
def source_url(tmp_path: Path, template: Path) -> str:
    return database(tmp_path, template, "source.db")


@pytest.fixture
def target_url(tmp_path: Path, template: Path) -> str:
    """A fresh database with the same schemas."""
    return database(tmp_path, template, "target.db")


@pytest.fixture
def source(source_url: str) -> Iterator[reeldb.Database]:
    with reeldb.connect(source_url) as db:
        yield db


@pytest.fixture
def target(target_url: str) -> Iterator[reeldb.Database]:
    with reeldb.connect(target_url) as db:
        yield db


@pytest.fixture
def cli(target_url: str) -> Cli:
    """``reeldb --database <the target database> ARGS``."""

    def run(*args: str, input: str | bytes | None = None) -> Result:
        return invoke("--database", target_url, *args, input=input)

    return run


def character(name: str, start: float, x: float) -> dict[str, Any]:
    return {
        "type": "CHARACTER_IN_FRAME",
        "associations": [VIDEO],
        "data": {
            "label": "character",
            "characterName": name,
            "temporal": {"start": start, "end": start + 10},
            "spatial": {"x": x, "y": x, "w": 0.2, "h": 0.2},
        },
    }


def load(db: reeldb.Database) -> list[Annotation]:
    """A little of everything: several types, frame times, odd ids, text, an update and a
    delete (the deleted one is not exported)."""
    made = db.annotations.create_many(
        "vision",
        [
            character("Alice", 70, 0.1),
            character("Bob", 70, 0.6),
            {
                "type": "BOUNDING_BOX",
                "associations": [VIDEO, {"type": "URN", "id": "isan:0000-0000-9E59:1 #/é"}],
                "data": {
                    "boundingBox": {"x": 120, "y": 80, "w": 200, "h": 150},
                    "boxTimeRange": {"start_frame": 250, "end_frame": 313, "rate": "24000/1001"},
                },
            },
            {
                "type": "REVIEW_NOTE",
                "associations": [{"type": "VIDEO", "id": "cut-v3"}],
                "data": {
                    "comment": "Please change the colour of the gloves to rich black",
                    "temporal": {"start": 61, "end": 61.042},
                },
            },
            {"type": "LABELED_BASE", "associations": [{"type": "MOVIE_ID", "id": "1"}],
             "data": {"label": "violence"}},
        ],
    )  # fmt: skip
    db.annotations.delete("vision", made[-1].id)
    return made[:-1]


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["w3c", "jsonl"])
def test_export_then_import_round_trips(
    fmt: str, source_url: str, source: reeldb.Database, target: reeldb.Database, cli: Cli,
    tmp_path: Path,
) -> None:  # fmt: skip
    stored = load(source)
    exported = tmp_path / f"export.{fmt}"
    result = ok(
        invoke("--database", source_url, "ann", "export", "vision", "--format", fmt,
               "--output", str(exported))
    )  # fmt: skip
    assert result.stdout == f"exported 4 annotations to {exported}\n"
    result = ok(cli("ann", "import", "vision", str(exported), "--format", "w3c"))
    assert result.stdout == "imported 4 annotations into vision\n"
    assert [comparable(a) for a in everything(target)] == [comparable(a) for a in stored]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no part file


def test_an_updated_annotation_comes_back_as_version_1(
    source_url: str, source: reeldb.Database, target: reeldb.Database, cli: Cli
) -> None:
    """The export holds current versions, not their history (the version is informative)."""
    [first, *_] = load(source)
    moved = {**first.data, "characterName": "Alice B."}
    current = source.annotations.update("vision", first.id, expected_version=1, data=moved)
    exported = ok(
        invoke("--database", source_url, "ann", "export", "vision", "-t", "CHARACTER_IN_FRAME",
               "--where", 'data.characterName = "Alice B."')
    )  # fmt: skip
    ok(cli("ann", "import", "vision", "-", "--format", "w3c", input=exported.stdout))
    [back] = everything(target)
    assert comparable(back) == {**comparable(current), "version": 1}


def test_export_to_stdout_is_the_library_export(source_url: str, source: reeldb.Database) -> None:
    load(source)
    expected = list(source.annotations.export_w3c("vision"))
    lines = ok(invoke("--database", source_url, "ann", "export", "vision", "--format", "jsonl"))
    assert [json.loads(line) for line in lines.stdout.splitlines()] == expected
    document = json.loads(ok(invoke("--database", source_url, "ann", "export", "vision")).stdout)
    assert document["type"] == "AnnotationCollection"
    assert document["total"] == len(expected) == 4
    assert document["first"]["items"] == [
        {k: v for k, v in item.items() if k != "@context"} for item in expected
    ]


@pytest.mark.parametrize(
    ("args", "conditions"),
    [
        pytest.param(["-t", "LABELED_BASE"], {"type": "LABELED_BASE"}, id="type"),
        pytest.param(
            ["-t", "CHARACTER_IN_FRAME", "--exact-type"],
            {"type": "CHARACTER_IN_FRAME", "subtypes": False},
            id="exact-type",
        ),
        pytest.param(["-a", "VIDEO:cut-v3"], {"associations": [{"type": "VIDEO", "id": "cut-v3"}]},
                     id="assoc"),
        pytest.param(["--time", "60,62"], {"time": (60, 62)}, id="time"),
        pytest.param(["--box", "0,0,0.5,0.5"], {"box": (0, 0, 0.5, 0.5)}, id="box"),
        pytest.param(["--text", "glove"], {"text": "glove"}, id="text"),
        pytest.param(
            ["-t", "CHARACTER_IN_FRAME", "--where", 'data.characterName = "Bob"'],
            {"type": "CHARACTER_IN_FRAME", "where": 'data.characterName = "Bob"'},
            id="where",
        ),
    ],
)  # fmt: skip
def test_export_conditions_are_those_of_search(
    source_url: str, source: reeldb.Database, args: list[str], conditions: dict[str, Any]
) -> None:
    load(source)
    expected = list(source.annotations.export_w3c("vision", **conditions))
    assert 0 < len(expected) < 4
    result = ok(
        invoke("--database", source_url, "ann", "export", "vision", "--format", "jsonl", *args)
    )
    assert [json.loads(line) for line in result.stdout.splitlines()] == expected


def test_export_relative_box_and_json_summary(
    source_url: str, source: reeldb.Database, tmp_path: Path
) -> None:
    load(source)
    out = tmp_path / "chars.jsonl"
    args = ("--database", source_url, "-o", "json", "ann", "export", "vision")
    result = ok(
        invoke(*args, "-t", "CHARACTER_IN_FRAME", "--relative-box", "--format", "jsonl",
               "--output", str(out))
    )  # fmt: skip
    assert json.loads(result.stdout) == {"exported": 2, "output": str(out)}
    selectors = [json.loads(line)["target"]["selector"] for line in out.read_text().splitlines()]
    assert [s["refinedBy"]["value"] for s in selectors] == [
        "xywh=percent:10,10,20,20",
        "xywh=percent:60,60,20,20",
    ]


def test_an_empty_export(source_url: str) -> None:
    document = json.loads(ok(invoke("--database", source_url, "ann", "export", "vision")).stdout)
    assert (document["type"], document["total"]) == ("AnnotationCollection", 0)
    args = ("--database", source_url, "ann", "export", "vision", "--format", "jsonl")
    assert ok(invoke(*args)).stdout == ""


# -- import -----------------------------------------------------------------------------------


def test_import_json_lines_from_stdin_prints_ids_as_json(
    source_url: str, source: reeldb.Database, target: reeldb.Database, cli: Cli
) -> None:
    stored = load(source)
    lines = ok(invoke("--database", source_url, "ann", "export", "vision", "--format", "jsonl"))
    ids = json.loads(
        ok(cli("-o", "json", "ann", "import", "vision", "-", "--format", "w3c",
               input="\n" + lines.stdout.replace("\n", "\n\n")))
        .stdout
    )  # fmt: skip
    assert ids == [str(a.id) for a in stored]
    assert [comparable(a) for a in everything(target)] == [comparable(a) for a in stored]


def test_import_foreign_w3c_needs_a_type(cli: Cli, target: reeldb.Database, tmp_path: Path) -> None:
    foreign = [
        {
            "@context": "http://www.w3.org/ns/anno.jsonld",
            "id": "http://example.org/anno1",
            "type": "Annotation",
            "bodyValue": "a red car",
            "target": "http://example.org/video.mp4#t=10,12.5&xywh=percent:10,20,30,40",
        },
        {
            "type": "Annotation",
            "target": {"source": "http://example.org/video.mp4",
                       "selector": {"type": "FragmentSelector", "value": "t=3,4"}},
        },
    ]  # fmt: skip
    (tmp_path / "foreign.json").write_text(json.dumps(foreign))
    assert_error(
        cli("ann", "import", "vision", "foreign.json", "--format", "w3c"),
        "no annotation was stored: some Web Annotations cannot be imported: /0: no reeldb "
        "payload: pass type= (and the properties to fill); /1: no reeldb payload: pass type= "
        "(and the properties to fill)",
    )
    result = ok(
        cli("ann", "import", "vision", "foreign.json", "--format", "w3c", "-t", "DETECTION",
            "--time-property", "temporal", "--box-property", "spatial", "--text-property", "note",
            "--association-type", "MEDIA", "-a", "MOVIE_ID:81234567")
    )  # fmt: skip
    assert result.stdout == "imported 2 annotations into vision\n"
    first, second = everything(target)
    assert first.data == {
        "note": "a red car",
        "temporal": {"start": 10, "end": 12.5},
        "spatial": {"x": 0.1, "y": 0.2, "w": 0.3, "h": 0.4},
    }
    assert [str(a) for a in first.associations] == [
        "MEDIA:http://example.org/video.mp4",
        "MOVIE_ID:81234567",
    ]
    assert second.data == {"temporal": {"start": 3, "end": 4}}


def test_import_coco(cli: Cli, target: reeldb.Database, tmp_path: Path) -> None:
    (tmp_path / "coco.json").write_text(json.dumps(COCO))
    args = ("ann", "import", "vision", "coco.json", "--format", "coco", "-t", "DETECTION",
            "--box-property", "spatial", "--label-property", "label")  # fmt: skip
    result = ok(cli(*args, "-a", "VIDEO:v1"))
    assert result.stdout == "imported 3 annotations into vision\n"
    stills = everything(target)
    assert [(a.type.name, a.data) for a in stills] == [
        ("DETECTION", {"spatial": {"x": 10, "y": 20, "w": 30, "h": 40}, "label": "person"}),
        ("DETECTION", {"spatial": {"x": 0.5, "y": 1.25, "w": 100, "h": 50.5}, "label": "car"}),
        ("DETECTION", {"spatial": {"x": 1, "y": 2, "w": 3, "h": 4}, "label": "person"}),
    ]
    assert [str(a) for a in stills[0].associations] == ["IMAGE_ID:frames/000010.jpg", "VIDEO:v1"]
    result = ok(
        cli("-o", "json", *args, "--time-property", "temporal", "--frame-rate", "25",
            "--association-type", "FRAME", "--association-from", "id")
    )  # fmt: skip
    ids = json.loads(result.stdout)
    framed = [target.annotations.get("vision", i) for i in ids]
    assert [str(a.associations[0]) for a in framed] == ["FRAME:1", "FRAME:1", "FRAME:2"]
    assert framed[2].data["temporal"] == {"start_frame": 11, "end_frame": 12, "rate": 25}


def test_import_cvat(cli: Cli, target: reeldb.Database, tmp_path: Path) -> None:
    (tmp_path / "cvat.xml").write_text(CVAT)
    result = ok(
        cli("ann", "import", "vision", "cvat.xml", "--format", "cvat", "-t", "DETECTION",
            "--box-property", "spatial", "--label-property", "label",
            "--time-property", "temporal", "--frame-rate", "30000/1001", "-a", "VIDEO:v9")
    )  # fmt: skip
    assert result.stdout == "imported 2 annotations into vision\n"
    image, track = everything(target)
    assert [str(a) for a in image.associations] == ["IMAGE_ID:frame_000000.png", "VIDEO:v9"]
    assert image.data == {
        "spatial": {"x": 10, "y": 20.5, "w": 100.25, "h": 200},
        "label": "face",
        "temporal": {"start_frame": 0, "end_frame": 1, "rate": "30000/1001"},
    }
    assert [str(a) for a in track.associations] == ["VIDEO:v9"]
    assert track.data == {
        "spatial": {"x": 1, "y": 2, "w": 10, "h": 20},
        "label": "car",
        "temporal": {"start_frame": 4, "end_frame": 5, "rate": "30000/1001"},
    }


def test_import_cvat_names_its_images_by_the_association_type_given(
    cli: Cli, target: reeldb.Database, tmp_path: Path
) -> None:
    (tmp_path / "cvat.xml").write_text(CVAT)
    ok(
        cli("ann", "import", "vision", "cvat.xml", "--format", "cvat", "-t", "DETECTION",
            "--box-property", "spatial", "--association-type", "FRAME_FILE",
            "--time-property", "temporal", "--frame-rate", "25", "-a", "VIDEO:v9")
    )  # fmt: skip
    image = everything(target)[0]
    assert [str(a) for a in image.associations] == ["FRAME_FILE:frame_000000.png", "VIDEO:v9"]


def test_a_failed_batch_names_what_was_stored(
    monkeypatch: pytest.MonkeyPatch,
    source_url: str,
    source: reeldb.Database,
    target: reeldb.Database,
    cli: Cli,
) -> None:
    stored = load(source)
    lines = ok(invoke("--database", source_url, "ann", "export", "vision", "--format", "jsonl"))
    target.annotations.import_w3c("vision", json.loads(lines.stdout.splitlines()[2]))
    monkeypatch.setattr(_exchange, "MAX_BATCH", 2)  # batches of 2: the second one fails
    assert_error(
        cli("ann", "import", "vision", "-", "--format", "w3c", input=lines.stdout),
        f"2 annotations were stored before the error; the others were not: "
        f"annotation {stored[2].id} already exists",
    )
    assert [a.id for a in everything(target)] == [stored[2].id, stored[0].id, stored[1].id]
    assert_error(
        cli("ann", "import", "vision", "-", "--format", "w3c", input=lines.stdout),
        f"no annotation was stored: annotation {stored[0].id} already exists",
    )


def test_import_help_names_the_batches() -> None:
    text = " ".join(ok(invoke("ann", "import", "--help")).stdout.split())
    assert f"batches of {MAX_BATCH:,}, each in one transaction: a batch is all or nothing" in text
    assert "how many annotations were stored before it" in text
    assert re.search(r"--format\s+<w3c\|coco\|cvat>", text)


# -- errors -----------------------------------------------------------------------------------

# fmt: off
ERRORS = {
    "import-unknown-format": (
        ["ann", "import", "vision", "x.json", "--format", "xml"],
        "--format 'xml': use one of w3c, coco, cvat",
    ),
    "export-unknown-format": (
        ["ann", "export", "vision", "--format", "csv"],
        "--format 'csv': use one of w3c, jsonl",
    ),
    "bad-association-from": (
        ["ann", "import", "vision", "x.json", "--format", "coco", "--association-from", "url"],
        "--association-from 'url': use one of id, file_name",
    ),
    "unreadable-file": (
        ["ann", "import", "vision", "nope.json", "--format", "w3c"],
        "cannot read W3C file nope.json: No such file or directory",
    ),
    "unreadable-cvat": (
        ["ann", "import", "vision", "nope.xml", "--format", "cvat", "-t", "DETECTION",
         "--box-property", "spatial"],
        "cannot read CVAT file nope.xml: No such file or directory",
    ),
    "malformed-w3c": (
        ["ann", "import", "vision", "bad.json", "--format", "w3c"],
        "W3C file bad.json is not valid JSON: /: unexpected character, expected a string key "
        "at position 1",
    ),
    "malformed-json-lines": (
        ["ann", "import", "vision", "bad.jsonl", "--format", "w3c"],
        "line 3 of W3C file bad.jsonl is not valid JSON: /: invalid literal, expected 'null' "
        "at position 0",
    ),
    "malformed-coco": (
        ["ann", "import", "vision", "bad.json", "--format", "coco", "-t", "DETECTION",
         "--box-property", "spatial"],
        "COCO file bad.json is not valid JSON: /: unexpected character, expected a string key"
        " at position 1",
    ),
    "wrong-coco": (
        ["ann", "import", "vision", "wrong.json", "--format", "coco", "-t", "DETECTION",
         "--box-property", "spatial"],
        "no annotation was stored: the COCO file cannot be imported: /images: images is a "
        "list; /annotations: annotations is a list",
    ),
    "malformed-cvat": (
        ["ann", "import", "vision", "bad.json", "--format", "cvat", "-t", "DETECTION",
         "--box-property", "spatial"],
        "no annotation was stored: the CVAT file is not well-formed XML: /: not well-formed "
        "(invalid token): line 1, column 0",
    ),
    "coco-needs-type": (
        ["ann", "import", "vision", "x.json", "--format", "coco", "--box-property", "spatial"],
        "--format coco needs --type NAME[@VERSION] and --box-property PROPERTY",
    ),
    "cvat-needs-box": (
        ["ann", "import", "vision", "x.xml", "--format", "cvat", "-t", "DETECTION"],
        "--format cvat needs --type NAME[@VERSION] and --box-property PROPERTY",
    ),
    "frames-need-a-rate": (
        ["ann", "import", "vision", "x.json", "--format", "coco", "-t", "DETECTION",
         "--box-property", "spatial", "--time-property", "temporal"],
        "give --time-property and --frame-rate together: frame N becomes the time range "
        "[N/rate, (N+1)/rate)",
    ),
    "option-of-another-format": (
        ["ann", "import", "vision", "x.json", "--format", "w3c", "--label-property", "label",
         "--frame-rate", "25"],
        "--format w3c does not use --label-property, --frame-rate",
    ),
    "import-bad-assoc": (
        ["ann", "import", "vision", "x.json", "--format", "w3c", "-a", "VIDEO"],
        "--assoc 'VIDEO': write TYPE:ID, e.g. --assoc MOVIE_ID:81234567",
    ),
    "import-unknown-namespace": (
        ["ann", "import", "nope", "x.json", "--format", "w3c"],
        "namespace nope does not exist",
    ),
    "export-unknown-namespace": (
        ["ann", "export", "nope", "--output", "out.json"],
        "namespace nope does not exist",
    ),
    "export-bad-time": (
        ["ann", "export", "vision", "--time", "soon"],
        "--time 'soon': write START,END, e.g. --time 72,75",
    ),
    "export-where-needs-type": (
        ["ann", "export", "vision", "--where", 'data.label = "x"', "--output", "out.json"],
        "a where condition needs a type: its fields are the type's properties",
    ),
    "export-unwritable": (
        ["ann", "export", "vision", "--output", "no/such/dir/out.json"],
        "cannot write no/such/dir/out.json: No such file or directory",
    ),
}
# fmt: on


@pytest.mark.parametrize(("args", "message"), list(ERRORS.values()), ids=list(ERRORS))
def test_error_is_one_line(
    cli: Cli, target: reeldb.Database, tmp_path: Path, args: list[str], message: str
) -> None:
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "bad.jsonl").write_text('{"type": "Annotation"}\n{"type": "Annotation"}\nnope\n')
    (tmp_path / "wrong.json").write_text('{"images": {}}')
    assert_error(cli(*args), message)
    assert target.annotations.count("vision") == 0
    assert not (tmp_path / "out.json").exists()
