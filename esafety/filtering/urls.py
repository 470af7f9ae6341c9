"""Web addresses in one comparable form, for URL-prefix rules and illegal-content URL lists.

:func:`parse_url` reads an address as a browser's address bar would (WHATWG URL standard
for the special schemes ``http``, ``https``, ``ws``, ``wss`` and ``ftp``): leading and
trailing spaces and control characters are dropped and tabs and newlines removed
anywhere; a missing scheme means ``http`` (``example.com/path``); any number of ``/`` or
``\\`` may follow the scheme; ``\\`` in the path is ``/``; the host goes through
:mod:`esafety.filtering.hostnames`; userinfo and the fragment are dropped.

For comparison (not for fetching) the path and query are then normalised further:
percent-escapes of unreserved characters (letters, digits, ``-._~``) are decoded, other
escapes get uppercase hex, characters that must be escaped are escaped (UTF-8), ``.``
and ``..`` segments are resolved and runs of ``/`` in the path collapsed. So
``HTTP://Example.COM:80/a/./b/../%7euser//x?q=%2f`` and ``example.com/a/~user/x?q=%2F``
are the same page.

:func:`url_key` is the string URL lists are matched on; :func:`url_hashes` gives the
digests to look up in hashed URL lists (``urlhash``).

``urllib.parse`` is used for its quoting tables only: ``urlsplit`` follows RFC 3986,
not browsers, and reads ``example.com:8080/x`` as a URL with the scheme ``example.com``
and ``http:\\\\evil.example`` as having no host.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from esafety.errors import InvalidInput
from esafety.filtering.hostnames import Host, InvalidHost, parse_authority, registrable_domain

__all__ = [
    "DEFAULT_PORTS",
    "HASH_ALGORITHMS",
    "InvalidUrl",
    "ParsedUrl",
    "parse_url",
    "url_hash_candidates",
    "url_hashes",
    "url_key",
]

#: The schemes a web filter sees, with their default ports (WHATWG "special schemes").
DEFAULT_PORTS: dict[str, int] = {"http": 80, "https": 443, "ws": 80, "wss": 443, "ftp": 21}

#: Digest algorithms hashed URL lists use, by hex length: 32 md5, 40 sha1, 64 sha256.
HASH_ALGORITHMS: tuple[str, ...] = ("md5", "sha1", "sha256")

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# "example.com:8080/x" is a host and port, not the scheme "example.com".
_PORT_NOT_SCHEME = re.compile(r"[0-9]*(?:[/\\?#]|\Z)")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
# Characters that may stand unescaped in a path or query (RFC 3986 reserved and unreserved).
_ALLOWED = _UNRESERVED | frozenset(":/?@!$&'()*+,;=")
_HEX = frozenset("0123456789abcdefABCDEF")
_C0_AND_SPACE = "".join(chr(c) for c in range(0x21))
_TAB_NEWLINE = str.maketrans("", "", "\t\n\r")


class InvalidUrl(InvalidInput):
    """A web address that cannot be read; ``reason`` says why in plain words."""

    def __init__(self, text: str, reason: str) -> None:
        shown = repr(text) if len(text) <= 100 else repr(text[:97]) + "…"
        super().__init__(f"web address {shown} is not valid: {reason}")
        self.text = text
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ParsedUrl:
    """A web address normalised for comparison.

    ``port`` is None when absent or the scheme's default; ``path`` always starts with
    ``/``; ``query`` is ``""`` when there is none (``?`` alone counts as none).
    """

    scheme: str
    host: Host
    port: int | None
    path: str
    query: str

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else DEFAULT_PORTS[self.scheme]

    def __str__(self) -> str:
        return f"{self.scheme}://{url_key(self)}"


def parse_url(text: str) -> ParsedUrl:
    """Read a web address as a browser would; raise :class:`InvalidUrl` saying why not."""
    original = text
    text = text.strip(_C0_AND_SPACE).translate(_TAB_NEWLINE)
    if not text:
        raise InvalidUrl(original, "it is empty")
    scheme, rest = _split_scheme(text, original)
    rest = rest.lstrip("/\\")
    end = len(rest)
    for delimiter in "/\\?#":
        found = rest.find(delimiter)
        if 0 <= found < end:
            end = found
    authority, rest = rest[:end], rest[end:]
    if not authority:
        raise InvalidUrl(original, "it has no host name")
    try:
        host, port = parse_authority(authority)
    except InvalidHost as error:
        raise InvalidUrl(original, error.reason) from None
    if port == DEFAULT_PORTS[scheme]:
        port = None
    rest = rest.partition("#")[0]
    path, _, query = rest.partition("?")
    return ParsedUrl(
        scheme=scheme,
        host=host,
        port=port,
        path=_normalise_path(path.replace("\\", "/")),
        query=_normalise_escapes(query),
    )


def _split_scheme(text: str, original: str) -> tuple[str, str]:
    match = _SCHEME.match(text)
    if match is None:
        return "http", text
    scheme = match.group(1).lower()
    rest = text[match.end() :]
    if scheme in DEFAULT_PORTS:
        return scheme, rest
    if _PORT_NOT_SCHEME.match(rest) and not rest.startswith(("//", "\\\\")):
        return "http", text
    raise InvalidUrl(
        original,
        f"{scheme!r} is not a web address scheme (use one of {', '.join(DEFAULT_PORTS)})",
    )


def _normalise_escapes(text: str) -> str:
    """Decode escapes of unreserved characters, uppercase the rest, escape what must be."""
    if not text:
        return text
    out: list[str] = []
    index, length = 0, len(text)
    while index < length:
        ch = text[index]
        if ch == "%":
            pair = text[index + 1 : index + 3]
            if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                decoded = chr(int(pair, 16))
                out.append(decoded if decoded in _UNRESERVED else "%" + pair.upper())
                index += 3
                continue
            out.append("%25")  # a lone "%" means itself
        elif ch in _ALLOWED:
            out.append(ch)
        else:
            out.extend(f"%{byte:02X}" for byte in ch.encode("utf-8", "surrogatepass"))
        index += 1
    return "".join(out)


def _normalise_path(path: str) -> str:
    """Escapes normalised, ``.``/``..`` resolved (RFC 3986 §5.2.4), ``//`` collapsed."""
    segments = _normalise_escapes(path).split("/")
    if segments and segments[0] == "":
        segments = segments[1:]
    out: list[str] = []
    last = len(segments) - 1
    for index, segment in enumerate(segments):
        if segment == "..":
            if out:
                out.pop()
            if index == last:
                out.append("")
        elif segment == ".":
            if index == last:
                out.append("")
        elif segment or index == last:
            out.append(segment)
    return "/" + "/".join(out)


