"""The filter's use cases: importing and updating lists, and checking a site.

Every function takes a session opened for the acting person (and their school, for a
school's lists), as in :mod:`esafety.directory.service`; writes are audited by the
session. List entries are kept by :class:`~esafety.filtering.store.ListStore`, not in
the database. Who is asking (assignments, subnets, sign-ins) is in
:mod:`esafety.filtering.asking`.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety import audit
from esafety.audit import Actor
from esafety.db import Database, utcnow
from esafety.directory.model import School
from esafety.directory.service import require
from esafety.errors import InvalidInput, NotFound
from esafety.filtering import asking, custom_policies, requests
from esafety.filtering.categories import Category, category_of
from esafety.filtering.changes import rules_changed
from esafety.filtering.decision import Asker, Decision, FilterEngine, decide
from esafety.filtering.hostnames import normalise_host
from esafety.filtering.index import FilterList as IndexList
from esafety.filtering.index import ListInfo, compile_index
from esafety.filtering.lists import ListFormat, ParsedList, list_format_of, parse_list
from esafety.filtering.lists.lines import ListSource, open_list_file
from esafety.filtering.lists.ut1 import ut1_category
from esafety.filtering.model import FilterList, ListColumns, SchoolFilterList
from esafety.filtering.policy import SchoolRules
from esafety.filtering.store import ListStore, StoredCopy
from esafety.filtering.urls import parse_url
from esafety.security.roles import Permission

__all__ = [
    "Check",
    "ListImport",
    "ListUpdate",
    "build_engine",
    "check",
    "import_list",
    "list_lists",
    "rules_fingerprint",
    "update_lists",
]

#: Progress of an import: bytes read so far and the size of the input (0 when unknown).
Progress = Callable[[int, int], None]

#: A download larger than this is refused (the biggest public lists are a few hundred MB).
MAX_DOWNLOAD = 1 << 30
DOWNLOAD_TIMEOUT = 60.0


@dataclass(frozen=True)
class ListImport:
    list: ListColumns
    parsed: ParsedList
    replaced: bool


@dataclass(frozen=True)
class ListUpdate:
    list: ListColumns
    parsed: ParsedList | None
    error: str | None


def _school_id(session: Session) -> int | None:
    value = session.info.get("school_id")
    return int(value) if value is not None else None


def _find(session: Session, name: str) -> ListColumns | None:
    if _school_id(session) is not None:
        return session.scalars(
            select(SchoolFilterList).where(SchoolFilterList.name == name)
        ).first()
    return session.scalars(select(FilterList).where(FilterList.name == name)).first()


def list_lists(session: Session) -> list[ListColumns]:
    """Installation-wide lists, then the session's school's own lists."""
    require(session, Permission.VIEW_FILTERING, "see the filter lists")
    rows: list[ListColumns] = list(session.scalars(select(FilterList).order_by(FilterList.name)))
    if _school_id(session) is not None:
        rows += session.scalars(select(SchoolFilterList).order_by(SchoolFilterList.name))
    return rows


def import_list(
    session: Session,
    store: ListStore,
    path: Path,
    format: str,
    category: str | None,
    *,
    name: str | None = None,
    illegal: bool = False,
    source: str | None = None,
    url: str | None = None,
    update_every_hours: int | None = None,
    progress: Progress | None = None,
) -> ListImport:
    """Import a list file (a folder for ``ut1``) for the installation or, in a session with
    a school, for that school. Importing a name again replaces that list's entries."""
    require(session, Permission.MANAGE_FILTER_LISTS, "import filter lists")
    kind = list_format_of(format)
    chosen = _category(kind, path, category)
    clean_name = (name or path.name.removesuffix(".gz").rsplit(".", 1)[0] or path.name).strip()
    if not clean_name or len(clean_name) > 120:
        raise InvalidInput(f"list name {clean_name!r}: give a name of 1 to 120 characters")
    if url is not None:
        _check_url(url)
    if update_every_hours is not None and update_every_hours < 1:
        raise InvalidInput(f"update every {update_every_hours} hours: give at least 1 hour")
    row = _find(session, clean_name)
    replaced = row is not None
    if row is None:
        school_id = _school_id(session)
        row = FilterList() if school_id is None else SchoolFilterList(school_id=school_id)
        row.name = clean_name
        session.add(row)
    elif row.illegal and not illegal:
        raise InvalidInput(
            f"list '{clean_name}' is an illegal-content list: import it again with --illegal"
            " (an illegal-content list can never be made an ordinary one)"
        )
    row.format, row.category, row.illegal = kind.value, chosen.value, illegal
    row.source = source or (url or str(path))
    row.url = url if url is not None else row.url
    row.update_every_hours = update_every_hours or row.update_every_hours
    session.flush()  # the id names the stored copy
    parsed, copy = _write(store, row.store_key, kind, path, progress)
    _record_good(row, parsed, copy)
    return ListImport(row, parsed, replaced)


