"""Host names and IP literals: one normal form for the DNS filter, the proxy, list import
and ``filter check``.

The normal form of a host is the string every list, rule and decision compares on:

- a **name** in lowercase A-label (ASCII, punycode) form, without a trailing dot,
  e.g. ``bücher.example`` → ``xn--bcher-kva.example``;
- an **IPv4 address** as a dotted quad, however it was written (``3232235777``,
  ``0300.0250.0.1``, ``0xC0A80001``, ``192.168.1`` → ``192.168.0.1``/``192.168.1.1``),
  parsed as browsers do (the WHATWG URL standard's IPv4 parser);
- an **IPv6 address** in compressed form without brackets (``[2001:DB8:0::1]`` →
  ``2001:db8::1``); an IPv4-mapped address (``::ffff:192.168.0.1``) is the IPv4 address.

Names follow what browsers accept (UTS 46 processing as the WHATWG URL standard runs it:
fullwidth letters and the ideographic dots 。．｡ are mapped, percent-encoded bytes
decoded, ``CheckHyphens`` off), because a filter that refuses a name a browser will
visit is a filter with a hole. So ASCII labels may contain ``_`` (DNS service names,
some CDN hosts) and may begin or end with ``-`` (Blogger has such hosts); non-ASCII
labels may hold emoji (``i❤.ws`` is registered and browsers reach it). What is refused:
empty labels, labels over 63 octets, names over 253 octets, characters no host can
contain, and ``xn--`` labels that are not valid punycode of a valid label. A label of
digits that is not a valid IPv4 part (``08``: 8 is not an octal digit) is a name, as the
system resolver treats it.

The DNS filter calls :func:`normalise_host` on every query name; for the common plain
lowercase ASCII name it returns the argument after one precompiled regex match.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum

import idna
from publicsuffixlist import PublicSuffixList

from esafety.errors import InvalidInput

__all__ = [
    "MAX_LABEL_OCTETS",
    "MAX_NAME_OCTETS",
    "Host",
    "HostKind",
    "InvalidHost",
    "display_host",
    "host_matches",
    "is_plain_ascii_host",
    "normalise_host",
    "parent_domains",
    "parse_authority",
    "parse_host",
    "public_suffix",
    "registrable_domain",
]

#: RFC 1035 §2.3.4 limits, counted on the A-label form without the trailing dot.
MAX_LABEL_OCTETS = 63
MAX_NAME_OCTETS = 253

# Longer input cannot be a host even percent-encoded (253 octets x 3); refusing it early
# keeps hostile input from costing time in the IDNA tables.
_MAX_INPUT_CHARS = 1024

# A plain name: lowercase LDH (and "_") labels, none starting "xn--" (those need punycode
# checks), the last not all digits nor 0x-hex (those are IPv4 in browsers), no trailing dot.
_LABEL = r"(?!xn--)[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_LAST_LABEL = r"(?![0-9]+\Z)(?!0x[0-9a-f]*\Z)" + _LABEL
_PLAIN_HOST = re.compile(rf"(?:{_LABEL}\.)*{_LAST_LABEL}")
_IPV4_CANONICAL = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}")

_ASCII_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
# WHATWG "forbidden domain code points": C0 controls, space, DEL and URL delimiters.
_FORBIDDEN = frozenset([chr(c) for c in range(0x21)] + ["\x7f", *"#%/:<>?@[\\]^|"])
_CONFUSABLE_SCRIPTS = frozenset({"LATIN", "CYRILLIC", "GREEK"})


class InvalidHost(InvalidInput):
    """A host name or address that cannot be used; ``reason`` says why in plain words."""

    def __init__(self, text: object, reason: str) -> None:
        shown = (
            repr(text) if not isinstance(text, str) or len(text) <= 80 else repr(text[:77]) + "…"
        )
        super().__init__(f"host name {shown} is not valid: {reason}")
        self.text = text
        self.reason = reason


class HostKind(StrEnum):
    NAME = "name"
    IPV4 = "ipv4"
    IPV6 = "ipv6"


@dataclass(frozen=True, slots=True)
class Host:
    """A normalised host: ``name`` is the normal form described in the module docstring."""

    name: str
    kind: HostKind = HostKind.NAME

    @property
    def is_ip(self) -> bool:
        return self.kind is not HostKind.NAME

    @property
    def labels(self) -> tuple[str, ...]:
        """The name's labels, most specific first; empty for an IP address."""
        return () if self.is_ip else tuple(self.name.split("."))

    @property
    def url_form(self) -> str:
        """The host as written in a URL: IPv6 in brackets."""
        return f"[{self.name}]" if self.kind is HostKind.IPV6 else self.name

    @property
    def display(self) -> str:
        return display_host(self.name) if self.kind is HostKind.NAME else self.name

    def __str__(self) -> str:
        return self.name


