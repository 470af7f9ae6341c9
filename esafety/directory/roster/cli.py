"""`esafety roster ...` commands."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``roster`` command group to the root command."""
