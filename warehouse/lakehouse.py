"""The one door to the warehouse: a DuckLake (a catalog database plus Parquet data files).

    warehouse = Warehouse.open(settings)
    with warehouse.read() as con:      # a snapshot; never waits for writers, never migrates
        ...
    with warehouse.write() as con:     # the write lock, pending migrations, one transaction
        ...

Two catalogs, one code path:

- embedded (the default): a SQLite catalog at ``settings.db`` and Parquet files in ``<db>.files/``;
- several machines: ``NEWSFLOW_WAREHOUSE=ducklake:postgres:dbname=... host=...`` with
  ``NEWSFLOW_DATA_PATH`` naming a folder (or ``s3://`` prefix) that every machine reaches.

Readers take DuckLake snapshots, so a notebook holding a connection open never blocks a run. DuckLake has
no PRIMARY KEY or UNIQUE, so writers are serialised by a write lock that lives beside the catalog (a
``flock`` on ``<db>.write.lock`` for SQLite; a PostgreSQL advisory lock for a Postgres catalog, which every
machine sees): each write session checks what is stored and inserts only what is not, so ``article_id``
stays unique however many processes write. Write sessions are short (one batch), so writers interleave.

Extensions come from their PyPI packages (``duckdb-extension-*``, built for the pinned DuckDB) and are
loaded by path: nothing is downloaded at run time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from importlib import util
from pathlib import Path
from typing import Any, ClassVar

import duckdb

from newsflow.errors import ConfigError, RunLockedError, WarehouseError, WarehouseLockedError
from newsflow.warehouse.lock import OnTimeout, SessionGate, file_lock, postgres_lock
from newsflow.warehouse.objectstore import on_object_store, use_s3_secret

#: The migration that creates the search index.
SEARCH_VERSION = 7

logger = logging.getLogger(__name__)

#: DuckDB threads of a write session. A store step is two dozen small statements, and on them DuckDB's
#: thread pool costs more CPU than it saves. Storing 1,000 bench articles in batches of 100 alone: 5.3 CPU-s
#: with one thread, 6.5-6.8 with two, the same wall time. Migrations and maintenance keep every thread.
WRITE_THREADS = 1

#: The name the lake is attached under in every connection newsflow opens (and in the README's line).
LAKE = "lake"
_NO_DOWNLOADS: dict[str, Any] = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
_DUCKDB_MAGIC = b"DUCK"
_FIRST_BACKOFF = 0.02
_FIRST_RUN_HINT = "run `newsflow ingest` first, or pass --db"
_MAX_BACKOFF = 0.5


def extension_file(name: str) -> Path:
    """The extension binary shipped by the ``duckdb-extension-NAME`` package for this DuckDB.

    Raises:
        WarehouseError: the package is missing or was built for another DuckDB version.
    """
    package = f"duckdb_extension_{name}"
    spec = util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        if name == "httpfs":
            raise WarehouseError(
                "lake data on object storage (NEWSFLOW_DATA_PATH=s3://...) needs the s3 extra: "
                "pip install 'newsflow[s3]'"
            )
        raise WarehouseError(f"DuckDB extension {name} is not installed: pip install duckdb-extension-{name}")
    version = duckdb.__version__
    path = Path(next(iter(spec.submodule_search_locations))) / "extensions" / f"v{version}"
    path = path / f"{name}.duckdb_extension"
    if not path.is_file():
        raise WarehouseError(
            f"duckdb-extension-{name} has no build for DuckDB {version} ({path} is missing): "
            "install the versions pinned in pyproject.toml"
        )
    return path


def load_extensions(con: duckdb.DuckDBPyConnection, names: tuple[str, ...]) -> None:
    """LOAD each extension from its PyPI package's file."""
    for name in names:
        con.execute(f"LOAD '{extension_file(name)}'")  # a path from our own installed package


