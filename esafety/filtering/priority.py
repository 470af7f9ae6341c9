"""Background threads of a serving process give way to the serving loop.

A DNS worker (or ``esafety serve``) is often given one core. Its background threads —
the decision log's flush, reads of who is where and of the lists — need milliseconds of
CPU at a time; at the loop's priority the kernel made them take turns with it, and
answers waited that long (the p99 latency of issue 4 "Figures"). At niceness 10 the
kernel runs the loop first whenever both want the core, and the background still gets
about a tenth of it: enough at any load the loop can answer, so nothing queues up.

Niceness alone still let a waking loop wait for the flush's turn to end: p99 at 80 % load
was about 3 ms, against unbound's 1.5 ms. The decision log's flush therefore runs in idle
time (``SCHED_IDLE``: the kernel runs it only when the loop does not want the core; p99
about 1.1 ms) while it keeps up, and goes back to niceness 10 when it falls behind
(:func:`catch_up`, decided by a watching thread, as the starved flush cannot), so a busy
loop cannot starve it until decisions are dropped. Going back needs the right to raise a
thread's priority (root, ``CAP_SYS_NICE``, or ``LimitNICE=`` in the systemd unit,
docs/deployment.md); without it the flush stays at niceness 10. The DNS filter's reads of
who is where and of the lists run in idle time the same way, given their turn when one
has waited a second (``esafety.filtering.dns_service``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import threading

__all__ = ["BACKGROUND_NICENESS", "catch_up", "run_in_idle_time", "yield_to_serving"]

BACKGROUND_NICENESS = 10
_CAP_SYS_NICE = 23


def yield_to_serving() -> None:
    """Lower the calling thread's priority by :data:`BACKGROUND_NICENESS` (Linux sets
    niceness per thread; elsewhere, or when refused, nothing changes)."""
    with contextlib.suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread) + BACKGROUND_NICENESS
        os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness))


def run_in_idle_time(thread: int) -> bool:
    """Run ``thread`` (a native thread id of this process) only when nothing else wants
    its core; True if it now does.

    Refused (False) when it could not :func:`catch_up` afterwards: it would stay idle-only
    for good."""
    if not _may_catch_up():
        return False
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(thread, os.SCHED_IDLE, os.sched_param(0))
        return True
    return False


def catch_up(thread: int) -> bool:
    """``thread`` back from idle time to the ordinary policy (its niceness kept); True if
    it took."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(thread, os.SCHED_OTHER, os.sched_param(0))
        return True
    return False


@functools.cache
def _may_catch_up() -> bool:
    """Whether this process may leave SCHED_IDLE again at :data:`BACKGROUND_NICENESS`:
    the kernel allows it with CAP_SYS_NICE, or when RLIMIT_NICE reaches that niceness."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:") and int(line.split()[1], 16) >> _CAP_SYS_NICE & 1:
                    return True
        soft, _hard = resource.getrlimit(resource.RLIMIT_NICE)
        return soft == resource.RLIM_INFINITY or soft >= 20 - BACKGROUND_NICENESS
    return False
