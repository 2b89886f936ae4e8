"""The operator caps glibc's malloc arenas at start-up (controllers/malloc_arenas.py).

Each case runs in a fresh interpreter: the cap only holds for arenas made after
it, and this test process has made its own already. Twelve threads each hold
blocks above Python's small-object size (so glibc serves them) while the heaps
glibc reports (``malloc_info``) are counted."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from modelops.controllers.malloc_arenas import limit_malloc_arenas

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's arenas")

PROBE = """
import ctypes, sys, threading
from modelops.controllers.malloc_arenas import limit_malloc_arenas
if sys.argv[1] == "cap":
    assert limit_malloc_arenas({})
barrier = threading.Barrier(13)
held = []
def work():
    held.append([bytearray(4000) for _ in range(50)])
    barrier.wait()
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(12)]
for t in threads:
    t.start()
barrier.wait()
libc = ctypes.CDLL(None)
libc.open_memstream.restype = ctypes.c_void_p
buf, size = ctypes.c_char_p(), ctypes.c_size_t()
stream = ctypes.c_void_p(libc.open_memstream(ctypes.byref(buf), ctypes.byref(size)))
libc.malloc_info(0, stream)
libc.fclose(stream)
print(ctypes.string_at(buf, size.value).count(b"<heap nr="))
barrier.wait()
for t in threads:
    t.join()
"""


def _heaps(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout)


def test_twelve_allocating_threads_share_two_arenas_once_capped() -> None:
    assert _heaps("cap") <= 2
    # Without the cap glibc gives them more (up to eight per core): the probe can tell.
    assert _heaps("default") > 2


def test_a_user_setting_is_left_to_glibc() -> None:
    assert limit_malloc_arenas({"MALLOC_ARENA_MAX": "4"}) is False
