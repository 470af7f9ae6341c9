"""Counters for ``/metrics``, in the Prometheus text exposition format (version 0.0.4).

Parts of esafety that count things register a *collector*: a function of no arguments
that returns :class:`Sample`\\ s when asked, so nothing is computed between scrapes and
the hot paths keep plain integer counters (a DNS answer adds one to an ``int``; it never
touches this module)::

    unregister = metrics.register("radius", listener.samples)

A name is registered once; registering it again replaces the collector (a restarted
part registers anew), and the returned function removes it. A collector that fails is
logged and counted in ``esafety_metrics_collector_errors_total``; the others still show.

:func:`render` writes every sample, grouped by metric family with its ``# HELP`` and
``# TYPE`` lines; names and label names are checked, label values and help texts escaped.
"""

from __future__ import annotations

import logging
import math
import os
import re
import resource
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from typing import Literal

__all__ = [
    "CONTENT_TYPE",
    "Collector",
    "MetricsRegistry",
    "Sample",
    "counters_of",
    "process_samples",
    "register",
    "registry",
    "render",
]

log = logging.getLogger(__name__)

#: What ``/metrics`` answers with (Prometheus's text format, version 0.0.4).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

MetricType = Literal["counter", "gauge", "untyped"]

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_STARTED = time.time()


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one metric. Counters' names end in ``_total``."""

    name: str
    value: float
    help: str = ""
    type: MetricType = "untyped"
    labels: Mapping[str, str] = field(default_factory=dict)


Collector = Callable[[], Iterable[Sample]]


class MetricsRegistry:
    """The collectors of one process, by name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._collectors: dict[str, Collector] = {}
        self.errors = 0

    def register(self, name: str, collector: Collector) -> Callable[[], None]:
        """Add (or replace) the collector called ``name``; returns its removal."""
        if not name.strip():
            raise ValueError("a metrics collector needs a name")
        with self._lock:
            self._collectors[name] = collector

        def unregister() -> None:
            with self._lock:
                if self._collectors.get(name) is collector:
                    del self._collectors[name]

        return unregister

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._collectors)

    def collect(self) -> list[Sample]:
        """Every registered collector's samples (a failing collector is skipped and counted)."""
        with self._lock:
            collectors = sorted(self._collectors.items())
        samples: list[Sample] = []
        for name, collector in collectors:
            try:
                samples.extend(collector())
            except Exception:  # one broken part must not hide the others' counters
                self.errors += 1
                log.exception("metrics collector %r failed", name)
        samples.append(
            Sample(
                "esafety_metrics_collector_errors_total",
                self.errors,
                "Times a metrics collector failed while being read.",
                "counter",
            )
        )
        return samples


#: The process's registry.
registry = MetricsRegistry()


def register(name: str, collector: Collector) -> Callable[[], None]:
    """Register ``collector`` as ``name`` in the process's registry (see the module text)."""
    return registry.register(name, collector)


def counters_of(
    prefix: str,
    values: object,
    *,
    gauges: Iterable[str] = (),
    help_texts: Mapping[str, str] | None = None,
) -> list[Sample]:
    """Samples from a mapping of names to numbers, or from a dataclass of integer counters
    (such as the DNS filter's ``DnsCounters``).

    Each number becomes the counter ``<prefix>_<name>_total`` (a name that already
    starts with ``prefix`` or ends in ``_total`` is not given them twice); names in
    ``gauges`` are gauges (a queue's length), without ``_total``. A nested mapping (such
    as ``DnsCounters.extra``) adds its own names the same way.
    """
    helps = help_texts or {}
    gauge_names = frozenset(gauges)
    pairs: list[tuple[str, object]]
    if isinstance(values, Mapping):
        pairs = [(str(key), value) for key, value in values.items()]
    elif is_dataclass(values) and not isinstance(values, type):
        pairs = [(f.name, getattr(values, f.name)) for f in fields(values)]
    else:
        raise TypeError(f"cannot read counters from {type(values).__name__}")
    samples = []
    for key, value in pairs:
        if isinstance(value, Mapping):
            samples += counters_of(prefix, value, gauges=gauge_names, help_texts=helps)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        name = key if not prefix or key.startswith(prefix) else f"{prefix}_{key}"
        gauge = key in gauge_names
        if not gauge and not name.endswith("_total"):
            name += "_total"
        text = helps.get(key) or key.removesuffix("_total").replace("_", " ").capitalize() + "."
        samples.append(Sample(name, float(value), text, "gauge" if gauge else "counter"))
    return samples


def process_samples() -> list[Sample]:
    """The process's start time, CPU time, memory and open files, and esafety's version."""
    import esafety

    usage = resource.getrusage(resource.RUSAGE_SELF)
    samples = [
        Sample(
            "esafety_info",
            1,
            "esafety's version and Python's.",
            "gauge",
            {
                "version": getattr(esafety, "__version__", "0"),
                "python": ".".join(str(part) for part in sys.version_info[:3]),
            },
        ),
        Sample(
            "process_start_time_seconds",
            _STARTED,
            "Start time of the process since the Unix epoch, in seconds.",
            "gauge",
        ),
        Sample(
            "process_cpu_seconds_total",
            usage.ru_utime + usage.ru_stime,
            "User and system CPU time spent, in seconds.",
            "counter",
        ),
    ]
    resident = _resident_bytes()
    if resident is not None:
        samples.append(
            Sample("process_resident_memory_bytes", resident, "Resident memory, in bytes.", "gauge")
        )
    try:
        open_fds = len(os.listdir("/proc/self/fd"))
    except OSError:  # not Linux
        open_fds = None
    if open_fds is not None:
        samples.append(Sample("process_open_fds", open_fds, "Open file descriptors.", "gauge"))
    return samples


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


registry.register("process", process_samples)


# -- the text format ----------------------------------------------------------------------


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _check(sample: Sample) -> None:
    if not _NAME.match(sample.name):
        raise ValueError(f"metric name {sample.name!r} is not a Prometheus name")
    for label in sample.labels:
        if not _LABEL.match(label) or label.startswith("__"):
            raise ValueError(f"label {label!r} of {sample.name} is not a Prometheus label name")


def render(samples: Iterable[Sample] | None = None) -> str:
    """The samples (by default every registered collector's) as Prometheus text.

    A metric family appears once, its samples together, with the first help text and type
    given for it; a sample with a bad name is left out and logged, never half-written.
    """
    families: dict[str, tuple[Sample, list[Sample]]] = {}
    for sample in registry.collect() if samples is None else samples:
        try:
            _check(sample)
        except ValueError as error:
            log.error("metrics: %s; left out", error)
            continue
        found = families.get(sample.name)
        if found is None:
            families[sample.name] = (sample, [sample])
        else:
            found[1].append(sample)
    lines: list[str] = []
    for name, (first, members) in families.items():
        if first.help:
            lines.append(f"# HELP {name} {_escape_help(first.help)}")
        lines.append(f"# TYPE {name} {first.type}")
        seen: set[tuple[tuple[str, str], ...]] = set()
        for sample in members:
            key = tuple(sorted(sample.labels.items()))
            if key in seen:  # the same series twice would make the scrape fail
                continue
            seen.add(key)
            labels = ",".join(f'{k}="{_escape_label(v)}"' for k, v in key)
            lines.append(f"{name}{{{labels}}} {_number(sample.value)}" if labels else
                         f"{name} {_number(sample.value)}")  # fmt: skip
    return "\n".join(lines) + "\n"
