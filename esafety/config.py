"""Settings: built-in defaults, then `esafety.toml`, then `ESAFETY_*` environment variables.

The data directory (``--data DIR`` or ``ESAFETY_DATA``) holds the embedded database, the
secret key, the audit head and, by default, ``esafety.toml``; so several instances, test
runs and scripts can live side by side, each in its own directory.

Nested settings are written ``[security]`` in TOML and ``ESAFETY_SECURITY__IDLE_LOCK_MINUTES``
in the environment.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from esafety.errors import ConfigError

__all__ = ["Settings", "default_data_dir", "load_settings"]

CONFIG_FILE_NAME = "esafety.toml"


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "esafety"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WebSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    #: The address people reach esafety at; used in e-mails and the OpenAPI document.
    base_url: str | None = None
    #: Send cookies only over HTTPS; turn on behind a TLS-terminating proxy.
    secure_cookies: bool = False
    #: Also serve HTTPS here (block pages for https:// addresses, with certificates the
    #: school CA makes per name: ``esafety ca create``). None: off.
    https_port: int | None = Field(None, ge=1, le=65535)
    #: Other names esafety itself is reached by (besides base_url's, ``host``, localhost
    #: and IP addresses); a request for any other dotted name gets the block page.
    names: list[str] = Field(default_factory=list)


class SecuritySettings(_Section):
    # Argon2id costs (RFC 9106 second recommended option by default). Tests lower them.
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_kib: int = Field(65536, ge=8)
    argon2_parallelism: int = Field(4, ge=1)
    #: Lock a session after this many idle minutes (001: "15-minute lock").
    idle_lock_minutes: int = Field(15, ge=1, le=24 * 60)
    #: A session ends this many hours after sign-in, whatever happens.
    session_hours: int = Field(10, ge=1, le=24 * 7)
    #: Failed sign-ins before an account is locked, and for how long.
    lockout_attempts: int = Field(5, ge=1)
    lockout_minutes: int = Field(15, ge=1)
    #: Sign-in attempts allowed from one address per minute.
    sign_in_attempts_per_minute: int = Field(20, ge=1)
    #: Defaults for schools' password rules (each school may set its own).
    password_min_length: int = Field(10, ge=6, le=128)
    #: 001 asks for a 30-day change; 0 turns expiry off.
    password_max_age_days: int = Field(30, ge=0)
    #: How many previous passwords may not be reused.
    password_history: int = Field(5, ge=0, le=50)
    #: The keyring that seals safeguarding records and two-step secrets (docs/deployment.md,
    #: "Keys"); relative to the data directory. Default: keys/esafety.keys.
    key_file: Path | None = None
    #: The keys themselves instead of a file: "id:base64key,id:base64key", the first
    #: sealing (`esafety keys new` makes an entry). Overrides key_file.
    keys: SecretStr | None = None


class SmtpSettings(_Section):
    host: str | None = None
    port: int = Field(25, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    sender: str = "esafety@localhost"
    starttls: bool = False
    ssl: bool = False


class DnsSettings(_Section):
    """The DNS filter ``esafety serve`` runs beside the web app (issue 4 §7)."""

    #: Run it at all (``esafety serve --no-dns`` turns it off for one run).
    enabled: bool = True
    host: str = "127.0.0.1"
    #: High by default so no root is needed; 53 wants CAP_NET_BIND_SERVICE. 0: any free port.
    port: int = Field(8053, ge=0, le=65535)
    #: Resolvers allowed names go to: "192.0.2.53", "192.0.2.53:5300", "[2001:db8::53]:53".
    #: Empty: nothing is forwarded and allowed names get SERVFAIL (a warning says so).
    upstreams: list[str] = Field(default_factory=list)
    #: Where blocked names point (the block page). Empty: the web app's address when it
    #: is one address, else blocked names get "no such name".
    block_ipv4: str | None = None
    block_ipv6: str | None = None
    block_mode: Literal["address", "nxdomain"] = "address"
    block_ttl: int = Field(60, ge=0, le=86_400)
    #: The school whose devices use this filter (slug); empty when there is one school.
    school: str | None = None
    #: How often who-is-where (sign-ins, subnets) and the lists are read again.
    refresh_seconds: float = Field(5.0, gt=0, le=3600)
    lists_poll_seconds: float = Field(30.0, gt=0, le=86_400)
    #: Processes answering DNS, each on its own core (SO_REUSEPORT). 0: one a CPU when
    #: there are several, else 1; 1 answers in the web app's own process.
    workers: int = Field(0, ge=0, le=64)

    @field_validator("upstreams")
    @classmethod
    def _resolvers(cls, value: list[str]) -> list[str]:
        for item in value:
            upstream_address(item)
        return value


def upstream_address(text: str) -> tuple[str, int]:
    """``IP``, ``IP:port`` or ``[IPv6]:port`` as (address, port); port 53 by default."""
    import ipaddress

    raw = text.strip()
    host, port = raw, "53"
    if raw.startswith("["):
        host, _, rest = raw[1:].partition("]")
        port = rest.removeprefix(":") or "53"
    elif raw.count(":") == 1:
        host, port = raw.split(":")
    try:
        address = ipaddress.ip_address(host)
        number = int(port)
    except ValueError:
        address, number = None, 0
    if address is None or not 1 <= number <= 65535:
        raise ValueError(
            f"upstream resolver {text!r}: write an IP address, optionally with a port, "
            "such as 192.0.2.53, 192.0.2.53:5300 or [2001:db8::53]:53"
        )
    return str(address), number


class FilteringSettings(_Section):
    """The web filter's own settings (issue 4)."""

    #: Days the decision log is kept before ``prune`` removes it (issue 4 §8).
    log_retention_days: int = Field(365, ge=1, le=3650)
    #: Load the starter lists esafety ships (encrypted DNS, VPNs, social media...) on
    #: ``esafety db upgrade`` and ``esafety serve``, once (issue 4 §3).
    starter_lists: bool = True
    #: Repeats of a DSL alert (same person, site and category) this close together are
    #: counted on one alert rather than raising another (issue 4 §8).
    alert_window_minutes: int = Field(10, ge=1, le=24 * 60)