def url_key(url: ParsedUrl) -> str:
    """The string URL lists are matched on: ``host[:port]/path[?query]``.

    No scheme (a page is the same page over http and https), no userinfo, no fragment,
    no default port; the host in normal form (A-label, IPv6 in brackets); the path and
    query normalised as described in the module docstring; ``?`` only when there is a
    query. ``https://WWW.Example.com:443/a/../b?x=%7e#top`` → ``www.example.com/b?x=~``;
    ``http://example.com`` → ``example.com/``.
    """
    port = f":{url.port}" if url.port is not None else ""
    query = f"?{url.query}" if url.query else ""
    return f"{url.host.url_form}{port}{url.path}{query}"


def url_hash_candidates(url: ParsedUrl) -> tuple[str, ...]:
    """The strings a hashed URL list may have hashed for a page at ``url``, exact first.

    The IWF URL list is available only to IWF members under licence and its file format
    is not published; its public pages (iwf.org.uk "URL blocking FAQs" and "URL Blocking:
    Good Practice") say entries are individual web pages, with a whole domain listed only
    when the whole site is dedicated to abuse content, and that blocking should be
    URL-specific. Filter vendors that take it (Diladele Web Safety's issue tracker, 2016:
    "Integrate SHA256 list") hash URLs with SHA-256; Google Safe Browsing and Web Risk
    hash scheme-less canonical URLs with SHA-256 and look up host and path variants.
    Since the exact string the IWF hashes could not be confirmed, the lookup is generous
    where it costs nothing in wrong blocks (a digest matches only a string the list's
    authors chose to list): the key with and without its query, with and without a
    trailing ``/``, with and without a leading ``www.``, and the whole-site forms
    (``host`` and ``host/``) of the host and each parent domain down to its registrable
    domain. Confirm the convention with the IWF's test URLs when taking the list.
    """
    host = url.host.url_form
    port = f":{url.port}" if url.port is not None else ""
    hosts = [host]
    if not url.host.is_ip:
        hosts.append(host[4:] if host.startswith("www.") and host.count(".") > 1 else f"www.{host}")
    paths = [url.path]
    if url.path != "/":
        paths.append(url.path[:-1] if url.path.endswith("/") else url.path + "/")
    queries = [f"?{url.query}", ""] if url.query else [""]
    candidates: list[str] = []
    for query in queries:
        for name in hosts:
            for path in paths:
                candidates.append(f"{name}{port}{path}{query}")
    for site in _whole_site_hosts(url.host):
        candidates.extend((f"{site}{port}", f"{site}{port}/"))
    return tuple(dict.fromkeys(candidates))


def _whole_site_hosts(host: Host) -> list[str]:
    if host.is_ip:
        return [host.url_form]
    stop = registrable_domain(host.name) or host.name
    sites: list[str] = []
    name = host.name
    while True:
        sites.append(name)
        if name == stop or "." not in name:
            return sites
        name = name.partition(".")[2]


def url_hashes(url: ParsedUrl, algorithms: Iterable[str] = HASH_ALGORITHMS) -> frozenset[str]:
    """Lowercase hex digests of :func:`url_hash_candidates` (UTF-8) in each algorithm."""
    candidates = [candidate.encode("utf-8") for candidate in url_hash_candidates(url)]
    digests: set[str] = set()
    for algorithm in algorithms:
        for candidate in candidates:
            digests.add(hashlib.new(algorithm, candidate, usedforsecurity=False).hexdigest())
    return frozenset(digests)
