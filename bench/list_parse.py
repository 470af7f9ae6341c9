"""List parsing benchmark: 1,000,000 domain lines through ``parse_list`` (issue 4 §3).

Run: ``.venv/bin/python bench/list_parse.py [--lines N]``. Writes a generated domains file
(a mix of plain names, www. names, wildcards, upper case, comments and a few bad lines)
to a temporary folder, then times streaming it from the file. No target yet: the figure.
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from esafety.filtering.lists import ListFormat, ParsedList, parse_list


def write_list(path: Path, lines: int) -> None:
    rng = random.Random(4)
    words = ["casino", "bet", "poker", "slots", "win", "lucky", "spin", "jackpot", "odds"]
    tlds = ["com", "net", "org", "co.uk", "io", "bet", "xyz"]
    with path.open("w", encoding="utf-8") as out:
        for number in range(lines):
            name = f"{rng.choice(words)}{number}.{rng.choice(tlds)}"
            roll = rng.random()
            if roll < 0.10:
                name = f"www.{name}"
            elif roll < 0.15:
                name = f"*.{name}"
            elif roll < 0.18:
                name = name.upper()
            elif roll < 0.19:
                name = f"# comment {number}"
            elif roll < 0.191:
                name = f"bad..{name}"
            out.write(name + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=1_000_000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "domains"
        write_list(path, options.lines)
        started = time.perf_counter()
        summary = ParsedList(ListFormat.DOMAINS)
        for _entry in summary.entries(parse_list(path, "domains")):
            pass
        elapsed = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rate = options.lines / elapsed
    print(
        f"parse {options.lines:,} domain lines: {elapsed:.2f} s ({rate:,.0f} lines/s,"
        f" {elapsed / options.lines * 1e6:.2f} µs a line); process peak RSS"
        f" {peak / 1e6:.0f} MB (streamed, nothing kept)"
    )
    print(
        f"entries {summary.entry_count:,} {dict(summary.counts)}; problems"
        f" {summary.problem_count:,}; reference: none yet"
    )


if __name__ == "__main__":
    main()