def is_plain_ascii_host(text: str) -> bool:
    """True when ``text`` is already in normal form as a plain lowercase ASCII name.

    The DNS filter's fast check: such a name needs no further work.
    """
    return len(text) <= MAX_NAME_OCTETS and _PLAIN_HOST.fullmatch(text) is not None


def normalise_host(text: str) -> str:
    """The normal form of a host name, IP address or URL authority (``user@host:port``).

    Raises :class:`InvalidHost` with the reason when it cannot be a host.
    """
    if len(text) <= MAX_NAME_OCTETS and _PLAIN_HOST.fullmatch(text) is not None:
        return text
    return parse_host(text).name


def parse_host(text: str) -> Host:
    """Like :func:`normalise_host`, returning a :class:`Host` (name or IP, and its kind)."""
    if not isinstance(text, str):
        raise InvalidHost(text, "expected text")
    if len(text) <= MAX_NAME_OCTETS and _PLAIN_HOST.fullmatch(text) is not None:
        return Host(text)
    return parse_authority(text)[0]


def parse_authority(text: str) -> tuple[Host, int | None]:
    """Split ``[userinfo@]host[:port]`` into the normalised host and the port (or None).

    The userinfo is dropped: it never changes which site is reached (and
    ``trusted.example@evil.example`` is a classic disguise for ``evil.example``).
    """
    original = text
    text = text.strip(" \t\r\n\f\v")
    if not text:
        raise InvalidHost(original, "it is empty")
    if "@" in text:
        # The last "@" ends the userinfo, as in browsers.
        text = text.rpartition("@")[2]
    if len(text) > _MAX_INPUT_CHARS:
        raise InvalidHost(
            original,
            f"it is {len(text)} characters long; a host name is at most {MAX_NAME_OCTETS} octets",
        )
    for ch in "/\\?#":
        if ch in text:
            raise InvalidHost(
                original,
                f"it contains {ch!r}, which belongs to a web address, not a host name: "
                "give only the name (such as www.example.com)",
            )
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise InvalidHost(original, "an IPv6 address opened with '[' is not closed with ']'")
        host = _parse_ipv6(text[1:end], original)
        rest = text[end + 1 :]
        if rest and not rest.startswith(":"):
            raise InvalidHost(original, f"unexpected {rest!r} after the IPv6 address")
        return host, _parse_port(rest[1:], original) if rest else None
    if text.count(":") >= 2:
        return _parse_ipv6(text, original), None
    port: int | None = None
    if ":" in text:
        text, _, port_text = text.partition(":")
        port = _parse_port(port_text, original)
    return _parse_name_or_ipv4(text, original), port


def _parse_port(text: str, original: str) -> int | None:
    if text == "":
        return None
    if not (text.isascii() and text.isdigit()):
        raise InvalidHost(original, f"port {text!r} is not a number")
    port = int(text)
    if port > 65535:
        raise InvalidHost(original, f"port {text} is out of range (0 to 65535)")
    return port


def _parse_ipv6(text: str, original: str) -> Host:
    if "%" in text:
        # A zone id (fe80::1%eth0) names an interface on one machine, not a site.
        raise InvalidHost(original, "IPv6 zone ids ('%' and an interface name) are not allowed")
    try:
        address = ipaddress.IPv6Address(text)
    except ValueError as error:
        raise InvalidHost(original, f"{text!r} is not an IPv6 address ({error})") from None
    mapped = address.ipv4_mapped
    if mapped is not None:
        return Host(str(mapped), HostKind.IPV4)
    return Host(address.compressed, HostKind.IPV6)


