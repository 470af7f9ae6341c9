"""Refuse regular expressions that can backtrack catastrophically (ReDoS).

Python's ``re`` backtracks, so a pattern such as ``(a+)+$`` takes exponential time on a
string of a's, and a list line could stall the filter. A pattern is accepted only if a
static look at its parse tree shows every repetition is unambiguous:

- no backreferences, conditional groups or lookarounds, and at most ``MAX_PATTERN`` characters;
- inside a repetition, two repeated parts that could take the same character (``(a+)+``,
  ``(a*b*)*``, ``(.*a){10}``) must be kept apart by a required character neither can take
  (``([a-z0-9-]+\\.)*`` is fine: the dot ends each round);
- inside a repetition, alternatives may not start with the same character or be empty
  (``(a|a)*``, ``(a|ab)+``);
- outside repetitions, at most two overlapping repeats in a row (``.*a.*b`` is fine,
  ``.*a.*b.*c`` is polynomial and refused); matching also runs on input cut to a length.

The checker reads ``re._parser``'s tree. That module is private, so it is loaded in one
place and any shape it does not know refuses the pattern (fail closed), never accepts it.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from esafety.errors import InvalidInput

__all__ = ["MAX_PATTERN", "compile_safe", "unsafe_reason"]

MAX_PATTERN = 500

try:  # Python 3.11+: the parser behind re.compile (private; see the module docstring).
    _parser: Any = importlib.import_module("re._parser")
    _MAXREPEAT: int = importlib.import_module("re._constants").MAXREPEAT
except (ImportError, AttributeError):  # pragma: no cover - a future Python without it
    _parser = None
    _MAXREPEAT = 2**32 - 1

_REPEATS = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}
_SINGLE = {"LITERAL", "NOT_LITERAL", "ANY", "IN"}
_CATEGORIES = {
    "CATEGORY_DIGIT": re.compile(r"\d"),
    "CATEGORY_NOT_DIGIT": re.compile(r"\D"),
    "CATEGORY_SPACE": re.compile(r"\s"),
    "CATEGORY_NOT_SPACE": re.compile(r"\S"),
    "CATEGORY_WORD": re.compile(r"\w"),
    "CATEGORY_NOT_WORD": re.compile(r"\W"),
}
# Characters beyond ASCII that categories and negated sets are tried on.
_SAMPLES = "éßΩжд中٣\u00a0\u2003\ue000\U0001f600"


class Unsafe(Exception):
    """Internal: the reason a pattern is refused."""


def _name(op: Any) -> str:
    return str(getattr(op, "name", op))


@dataclass(frozen=True, slots=True)
class _Item:
    chars: frozenset[str]  # every character the item can take (over the sample universe)
    min_len: int
    repeats: bool  # holds a repetition of more than once


class _Checker:
    def __init__(self, tree: Any, ignore_case: bool) -> None:
        self.ignore_case = ignore_case
        extra: set[int] = set()
        self._collect(tree, extra)
        codes = set(range(0x250)) | {ord(c) for c in _SAMPLES}
        for code in extra:
            codes.update(c for c in (code - 1, code, code + 1) if 0 <= c <= 0x10FFFF)
        self.universe = [chr(code) for code in sorted(codes)]
        self.all = frozenset(self.universe)

    def _collect(self, node: Any, out: set[int]) -> None:
        """Every code point named in the pattern (literals, range ends)."""
        if isinstance(node, int) and not isinstance(node, bool):
            if 0 <= node <= 0x10FFFF:
                out.add(node)
        elif isinstance(node, list | tuple):
            for part in node:
                self._collect(part, out)
        elif hasattr(node, "data"):
            self._collect(node.data, out)

    # -- character sets -------------------------------------------------------------

    def _member(self, op: str, av: Any) -> Callable[[str], bool]:
        if op == "LITERAL":
            return lambda ch: ch == chr(av)
        if op == "NOT_LITERAL":
            return lambda ch: ch != chr(av)
        if op == "ANY":
            return lambda ch: True
        if op == "RANGE":
            low, high = av
            return lambda ch: low <= ord(ch) <= high
        if op == "CATEGORY":
            category = _CATEGORIES.get(_name(av))
            if category is None:
                raise Unsafe(f"cannot check the class {_name(av)}")
            return lambda ch: category.fullmatch(ch) is not None
        if op == "IN":
            negate = bool(av) and _name(av[0][0]) == "NEGATE"
            parts = [self._member(_name(o), a) for o, a in (av[1:] if negate else av)]
            if negate:
                return lambda ch: not any(part(ch) for part in parts)
            return lambda ch: any(part(ch) for part in parts)
        raise Unsafe(f"cannot check the construct {op}")

    def _set(self, op: str, av: Any) -> frozenset[str]:
        member = self._member(op, av)
        if self.ignore_case:
            return frozenset(
                ch for ch in self.universe if member(ch) or member(ch.lower()) or member(ch.upper())
            )
        return frozenset(ch for ch in self.universe if member(ch))

    # -- items ---------------------------------------------------------------------

    def item(self, op: str, av: Any) -> _Item:
        if op in _SINGLE:
            return _Item(self._set(op, av), 1, False)
        if op == "AT":
            return _Item(frozenset(), 0, False)
        if op == "SUBPATTERN":
            return self.sequence(av[3])
        if op == "ATOMIC_GROUP":
            return self.sequence(av)
        if op == "BRANCH":
            branches = [self.sequence(branch) for branch in av[1]]
            return _Item(
                frozenset().union(*(b.chars for b in branches)),
                min(b.min_len for b in branches),
                any(b.repeats for b in branches),
            )
        if op in _REPEATS:
            low, high, body = av
            inner = self.sequence(body)
            return _Item(inner.chars, low * inner.min_len, inner.repeats or high > 1)
        raise Unsafe(f"cannot check the construct {op}")

    def sequence(self, sub: Any) -> _Item:
        items = [self.item(_name(op), av) for op, av in sub]
        return _Item(
            frozenset().union(*(i.chars for i in items)),
            sum(i.min_len for i in items),
            any(i.repeats for i in items),
        )

    def flatten(self, sub: Iterable[Any]) -> list[tuple[str, Any]]:
        """The sequence with plain groups spliced in: (ab)c is abc for this purpose."""
        out: list[tuple[str, Any]] = []
        for op, av in sub:
            name = _name(op)
            if name == "SUBPATTERN":
                out.extend(self.flatten(av[3]))
            else:
                out.append((name, av))
        return out

    # -- rules ---------------------------------------------------------------------

    def unseparated(self, items: Sequence[_Item], cyclic: bool) -> list[list[int]]:
        """Pairs (as index chains) of repeats that can trade characters with each other."""
        repeats = [index for index, item in enumerate(items) if item.repeats]
        pairs: list[list[int]] = []
        count = len(items)
        for start in repeats:
            steps = range(1, count + 1) if cyclic else range(1, count - start)
            for step in steps:
                end = (start + step) % count
                if not items[end].repeats:
                    continue
                both = items[start].chars | items[end].chars
                between = [items[(start + k) % count] for k in range(1, step)]
                separated = any(b.min_len >= 1 and not (b.chars & both) for b in between)
                if not separated and items[start].chars & items[end].chars:
                    pairs.append([start, end])
        return pairs

    def check_repeat_body(self, body: Any) -> None:
        flat = self.flatten(body)
        items = [self.item(op, av) for op, av in flat]
        if self.unseparated(items, cyclic=True):
            raise Unsafe(
                "nested repetition that can match the same text in many ways (as in (a+)+);"
                " put a required character that neither part can match between them"
            )

    def check_branch(self, av: Any) -> None:
        branches = [self.sequence(branch) for branch in av[1]]
        firsts = [self.first(branch) for branch in av[1]]
        overlapping = any(
            first & other for index, first in enumerate(firsts) for other in firsts[index + 1 :]
        )
        # re's parser turns (a|ab) into a(|b), so an empty alternative is the same fault.
        if overlapping or any(branch.min_len == 0 for branch in branches):
            raise Unsafe(
                "alternatives inside a repetition that can match the same text"
                " (as in (a|a)*, (a|ab)* or (a|)*)"
            )

    def first(self, sub: Any) -> frozenset[str]:
        """Characters a sequence can start with."""
        found: frozenset[str] = frozenset()
        for op, av in self.flatten(sub):
            item = self.item(op, av)
            if op in _REPEATS:
                found |= self.first(av[2])
            elif op == "BRANCH":
                found |= frozenset().union(*(self.first(b) for b in av[1]))
            else:
                found |= item.chars
            if item.min_len >= 1:
                return found
        return found

    def walk(self, sub: Any, in_repeat: bool) -> None:
        flat = self.flatten(sub)
        if not in_repeat:
            items = [self.item(op, av) for op, av in flat]
            chains = self.unseparated(items, cyclic=False)
            linked = {index for pair in chains for index in pair}
            if len(linked) > 2 and len(chains) >= 2:
                raise Unsafe(
                    "three or more overlapping repeats in a row (as in .*a.*b.*c);"
                    " drop a leading or trailing .* (a pattern is found anywhere)"
                )
        for op, av in flat:
            if op == "ATOMIC_GROUP":
                self.walk(av, in_repeat)
            elif op == "BRANCH":
                if in_repeat:
                    self.check_branch(av)
                for branch in av[1]:
                    self.walk(branch, in_repeat)
            elif op in _REPEATS:
                high = av[1]
                if high > 1:
                    self.check_repeat_body(av[2])
                self.walk(av[2], in_repeat or high > 1)
            elif op not in _SINGLE and op != "AT":
                raise Unsafe(f"cannot check the construct {op}")


_FORBIDDEN = {
    "GROUPREF": "a backreference (as in (a)\\1)",
    "GROUPREF_EXISTS": "a conditional group (as in (?(1)a|b))",
    "ASSERT": "a lookahead or lookbehind (as in (?=a))",
    "ASSERT_NOT": "a negative lookahead or lookbehind (as in (?!a))",
}


def _check_forbidden(node: Any) -> None:
    """Refuse constructs that make matching time unbounded whatever the rest looks like."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, list | tuple):
            if len(current) == 2 and _name(current[0]) in _FORBIDDEN:
                raise Unsafe(_FORBIDDEN[_name(current[0])])
            stack.extend(current)
        elif hasattr(current, "data"):
            stack.append(current.data)


