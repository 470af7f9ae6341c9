"""Which school a filter front end serves (the RADIUS listener, DSL alerts).

One ``esafety serve`` filters for one school: the one a setting names by slug, else the
installation's only school. With several schools and no setting it cannot guess, and says
which setting to write.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from esafety.directory.model import School
from esafety.errors import ConfigError

__all__ = ["served_school_id"]


def served_school_id(session: Session, slug: str | None, setting: str) -> int | None:
    """The school named by ``slug``, else the only one; None while there is no school yet.

    ``setting`` names the setting in messages (``[radius] school``).
    """
    if slug is not None and slug.strip():
        school = session.scalars(select(School).where(School.slug == slug.strip())).first()
        if school is None:
            raise ConfigError(f"{setting} {slug!r}: no school has that slug")
        return school.id
    ids = list(session.scalars(select(School.id).order_by(School.id).limit(2)))
    if len(ids) > 1:
        raise ConfigError(
            f"there are several schools and esafety serve filters for one: set {setting} = SLUG"
        )
    return ids[0] if ids else None
