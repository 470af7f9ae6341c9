"""One esafety installation: its settings, its database, and what is derived from them.

The CLI, the web app and the tests each build one of these from settings; nothing else
reads settings or opens databases on its own.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from alembic import command
from alembic.config import Config
from sqlalchemy import inspect

from esafety.config import Settings, load_settings
from esafety.db import Database

if TYPE_CHECKING:
    from esafety.sealing import Keyring, SealedFiles

__all__ = ["Installation"]

MIGRATIONS = Path(__file__).parent / "migrations"


class Installation:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else load_settings()

    @property
    def data_dir(self) -> Path:
        return self.settings.data

    @cached_property
    def db(self) -> Database:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        database = Database(self.settings.sqlalchemy_url, audit_head_file=self.audit_head_file)
        from esafety.sealing import attach_keyring

        attach_keyring(database.engine, self.keys)  # sealed columns use this installation's keys
        return database

    @cached_property
    def keys(self) -> Keyring:
        """The keyring that seals records (docs/deployment.md, "Keys")."""
        from esafety.sealing import Keyring
        from esafety.sealing.usage import sealed_data_found

        return Keyring.from_settings(
            self.settings, guard=lambda: sealed_data_found(self.db.engine, self.data_dir)
        )

    @cached_property
    def attachments(self) -> SealedFiles:
        """Sealed attachments in DATA/attachments/."""
        from esafety.sealing import SealedFiles

        return SealedFiles(self.data_dir, "attachments", self.keys)

    def check_keys(self) -> None:
        """Make the keyring at install, or refuse to start when sealed records need keys
        that are missing (esafety.sealing.usage.check_keys)."""
        from esafety.sealing import check_keys

        check_keys(self)

    @property
    def audit_head_file(self) -> Path:
        return self.data_dir / "audit-head"

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["engine"] = self.db.engine
        return config

    def upgrade(self) -> None:
        """Bring the database to the newest schema (idempotent)."""
        command.upgrade(self.alembic_config(), "head")

    def is_initialised(self) -> bool:
        return inspect(self.db.engine).has_table("alembic_version")

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.dispose()