def _parse_name_or_ipv4(text: str, original: str) -> Host:
    if "%" in text:
        raw = urllib.parse.unquote_to_bytes(text)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidHost(original, "its percent-encoded bytes are not UTF-8 text") from None
    if not text.isascii():
        try:
            text = idna.uts46_remap(text, std3_rules=False)
        except idna.IDNAError as error:
            raise InvalidHost(
                original, f"it contains a character no host name can have ({error})"
            ) from None
    else:
        text = text.lower()
    # Checked after mapping: fullwidth "／" maps to "/", which must not pass.
    for position, ch in enumerate(text):
        if ch in _FORBIDDEN:
            raise InvalidHost(original, f"it contains {_describe(ch)} at position {position + 1}")
    if text.endswith("."):
        text = text[:-1]
    if not text:
        raise InvalidHost(original, "it is empty")
    ipv4 = _parse_ipv4(text, original)
    if ipv4 is not None:
        return Host(ipv4, HostKind.IPV4)
    alabels = [_to_alabel(label, original) for label in text.split(".")]
    name = ".".join(alabels)
    if len(name) > MAX_NAME_OCTETS:
        raise InvalidHost(
            original,
            f"it is {len(name)} octets long; a host name may have at most {MAX_NAME_OCTETS}",
        )
    return Host(name)


def _describe(ch: str) -> str:
    if ch == " ":
        return "a space"
    if ord(ch) < 0x20 or ch == "\x7f":
        return f"a control character (U+{ord(ch):04X})"
    return f"the character {ch!r}"


def _ipv4_number(part: str) -> int | None:
    """One part of an IPv4 address as browsers read it (0x hex, leading-0 octal, decimal)."""
    if part == "":
        return None
    if part[:2] in ("0x", "0X"):
        digits, base, allowed = part[2:], 16, "0123456789abcdefABCDEF"
    elif len(part) > 1 and part[0] == "0":
        digits, base, allowed = part[1:], 8, "01234567"
    else:
        digits, base, allowed = part, 10, "0123456789"
    if digits == "":
        return 0
    # int() also accepts "_", "+" and spaces; these are not IPv4.
    if any(ch not in allowed for ch in digits):
        return None
    return int(digits, base)


def _parse_ipv4(text: str, original: str) -> str | None:
    """The dotted quad for an IPv4 address in any browser form, or None if not IPv4."""
    parts = text.split(".")
    if len(parts) > 4:
        return None
    numbers = [_ipv4_number(part) for part in parts]
    if any(number is None for number in numbers):
        return None
    values = [number for number in numbers if number is not None]
    for value in values[:-1]:
        if value > 255:
            raise InvalidHost(original, f"IPv4 part {value} is over 255")
    limit = 256 ** (5 - len(values))
    if values[-1] >= limit:
        raise InvalidHost(
            original, f"IPv4 address value {values[-1]} is too large (at most {limit - 1} here)"
        )
    address = values[-1]
    for index, value in enumerate(values[:-1]):
        address += value << (8 * (3 - index))
    return str(ipaddress.IPv4Address(address))


def _to_alabel(label: str, original: str) -> str:
    if label == "":
        raise InvalidHost(
            original, "it has an empty label (two dots together, or a dot at the start)"
        )
    if label.isascii():
        for ch in label:
            if ch not in _ASCII_LABEL_CHARS:
                raise InvalidHost(original, f"label {label!r} contains {_describe(ch)}")
        if label.startswith("xn--"):
            _check_alabel(label, original)
        alabel = label
    else:
        _check_unicode_label(label, original)
        alabel = "xn--" + label.encode("punycode").decode("ascii")
    if len(alabel) > MAX_LABEL_OCTETS:
        shown = label if len(label) <= 20 else label[:17] + "…"
        raise InvalidHost(
            original,
            f"label {shown!r} is {len(alabel)} octets long; a label may have at most {MAX_LABEL_OCTETS}",
        )
    return alabel


def _check_alabel(label: str, original: str) -> None:
    """An xn-- label must be the punycode of a valid non-ASCII label, exactly."""
    try:
        ulabel = label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError, OverflowError):
        raise InvalidHost(original, f"label {label!r} is not valid punycode") from None
    if ulabel.isascii():
        raise InvalidHost(
            original, f"label {label!r} is not a valid A-label: it decodes to plain ASCII"
        )
    try:
        mapped = idna.uts46_remap(ulabel, std3_rules=False)
    except idna.IDNAError:
        raise InvalidHost(
            original, f"label {label!r} decodes to characters no host name can have"
        ) from None
    if mapped != ulabel or "xn--" + ulabel.encode("punycode").decode("ascii") != label:
        raise InvalidHost(
            original, f"label {label!r} is not in the standard (normalised) punycode form"
        )
    _check_unicode_label(ulabel, original)