@dataclass(frozen=True)
class LakeSpec:
    """Where a lake lives: its catalog (``ducklake:sqlite:...`` or ``ducklake:postgres:...``) and data."""

    catalog: str
    data_path: str
    #: The SQLite catalog file, for the embedded kind (None for Postgres).
    catalog_file: Path | None
    #: False when ``data_path`` is the default beside the catalog: an existing lake then keeps the data path
    #: it was made with, however the catalog's path is spelled now (through a symlink, from another folder).
    data_path_given: bool = True
    #: A DuckDB secret the user made for the data's store (None: one from the AWS_* variables).
    s3_secret: str | None = None

    @property
    def is_postgres(self) -> bool:
        return self.catalog.startswith("ducklake:postgres:")

    @property
    def extensions(self) -> tuple[str, ...]:
        scanner = "postgres_scanner" if self.is_postgres else "sqlite_scanner"
        extra = (
            ("httpfs",) if on_object_store(self.data_path) or self.data_path.startswith("https://") else ()
        )
        return (scanner, "ducklake", *extra)  # fts is loaded where it is needed (warehouse.search)

    def describe(self) -> str:
        """Where it is, for messages (no password)."""
        if self.catalog_file is not None:
            return str(self.catalog_file)
        return _without_password(self.catalog)

    def attach_sql(self, *, read_only: bool, data_path: bool = False) -> str:
        """The ATTACH statement. The catalog remembers its data path; ``data_path`` passes ours, which a
        new lake needs and an existing one must match."""
        options = ["READ_ONLY"] if read_only else []
        if data_path:
            options.append(f"DATA_PATH {_quote(self.data_path)}")
        return f"ATTACH {_quote(self.catalog)} AS {LAKE}" + (f" ({', '.join(options)})" if options else "")


def lake_spec(
    db: Path, warehouse: str | None, data_path: str | None, s3_secret: str | None = None
) -> LakeSpec:
    """The lake that the settings name.

    Raises:
        ConfigError: an unknown catalog kind, a Postgres catalog without a data path, or ``db`` is a
            pre-lake DuckDB file (the message says how to upgrade it).
    """
    if warehouse:
        if warehouse.startswith("ducklake:sqlite:"):
            return lake_spec(Path(warehouse.removeprefix("ducklake:sqlite:")), None, data_path, s3_secret)
        if not warehouse.startswith("ducklake:postgres:"):
            raise ConfigError(
                f"NEWSFLOW_WAREHOUSE={_without_password(warehouse)!r}: use ducklake:postgres:<libpq "
                "connection string> (or leave it unset for the embedded SQLite catalog at NEWSFLOW_DB)"
            )
        if not data_path:
            raise ConfigError(
                "a Postgres catalog needs NEWSFLOW_DATA_PATH: a folder (or s3:// prefix) that every "
                "machine reaches"
            )
        return LakeSpec(warehouse, _folder(data_path), None, s3_secret=s3_secret)
    db = _absolute(db)
    if _is_duckdb_file(db):
        raise ConfigError(
            f"{db} is a DuckDB warehouse file from before the lakehouse: upgrade it with "
            f"`newsflow migrate --from {db} --db NEW.ducklake` (every row is copied; the file is not changed)"
        )
    return LakeSpec(
        f"ducklake:sqlite:{db}", _folder(data_path or f"{db}.files"), db, bool(data_path), s3_secret
    )


def _folder(path: str) -> str:
    if "://" in path:
        return path.rstrip("/") + "/"
    return str(_absolute(Path(path))) + "/"


def _absolute(path: Path) -> Path:
    """``path`` made absolute with ``..`` folded (symlinks kept): one lake, one spelling, since the catalog
    remembers its data path and refuses another spelling of it."""
    return Path(os.path.abspath(path.expanduser()))


