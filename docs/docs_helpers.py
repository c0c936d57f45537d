"""Content generated into the docs by cog (`cog -I docs -r docs/*.md`); checked by tests."""

from __future__ import annotations

from typer.main import get_command
from typer.testing import CliRunner

from reeldb.cli import app
from reeldb.config import SETTINGS


def commands() -> list[list[str]]:
    """Every command path of the CLI, root first."""
    root = get_command(app)
    paths: list[list[str]] = [[]]
    for name, group in sorted(getattr(root, "commands", {}).items()):
        sub = getattr(group, "commands", None)
        if sub is None:
            paths.append([name])
        else:
            paths += [[name, verb] for verb in sorted(sub)]
    return paths


def cli_help() -> str:
    """The --help text of every command, as markdown sections."""
    runner = CliRunner()
    out = []
    for path in commands():
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1"})
        title = " ".join(["reeldb", *path])
        text = "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())
        out.append(f"\n## `{title}`\n\n```text\n{text}\n```\n")
    return "".join(out)


def settings_table() -> str:
    """The settings table."""
    rows = ["| setting | environment | default | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        rows.append(f"| `{s.name}` | `REELDB_{s.name.upper()}` | `{s.default!r}` | {s.help} |")
    return "\n" + "\n".join(rows) + "\n"


def routes_table() -> str:
    """Every HTTP route with the role it needs and its audit action, from the app itself."""
    from fastapi.routing import APIRoute

    import reeldb
    from reeldb.api import create_app

    with reeldb.connect("memory:") as db:
        app = create_app(db)
    rows = ["| method | path | needs | audited as | what |", "|---|---|---|---|---|"]
    for route in app.routes:
        if not isinstance(route, APIRoute):
            continue
        extra = route.openapi_extra or {}
        role = extra.get("x-reeldb-role", "?")
        audit = extra.get("x-reeldb-audit", "")
        for method in sorted(route.methods):
            rows.append(
                f"| {method} | `{route.path}` | {role} | {audit and f'`{audit}`'} "
                f"| {route.summary or ''} |"
            )
    return "\n" + "\n".join(rows) + "\n"
