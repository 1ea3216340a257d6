"""A real PostgreSQL server for tests: initdb into a tmp dir, started on a free loopback port.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user (the machine
image's package creates it). Tests skip with the reason when no PostgreSQL binaries are installed.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    """A running server: ``conninfo(db)`` gives a libpq connection string for a database on it."""

    port: int
    socket_dir: Path

    def conninfo(self, database: str) -> str:
        return f"dbname={database} host=127.0.0.1 port={self.port} user=postgres"

    def create_database(self) -> str:
        import psycopg

        name = "lake_" + uuid.uuid4().hex[:8]
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as con:
            con.execute(f"CREATE DATABASE {name}")  # a name we made
        return name

    @classmethod
    @contextmanager
    def started(cls) -> Iterator[PostgresServer]:
        """Start a server in a new folder under /tmp (pytest's tmp dirs are private to root, and the
        server runs as ``postgres``); stop it and remove the folder at exit."""
        bin_dir = _bin_dir()
        if bin_dir is None:
            pytest.skip("PostgreSQL is not installed (apt-get install postgresql; .ci/run does)")
        folder = Path(tempfile.mkdtemp(prefix="newsflow-pg-"))
        folder.chmod(0o755)
        data = folder / "data"
        as_postgres: list[str] = []
        if os.geteuid() == 0:
            as_postgres = ["runuser", "-u", "postgres", "--"]
            shutil.chown(folder, "postgres")
        subprocess.run(
            [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
            check=True,
            capture_output=True,
        )
        port = _free_port()
        options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
        subprocess.run(
            [
                *as_postgres,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-w",
                "-t",
                "60",
                "-l",
                str(folder / "server.log"),
                "start",
            ],
            check=True,
            capture_output=True,
        )
        try:
            yield cls(port, folder)
        finally:
            subprocess.run(
                [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
            )
            shutil.rmtree(folder, ignore_errors=True)
