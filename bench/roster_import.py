"""Roster import benchmark: a 10,000-pupil school (with parents) into a fresh SQLite installation.

Run: ``.venv/bin/python bench/roster_import.py [--pupils N] [--database-url URL]``.
Prints each import's time beside the 30 s target (issue 3 §5) as a ratio, and the time
of a second, no-change import of the same roster. Not a timed test: a figure to watch.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import func, select

from esafety.audit import SYSTEM, AuditEntry
from esafety.config import Settings
from esafety.directory.model import School
from esafety.directory.roster.service import RosterImportResult, import_roster
from esafety.installation import Installation
from tests.directory.roster_data import big_mis, big_oneroster

TARGET_SECONDS = 30.0


def _installation(data: Path, database_url: str | None, slug: str) -> Installation:
    """A fresh installation (or, with --database-url, an empty database) with one school."""
    inst = Installation(Settings(data=data, database_url=database_url))
    inst.upgrade()
    with inst.db.session(SYSTEM) as session:
        session.add(School(slug=slug, name=f"Bench Academy ({slug})"))
    return inst


def _timed(label: str, run: Callable[[], RosterImportResult]) -> RosterImportResult:
    started = time.perf_counter()
    result = run()
    seconds = time.perf_counter() - started
    print(
        f"  {label:<22} {seconds:6.2f} s   target {TARGET_SECONDS:.0f} s   "
        f"ratio {seconds / TARGET_SECONDS:.2f}   "
        f"(added {result.added}, updated {result.updated}, left {result.left}, "
        f"unchanged {result.unchanged}, class places +{result.memberships_added}, "
        f"parent links +{result.links_added})"
    )
    return result


def _audit_entries(inst: Installation) -> int:
    with inst.db.session() as session:
        return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pupils", type=int, default=10_000)
    parser.add_argument(
        "--database-url", default=None, help="an empty database (default: SQLite in a temp dir)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="esafety-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        oneroster = big_oneroster(args.pupils).write(root / "oneroster")
        mis = root / "mis.csv"
        mis.write_text(big_mis(args.pupils), encoding="utf-8")
        print(f"Generated rosters of {args.pupils} pupils in {time.perf_counter() - started:.1f} s")
        for slug, name, path in (
            ("oneroster", "OneRoster 1.1 CSV", oneroster),
            ("mis", "MIS CSV (SIMS headers)", mis),
        ):
            inst = _installation(root / slug, args.database_url, slug)
            try:
                print(f"{name} on {inst.db.dialect}:")
                run = partial(import_roster, inst, path, slug)
                _timed("first import", run)
                entries = _audit_entries(inst)
                _timed("second (no change)", run)
                print(
                    f"  audit entries: {entries} after the first, "
                    f"+{_audit_entries(inst) - entries} after the second"
                )
            finally:
                inst.close()


if __name__ == "__main__":
    main()
