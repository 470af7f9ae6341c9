"""Test fixtures: a fresh database per test, on SQLite and on a real PostgreSQL server.

Tests that take ``inst`` (or anything built on it) run once per database; pure tests run
once. ``ESAFETY_TEST_DATABASES=sqlite`` limits a local run to SQLite.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import count
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from esafety.config import SecuritySettings, Settings
from esafety.installation import Installation
from tests.pg import PostgresServer

BACKENDS = [
    b for b in os.environ.get("ESAFETY_TEST_DATABASES", "sqlite,postgresql").split(",") if b
]
CHEAP_ARGON2 = {"argon2_time_cost": 1, "argon2_memory_kib": 8, "argon2_parallelism": 1}
_numbers = count()


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _admin_execute(server: PostgresServer, *statements: str) -> None:
    engine = create_engine(server.url(), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for statement in statements:
                conn.execute(text(statement))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_template(pg_server: PostgresServer) -> str:
    _admin_execute(pg_server, "CREATE DATABASE esafety_template")
    inst = Installation(
        Settings(data=Path(pg_server.root), database_url=pg_server.url("esafety_template"))
    )
    inst.upgrade()
    inst.close()
    return "esafety_template"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("template")
    inst = Installation(Settings(data=data))
    inst.upgrade()
    inst.close()
    path = data / "esafety.db"
    with sqlite3.connect(path) as conn:  # fold the WAL into the file so one copy is whole
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp_path / "esafety.db")
        yield None
        return
    server: PostgresServer = request.getfixturevalue("pg_server")
    template_name: str = request.getfixturevalue("pg_template")
    name = f"test_{os.getpid()}_{next(_numbers)}"
    _admin_execute(server, f'CREATE DATABASE "{name}" TEMPLATE {template_name}')
    yield server.url(name)
    _admin_execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def make_settings(data: Path, database_url: str | None, **overrides: object) -> Settings:
    return Settings(
        data=data,
        database_url=database_url,
        security=SecuritySettings(**CHEAP_ARGON2),
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def settings(tmp_path: Path, database_url: str | None) -> Settings:
    return make_settings(tmp_path, database_url)


@pytest.fixture
def inst(settings: Settings) -> Iterator[Installation]:
    installation = Installation(settings)  # the template database is already upgraded
    yield installation
    installation.close()


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment that points the esafety command at this test's installation."""
    env = {
        "ESAFETY_DATA": str(settings.data),
        "ESAFETY_SECURITY__ARGON2_TIME_COST": "1",
        "ESAFETY_SECURITY__ARGON2_MEMORY_KIB": "8",
        "ESAFETY_SECURITY__ARGON2_PARALLELISM": "1",
        "COLUMNS": "200",
    }
    if settings.database_url is not None:
        env["ESAFETY_DATABASE_URL"] = settings.database_url.get_secret_value()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def cli(cli_env: dict[str, str], capsys: pytest.CaptureFixture[str]):
    """Run the esafety command in this process: ``cli("users", "list", "--json")``."""
    from esafety.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        old_argv = sys.argv
        sys.argv = ["esafety", *args]
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = old_argv
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run
