"""Background threads of a serving process give way to the serving loop.

A DNS worker (or ``esafety serve``) is often given one core. Its background threads —
the decision log's flush, reads of who is where and of the lists — need milliseconds of
CPU at a time; at the loop's priority the kernel made them take turns with it, and
answers waited that long (the p99 latency of issue 4 "Figures"). At niceness 10 the
kernel runs the loop first whenever both want the core, and the background still gets
about a tenth of it: enough at any load the loop can answer, so nothing queues up.
"""

from __future__ import annotations

import contextlib
import os
import threading

__all__ = ["BACKGROUND_NICENESS", "yield_to_serving"]

BACKGROUND_NICENESS = 10


def yield_to_serving() -> None:
    """Lower the calling thread's priority by :data:`BACKGROUND_NICENESS` (Linux sets
    niceness per thread; elsewhere, or when refused, nothing changes)."""
    with contextlib.suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread) + BACKGROUND_NICENESS
        os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness))
