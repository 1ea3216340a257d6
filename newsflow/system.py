"""The process itself: the C library, for the calls newsflow makes into it (glibc's ``malloc_trim``:
extraction workers hand freed heap back; ``mallopt``: fewer malloc arenas; Linux's ``prctl``: a temporary
API server dies with its command), and the garbage collector."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os
import threading

#: glibc malloc arenas per process (its default is 8 per core; see :func:`limit_malloc_arenas`).
MALLOC_ARENAS = 2
#: mallopt parameter number of the arena limit (malloc.h).
_M_ARENA_MAX = -8


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


def limit_malloc_arenas() -> None:
    """At most MALLOC_ARENAS glibc malloc arenas in this process and the processes it starts (extraction
    workers, Prefect's temporary API server, served flow runs), unless ``MALLOC_ARENA_MAX`` is set already
    (glibc read it at start). Meant for first thing in the command, before any thread starts.

    By default each thread that allocates gets its own heap, up to 8 per core, and what is freed in one
    stays there: a flow process fetches pages on a dozen threads. Cold 1,000-page ingests against glibc's
    default: the flow process's peak anonymous memory 264-273 MB against 295-297 (2 pairs), its peak RSS
    416 against 441 MiB (median of 5 pairs run in turn). CPU time moved by 0.93x in one set of 5 pairs
    and by 1.02x (0.93-1.13) in the next: no change that the noise shows.
    """
    if "MALLOC_ARENA_MAX" in os.environ:
        return
    os.environ["MALLOC_ARENA_MAX"] = str(MALLOC_ARENAS)
    c_library = libc()
    mallopt = getattr(c_library, "mallopt", None) if c_library is not None else None
    if mallopt is not None:
        mallopt(_M_ARENA_MAX, MALLOC_ARENAS)
