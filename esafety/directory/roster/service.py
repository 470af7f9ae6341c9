"""Importing a roster into a school: check everything, then write all of it or nothing.

1. Read the files (OneRoster folder or .zip, or one MIS .csv) into a snapshot, collecting
   every problem with its file, line and column.
2. Load what the school holds, once, and work out the difference in memory; problems
   that need the database (a username another school uses, a delta naming an unknown
   class) join the others.
3. Any problem: raise :class:`RosterProblems` with all of them; nothing has been written.
   Otherwise write the difference in one transaction and record a ``RosterImport``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import exc as sa_exc
from sqlalchemy import select

from esafety.audit import Actor
from esafety.directory.model import RosterImport, School
from esafety.directory.roster.apply import Progress, write_plan
from esafety.directory.roster.diff import Plan, plan_changes
from esafety.directory.roster.existing import load_existing
from esafety.directory.roster.grades import GradeMap
from esafety.directory.roster.mis import read_mis
from esafety.directory.roster.oneroster import read_oneroster
from esafety.directory.roster.problems import Problems, RosterProblems
from esafety.directory.roster.reading import read_source
from esafety.directory.roster.references import Known, place
from esafety.directory.roster.snapshot import Mode, RosterSnapshot
from esafety.errors import IntegrityError, InvalidInput
from esafety.installation import Installation

__all__ = ["FORMATS", "RosterImportResult", "detect_format", "import_roster"]

FORMATS = ("oneroster", "mis")


@dataclass(frozen=True)
class RosterImportResult:
    school: str
    format: str
    mode: str
    dry_run: bool
    added: int
    updated: int
    left: int
    unchanged: int
    classes_added: int
    classes_updated: int
    classes_archived: int
    memberships_added: int
    memberships_ended: int
    links_added: int
    links_ended: int
    #: The RosterImport row's id (None for a dry run).
    import_id: int | None


def detect_format(kind: str, files: dict[str, bytes]) -> str:
    """A folder or .zip holding manifest.csv or users.csv is OneRoster; one .csv is an MIS export."""
    if kind in ("folder", "zip") or "manifest.csv" in files:
        return "oneroster"
    return "mis"


def import_roster(
    inst: Installation,
    path: Path,
    school_slug: str,
    *,
    delta: bool = False,
    format: str | None = None,
    dry_run: bool = False,
    allow_bom: bool = False,
    actor: Actor | None = None,
    today: date | None = None,
    progress: Progress | None = None,
) -> RosterImportResult:
    """Import the roster at ``path`` into the school ``school_slug``, all or nothing."""
    if format is not None and format not in FORMATS:
        raise InvalidInput(f"unknown roster format {format!r}: use one of {', '.join(FORMATS)}")
    problems = Problems()
    school = _school(inst, school_slug, problems)
    zone = ZoneInfo(school.timezone if school else inst.settings.timezone)
    today = today or datetime.now(zone).date()
    snapshot = _read(
        inst, path, problems, delta=delta, format=format, allow_bom=allow_bom, today=today
    )
    if progress is not None:
        progress.stage("Checking", snapshot.rows)
    if school is None:
        if snapshot.mode is Mode.BULK:
            place(snapshot, Known(), problems)  # a bulk roster can be checked on its own
        raise RosterProblems(str(path), problems.sorted())
    actor = actor or Actor.system("roster-import", school_id=school.id)
    try:
        with inst.db.session(actor, school_id=school.id) as session:
            existing = load_existing(session, school.id)
            known = existing.known() if snapshot.mode is Mode.DELTA else Known()
            placements = place(snapshot, known, problems)
            plan = plan_changes(snapshot, placements, existing, problems, today=today)
            if problems:
                raise RosterProblems(str(path), problems.sorted())
            if progress is not None:
                progress.advance(snapshot.rows)
            import_id = None
            if not dry_run:
                write_plan(session, plan, existing, today=today, progress=progress)
                record = RosterImport(
                    school_id=school.id,
                    path=str(path.resolve())[:500],
                    format=snapshot.format,
                    mode=snapshot.mode.value,
                    added=len(plan.new_people),
                    updated=len(plan.updated),
                    left=len(plan.leavers),
                )
                session.add(record)
                session.flush()
                import_id = record.id
    except sa_exc.IntegrityError as exc:
        # Checks above should leave nothing for the database to refuse; if it does, the
        # transaction has been rolled back and nothing was written.
        raise IntegrityError(
            f"the roster import was refused by the database and nothing was written: {exc.orig}"
        ) from None
    return _result(school.slug, snapshot, plan, dry_run=dry_run, import_id=import_id)


def _school(inst: Installation, slug: str, problems: Problems) -> School | None:
    with inst.db.session(Actor.system("roster-import")) as session:
        school = session.scalars(select(School).where(School.slug == slug)).first()
        if school is None:
            slugs = session.scalars(select(School.slug).order_by(School.slug)).all()
            known = f"use one of: {', '.join(slugs)}" if slugs else "create the school first"
            problems.add("--school", None, None, f"unknown school {slug!r}", known)
        return school


def _read(
    inst: Installation,
    path: Path,
    problems: Problems,
    *,
    delta: bool,
    format: str | None,
    allow_bom: bool,
    today: date,
) -> RosterSnapshot:
    kind, files = read_source(path, problems)
    chosen = format or detect_format(kind, files)
    mode = Mode.DELTA if delta else Mode.BULK
    if kind == "missing":
        return RosterSnapshot(format=chosen, mode=mode)
    if chosen == "oneroster":
        grades = GradeMap(inst.settings.roster.grade_map)
        return read_oneroster(
            files, problems, delta=delta, grades=grades, allow_bom=allow_bom, today=today
        )
    if kind != "file" or len(files) != 1:
        problems.add(
            str(path),
            None,
            None,
            "an MIS export is one .csv file (one row per pupil)",
            "give the path of the .csv file, or use --format oneroster for a OneRoster folder",
        )
        return RosterSnapshot(format=chosen, mode=mode)
    data = next(iter(files.values()))
    return read_mis(data, path.name, problems, delta=delta, allow_bom=allow_bom, today=today)


def _result(
    school: str, snapshot: RosterSnapshot, plan: Plan, *, dry_run: bool, import_id: int | None
) -> RosterImportResult:
    return RosterImportResult(
        school=school,
        format=snapshot.format,
        mode=snapshot.mode.value,
        dry_run=dry_run,
        added=len(plan.new_people),
        updated=len(plan.updated),
        left=len(plan.leavers),
        unchanged=plan.unchanged,
        classes_added=len(plan.new_groups),
        classes_updated=len(plan.group_changes),
        classes_archived=len(plan.archived_groups),
        memberships_added=len(plan.new_memberships),
        memberships_ended=len(plan.ended_memberships),
        links_added=len(plan.new_links),
        links_ended=len(plan.ended_links),
        import_id=import_id,
    )