def _is_duckdb_file(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(12)[8:12] == _DUCKDB_MAGIC
    except OSError:
        return False


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _without_password(catalog: str) -> str:
    return " ".join("password=***" if part.startswith("password=") else part for part in catalog.split(" "))


class Warehouse:
    """The warehouse of one lake: read and write sessions over one DuckDB instance per process.

    Loading the extensions and attaching the lake costs ~0.3 s, so a process attaches once and each
    session is a cursor of that instance (cheap, and safe to use from another thread).
    """

    _instances: ClassVar[dict[tuple[int, LakeSpec], Warehouse]] = {}
    _instances_lock = threading.Lock()

    def __init__(self, spec: LakeSpec, lock_timeout: float) -> None:
        self.spec = spec
        self.lock_timeout = lock_timeout
        self._con: duckdb.DuckDBPyConnection | None = None
        self._migrated = False
        self._attach_lock = threading.Lock()
        self._gate = SessionGate()

    @classmethod
    def open(cls, settings: Any) -> Warehouse:
        """The process's warehouse for these settings (``db``, ``warehouse``, ``data_path``,
        ``lock_timeout``); created on first use."""
        spec = lake_spec(settings.db, settings.warehouse, settings.data_path, settings.s3_secret)
        key = (os.getpid(), spec)
        with cls._instances_lock:
            found = cls._instances.get(key)
            if found is None:
                found = cls._instances[key] = Warehouse(spec, settings.lock_timeout)
            found.lock_timeout = settings.lock_timeout
            return found

    def __repr__(self) -> str:
        return f"Warehouse({self.spec.describe()})"

    # ---- sessions ---------------------------------------------------------------------------------------

    @contextmanager
    def read(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A read session on the latest snapshot. Never migrates.

        Raises:
            WarehouseError: there is no warehouse yet (nothing has been stored), or it was last written by
                an older newsflow and lacks this one's schema versions (``newsflow migrate`` adds them).
        """
        with self._gate.reading():
            yield from self._read_session()

    def _read_session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        from newsflow.warehouse.schema import applied_versions, missing_versions

        con = self._cursor(create=False)
        try:
            done = applied_versions(con)  # none: the first migration has not committed
            if not done:
                raise WarehouseError(f"no warehouse at {self.spec.describe()} yet: {_FIRST_RUN_HINT}")
            if missing := missing_versions(done):
                raise WarehouseError(
                    f"warehouse {self.spec.describe()} was written by an older newsflow (schema versions "
                    f"{', '.join(map(str, missing))} missing): run `newsflow migrate` with the same --db, "
                    "or any ingest, to bring it up to date"
                )
            try:
                yield con
            except duckdb.IOException as exc:
                raise self._store_error(exc, "read") from exc
        finally:
            con.close()

    def _store_error(self, exc: duckdb.IOException, what: str) -> WarehouseError:
        """The lake's data files could not be read or written (a store that is down, refuses the
        credentials, or a full disk): one line naming where, and what to check."""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = " (check NEWSFLOW_DATA_PATH and the AWS_* variables)" if "://" in self.spec.data_path else ""
        return WarehouseError(f"cannot {what} the lake's data at {self.spec.data_path}: {first}{hint}")

    @contextmanager
    def write(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """A write session: holds the write lock, applies pending migrations once per process, and runs
        the body in one transaction, committed on success and rolled back on any error.

        Raises:
            WarehouseLockedError: another writer kept the lock for ``lock_timeout`` seconds.
            WarehouseError: the migrations or the commit failed, or the lake's data files could not be
                read or written (the body's other errors pass unchanged).
        """
        with self.write_lock(), self._gate.writing():
            con = self._cursor(create=True)
            try:
                self._guarded(lambda: self._migrate_once(con), "migrate")
                con.execute(f"SET threads = {WRITE_THREADS}")
                con.execute("BEGIN TRANSACTION")
                try:
                    yield con
                except duckdb.IOException as exc:
                    con.execute("ROLLBACK")
                    raise self._store_error(exc, "write") from exc
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                self._guarded(lambda: con.execute("COMMIT"), "commit")
            finally:
                with suppress(duckdb.Error):  # a broken connection must not hide the body's error
                    con.execute("RESET threads")
                con.close()

    def _migrate_once(self, con: duckdb.DuckDBPyConnection) -> None:
        if not self._migrated:
            from newsflow.warehouse.schema import LAKE_BASELINE, migrate, transaction

            applied = migrate(con)
            if SEARCH_VERSION in applied and LAKE_BASELINE not in applied:  # an older lake's articles
                from newsflow.warehouse.search import index_unindexed

                with transaction(con):
                    index_unindexed(con)
            self._migrated = True

    def _guarded(self, action: Callable[[], object], what: str) -> None:
        try:
            action()
        except duckdb.Error as exc:
            raise WarehouseError(f"cannot {what} warehouse {self.spec.describe()}: {exc}") from exc

    @contextmanager
    def maintenance(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """Under the write lock, outside any transaction (DuckLake's CHECKPOINT and cleanup need that)."""
        with self.write_lock():
            con = self._cursor(create=True)
            try:
                yield con
            finally:
                con.close()

    def connect(self, *, sandbox: bool = False, streaming: bool = False) -> duckdb.DuckDBPyConnection:
        """A new read-only DuckDB connection with the lake attached as ``lake`` and selected: for
        notebooks and ``newsflow sql``. ``sandbox`` also refuses files, ATTACH, COPY and extensions.
        ``streaming`` (exports) reads with one thread and lets a query without ORDER BY return rows in any
        order, so DuckDB holds few scanned row groups at once: a 1M-row export peaked at 520-577 MB RSS
        this way against 645-876 MB with the defaults (3 runs each), at the same speed.

        Raises:
            WarehouseError: there is no warehouse yet, or it cannot be attached.
        """
        if self.spec.catalog_file is not None and not self.spec.catalog_file.exists():
            raise WarehouseError(f"no warehouse at {self.spec.describe()} yet: {_FIRST_RUN_HINT}")
        con = self._new_connection()
        try:
            con.execute(self.spec.attach_sql(read_only=True))
            con.execute(f"USE {LAKE}")
            if not self._has_schema(con):
                raise WarehouseError(f"no warehouse at {self.spec.describe()} yet: {_FIRST_RUN_HINT}")
            if streaming:
                con.execute("SET preserve_insertion_order = false")
                con.execute("SET threads = 1")
            if sandbox:
                data = con.execute(
                    f"SELECT value FROM __ducklake_metadata_{LAKE}.ducklake_metadata WHERE key = 'data_path'"
                ).fetchall()
                allowed = [self.spec.data_path] + [row[0] for row in data]
                con.execute("SET allowed_directories = ?", [allowed])
                con.execute("SET enable_external_access = false")
                con.execute("SET lock_configuration = true")
        except WarehouseError:
            con.close()
            raise
        except duckdb.Error as exc:
            con.close()
            raise WarehouseError(f"cannot open warehouse {self.spec.describe()}: {exc}") from exc
        return con

    def exists(self) -> bool:
        """Whether the lake has been created (a first write session makes it)."""
        if self.spec.catalog_file is not None and not self.spec.catalog_file.exists():
            return False
        con = self._cursor(create=False)
        try:
            return self._has_schema(con)
        finally:
            con.close()

    # ---- the write lock ---------------------------------------------------------------------------------

    def write_lock(self) -> AbstractContextManager[None]:
        """Hold the lake's write lock (waits up to ``lock_timeout`` seconds).

        Raises:
            WarehouseLockedError: another writer held it for the whole wait; the message names it.
        """

        def locked(holder: str) -> Exception:
            return WarehouseLockedError(
                f"the write lock of warehouse {self.spec.describe()} is held by {holder}; gave up after "
                f"{self.lock_timeout:g} s. Retry when it finishes, or raise NEWSFLOW_LOCK_TIMEOUT"
            )

        return self._lock("write", self.lock_timeout, locked)

    def run_lock(self, name: str, wait: float = 0.0) -> AbstractContextManager[None]:
        """Hold run lock ``name`` (one ingest of a feed selection, one backfill) for this lake.

        Raises:
            RunLockedError: another run held it for longer than ``wait``; the message names it.
        """

        def locked(holder: str) -> Exception:
            kind = name.split(":")[0]
            return RunLockedError(
                f"another {kind} is running on {self.spec.describe()} ({holder}); waited {wait:g} s"
            )

        return self._lock(f"run:{name}", wait, locked)

    def _lock(self, name: str, wait: float, on_timeout: OnTimeout) -> AbstractContextManager[None]:
        if self.spec.is_postgres:
            return postgres_lock(self.spec.catalog.removeprefix("ducklake:postgres:"), name, wait, on_timeout)
        assert self.spec.catalog_file is not None
        safe = name.replace(":", ".").replace("/", "_")
        return file_lock(self.spec.catalog_file.with_name(f"{self.spec.catalog_file.name}.{safe}.lock"), wait,
                         on_timeout)  # fmt: skip

    # ---- the process's DuckDB instance --------------------------------------------------------------------

    def _cursor(self, *, create: bool) -> duckdb.DuckDBPyConnection:
        with self._attach_lock:
            if self._con is None:
                if not create and self.spec.catalog_file is not None and not self.spec.catalog_file.exists():
                    raise WarehouseError(f"no warehouse at {self.spec.describe()} yet: {_FIRST_RUN_HINT}")
                self._con = self._attach()
            cursor = self._con.cursor()
        cursor.execute(f"USE {LAKE}")
        return cursor

    def _attach(self) -> duckdb.DuckDBPyConnection:
        if self.spec.catalog_file is not None:
            self.spec.catalog_file.parent.mkdir(parents=True, exist_ok=True)
        if "://" not in self.spec.data_path:
            Path(self.spec.data_path).mkdir(parents=True, exist_ok=True)
        con = self._new_connection()
        try:
            _retry_locked(lambda: self._attach_writable(con), self.lock_timeout)
        except duckdb.Error as exc:
            con.close()
            raise WarehouseError(f"cannot open warehouse {self.spec.describe()}: {exc}") from exc
        return con

    def _new_connection(self) -> duckdb.DuckDBPyConnection:
        """An in-memory DuckDB connection with the lake's extensions loaded, nothing attached.

        Raises:
            WarehouseError: an extension is missing or does not load.
        """
        con = duckdb.connect(config=dict(_NO_DOWNLOADS))
        try:
            load_extensions(con, self.spec.extensions)
            if on_object_store(self.spec.data_path):
                use_s3_secret(con, self.spec.s3_secret, os.environ)
        except (WarehouseError, ConfigError):
            con.close()
            raise
        except duckdb.Error as exc:
            con.close()
            raise WarehouseError(f"cannot open warehouse {self.spec.describe()}: {exc}") from exc
        return con

    def _attach_writable(self, con: duckdb.DuckDBPyConnection) -> None:
        if self.spec.data_path_given:
            con.execute(self.spec.attach_sql(read_only=False, data_path=True))
            return
        try:  # an existing lake: its own data path
            con.execute(self.spec.attach_sql(read_only=False))
        except duckdb.InvalidInputException as exc:
            if "data_path is not set" not in str(exc):
                raise
            con.execute(self.spec.attach_sql(read_only=False, data_path=True))  # a new lake: the default

    @staticmethod
    def _has_schema(con: duckdb.DuckDBPyConnection) -> bool:
        rows = con.execute(
            "SELECT count(*) FROM duckdb_tables()"
            " WHERE database_name = ? AND table_name = 'schema_migrations'",
            [LAKE],
        ).fetchall()
        return bool(rows[0][0])


def _retry_locked(action: Callable[[], object], timeout: float) -> None:
    """Run ``action``, retrying while SQLite says the catalog is locked (a writer is committing)."""
    deadline = time.monotonic() + timeout
    backoff = _FIRST_BACKOFF
    while True:
        try:
            action()
            return
        except duckdb.Error as exc:
            if "locked" not in str(exc) or time.monotonic() + backoff > deadline:
                raise
            time.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF)
