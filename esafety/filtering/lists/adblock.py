"""AdBlock-style domain rules, the subset a DNS filter can honour (as AdGuard Home does).

Imported: ``||example.com^`` (example.com and below), ``@@||example.com^`` (an exception),
``||example.com^$important`` and other options that keep the rule about the whole site,
and plain names. Comments (``!``, ``#``) and the ``[Adblock Plus 2.0]`` header are skipped.
Everything else (cosmetic ``##`` rules, path rules, ``/regex/`` rules, options that narrow
a rule to some requests or change its meaning) is reported as unsupported, line by line:
importing such a rule as a whole-site block would over-block (003 §7.3.1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from esafety.filtering.lists.entries import ListItem, ListProblem
from esafety.filtering.lists.lines import ListSource, numbered_lines
from esafety.filtering.lists.names import domain_item

__all__ = ["WHOLE_SITE_OPTIONS", "parse_adblock"]

#: Options that leave a rule about the whole site, so a DNS filter may apply it as it is.
WHOLE_SITE_OPTIONS = frozenset(
    {"important", "all", "document", "doc", "third-party", "3p", "first-party", "1p", "popup"}
)

_COSMETIC = re.compile(r"#[@?$%]?#|#@?[$?]#|\$\$|#\+js")
_NAME = re.compile(r"[^|^/*$@]+")


def _unsupported_options(options: str) -> list[str]:
    names = (option.strip().lstrip("~").split("=", 1)[0].lower() for option in options.split(","))
    return [name for name in names if name and name not in WHOLE_SITE_OPTIONS]


def _rule(number: int, text: str, rule: str) -> ListItem:
    exception = rule.startswith("@@")
    if exception:
        rule = rule[2:]
    body, _, options = rule.partition("$")
    unsupported = _unsupported_options(options)
    if unsupported:
        return ListProblem(
            number,
            text,
            f"unsupported: option(s) {', '.join(unsupported)} narrow or change the rule",
        )
    if body.startswith("||"):
        name = body[2:]
        if name.endswith("|"):
            name = name[:-1]
        if name.endswith("^"):
            name = name[:-1]
        if name.startswith("*."):
            name = name[2:]  # ||*.example.com^ is ||example.com^ here: subdomains are covered
        if not name or not _NAME.fullmatch(name):
            return ListProblem(number, text, "unsupported: not a whole-site rule '||name^'")
        return domain_item(name, number, exception=exception)
    if body.startswith("/") and body.endswith("/") and len(body) > 1:
        return ListProblem(number, text, "unsupported: regex rule (import with --format regex)")
    if _NAME.fullmatch(body) and "." in body:
        return domain_item(body, number, exception=exception)
    return ListProblem(number, text, "unsupported: not a whole-site rule '||name^'")


def parse_adblock(source: ListSource) -> Iterator[ListItem]:
    for item in numbered_lines(source):
        if isinstance(item, ListProblem):
            yield item
            continue
        number, text = item
        rule = text.strip()
        if not rule or (rule[0] in "!#" and not _COSMETIC.match(rule)):
            continue
        if rule.startswith("[") and rule.endswith("]"):
            continue  # the header, e.g. [Adblock Plus 2.0]
        if _COSMETIC.search(rule):
            yield ListProblem(number, text, "unsupported: cosmetic rule (hides page elements)")
            continue
        yield _rule(number, text, rule)
