"""Decision-engine benchmark (issue 4 figures): 2,000,000 listed domains, compile time,
index memory, and host decisions per second on one core.

Run: ``.venv/bin/python bench/decision_engine.py [--domains N] [--decisions N]``.
Targets: compile ≤ 20 s, index ≤ 150 MB, ≥ 1,000,000 decisions/s. Hosts are already
normalised (as the DNS server hands them over); the mix is 90 % unlisted names (deep
CDN-style subdomains included), 10 % listed names or their subdomains, one query in
100 for a search engine (safe-search rewrite). Add ``--profile`` for where time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import random
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from esafety.filtering.categories import Category
from esafety.filtering.decision import Asker, FilterEngine
from esafety.filtering.index import FilterList, ListInfo, compile_index
from esafety.filtering.lists import DomainEntry
from esafety.filtering.policy import SchoolRules

_CATEGORIES = [
    Category.GAMBLING,
    Category.PORNOGRAPHY,
    Category.GAMES,
    Category.SOCIAL_MEDIA,
    Category.MALWARE,
    Category.PHISHING,
    Category.ADULT,
    Category.STREAMING,
    Category.DRUGS,
    Category.PORNOGRAPHY,
]
_TLDS = ["com", "net", "org", "co.uk", "io", "de", "xyz", "info", "org.uk", "fr"]


def _word(rng: random.Random) -> str:
    return "".join(rng.choices("abcdefghijklmnopqrstuvwxyz", k=rng.randint(4, 11)))


def generate(count: int, rng: random.Random) -> list[list[str]]:
    """``count`` distinct names split over 10 lists; some www./deeper names, as lists have."""
    words = [_word(rng) for _ in range(60_000)]
    lists: list[list[str]] = [[] for _ in range(10)]
    seen: set[str] = set()
    while len(seen) < count:
        name = f"{rng.choice(words)}{rng.randint(0, 99)}.{rng.choice(_TLDS)}"
        roll = rng.random()
        if roll < 0.15:
            name = f"www.{name}"
        elif roll < 0.20:
            name = f"{rng.choice(words)}.{name}"
        if name not in seen:
            seen.add(name)
            lists[rng.randrange(10)].append(name)
    return lists


def hosts_mix(lists: list[list[str]], count: int, rng: random.Random) -> list[str]:
    listed = [name for names in lists for name in names[:20_000]]
    words = [_word(rng) for _ in range(20_000)]
    hosts = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.05:
            hosts.append(rng.choice(listed))
        elif roll < 0.10:
            hosts.append(f"cdn{rng.randint(1, 9)}.static.{rng.choice(listed)}")
        elif roll < 0.11:
            hosts.append(rng.choice(["www.google.co.uk", "www.bing.com", "www.youtube.com"]))
        elif roll < 0.50:
            hosts.append(f"www.{rng.choice(words)}.{rng.choice(_TLDS)}")
        else:
            hosts.append(
                f"edge-{rng.randint(1, 99)}.img.cdn.{rng.choice(words)}.{rng.choice(_TLDS)}"
            )
    return hosts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--domains", type=int, default=2_000_000)
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--profile", action="store_true")
    options = parser.parse_args()
    rng = random.Random(4)
    names = generate(options.domains, rng)
    infos = [
        ListInfo(f"list{n}", f"List {n}", category, illegal=n == 9)
        for n, category in enumerate(_CATEGORIES)
    ]
    gc.collect()
    tracemalloc.start()
    started = time.perf_counter()
    index = compile_index(
        FilterList(info, (DomainEntry(name, line) for line, name in enumerate(entries, 1)))
        for info, entries in zip(infos, names, strict=True)
    )
    compile_seconds = time.perf_counter() - started
    index_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    print(
        f"compile {index.domain_count:,} domains: {compile_seconds:.1f} s "
        f"(target ≤ 20 s: {compile_seconds / 20:.2f} of it)"
    )
    print(
        f"index memory (tracemalloc, after compile): {index_bytes / 1e6:.0f} MB "
        f"(target ≤ 150 MB: {index_bytes / 150e6:.2f} of it)"
    )
    flat = [name for entries in names for name in entries]
    del names
    gc.collect()
    tracemalloc.start()
    as_set = set(flat)
    set_bytes = tracemalloc.get_traced_memory()[0] + sum(sys.getsizeof(s) for s in flat)
    tracemalloc.stop()
    print(f"a Python set of the same names, strings included: {set_bytes / 1e6:.0f} MB")
    del as_set
    engine = FilterEngine(index, SchoolRules())
    hosts = hosts_mix([flat[i::10] for i in range(10)], options.decisions, rng)
    del flat
    asker, now = Asker("ks2"), time.time()
    decide = engine.decide_host
    gc.collect()
    gc.disable()
    started = time.perf_counter()
    blocked = 0
    for host in hosts:
        if decide(asker, host, now).action == "block":
            blocked += 1
    elapsed = time.perf_counter() - started
    gc.enable()
    rate = len(hosts) / elapsed
    print(
        f"decisions: {len(hosts):,} in {elapsed:.2f} s = {rate:,.0f}/s, "
        f"{elapsed / len(hosts) * 1e6:.2f} µs each, {blocked / len(hosts):.1%} blocked "
        f"(target ≥ 1,000,000/s: {rate / 1e6:.2f} of it)"
    )
    if options.profile:
        profile = cProfile.Profile()
        profile.runcall(lambda: [decide(asker, h, now) for h in hosts[:200_000]])
        pstats.Stats(profile).sort_stats("tottime").print_stats(8)


if __name__ == "__main__":
    main()