def _check_unicode_label(label: str, original: str) -> None:
    """UTS 46 validity as browsers apply it (CheckHyphens off, joiners and bidi on)."""
    if unicodedata.category(label[0]).startswith("M"):
        raise InvalidHost(original, f"label {label!r} starts with a combining mark")
    for ch in label:
        if ch.isascii() and ch not in _ASCII_LABEL_CHARS:
            raise InvalidHost(original, f"label {label!r} contains {_describe(ch)}")
    try:
        idna.check_label(label)
    except idna.InvalidCodepointContext as error:
        raise InvalidHost(
            original, f"label {label!r} has a joining character out of place ({error})"
        ) from None
    except idna.IDNABidiError as error:
        raise InvalidHost(
            original, f"label {label!r} breaks the right-to-left text rules ({error})"
        ) from None
    except idna.IDNAError:
        # IDNA 2008 refuses emoji, symbols and edge hyphens; browsers (UTS 46) allow them.
        pass


def display_host(host: str) -> str:
    """The host as a person reads it: Unicode labels, except mixed-script look-alikes.

    A label that mixes Latin, Cyrillic or Greek letters (``аpple`` with a Cyrillic ``а``)
    stays in its ``xn--`` form, as browsers show it, so a teacher is not told that
    ``apple.com`` was blocked when another site was.
    """
    parsed = parse_host(host)
    if parsed.is_ip:
        return parsed.name
    shown = []
    for label in parsed.labels:
        if label.startswith("xn--"):
            ulabel = label[4:].encode("ascii").decode("punycode")
            shown.append(label if _mixes_confusable_scripts(ulabel) else ulabel)
        else:
            shown.append(label)
    return ".".join(shown)


def _mixes_confusable_scripts(label: str) -> bool:
    scripts = {unicodedata.name(ch, "").partition(" ")[0] for ch in label if ch.isalpha()}
    return len(scripts & _CONFUSABLE_SCRIPTS) >= 2


@functools.cache
def _public_suffix_list(private_suffixes: bool) -> PublicSuffixList:
    # The copy bundled in the publicsuffixlist package; nothing is fetched at run time.
    return PublicSuffixList(only_icann=not private_suffixes)


def registrable_domain(host: str, *, private_suffixes: bool = True) -> str | None:
    """The part of ``host`` registered by one owner (``a.b.example.co.uk`` → ``example.co.uk``).

    From the Public Suffix List bundled with the ``publicsuffixlist`` package. With
    ``private_suffixes`` (the default) suffixes such as ``github.io`` count, so
    ``someone.github.io`` is its own site. None for IP addresses and bare suffixes.
    """
    parsed = parse_host(host)
    if parsed.is_ip:
        return None
    result: str | None = _public_suffix_list(private_suffixes).privatesuffix(parsed.name)
    return result


def public_suffix(host: str, *, private_suffixes: bool = True) -> str | None:
    """The public suffix of ``host`` (``example.co.uk`` → ``co.uk``); None for IPs."""
    parsed = parse_host(host)
    if parsed.is_ip:
        return None
    result: str | None = _public_suffix_list(private_suffixes).publicsuffix(parsed.name)
    return result


def _is_ip_form(host: str) -> bool:
    return ":" in host or _IPV4_CANONICAL.fullmatch(host) is not None


def host_matches(host: str, listed: str) -> bool:
    """True when normalised ``host`` is ``listed`` or a subdomain of it.

    Only at a label boundary: ``badexample.com`` is not under ``example.com``. An IP
    address matches only itself. Both arguments must already be normalised.
    """
    if host == listed:
        return True
    if _is_ip_form(listed) or _is_ip_form(host):
        return False
    return len(host) > len(listed) and host.endswith(listed) and host[-len(listed) - 1] == "."


def parent_domains(host: str) -> Iterator[str]:
    """``a.b.c.com``, ``b.c.com``, ``c.com``, ``com``; an IP address yields only itself.

    ``host`` must already be normalised. The order (most specific first) is the order in
    which a compiled index should look names up.
    """
    yield host
    if _is_ip_form(host):
        return
    dot = host.find(".")
    while dot >= 0:
        yield host[dot + 1 :]
        dot = host.find(".", dot + 1)
