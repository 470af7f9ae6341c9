"""The serving loop comes first: its thread takes the core back at once, and background
threads of a serving process give way to it.

A DNS worker (or ``esafety serve``) is often given one core. Its background threads —
the decision log's flush, reads of who is where and of the lists — need milliseconds of
CPU at a time. At the loop's priority the kernel made them take turns with it, and
answers waited that long (the p99 latency of issue 4 "Figures"). Two settings, neither
needing privileges:

* Background threads run at niceness 10: when both want the core the kernel runs the
  loop first, and the background still gets about a tenth of it, enough at any load the
  loop can answer, so nothing queues up.
* The serving thread asks for the shortest time slice Linux allows (0.1 ms, through
  ``sched_setattr``; Linux 6.12 and later). Linux's scheduler (EEVDF) lets a thread that
  has just been given the core run out its slice, 1.4 ms or more, before a waking one
  takes over, unless the waking one's slice is the shorter: so a packet arriving while the
  log is being written woke the loop, and the loop then waited for the writer's slice to
  end. With the shorter slice it takes the core back as soon as it wakes. Niceness alone
  cannot do this: it sets shares, not how soon a waking thread runs.

Everything here is best effort: on other systems, older kernels or when refused, nothing
changes and serving goes on.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import threading

__all__ = ["BACKGROUND_NICENESS", "SERVING_SLICE_NS", "serve_promptly", "yield_to_serving"]

BACKGROUND_NICENESS = 10
#: The serving thread's time slice: Linux's shortest (it clamps to 0.1-100 ms).
SERVING_SLICE_NS = 100_000

#: sched_setattr and sched_getattr by machine (Python's os module has neither).
_SYSCALLS = {"x86_64": (314, 315), "aarch64": (274, 275)}


class _SchedAttr(ctypes.Structure):
    """``struct sched_attr`` (linux/sched/types.h), as far as SCHED_ATTR_SIZE_VER1."""

    _fields_ = [
        ("size", ctypes.c_uint32),
        ("sched_policy", ctypes.c_uint32),
        ("sched_flags", ctypes.c_uint64),
        ("sched_nice", ctypes.c_int32),
        ("sched_priority", ctypes.c_uint32),
        ("sched_runtime", ctypes.c_uint64),
        ("sched_deadline", ctypes.c_uint64),
        ("sched_period", ctypes.c_uint64),
        ("sched_util_min", ctypes.c_uint32),
        ("sched_util_max", ctypes.c_uint32),
    ]


def yield_to_serving() -> None:
    """Lower the calling thread's priority by :data:`BACKGROUND_NICENESS` (Linux sets
    niceness per thread) and give it the kernel's usual time slice, longer than the
    serving thread's (a thread inherits its creator's); elsewhere, or when refused,
    nothing changes."""
    with contextlib.suppress(OSError, AttributeError):
        thread = threading.get_native_id()
        niceness = os.getpriority(os.PRIO_PROCESS, thread) + BACKGROUND_NICENESS
        os.setpriority(os.PRIO_PROCESS, thread, min(19, niceness))
    _set_slice(0)


def serve_promptly() -> bool:
    """Give the calling thread :data:`SERVING_SLICE_NS` as its time slice, keeping its
    policy and niceness; True when Linux took it (see the module text)."""
    return _set_slice(SERVING_SLICE_NS)


def _set_slice(nanoseconds: int) -> bool:
    """The calling thread's time slice (0: the kernel's usual one), policy and niceness
    kept; True when Linux took it."""
    calls = _SYSCALLS.get(platform.machine()) if platform.system() == "Linux" else None
    if calls is None:
        return False
    set_call, get_call = calls
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return False
    attr = _SchedAttr()
    size = ctypes.sizeof(_SchedAttr)
    if libc.syscall(get_call, 0, ctypes.byref(attr), size, 0) != 0:
        return False
    if attr.sched_policy not in (0, 3):  # SCHED_OTHER, SCHED_BATCH: the fair class
        return False
    attr.size = size
    attr.sched_runtime = nanoseconds
    return bool(libc.syscall(set_call, 0, ctypes.byref(attr), 0) == 0)
