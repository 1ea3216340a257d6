"""Run locks: one ingest (or one backfill) at a time per warehouse file, across processes.

DuckDB already serialises writes, so two runs could not corrupt or duplicate rows; the run lock keeps
them from doing the same work twice. It is an advisory ``flock`` on ``<db>.<name>.lock``, which the
kernel releases when the holder dies, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from newsflow.errors import RunLockedError

_POLL_SECONDS = 0.2


def lock_path(db: Path, name: str) -> Path:
    """The lock file of run kind ``name`` for warehouse ``db``."""
    return db.with_name(f"{db.name}.{name}.lock")


@contextmanager
def run_lock(db: Path, name: str, wait: float = 0.0) -> Iterator[None]:
    """Hold the ``name`` run lock of ``db``; wait up to ``wait`` seconds for it.

    Raises:
        RunLockedError: another process held it for longer than ``wait``; the message names it.
    """
    path = lock_path(db, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
                    raise RunLockedError(
                        f"another {name} is running on {db} ({holder}); waited {wait:g} s"
                    ) from None
                time.sleep(_POLL_SECONDS)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
