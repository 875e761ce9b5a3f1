"""The `rostra` command line: one module per command group."""

from rostra.cli.main import app, main

__all__ = ["app", "main"]
