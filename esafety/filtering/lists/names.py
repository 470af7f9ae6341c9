"""One list token to one entry, through the one normalisation every part of esafety uses."""

from __future__ import annotations

from esafety.errors import InvalidInput
from esafety.filtering.hostnames import parse_host
from esafety.filtering.lists.entries import DomainEntry, ListProblem, UrlPrefixEntry
from esafety.filtering.urls import parse_url, url_key

__all__ = ["domain_item", "url_prefix_item"]


def _reason(error: InvalidInput) -> str:
    reason = getattr(error, "reason", None)
    return reason if isinstance(reason, str) else str(error)


def domain_item(text: str, line: int, *, exception: bool = False) -> DomainEntry | ListProblem:
    """A listed name: ``*.example.com`` and ``.example.com`` mean example.com and below."""
    name = text
    if name.startswith("*."):
        name = name[2:]
    elif name.startswith("."):
        name = name[1:]
    if "*" in name:
        return ListProblem(line, text, "a wildcard is only allowed as a leading '*.'")
    if "/" in name:
        return ListProblem(line, text, "a URL, not a name (import URL lists with --format urls)")
    try:
        host = parse_host(name)
    except InvalidInput as error:
        return ListProblem(line, text, f"not a valid name: {_reason(error)}")
    if host.is_ip:
        return ListProblem(line, text, "an IP address, not a name (lists name sites by domain)")
    return DomainEntry(host.name, line, exception)


def url_prefix_item(text: str, line: int) -> UrlPrefixEntry | ListProblem:
    """A listed URL prefix; UT1 and squidGuard write them without a scheme (http is meant)."""
    try:
        parsed = parse_url(text)
    except InvalidInput as error:
        return ListProblem(line, text, f"not a valid URL: {_reason(error)}")
    return UrlPrefixEntry(url_key(parsed), line)
