"""Regenerate migration 0001 from the models (only while esafety has no release).

Run with the project's virtual environment: ``.venv/bin/python scripts/regen_initial_migration.py``.
Once a release has shipped, add new revisions with ``alembic revision --autogenerate`` instead.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from alembic import command

from esafety.config import Settings
from esafety.installation import MIGRATIONS, Installation


def main() -> None:
    versions = MIGRATIONS / "versions"
    for old in versions.glob("0001_*.py"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        inst = Installation(Settings(data=Path(tmp)))
        command.revision(
            inst.alembic_config(), message="initial schema", autogenerate=True, rev_id="0001"
        )
        inst.close()
    written = [str(p) for p in versions.glob("0001_*.py")]
    # Alembic's output is not ruff-formatted; make it so, the same on every run.
    subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--fix", "--quiet", *written], check=False
    )
    subprocess.run([sys.executable, "-m", "ruff", "format", "--quiet", *written], check=True)
    print("written:", *written)


if __name__ == "__main__":
    main()
