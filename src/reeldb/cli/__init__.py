"""The ``reeldb`` command line."""

from reeldb.cli._app import app, main

__all__ = ["app", "main"]
