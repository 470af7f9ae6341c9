"""A school for the block page tests: pupils of each age, lists, and devices signed in."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from fastapi.testclient import TestClient

from esafety.audit import SYSTEM, Actor
from esafety.directory import service
from esafety.directory.model import PersonKind
from esafety.filtering import asking
from esafety.filtering.engine_cache import engines_for
from esafety.filtering.service import import_list
from esafety.filtering.store import ListStore
from esafety.installation import Installation
from esafety.security.roles import Role
from esafety.web.app import create_app
from tests.accounts import TestSchool, make_school
from tests.directory.school_setup import birthday

#: Devices: one address per person the tests sign in.
DEVICES = {
    "reception": "10.20.0.1",
    "year1": "10.20.0.2",
    "year5": "10.20.0.5",
    "teacher": "10.20.0.9",
    "nobody": "10.20.0.99",
}


@dataclass
class BlockWorld:
    inst: Installation
    school: TestSchool
    pupils: dict[str, str]

    @contextmanager
    def client(self, device: str) -> Iterator[TestClient]:
        """A browser on ``device`` (a name in DEVICES, or an address)."""
        address = DEVICES.get(device, device)
        app = create_app(self.inst)
        with TestClient(app, follow_redirects=False, client=(address, 50123)) as client:
            yield client

    def sign_in(self, device: str, username: str) -> None:
        with self.inst.db.session(
            Actor.system("test", school_id=self.school.id), school_id=self.school.id
        ) as session:
            asking.record_sign_in(session, DEVICES[device], username, "api", timedelta(hours=1))


def _pupil(inst: Installation, school_id: int, first: str, year: str, age: int) -> str:
    with inst.db.session(Actor.system("test", school_id=school_id), school_id=school_id) as s:
        pupil = service.add_person(
            s,
            PersonKind.PUPIL,
            first,
            "Pupil",
            date_of_birth=birthday(age),
            year_group=year,
            registration_class=f"{year} class",
        )
        return pupil.username


def import_lists(inst: Installation, folder: Path) -> None:
    """A gambling list, a social media list and an illegal-content list, installation-wide."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "Betting sites": ("gambling", "blocked.example\nbets.example\n", False),
        "Social sites": ("social_media", "social.example\n", False),
        "Watch list": ("pornography", "hidden.example\n", True),
    }
    store = ListStore(inst.data_dir)
    with inst.db.session(SYSTEM) as session:
        for name, (category, text, illegal) in files.items():
            path = folder / f"{category}.txt"
            path.write_text(text)
            import_list(session, store, path, "domains", category, name=name, illegal=illegal)
    engines_for(inst).forget()


def build_world(inst: Installation, folder: Path) -> BlockWorld:
    school = make_school(inst, "westpark")
    pupils = {
        "reception": _pupil(inst, school.id, "Rosie", "Reception", 4),
        "year1": _pupil(inst, school.id, "Yusuf", "Year 1", 6),
        "year5": _pupil(inst, school.id, "Fatima", "Year 5", 10),
    }
    import_lists(inst, folder)
    world = BlockWorld(inst, school, pupils)
    for device, username in pupils.items():
        world.sign_in(device, username)
    world.sign_in("teacher", school[Role.TEACHER].username)
    return world
