"""Adaptive polling decisions and the run lock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from newsflow.errors import RunLockedError
from newsflow.records import FeedEntry, FeedState, PollResult, PollStatus
from newsflow.settings import Settings, load_settings
from newsflow.tasks.schedule import next_schedule, publishing_gap
from tests.lake import warehouse

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
FEED = "https://feed.example/rss"


@pytest.fixture
def policy() -> Settings:
    return load_settings(
        poll_interval=900, min_poll_interval=300, max_poll_interval=86_400, pause_after_errors=4
    )


def ok_poll(*minutes_ago: int) -> PollResult:
    entries = tuple(
        FeedEntry(FEED, f"g{m}", None, "t", published_at=NOW - timedelta(minutes=m)) for m in minutes_ago
    )
    return PollResult(FEED, PollStatus.OK, NOW, 10, http_status=200, entries=entries)


def error_poll(retry_after: float | None = None) -> PollResult:
    return PollResult(
        FEED, PollStatus.ERROR, NOW, 10, http_status=503, error_kind="http_503", retry_after=retry_after
    )


@pytest.mark.parametrize(
    ("minutes_ago", "interval"),
    [
        ((0, 20, 40, 60, 80), 600),  # every 20 min -> polled every 10
        ((0, 2, 4, 6), 300),  # faster than the floor -> the floor
        ((0, 7 * 1440, 14 * 1440), 86_400),  # weekly -> the ceiling
        ((0,), 900),  # one dated entry: no rhythm yet, keep the interval
    ],
)
def test_interval_follows_publishing_rhythm(
    policy: Settings, minutes_ago: tuple[int, ...], interval: int
) -> None:
    schedule = next_schedule(FeedState(FEED), ok_poll(*minutes_ago), policy, NOW)
    assert schedule.poll_interval_s == interval
    assert schedule.next_poll_at == NOW + timedelta(seconds=interval)
    assert not schedule.paused


def test_publishing_gap_is_the_median() -> None:
    assert publishing_gap(ok_poll(0, 10, 20, 200)) == 600.0


def test_not_modified_stretches_the_interval(policy: Settings) -> None:
    poll = PollResult(FEED, PollStatus.NOT_MODIFIED, NOW, 5, http_status=304)
    schedule = next_schedule(FeedState(FEED, poll_interval_s=1000), poll, policy, NOW)
    assert schedule.poll_interval_s == 1250


def test_errors_back_off_exponentially_then_pause(policy: Settings) -> None:
    intervals, paused = [], []
    for streak in range(4):
        schedule = next_schedule(FeedState(FEED, error_streak=streak), error_poll(), policy, NOW)
        intervals.append(schedule.poll_interval_s)
        paused.append(schedule.paused)
    assert intervals == [300, 600, 1200, 2400]
    assert paused == [False, False, False, True]
    assert schedule.paused_reason == "4 failed polls in a row, last: http_503"


def test_retry_after_pushes_the_next_poll_back(policy: Settings) -> None:
    schedule = next_schedule(FeedState(FEED), error_poll(retry_after=3600), policy, NOW)
    assert schedule.next_poll_at == NOW + timedelta(seconds=3600)


def test_run_lock_excludes_a_second_holder_and_names_it(tmp_path: Path) -> None:
    db = tmp_path / "w.ducklake"
    lake = warehouse(db)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import time
            from pathlib import Path
            from tests.lake import warehouse
            with warehouse(Path({str(db)!r})).run_lock("ingest"):
                print("held", flush=True)
                time.sleep(30)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockedError, match=f"another ingest is running on .* \\(PID {holder.pid}\\)"):
            with lake.run_lock("ingest", wait=0.3):
                pass
        with lake.run_lock("backfill"):  # another kind of run is not excluded
            pass
    finally:
        holder.kill()
        holder.wait()
    with lake.run_lock("ingest"):  # released by the kernel when its holder died
        pass
