"""Settings: defaults, esafety.toml, ESAFETY_* variables, masking, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from esafety.config import load_settings, masked
from esafety.errors import ConfigError


@pytest.fixture
def data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ESAFETY_DATA", str(tmp_path))
    for name in ("ESAFETY_DATABASE_URL", "ESAFETY_SECRET_KEY", "ESAFETY_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def test_defaults(data: Path) -> None:
    settings = load_settings()
    assert settings.data == data
    assert settings.sqlalchemy_url == f"sqlite:///{data / 'esafety.db'}"
    assert settings.security.idle_lock_minutes == 15  # 001: 15-minute lock
    assert settings.security.password_max_age_days == 30  # 001: 30-day change
    assert settings.roster.grade_map["KG"] == "reception"
    assert settings.roster.grade_map["PK"] == "nursery"
    assert settings.roster.grade_map["13"] == "year13"


def test_toml_then_environment(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (data / "esafety.toml").write_text(
        "[security]\nidle_lock_minutes = 5\npassword_min_length = 12\n[web]\nport = 9000\n"
    )
    monkeypatch.setenv("ESAFETY_SECURITY__IDLE_LOCK_MINUTES", "7")
    settings = load_settings()
    assert settings.security.idle_lock_minutes == 7  # the environment wins over the file
    assert settings.security.password_min_length == 12
    assert settings.web.port == 9000


def test_wrong_setting_names_it_and_what_is_allowed(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ESAFETY_SECURITY__IDLE_LOCK_MINUTES", "soon")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "security.idle_lock_minutes" in message
    assert "ESAFETY_SECURITY__IDLE_LOCK_MINUTES" in message
    assert "integer" in message


def test_unknown_setting_and_bad_values_in_toml(data: Path) -> None:
    (data / "esafety.toml").write_text(
        'timezone = "Europe/Lndon"\nlog_level = "loud"\ncolour = "blue"\n'
    )
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert "unknown time zone 'Europe/Lndon'" in message
    assert "'log_level'" in message and "'debug'" in message
    assert "unknown setting 'colour'" in message


def test_grade_map_checks_year_groups(data: Path) -> None:
    (data / "esafety.toml").write_text('[roster.grade_map]\nKG = "kindergarten"\n')
    with pytest.raises(ConfigError, match="unknown year group 'kindergarten'"):
        load_settings()


def test_malformed_toml_is_a_clear_error(data: Path) -> None:
    (data / "esafety.toml").write_text("[security\n")
    with pytest.raises(ConfigError, match="cannot read settings"):
        load_settings()


def test_secrets_are_masked(data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "ESAFETY_DATABASE_URL", "postgresql+psycopg://esafety:hunter2@db.example/esafety"
    )
    monkeypatch.setenv("ESAFETY_SECRET_KEY", "very-secret")
    monkeypatch.setenv("ESAFETY_SMTP__PASSWORD", "mailpass")
    shown = json.dumps(masked(load_settings()))
    for secret in ("hunter2", "very-secret", "mailpass"):
        assert secret not in shown
    assert "esafety:***@db.example" in shown


def test_secret_key_is_generated_once_and_private(data: Path) -> None:
    settings = load_settings()
    first = settings.secret()
    assert first == load_settings().secret()
    assert (data / "secret.key").stat().st_mode & 0o077 == 0


def test_config_show_command(
    data: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from esafety.cli import main

    monkeypatch.setenv("ESAFETY_SMTP__PASSWORD", "mailpass")
    monkeypatch.setattr("sys.argv", ["esafety", "config", "show", "--json"])
    main()
    shown = json.loads(capsys.readouterr().out)
    assert shown["security"]["idle_lock_minutes"] == 15
    assert shown["smtp"]["password"] == "********"

    monkeypatch.setenv("ESAFETY_WEB__PORT", "99999")
    monkeypatch.setattr("sys.argv", ["esafety", "config", "show"])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "web.port" in err and "less than or equal to 65535" in err
    assert "Traceback" not in err


def test_data_option_chooses_the_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from esafety.cli import main

    monkeypatch.delenv("ESAFETY_DATA", raising=False)
    monkeypatch.delenv("ESAFETY_DATABASE_URL", raising=False)
    other = tmp_path / "second"
    monkeypatch.setattr("sys.argv", ["esafety", "--data", str(other), "config", "show", "--json"])
    main()
    assert json.loads(capsys.readouterr().out)["data"] == str(other)
