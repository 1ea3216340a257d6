"""The local extraction pool: started once per process (before the first run when asked), reused by
every run, and made anew when one of its workers has died."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from prefect import flow

from newsflow.flows._runners import (
    api_shared_with_workers,
    extraction_runner,
    unwalked,
    warm_extraction_pool,
)
from newsflow.records import Article, FetchedPage
from newsflow.settings import Settings
from newsflow.tasks.extraction import extract_pages
from tests.test_extraction import ENGLISH_PAGE, fetched

#: Seconds a worker process may take to spawn and import the extraction stack.
SPAWN_DEADLINE_S = 60


def extraction_workers() -> set[int]:
    """Pids of this process's live extraction workers (spawned multiprocessing children)."""
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
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"spawn_main" in cmdline:
            pids.add(int(entry.name))
    return pids


def wait_for_workers(count: int) -> set[int]:
    deadline = time.monotonic() + SPAWN_DEADLINE_S
    while len(pids := extraction_workers()) < count:
        assert time.monotonic() < deadline, f"only {len(pids)} of {count} extraction workers started"
        time.sleep(0.1)
    return pids


@flow
def extract_once(pages: list[FetchedPage], settings: Settings) -> list[Article]:
    with api_shared_with_workers(), extraction_runner(settings) as runner:
        result: list[Article] = runner.submit(extract_pages, {"pages": unwalked(pages)}).result()
        return result


@pytest.fixture
def pool_settings(settings: Any) -> Settings:
    # Two workers, whatever the machine: the pool is kept per worker count.
    return settings.model_copy(update={"extraction_workers": 2})  # type: ignore[no-any-return]


def test_workers_start_before_the_run_and_serve_every_run(
    prefect_harness: str, pool_settings: Settings
) -> None:
    warm_extraction_pool(pool_settings)
    started = wait_for_workers(2)
    page = fetched(ENGLISH_PAGE, "https://example.com/story")
    for _ in range(2):
        (article,) = extract_once([page], pool_settings)
        assert article.word_count > 100
    assert extraction_workers() == started  # no process was started for either run


def test_a_dead_worker_does_not_break_the_next_run(prefect_harness: str, pool_settings: Settings) -> None:
    warm_extraction_pool(pool_settings)
    victim = min(wait_for_workers(2))
    os.kill(victim, signal.SIGKILL)
    # The pool notices the death on its own manager thread; give it that moment, as a real run would have.
    time.sleep(1)
    (article,) = extract_once([fetched(ENGLISH_PAGE, "https://example.com/story")], pool_settings)
    assert article.word_count > 100
    assert victim not in extraction_workers()
