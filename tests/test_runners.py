"""The local extraction pool: started once per process by the first run with pages to extract, reused
by every later run, made anew when one of its workers has died, and gone with the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from newsflow.flows._runners import api_shared_with_workers, extraction_runner, unwalked
from newsflow.records import Article, FetchedPage
from newsflow.settings import Settings
from newsflow.tasks.extraction import extract_pages
from tests.conftest import LoopbackSite
from tests.feedbuild import Item, benchmark_pages, write_feed
from tests.lake import reader
from tests.test_extraction import ENGLISH_PAGE, fetched

#: Seconds a worker process may take to spawn and import the extraction stack.
SPAWN_DEADLINE_S = 60


def children(parent: int, marker: bytes) -> set[int]:
    """Pids of the live (not zombie) children of ``parent`` whose command line contains ``marker``."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == parent and fields[0] != "Z" and marker in cmdline:
            pids.add(int(entry.name))
    return pids


def extraction_workers(parent: int | None = None) -> set[int]:
    """Pids of the live extraction workers (spawned multiprocessing children) of ``parent`` (this process)."""
    return children(os.getpid() if parent is None else parent, b"spawn_main")


def wait_for_workers(count: int, parent: int | None = None) -> set[int]:
    deadline = time.monotonic() + SPAWN_DEADLINE_S
    while len(pids := extraction_workers(parent)) < count:
        assert time.monotonic() < deadline, f"only {len(pids)} of {count} extraction workers started"
        time.sleep(0.1)
    return pids


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@flow
def extract_once(pages: list[FetchedPage], settings: Settings) -> list[Article]:
    with api_shared_with_workers(), extraction_runner(settings) as runner:
        result: list[Article] = runner.submit(extract_pages, {"pages": unwalked(pages)}).result()
        return result


@pytest.fixture
def pool_settings(settings: Any) -> Settings:
    # Two workers, whatever the machine: the pool is kept per worker count.
    return settings.model_copy(update={"extraction_workers": 2})  # type: ignore[no-any-return]


def test_the_workers_of_the_first_run_serve_every_run(prefect_harness: str, pool_settings: Settings) -> None:
    page = fetched(ENGLISH_PAGE, "https://example.com/story")
    extract_once([page], pool_settings)
    started = wait_for_workers(2)
    for _ in range(2):
        (article,) = extract_once([page], pool_settings)
        assert article.word_count > 100
    assert extraction_workers() == started  # no process was started for the later runs


def test_a_dead_worker_does_not_break_the_next_run(prefect_harness: str, pool_settings: Settings) -> None:
    extract_once([fetched(ENGLISH_PAGE, "https://example.com/story")], pool_settings)
    victim = min(wait_for_workers(2))
    os.kill(victim, signal.SIGKILL)
    # The pool notices the death on its own manager thread; give it that moment, as a real run would have.
    time.sleep(1)
    (article,) = extract_once([fetched(ENGLISH_PAGE, "https://example.com/story")], pool_settings)
    assert article.word_count > 100
    assert victim not in extraction_workers()


def test_a_killed_ingest_leaves_no_process_behind(site: LoopbackSite, tmp_path: Path) -> None:
    """SIGKILL to ``newsflow ingest`` alone (not its process group): its extraction workers and the
    temporary Prefect API it started end with it instead of living on as orphans."""
    # One entry whose page takes a minute to answer: the run has started its workers and waits on it.
    write_feed(
        site.root / "killed" / "feed.xml", "Slow", [Item("Slow page", site.url("/_sleep/60"), guid="s")]
    )
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feeds]]\nurl = "{site.url("/site/killed/feed.xml")}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL", "NEWSFLOW_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        NEWSFLOW_EXTRACTION_WORKERS="2",
        NEWSFLOW_POOL_MIN_PAGES="0",
    )
    command = [str(Path(sys.executable).parent / "newsflow"), "ingest", "--feeds", str(feeds),
               "--db", str(tmp_path / "x.ducklake"), "--allow-private-networks"]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        workers = wait_for_workers(2, parent=process.pid)
        servers = children(process.pid, b"uvicorn")
        assert servers, "the command started no temporary Prefect API"
    finally:
        process.kill()
        process.wait()
    deadline = time.monotonic() + 15
    while (left := {pid for pid in workers | servers if alive(pid)}) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left running after the command was killed: {sorted(left)}"


