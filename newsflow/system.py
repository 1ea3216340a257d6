"""The process itself: the C library, for the calls newsflow makes into it (glibc's ``malloc_trim``:
extraction workers hand freed heap back; Linux's ``prctl``: a temporary API server dies with its command),
and the garbage collector."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import threading


@functools.cache
def libc() -> ctypes.CDLL | None:
    """This process's C library, or None where it cannot be loaded; callers check for the function they
    need (``hasattr``), which only glibc/Linux may have."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None


_frozen = threading.Event()


def freeze_start_up_objects() -> None:
    """Leave the objects alive now out of every later garbage collection (``gc.freeze``), once per
    process; meant for when start-up is over and the heavy work begins.

    What a run's processes hold by then (Prefect, pydantic and trafilatura's modules, classes and
    schemas, some 165,000 tracked objects in an extraction worker) outlives the run, yet each full
    collection walked all of it: a worker's collection after a batch took 88-96 ms, and 3-5 ms frozen.
    A collection runs first, so that no garbage is frozen with them.
    """
    if not _frozen.is_set():
        _frozen.set()
        gc.collect()
        gc.freeze()