def _category(kind: ListFormat, path: Path, category: str | None) -> Category:
    if category is not None:
        return category_of(category)
    if kind is ListFormat.UT1:
        found = ut1_category(path)
        if found is not None:
            return found
        raise InvalidInput(
            f"UT1 folder '{path.name}' has no matching esafety category: give --category"
        )
    allowed = ", ".join(c.value for c in Category)
    raise InvalidInput(f"give the list's category with --category: one of {allowed}")


def _write(
    store: ListStore,
    key: str,
    kind: ListFormat,
    path: Path,
    progress: Progress | None,
    *,
    require_entries: bool = False,
) -> tuple[ParsedList, StoredCopy]:
    parsed = ParsedList(kind)
    source: ListSource = path if kind is ListFormat.UT1 else _read(path, progress)
    copy = store.write(
        key, parsed.entries(parse_list(source, kind)), require_entries=require_entries
    )
    return parsed, copy


def _record_good(row: ListColumns, parsed: ParsedList, copy: StoredCopy) -> None:
    row.entry_count, row.problem_count = copy.entry_count, parsed.problem_count
    row.sha256 = copy.sha256
    row.updated_at = row.last_good_at = utcnow()
    row.last_error = None


def _read(path: Path, progress: Progress | None) -> Iterator[bytes]:
    """The file's lines, reporting how far through the file (compressed or not) we are."""
    if not path.is_file():
        raise InvalidInput(f"cannot read list file '{path}': no such file")
    total = path.stat().st_size
    with open_list_file(path) as handle:
        raw = getattr(handle, "fileobj", None) or handle
        for number, line in enumerate(handle, start=1):
            if progress is not None and number % 20_000 == 0:
                progress(raw.tell(), total)
            yield line
    if progress is not None:
        progress(total, total)


# -- updates from a URL -------------------------------------------------------------------


def _check_url(url: str) -> None:
    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInput(f"list URL {url!r}: give an http:// or https:// address")


def update_lists(
    db: Database,
    actor: Actor,
    store: ListStore,
    *,
    school_id: int | None = None,
    name: str | None = None,
    reason: str | None = None,
) -> list[ListUpdate]:
    """Download every list with a URL (or the one named) and replace its copy.

    A failed download or a download with no usable entry keeps the last good copy and
    records ``last_error``; the others go on. Nothing is raised for a failed download.
    The addresses are read in one short transaction and each outcome recorded in another:
    the download and parse happen outside any, because on SQLite a transaction holds the
    database's one write lock and staff recording a concern would wait for the download.
    """
    with db.session(actor, school_id=school_id) as session:
        require(session, Permission.MANAGE_FILTER_LISTS, "update filter lists")
        rows = [r for r in list_lists(session) if r.url and (name is None or r.name == name)]
        if name is not None and not rows:
            if _find(session, name) is None:
                raise NotFound(f"no filter list is named '{name}': see 'esafety filter lists'")
            raise InvalidInput(f"list '{name}' has no URL to update from: import it with --url")
        sources = [
            _Source(type(row), row.id, str(row.url), ListFormat(row.format), row.store_key)
            for row in rows
        ]
    updates = []
    for source in sources:
        outcome = _fetch(store, source)
        with db.session(actor, school_id=school_id) as session:
            if reason is not None:
                audit.set_reason(session, reason)
            row = session.get(source.table, source.id)
            if row is None:  # removed while it downloaded
                continue
            if isinstance(outcome, str):
                row.updated_at = now = utcnow()
                row.last_error = f"{now:%Y-%m-%d %H:%M} UTC: {outcome}"
                updates.append(ListUpdate(row, None, row.last_error))
            else:
                _record_good(row, *outcome)
                updates.append(ListUpdate(row, outcome[0], None))
                rules_changed(session)  # the DNS filter compiles now, not at its poll
    return updates


@dataclass(frozen=True)
class _Source:
    """What downloading a list needs, read before the download."""

    table: type[ListColumns]
    id: int
    url: str
    kind: ListFormat
    store_key: str


