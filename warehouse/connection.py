"""Short-lived DuckDB connections that wait for the file lock with backoff and name its holder."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

from newsflow.errors import WarehouseError, WarehouseLockedError
from newsflow.warehouse.schema import migrate

logger = logging.getLogger(__name__)

_LOCK_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")
_FIRST_BACKOFF = 0.02
_MAX_BACKOFF = 1.0


def describe_lock_holder(message: str) -> str:
    """'PID 123 (newsflow ingest ...)' from DuckDB's lock error, or a generic phrase."""
    match = _LOCK_HOLDER.search(message)
    if not match:
        return "another process"
    pid = match["pid"]
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = " ".join(raw.replace(b"\0", b" ").decode(errors="replace").split())
    except OSError:
        command = match["exe"]
    return f"PID {pid} ({command[:200]})"


def _is_lock_error(exc: duckdb.Error) -> bool:
    return "lock" in str(exc).lower()


def connect(
    path: Path,
    *,
    read_only: bool = False,
    lock_timeout: float = 30.0,
    config: dict[str, Any] | None = None,
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, retrying while another process holds the lock.

    Raises:
        WarehouseLockedError: the lock was still held after ``lock_timeout`` seconds.
        WarehouseError: the file is missing (read-only) or is not a DuckDB database.
    """
    if read_only and not path.exists():
        raise WarehouseError(f"no warehouse at {path}: run `newsflow ingest` first or pass --db")
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + lock_timeout
    backoff = _FIRST_BACKOFF
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config or {})
        except duckdb.IOException as exc:
            if not _is_lock_error(exc):
                raise WarehouseError(f"cannot open warehouse {path}: {exc}") from exc
            if time.monotonic() + backoff > deadline:
                holder = describe_lock_holder(str(exc))
                raise WarehouseLockedError(
                    f"warehouse {path} is locked by {holder}; gave up after {lock_timeout:g} s. "
                    "Retry when it finishes, or raise NEWSFLOW_LOCK_TIMEOUT"
                ) from exc
            logger.debug("warehouse %s locked; retrying in %.2f s", path, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
        except duckdb.Error as exc:
            raise WarehouseError(f"cannot open warehouse {path}: {exc}") from exc


@contextmanager
def writer(path: Path, lock_timeout: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A migrated read-write connection inside one transaction, committed on success, closed at exit."""
    con = connect(path, lock_timeout=lock_timeout)
    try:
        migrate(con)
        con.execute("BEGIN TRANSACTION")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    finally:
        con.close()


@contextmanager
def reader(path: Path, lock_timeout: float = 30.0) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection, closed at exit so writers are not blocked."""
    con = connect(path, read_only=True, lock_timeout=lock_timeout)
    try:
        yield con
    finally:
        con.close()