def _uses_ignore_case(tree: Any) -> bool:
    if tree.state.flags & re.IGNORECASE:
        return True
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list | tuple):
            if len(node) == 2 and _name(node[0]) == "SUBPATTERN" and node[1][1] & re.IGNORECASE:
                return True
            stack.extend(node)
        elif hasattr(node, "data"):
            stack.append(node.data)
    return False


def unsafe_reason(pattern: str) -> str | None:
    """Why ``pattern`` is refused, or None if it is safe to match with ``re``."""
    if len(pattern) > MAX_PATTERN:
        return f"longer than {MAX_PATTERN} characters"
    if not pattern:
        return "empty pattern"
    try:
        re.compile(pattern)
    except re.error as error:
        return f"not a valid regular expression: {error}"
    if _parser is None:  # pragma: no cover
        return "this Python cannot check regular expressions"
    try:
        tree = _parser.parse(pattern, 0)
        _check_forbidden(tree)
        checker = _Checker(tree, _uses_ignore_case(tree))
        checker.walk(tree, in_repeat=False)
    except Unsafe as reason:
        return str(reason)
    except (TypeError, ValueError, AttributeError, IndexError, KeyError, RecursionError) as error:
        # A parse-tree shape this checker does not know: refuse, never accept.
        return f"cannot check this pattern ({type(error).__name__})"
    return None


def compile_safe(pattern: str) -> re.Pattern[str]:
    """Compile a pattern that passed the checker, or explain why it is refused."""
    reason = unsafe_reason(pattern)
    if reason is not None:
        raise InvalidInput(f"regular expression {pattern!r} refused: {reason}")
    return re.compile(pattern)
