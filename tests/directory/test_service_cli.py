"""The directory's commands: schools, terms and closures, and `esafety users list`."""

from __future__ import annotations

import json
from datetime import date

from esafety.directory import service
from esafety.directory.model import PersonKind
from esafety.installation import Installation
from tests.directory.school_setup import SETUP, acting, add_pupil


def test_school_create_list_and_calendar(cli) -> None:
    created = cli("school", "create", "westpark", "--name", "West Park Primary")
    assert created.code == 0, created.err
    assert "Created school West Park Primary (westpark, Europe/London)" in created.out
    listed = json.loads(cli("school", "list", "--json").out)
    assert listed == [
        {"slug": "westpark", "name": "West Park Primary", "timezone": "Europe/London", "urn": None}
    ]
    term = cli("school", "add-term", "westpark", "Autumn 2025", "2025-09-03", "2025-12-19")
    assert term.code == 0, term.err
    closure = cli("school", "add-closure", "westpark", "2025-10-27", "2025-10-31", "Half term")
    assert closure.code == 0, closure.err
    shown = cli("school", "calendar", "westpark")
    assert "Autumn 2025" in shown.out and "73" in shown.out and "Half term" in shown.out


def test_school_command_errors_say_what_to_fix(cli) -> None:
    bad = cli("school", "create", "West Park", "--name", "West Park Primary")
    assert bad.code == 2 and "lowercase letters, digits" in bad.err and "Traceback" not in bad.err
    zone = cli("school", "create", "westpark", "--name", "W", "--timezone", "GMT+1")
    assert zone.code == 2 and "not a known time zone" in zone.err
    missing = cli("school", "add-term", "nowhere", "Autumn", "2025-09-03", "2025-12-19")
    assert missing.code == 2 and "no school with slug 'nowhere'" in missing.err
    cli("school", "create", "westpark", "--name", "West Park Primary")
    day = cli("school", "add-term", "westpark", "Autumn", "3/9/2025", "2025-12-19")
    assert day.code == 2 and "starts '3/9/2025' is not a date: write it as YYYY-MM-DD" in day.err


def test_users_list_as_json_filtered_by_school_and_role(cli, inst: Installation) -> None:
    with inst.db.session(SETUP) as session:
        west = service.create_school(session, "westpark", "West Park").id
        east = service.create_school(session, "eastpark", "East Park").id
    with acting(inst, west) as session:
        add_pupil(session)
        staff = service.add_person(
            session, PersonKind.STAFF, "Dee", "Lead", roles=["dsl", "teacher"]
        )
        leaver = service.add_person(session, PersonKind.STAFF, "Lee", "Ver", roles=["teacher"])
        service.mark_leaver(session, leaver.id, date.today())
    with acting(inst, east) as session:
        add_pupil(session, "Eve", "East")

    everyone = json.loads(cli("users", "list", "--json").out)
    assert [(p["username"], p["roles"], p["school"]) for p in everyone] == [
        ("eve.east", ["pupil"], "eastpark"),
        ("ada.lovelace", ["pupil"], "westpark"),
        ("dee.lead", ["dsl", "teacher"], "westpark"),
    ]
    teachers = json.loads(
        cli("users", "list", "--school", "westpark", "--role", "teacher", "--json").out
    )
    assert [p["username"] for p in teachers] == [staff.username]
    with_leavers = cli("users", "list", "--role", "teacher", "--include-leavers", "--json")
    assert [p["username"] for p in json.loads(with_leavers.out)] == ["dee.lead", "lee.ver"]
    table = cli("users", "list", "--school", "eastpark")
    assert table.code == 0 and "eve.east" in table.out and "dee.lead" not in table.out
    bad = cli("users", "list", "--role", "headmaster")
    assert bad.code == 2 and "unknown role 'headmaster'" in bad.err
    unknown = cli("users", "list", "--school", "nowhere")
    assert unknown.code == 2 and "no school with slug 'nowhere'" in unknown.err
