"""Safe-search rewrites and filter-bypass names, from ``data/safesearch.toml`` and
``data/bypass.toml`` (issue 4 §4; AdGuard Home keeps its safe-search rules as data too).

Both catalogues are read and validated once, on first use; a broken file is a
:class:`ConfigError` naming the entry. The decision engine looks names up exactly: only
the hosts listed are rewritten (``classroom.google.com`` is never touched), while a
bypass name also covers its subdomains (``mozilla.cloudflare-dns.com``).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

from esafety.errors import ConfigError
from esafety.filtering.hostnames import InvalidHost, normalise_host

__all__ = [
    "BypassName",
    "SearchRewrite",
    "bypass_names",
    "parse_bypass",
    "parse_safesearch",
    "safe_search_rewrites",
]


@dataclass(frozen=True, slots=True)
class SearchRewrite:
    """How one host of a search engine (or YouTube) is made safe."""

    engine: str
    engine_name: str
    #: The host answered (as a CNAME) in strict mode.
    target: str
    #: YouTube's "moderate" restricted mode host; None for engines with one safe mode.
    moderate: str | None
    #: A general search engine: blocked by the "child-safe search engine only" option.
    search_engine: bool


@dataclass(frozen=True, slots=True)
class BypassName:
    """A name that gets round the school's filter; ``nxdomain`` is the answer it needs."""

    host: str
    what: str
    nxdomain: bool


def _read(name: str) -> str:
    return resources.files("esafety.filtering").joinpath(f"data/{name}").read_text("utf-8")


def _load(text: str, what: str) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{what} is not valid TOML: {error}") from None


def _host(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where}: expected a host name, found {value!r}")
    try:
        return normalise_host(value)
    except InvalidHost as error:
        raise ConfigError(f"{where}: {error}") from None


def _strings(raw: dict[str, Any], key: str, where: str) -> list[str]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: '{key}' must be a list of strings")
    return value


def parse_safesearch(text: str) -> Mapping[str, SearchRewrite]:
    """Validate safe-search TOML; the result maps each exact host to its rewrite."""
    document = _load(text, "safe-search catalogue")
    countries = _strings(document.get("google", {}), "domains", "safe-search [google]")
    engines = document.get("engine")
    if not isinstance(engines, list) or not engines:
        raise ConfigError("safe-search catalogue: expected [[engine]] tables")
    rewrites: dict[str, SearchRewrite] = {}
    for index, raw in enumerate(engines, start=1):
        where = f"safe-search engine {index}"
        if not isinstance(raw, dict) or not isinstance(raw.get("id"), str):
            raise ConfigError(f"{where}: expected a table with an 'id'")
        where += f" ('{raw['id']}')"
        for key in ("name", "target"):
            if not isinstance(raw.get(key), str):
                raise ConfigError(f"{where}: '{key}' must be a string")
        if not isinstance(raw.get("search_engine"), bool):
            raise ConfigError(f"{where}: 'search_engine' must be true or false")
        moderate = raw.get("moderate")
        rewrite = SearchRewrite(
            engine=raw["id"],
            engine_name=raw["name"],
            target=_host(raw["target"], where),
            moderate=None if moderate is None else _host(moderate, where),
            search_engine=raw["search_engine"],
        )
        hosts = list(_strings(raw, "hosts", where))
        for pattern in _strings(raw, "country_hosts", where):
            if "{domain}" not in pattern:
                raise ConfigError(f"{where}: country host {pattern!r} has no {{domain}}")
            hosts.extend(pattern.replace("{domain}", domain) for domain in countries)
        for host in hosts:
            name = _host(host, where)
            if name in rewrites:
                raise ConfigError(f"{where}: host {name} is listed twice")
            rewrites[name] = rewrite
    return MappingProxyType(rewrites)


def parse_bypass(text: str) -> Mapping[str, BypassName]:
    """Validate bypass TOML; the result maps each host to what it is."""
    document = _load(text, "bypass catalogue")
    entries = document.get("name")
    if not isinstance(entries, list):
        raise ConfigError("bypass catalogue: expected [[name]] tables")
    names: dict[str, BypassName] = {}
    for index, raw in enumerate(entries, start=1):
        where = f"bypass name {index}"
        if not isinstance(raw, dict):
            raise ConfigError(f"{where}: expected a table")
        host = _host(raw.get("host"), where)
        if not isinstance(raw.get("what"), str) or not isinstance(raw.get("nxdomain"), bool):
            raise ConfigError(f"{where} ({host}): needs 'what' (text) and 'nxdomain' (true/false)")
        names[host] = BypassName(host, raw["what"], raw["nxdomain"])
    return MappingProxyType(names)


@cache
def safe_search_rewrites() -> Mapping[str, SearchRewrite]:
    """The shipped safe-search rewrites, by exact host."""
    return parse_safesearch(_read("safesearch.toml"))


@cache
def bypass_names() -> Mapping[str, BypassName]:
    """The shipped bypass names (encrypted-DNS canary, Private Relay, DoH resolvers)."""
    return parse_bypass(_read("bypass.toml"))
