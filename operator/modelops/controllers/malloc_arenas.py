"""Fewer glibc malloc arenas for the operator process.

glibc gives a thread that finds the arenas in use its own, up to eight per
core. The operator's reconcile pool has 32 threads, each building and
dropping many short-lived dicts and response buffers; what Python's own
allocator does not serve (anything above 512 bytes) comes from those arenas,
and memory freed in one arena is not reused by a thread of another. Measured
with ``bench/operator/scale.py --sizes 300`` on this project's 2-core machine:
peak RSS 171 MiB with the default, 156 MiB with two arenas, CPU per object
unchanged (58 and 56 ms). Setting the limit at start-up, before any pool
thread exists, makes it hold wherever the operator runs (the chart, a local
``modelops run``, the benches); a ``MALLOC_ARENA_MAX`` set by the user wins,
as glibc itself read it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Mapping

log = logging.getLogger("modelops.operator")

OPERATOR_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's <malloc.h>


def limit_malloc_arenas(env: Mapping[str, str], arenas: int = OPERATOR_ARENAS) -> bool:
    """Cap glibc's arenas at ``arenas``; False where the C library is not glibc or the
    user chose a value (``MALLOC_ARENA_MAX``)."""
    if "MALLOC_ARENA_MAX" in env:
        return False
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError):
        return False  # not glibc (musl has no mallopt): nothing to cap
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(_M_ARENA_MAX, arenas) != 1:
        log.warning("mallopt(M_ARENA_MAX, %d) refused; glibc's default arenas stay", arenas)
        return False
    return True
