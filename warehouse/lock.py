"""Locks that live beside the catalog, so that every process (and, with Postgres, every machine) sees them.

- SQLite catalog (one machine): an advisory ``flock`` on a file next to the catalog.
- Postgres catalog (many machines): a session-level advisory lock in the catalog database.

Both are released when their holder dies (the kernel closes the file; the server drops the session), so a
killed run never leaves a stale lock. Two uses: the lake's write lock (every write session) and run locks
(one ingest of a feed selection, or one backfill, at a time).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from newsflow.errors import WarehouseError

_FIRST_BACKOFF = 0.02
_MAX_BACKOFF = 0.5

#: Builds the error raised when the wait is over, from a description of the holder.
OnTimeout = Callable[[str], Exception]


@contextmanager
def file_lock(path: Path, wait: float, on_timeout: OnTimeout) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path``, waiting up to ``wait`` seconds; the holder's PID is
    written into the file for the next waiter's message."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        _wait_for(lambda: _try_flock(fd), wait, lambda: _file_holder(fd), on_timeout)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"PID {os.getpid()}".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _file_holder(fd: int) -> str:
    return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"


def lock_key(name: str) -> int:
    """The advisory-lock number of lock ``name`` (a stable 32-bit hash)."""
    return zlib.crc32(f"newsflow:{name}".encode())


@contextmanager
def postgres_lock(conninfo: str, name: str, wait: float, on_timeout: OnTimeout) -> Iterator[None]:
    """Hold the advisory lock ``name`` in the Postgres database of ``conninfo``, waiting up to ``wait``
    seconds.

    Raises:
        WarehouseError: the database cannot be reached.
    """
    import psycopg

    key = lock_key(name)
    try:
        pg = psycopg.connect(conninfo, autocommit=True, connect_timeout=10, application_name="newsflow")
    except psycopg.Error as exc:
        raise WarehouseError(f"cannot reach the Postgres catalog: {exc}") from exc
    try:

        def attempt() -> bool:
            row = pg.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()
            return bool(row and row[0])

        def holder() -> str:
            row = pg.execute(
                "SELECT l.pid, a.client_addr FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
                " WHERE l.locktype = 'advisory' AND l.objid = %s AND l.granted LIMIT 1",
                [key & 0xFFFFFFFF],
            ).fetchone()
            return (
                f"Postgres session {row[0]} from {row[1] or 'a local socket'}" if row else "another process"
            )

        _wait_for(attempt, wait, holder, on_timeout)
        try:
            yield
        finally:
            pg.execute("SELECT pg_advisory_unlock(%s)", [key])
    finally:
        pg.close()


def _wait_for(
    attempt: Callable[[], bool], wait: float, holder: Callable[[], str], on_timeout: OnTimeout
) -> None:
    deadline = time.monotonic() + wait
    backoff = _FIRST_BACKOFF
    while not attempt():
        if time.monotonic() + backoff > deadline:
            raise on_timeout(holder())
        time.sleep(backoff)
        backoff = min(backoff * 2, _MAX_BACKOFF)


class SessionGate:
    """Read and write sessions of one process's DuckDB instance: reads run side by side, a write session
    runs alone. A write session changes the instance's thread count (``SET threads``) and back, and DuckDB
    deadlocks when that happens while another thread's query runs on the same instance (seen: an archive
    backfill's planning reads beside its store step). Other processes are not concerned: they have their
    own instance, and the lake's write lock orders their writes."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._condition:
            # A waiting writer goes first, or a steady flow of reads would starve it.
            self._condition.wait_for(lambda: not self._writing and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                self._condition.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            self._condition.wait_for(lambda: not self._writing and not self._readers)
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()
