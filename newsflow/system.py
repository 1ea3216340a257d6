"""The C library, for the calls newsflow makes into it: glibc's ``malloc_trim`` (extraction workers hand
freed heap back) and Linux's ``prctl`` (a temporary API server dies with its command)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def libc() -> ctypes.CDLL | None:
    """This process's C library, or None where it cannot be loaded; callers check for the function they
    need (``hasattr``), which only glibc/Linux may have."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
