"""A small school for the unblock-request, change-log and custom-policy tests.

Two Year 5 classes (Oak, taught by Tom) and a Year 4 class (Willow, taught by Wendy), a
pupil in each, the headteacher, the DSL, the online safety lead and a technician, all as
actors; a shared list that puts ``games.example`` in the games category (blocked for
pupils). Times are fixed: a Monday in term, so tests pass ``now`` and never sleep.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from esafety.audit import Actor
from esafety.directory import groups, service
from esafety.directory.model import Group, PersonKind
from esafety.filtering import asking
from esafety.filtering import service as filtering
from esafety.filtering.decision import Decision, decide
from esafety.filtering.store import ListStore
from esafety.installation import Installation
from esafety.security.roles import Role
from tests.directory.school_setup import birthday

#: Monday 3 March 2025, 08:00 in London (GMT, so UTC too).
MONDAY = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
GAMES = "games.example"
REASON = (
    "Year 5 will play the coding puzzles on this site in the computing lesson on loops, "
    "which the scheme of work sets for this week."
)
RISK = (
    "I checked the puzzle pages myself: no chat, no adverts and no links out; the class "
    "teacher supervises the whole lesson."
)


@dataclass
class ExceptionSchool:
    inst: Installation
    id: int
    actors: dict[str, Actor]
    oak_id: int
    willow_id: int

    def __getitem__(self, name: str) -> Actor:
        return self.actors[name]

    @contextmanager
    def session(self, actor: Actor | str | None = None) -> Iterator[Session]:
        who = self.actors[actor] if isinstance(actor, str) else actor
        who = who or Actor.system("test", school_id=self.id)
        with self.inst.db.session(who, school_id=self.id) as session:
            yield session

    def decide(self, username: str, host: str, when: datetime) -> Decision:
        """The engine built from the database, as ``esafety serve`` builds it."""
        with self.session() as session:
            engine = filtering.build_engine(session, ListStore(self.inst.data_dir))
            asker, _ = asking.asker_for_username(session, username)
        return decide(engine, asker, host, when)


def _actor(person_id: int, username: str, school_id: int, roles: list[Role]) -> Actor:
    return Actor(
        name=username,
        person_id=person_id,
        school_id=school_id,
        roles=frozenset(r.value for r in roles),
    )


def make_exception_school(
    inst: Installation, tmp_path: Path, slug: str = "westpark"
) -> ExceptionSchool:
    with inst.db.session(Actor.system("test")) as session:
        school_id = service.create_school(session, slug, f"{slug.title()} Primary").id
    actors: dict[str, Actor] = {}
    with inst.db.session(Actor.system("test", school_id=school_id), school_id=school_id) as s:
        pupils = {
            "ada": ("Ada", "Year 5", "Oak"),
            "ben": ("Ben", "Year 5", "Ash"),
            "cat": ("Cat", "Year 4", "Willow"),
        }
        for username, (first, year, class_name) in pupils.items():
            service.add_person(
                s,
                PersonKind.PUPIL,
                first,
                "Pupil",
                date_of_birth=birthday(9),
                year_group=year,
                registration_class=class_name,
                username=f"{username}.{slug}",
            )
        staff = {
            "tom": [Role.TEACHER],
            "wendy": [Role.TEACHER],
            "head": [Role.HEADTEACHER],
            "dsl": [Role.DSL],
            "osl": [Role.TEACHER, Role.ONLINE_SAFETY_LEAD],
            "tech": [Role.TECHNICIAN],
            "governor": [Role.GOVERNOR],
        }
        for name, roles in staff.items():
            kind = PersonKind.GOVERNOR if name == "governor" else PersonKind.STAFF
            person = service.add_person(
                s, kind, name.capitalize(), "Staff", roles=roles, username=f"{name}.{slug}"
            )
            actors[name] = _actor(person.id, person.username, school_id, roles)
        oak = s.query(Group).filter_by(name="Oak").one()
        willow = s.query(Group).filter_by(name="Willow").one()
        groups.assign_teacher(s, oak.id, actors["tom"].person_id or 0)
        groups.assign_teacher(s, willow.id, actors["wendy"].person_id or 0)
        oak_id, willow_id = oak.id, willow.id
    listed = tmp_path / f"games-{slug}.txt"
    listed.write_text(f"{GAMES}\nother-games.example\n")
    with inst.db.session(Actor.system("test")) as session:
        filtering.import_list(
            session, ListStore(inst.data_dir), listed, "domains", "games", name=f"Games {slug}"
        )
    return ExceptionSchool(inst, school_id, actors, oak_id, willow_id)
