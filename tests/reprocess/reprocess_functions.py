"""User functions for the reprocessing tests (``reprocess_functions:NAME`` in a job spec).

Tests put this directory on ``sys.path`` (pytest does so for the test files beside it; the
subprocesses of the crash tests get it in ``PYTHONPATH``). Every function is idempotent, as
the reprocessing contract asks: applied to its own output it returns None.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

TAG: dict[str, Any] = {
    "type": "TAG",
    "version": 0,
    "description": "A tag, with where it came from",
    "keys": {
        "properties": {
            "label": {"type": "string", "mandatory": True},
            "source": {"type": "string", "mandatory": False},
        }
    },
}
"""The annotation type most tests use: backfills set ``source``."""


def _pause(context: dict[str, Any]) -> None:
    delay = float(context["options"].get("sleep", 0))
    if delay:
        time.sleep(delay)


def add_source(data: dict[str, Any], context: dict[str, Any]) -> dict[str, Any] | None:
    """Backfill of TAG annotations: set ``source`` (``options.sleep``: seconds per item)."""
    _pause(context)
    value = context["options"].get("value", "job")
    if data.get("source") == value:
        return None
    data["source"] = value
    return data


def logged_source(data: dict[str, Any], context: dict[str, Any]) -> dict[str, Any] | None:
    """`add_source`, logging each call's annotation id and version to ``options.log``."""
    with Path(context["options"]["log"]).open("a") as log:
        log.write(f"{context['id']} {context['version']}\n")
    return add_source(data, context)


def flaky_source(data: dict[str, Any], context: dict[str, Any]) -> dict[str, Any] | None:
    """`add_source`, but labels starting with ``bad`` fail until ``options.flag`` exists.

    Each failing call appends a line to ``options.log`` (to count the attempts).
    """
    if data["label"].startswith("bad") and not Path(context["options"]["flag"]).exists():
        with Path(context["options"]["log"]).open("a") as log:
            log.write(f"{data['label']} {time.monotonic()}\n")
        raise RuntimeError(f"cannot derive the source of {data['label']} yet")
    return add_source(data, context)


def label_box(data: dict[str, Any], context: dict[str, Any]) -> dict[str, Any] | None:
    """Migration of BOUNDING_BOX v0 to v1: a ``label`` derived from the box."""
    if "label" in data:
        return None
    data["label"] = f"box-{int(data['boundingBox']['x'])}"
    return data


def bad_label(data: dict[str, Any], context: dict[str, Any]) -> dict[str, Any] | None:
    """A broken migration: boxes with an odd x get a label that is not a string."""
    x = int(data["boundingBox"]["x"])
    data["label"] = x if x % 2 else f"box-{x}"
    return data


def upper_title(document: dict[str, Any], context: dict[str, Any]) -> dict[str, Any] | None:
    """Backfill of documents: the asset title in capitals (``options.sleep`` per item)."""
    _pause(context)
    title = document["asset"]["title"]
    if title == title.upper():
        return None
    document["asset"]["title"] = title.upper()
    return document


def tag_row(view: dict[str, Any], context: dict[str, Any]) -> dict[str, Any] | None:
    """Custom, to a file sink: one row per TAG annotation (``options.sleep`` per item)."""
    _pause(context)
    if view["type"]["name"] != "TAG":
        return None
    return {"id": view["id"], "version": view["version"], "label": view["data"]["label"]}


def document_rows(view: dict[str, Any], context: dict[str, Any]) -> list[dict[str, Any]]:
    """Custom, to a file sink: one row per event of a document."""
    rows = []
    for t, track in enumerate(view["document"]["tracks"]):
        for c, component in enumerate(track["components"]):
            for e, event in enumerate(component["events"]):
                rows.append(
                    {
                        "seq": view["seq"],
                        "title_id": view["mid"]["title_id"],
                        "title": view["document"]["asset"]["title"],
                        "event": f"{t}/{c}/{e}",
                        "label": event["label"],
                    }
                )
    return rows


not_callable = 42


def log_context(data: dict[str, Any], context: dict[str, Any]) -> None:
    """Append the context the function is given (options apart) to ``options.log``; no change."""
    told = {k: v for k, v in context.items() if k != "options"}
    with Path(context["options"]["log"]).open("ab") as log:
        log.write(orjson.dumps(told) + b"\n")