def _fetch(store: ListStore, source: _Source) -> tuple[ParsedList, StoredCopy] | str:
    """The list downloaded and its copy replaced, or why not (the last good copy stays)."""
    downloaded: Path | None = None
    try:
        downloaded = _download(source.url, store.root)
        if source.kind is ListFormat.UT1:
            raise InvalidInput("a UT1 folder cannot be downloaded: import it from its folder")
        return _write(store, source.store_key, source.kind, downloaded, None, require_entries=True)
    except (InvalidInput, OSError, urllib.error.URLError, ValueError) as error:
        return _describe(error)
    finally:
        if downloaded is not None:
            with contextlib.suppress(FileNotFoundError):
                downloaded.unlink()


def _describe(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"the server answered {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"could not download: {error.reason}"
    return str(error)


def _download(url: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(prefix=".download.", dir=folder)
    size = 0
    # _check_url allowed http and https only when the list was imported.
    request = urllib.request.Request(url, headers={"User-Agent": "esafety list update"})  # noqa: S310
    try:
        with (
            os.fdopen(handle, "wb") as out,
            urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT) as answer,  # noqa: S310
        ):
            for block in iter(lambda: answer.read(1 << 16), b""):
                size += len(block)
                if size > MAX_DOWNLOAD:
                    raise InvalidInput(f"the download is larger than {MAX_DOWNLOAD >> 20} MB")
                out.write(block)
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


# -- checking a site ----------------------------------------------------------------------


def build_engine(session: Session, store: ListStore) -> FilterEngine:
    """The filter as it stands: every stored list compiled, with the school's own rules."""
    rows = list_lists(session)
    index = compile_index(
        IndexList(
            ListInfo(_list_id(row), row.name, Category(row.category), row.illegal),
            store.read(row.store_key),
        )
        for row in rows
        if row.sha256 is not None
    )
    school_id = _school_id(session)
    if school_id is None:
        return FilterEngine(index, SchoolRules())
    school = session.get(School, school_id)
    zone = ZoneInfo(school.timezone if school is not None else "Europe/London")
    rules = SchoolRules(
        timezone=zone,
        policies=custom_policies.all_policies(session),
        entries=asking.school_entries(session),
        exceptions=requests.approved_exceptions(session),
    )
    return FilterEngine(index, rules)


def rules_fingerprint(session: Session) -> Hashable:
    """What changes when the school's own policies or its exceptions do (the DNS filter
    builds its engine again when this changes)."""
    if _school_id(session) is None:
        return ()
    return (
        custom_policies.policy_fingerprint(session),
        requests.exceptions_fingerprint(session),
    )


def _list_id(row: ListColumns) -> str:
    return row.store_key


@dataclass(frozen=True)
class Check:
    decision: Decision
    host: str
    asker: Asker
    #: How the policy was chosen, for a person to read.
    why_policy: str

    def as_dict(self) -> dict[str, object]:
        return {
            **self.decision.as_dict(),
            "host": self.host,
            "groups": sorted(self.asker.groups),
            "policy_chosen_by": self.why_policy,
        }


def check(
    session: Session,
    store: ListStore,
    host_or_url: str,
    *,
    username: str | None = None,
    policy_id: str | None = None,
    at: datetime | None = None,
    engine: FilterEngine | None = None,
) -> Check:
    """What the filter decides for a site, for a person, a policy or an unknown device.

    ``engine`` is one already built from the same lists (the web app keeps one per school,
    :mod:`esafety.filtering.engine_cache`); without it the lists are compiled now."""
    require(session, Permission.CHECK_FILTER, "check what the filter decides")
    text = host_or_url.strip()
    host = parse_url(text).host.name if "/" in text or "\\" in text else normalise_host(text)
    if username is not None and policy_id is not None:
        raise InvalidInput("give --person or --group, not both")
    if username is not None:
        asker, why = asking.asker_for_username(session, username)
    elif policy_id is not None:
        known = custom_policies.all_policies(session)
        if policy_id not in known:
            raise InvalidInput(f"unknown policy '{policy_id}': use one of {', '.join(known)}")
        asker, why = Asker(policy_id), f"policy {policy_id} given"
    else:
        asker, why = Asker(None), "unknown device: the strictest pupil policy"
    if engine is None:
        engine = build_engine(session, store)
    return Check(decide(engine, asker, text, at), host, asker, why)