class RadiusSettings(_Section):
    """Wi-Fi RADIUS accounting: who is on which address (issue 4 §6). Off without a secret."""

    #: Where to listen; the Wi-Fi controller sends Accounting-Requests here.
    host: str = "127.0.0.1"
    #: High by default so no root is needed (the standard port is 1813). 0: any free port.
    port: int = Field(18130, ge=0, le=65535)
    #: The shared secret set on the Wi-Fi controller; empty keeps the listener off.
    secret: SecretStr | None = None
    #: The school whose people sign in on this Wi-Fi (slug); empty: [dns] school, else
    #: the only school.
    school: str | None = None
    #: How long a sign-in lasts when the controller sends neither Session-Timeout nor
    #: Acct-Interim-Interval (an interim update or a new Start renews it).
    sign_in_hours: float = Field(8.0, gt=0, le=24)
    #: Accounting-Requests waiting for the database; beyond, they get no answer (the
    #: controller sends them again) and are counted.
    queue: int = Field(1000, ge=1, le=1_000_000)


_DEFAULT_GRADES = {
    "IT": "nursery",
    "PR": "nursery",
    "PK": "nursery",
    "TK": "reception",
    "KG": "reception",
    **{f"{n:02d}": f"year{n}" for n in range(1, 14)},
}


class RosterSettings(_Section):
    #: OneRoster grade code → English year group id (see docs/roster.md).
    grade_map: dict[str, str] = Field(default_factory=lambda: dict(_DEFAULT_GRADES))

    @field_validator("grade_map")
    @classmethod
    def _known_years(cls, value: dict[str, str]) -> dict[str, str]:
        from esafety.directory.years import YearGroup

        allowed = {y.value for y in YearGroup}
        for grade, year in value.items():
            if year not in allowed:
                raise ValueError(
                    f"grade {grade!r} maps to unknown year group {year!r}; "
                    f"allowed: {', '.join(sorted(allowed))}"
                )
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="ESAFETY_",
        env_nested_delimiter="__",
        extra="forbid",
        validate_default=True,
    )

    data: Path = Field(default_factory=default_data_dir)
    #: SQLAlchemy URL; empty means SQLite in the data directory.
    database_url: SecretStr | None = None
    #: Signs sessions and CSRF tokens; generated into the data directory when empty.
    secret_key: SecretStr | None = None
    timezone: str = "Europe/London"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    web: WebSettings = Field(default_factory=WebSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    roster: RosterSettings = Field(default_factory=RosterSettings)
    filtering: FilteringSettings = Field(default_factory=FilteringSettings)
    dns: DnsSettings = Field(default_factory=DnsSettings)
    radius: RadiusSettings = Field(default_factory=RadiusSettings)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name such as Europe/London"
            ) from None
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = _config_file()
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    # -- derived values -------------------------------------------------------------

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url is not None and self.database_url.get_secret_value():
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data / 'esafety.db'}"

    def secret(self) -> bytes:
        """The installation's secret key, created in the data directory on first use."""
        if self.secret_key is not None and self.secret_key.get_secret_value():
            return self.secret_key.get_secret_value().encode()
        path = self.data / "secret.key"
        if not path.exists():
            self.data.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_urlsafe(48))
        return path.read_text().strip().encode()


def _config_file() -> Path | None:
    explicit = os.environ.get("ESAFETY_CONFIG")
    if explicit:
        return Path(explicit)
    data = os.environ.get("ESAFETY_DATA")
    path = (Path(data) if data else default_data_dir()) / CONFIG_FILE_NAME
    return path if path.exists() else None


def load_settings(**overrides: Any) -> Settings:
    """Read the settings, turning a validation failure into one clear ConfigError."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc)) from None
    except (OSError, ValueError) as exc:  # an unreadable or malformed esafety.toml
        raise ConfigError(f"cannot read settings: {exc}") from None


def describe_validation_error(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        name = ".".join(str(part) for part in err["loc"])
        env = "ESAFETY_" + "__".join(str(p).upper() for p in err["loc"])
        if err["type"] == "extra_forbidden":
            lines.append(
                f"unknown setting {name!r} (check its spelling; see `esafety config show`)"
            )
            continue
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"setting {name!r} ({CONFIG_FILE_NAME} or {env}): {message}")
    return "\n".join(lines)


def masked(settings: Settings) -> dict[str, Any]:
    """Settings as plain data with every secret replaced by asterisks."""
    data = settings.model_dump(mode="python")

    def mask(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: mask(item) for key, item in value.items()}
        if isinstance(value, SecretStr):
            return "********" if value.get_secret_value() else ""
        if isinstance(value, Path):
            return str(value)
        return value

    result = mask(data)
    assert isinstance(result, dict)
    if settings.database_url is None:
        result["database_url"] = settings.sqlalchemy_url
    else:
        result["database_url"] = _mask_url(settings.database_url.get_secret_value())
    return result


def _mask_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "********"
