"""Keeping the agent's resident memory small: fewer malloc arenas, freed memory handed back.

The agent is a handful of mostly idle threads. glibc gives each thread that allocates its
own arena (up to 8 per core), and keeps freed blocks of a big unit of work (a full catalog
sync) mapped; both show as resident memory that the idle agent does not use. Linux/glibc
only; elsewhere these are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

M_ARENA_MAX = -8  # mallopt parameter (malloc.h)
MAX_ARENAS = 2


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:  # not glibc (e.g. musl): nothing to tune
        return None


def limit_arenas(count: int = MAX_ARENAS) -> bool:
    """Cap malloc arenas; call before the threads start (no effect on arenas already made)."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(M_ARENA_MAX, count) == 1)


def release_free_memory() -> bool:
    """Collect garbage, then return freed heap pages to the OS (after start, after a big sync)."""
    gc.collect()
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