def test_a_run_with_few_pages_extracts_them_without_starting_workers(
    prefect_harness: str, site: LoopbackSite, tmp_path: Path
) -> None:
    """A scheduled poll that finds a few new articles extracts them in the flow process: no worker
    process is started (each would import the extraction stack for a second of work)."""
    from newsflow.flows.ingest import ingest

    ids = sorted(benchmark_pages())[:3]
    items = [Item(f"Story {i}", site.url(f"/pages/{i}.html"), guid=f"few-{i}") for i in ids]
    write_feed(site.root / "few" / "feed.xml", "Few", items)
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feeds]]\nurl = "{site.url("/site/few/feed.xml")}"\n')
    before = extraction_workers()
    # Three workers: no earlier test of this process started a pool of that size (a started pool is used).
    summary = ingest(
        feeds_file=str(feeds), db=str(tmp_path / "x.ducklake"), allow_private_networks=True,
        extraction_workers=3,
    )  # fmt: skip
    assert summary["articles_stored"] == 3 and summary["extracted"] == 3
    assert extraction_workers() == before
    with reader(tmp_path / "x.ducklake") as con:
        words = [row[0] for row in con.execute("SELECT word_count FROM articles").fetchall()]
    assert len(words) == 3 and min(words) > 50  # the pages' own text, not the feed's one-line items


def test_an_api_named_in_the_prefect_profile_gets_the_run_and_no_temporary_server_stays(
    prefect_harness: str, site: LoopbackSite, tmp_path: Path
) -> None:
    """With no PREFECT_API_URL in the environment the command starts a temporary server before Prefect's
    settings are loaded; when the active profile names an API, that server is stopped and the run is
    recorded in the profile's API."""
    import httpx

    items = [Item("Profiled", site.url("/site/profiled/one.html"), guid="p-1")]
    write_feed(site.root / "profiled" / "feed.xml", "Profiled", items)
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feeds]]\nurl = "{site.url("/site/profiled/feed.xml")}"\n')
    home = tmp_path / "prefect-home"
    home.mkdir()
    (home / "profiles.toml").write_text(
        f'active = "shared"\n\n[profiles.shared]\nPREFECT_API_URL = "{prefect_harness}"\n'
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NEWSFLOW_"))}
    env.update(PREFECT_HOME=str(home), PREFECT_PROFILES_PATH=str(home / "profiles.toml"))
    db = tmp_path / "profiled.ducklake"
    command = [str(Path(sys.executable).parent / "newsflow"), "ingest", "--feeds", str(feeds),
               "--db", str(db), "--allow-private-networks", "--json"]  # fmt: skip
    log = tmp_path / "stderr.txt"
    with log.open("wb") as stderr:
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        looks: list[set[int]] = []  # the command's uvicorn children, every 50 ms while it runs
        while process.poll() is None:
            looks.append(children(process.pid, b"uvicorn"))
            time.sleep(0.05)
    assert process.returncode == 0, log.read_text()[-2000:]
    # Stopped once the settings were read (about 1 s in), not left running until the command ends.
    assert not set().union(*looks[len(looks) // 2 :]), "a temporary server ran through the second half"
    runs = httpx.post(f"{prefect_harness}/flow_runs/filter", json={"limit": 200}).json()
    assert any(run["parameters"].get("db") == str(db) for run in runs), "the run is not in the profile's API"


@pytest.mark.parametrize(("chosen", "seen_by_children"), [(None, "2"), ("8", "8")])
def test_processes_a_command_starts_get_few_malloc_arenas_unless_the_user_chose(
    chosen: str | None, seen_by_children: str
) -> None:
    child = "import os; print(os.environ.get('MALLOC_ARENA_MAX'))"
    command = (
        "import subprocess, sys\n"
        "from newsflow.system import limit_malloc_arenas\n"
        "limit_malloc_arenas()\n"
        f"print(subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True).stdout)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if chosen is not None:
        env["MALLOC_ARENA_MAX"] = chosen
    done = subprocess.run(
        [sys.executable, "-c", command], capture_output=True, text=True, env=env, check=True
    )
    assert done.stdout.strip() == seen_by_children
