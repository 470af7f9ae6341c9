"""Command-line commands of this slice (mounted by esafety.cli)."""

from __future__ import annotations

import typer

__all__ = ["register"]


def register(app: typer.Typer, users_app: typer.Typer) -> None:
    """Add this slice's commands to the root command and the ``users`` group."""
