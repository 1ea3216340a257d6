"""The ingest flow: poll feeds, fetch new article pages, extract them, store them with exact dedupe.

Tasks are coarse (one per feed, one per batch of articles per stage, one per warehouse write) so that
orchestration stays a small share of the run. Fetching runs on the flow's thread pool; extraction runs on
a swappable task runner (local processes by default, Dask optionally); writes run in the flow's thread,
in arrival order, each in its own short transaction.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.futures import as_completed
from prefect.task_runners import ThreadPoolTaskRunner

from newsflow.clock import utcnow
from newsflow.errors import RunLockedError
from newsflow.feedlist import default_feeds, load_feed_file
from newsflow.flows._pipeline import URLS_PER_REASON, ArticleCounts, process_articles
from newsflow.flows._report import ingest_line, render_report, summary_rows
from newsflow.flows._runners import api_shared_with_workers, extraction_runner
from newsflow.flows._runs import TrackedRun, tracked_run
from newsflow.progress import report
from newsflow.records import (
    FeedState,
    PollResult,
    PollStatus,
)
from newsflow.settings import Settings, load_settings
from newsflow.tasks.polling import poll_feeds
from newsflow.tasks.storing import plan_entries, save_validators, store_polls
from newsflow.warehouse import feeds as feeds_table
from newsflow.warehouse import runs as runs_table
from newsflow.warehouse.lakehouse import Warehouse

#: Feeds polled by one task run (concurrently inside it), at least; more when there are many feeds, so
#: that a run makes at most MAX_POLL_TASKS task runs (10,000 feeds would otherwise be 1,000 task runs,
#: each costing the API more than its polls cost).
FEEDS_PER_TASK = 10
MAX_POLL_TASKS = 32
#: Stories the run report shows, and member links per story.
REPORT_STORIES = 5
REPORT_LINKS_PER_STORY = 5


@dataclass
class IngestCounts(ArticleCounts):
    """Running totals of one ingest; ``as_dict`` is what the run row, artifact and CLI show."""

    feeds_polled: int = 0
    feeds_ok: int = 0
    feeds_not_modified: int = 0
    feeds_failed: int = 0
    feeds_malformed_but_used: int = 0
    entries_seen: int = 0
    new_entries: int = 0
    feed_errors: Counter[str] = field(default_factory=Counter)
    #: reason -> the first URLS_PER_REASON feeds that failed with it.
    feed_error_urls: dict[str, list[str]] = field(default_factory=dict)

    def add_polls(self, polls: Sequence[PollResult]) -> None:
        for poll in polls:
            self.feeds_polled += 1
            self.entries_seen += len(poll.entries)
            if poll.status is PollStatus.OK:
                self.feeds_ok += 1
                self.feeds_malformed_but_used += poll.bozo
            elif poll.status is PollStatus.NOT_MODIFIED:
                self.feeds_not_modified += 1
            else:
                self.feeds_failed += 1
                reason = poll.error_kind or "unknown"
                self.feed_errors[reason] += 1
                urls = self.feed_error_urls.setdefault(reason, [])
                if len(urls) < URLS_PER_REASON:
                    urls.append(poll.feed_url)


@task(name="register-feeds", cache_policy=NO_CACHE)
def register_feeds(feeds_file: str | None, settings: Settings, due_only: bool = False) -> list[FeedState]:
    """Feeds to poll: those of ``feeds_file`` (registered first), else every registered feed; an empty
    registry is seeded with the default list. Paused feeds are left out, and with ``due_only`` so are
    feeds whose next poll time has not come."""
    specs = load_feed_file(Path(feeds_file)) if feeds_file else None
    due_at = utcnow() if due_only else None
    with Warehouse.open(settings).write() as con:
        if specs is not None:
            feeds_table.add_feeds(con, specs, utcnow())
            return feeds_table.feed_states(con, [s.url for s in specs], due_at)
        if not feeds_table.list_feeds(con):
            feeds_table.add_feeds(con, default_feeds(), utcnow())
        return feeds_table.feed_states(con, due_at=due_at)


def poll_all(feeds: Sequence[FeedState], settings: Settings) -> list[PollResult]:
    """Poll every feed, a task run per group of feeds, reporting progress as groups finish."""
    size = max(FEEDS_PER_TASK, -(-len(feeds) // MAX_POLL_TASKS))
    groups = [list(feeds[i : i + size]) for i in range(0, len(feeds), size)]
    futures = [poll_feeds.submit(group, settings) for group in groups]
    polls: list[PollResult] = []
    report("poll feeds", 0, len(feeds))
    for future in as_completed(futures):
        polls.extend(future.result())
        report("poll feeds", len(polls), len(feeds))
    return sorted(polls, key=lambda p: p.feed_url)


# I/O-bound tasks (polls, page fetches) share one thread pool; each fetch task fans out further inside.
IO_TASK_RUNNER: Any = ThreadPoolTaskRunner(max_workers=16)


@flow(name="ingest", task_runner=IO_TASK_RUNNER, validate_parameters=True)
def ingest(
    feeds_file: str | None = None,
    db: str | None = None,
    allow_private_networks: bool | None = None,
    due_only: bool = False,
    batch_size: int | None = None,
    extraction_workers: int | None = None,
    extraction_runner_spec: str | None = None,
) -> dict[str, Any]:
    """Poll feeds, fetch and extract new articles, and store them in the DuckDB warehouse.

    Args:
        feeds_file: a TOML or OPML feed list to register and poll; default: every registered feed.
        db: the warehouse file; default ``NEWSFLOW_DB`` or ``~/.local/share/newsflow/newsflow.duckdb``.
        allow_private_networks: fetch from loopback/private addresses (tests, intranets).
        due_only: poll only feeds whose next poll time has come (what scheduled runs do).
        batch_size: articles per fetch/extract/store batch.
        extraction_workers: extraction processes.
        extraction_runner_spec: ``process``, ``dask`` or ``dask://HOST:PORT``.

    Returns:
        The run's counts (also stored in the ``runs`` table and shown as the ``ingest-summary`` table
        artifact, and with the run's biggest stories as the ``ingest-report`` markdown artifact). When
        another ingest holds the warehouse's run lock, nothing is done and ``status`` is ``skipped``.
    """
    settings = load_settings(
        db=Path(db) if db else None,
        allow_private_networks=allow_private_networks,
        batch_size=batch_size,
        extraction_workers=extraction_workers,
        extraction_runner=extraction_runner_spec,
    )
    logger = get_run_logger()
    counts = IngestCounts()
    try:
        lock = ingest_lock_name(feeds_file)
        with Warehouse.open(settings).run_lock(lock, settings.run_lock_wait):
            feeds = register_feeds(feeds_file, settings, due_only)
            parameters = _public_parameters(feeds_file, due_only, settings)
            with tracked_run(settings, "ingest", parameters, counts, run_lock=lock) as run:
                ingest_feeds(feeds, settings, run, counts)
    except RunLockedError as exc:
        logger.warning("skipping this ingest: %s", exc)
        return {"run_id": None, "status": "skipped", "reason": str(exc), **counts.as_dict(), "timings": {}}
    summary = {"run_id": run.run_id, "status": run.status, **counts.as_dict(), "timings": run.timings}
    description = f"newsflow ingest {run.run_id}: {counts.articles_stored} articles stored"
    create_table_artifact(key="ingest-summary", table=summary_rows(summary), description=description)
    with Warehouse.open(settings).read() as con:
        stories = runs_table.run_stories(con, run.run_id, limit=REPORT_STORIES, links=REPORT_LINKS_PER_STORY)
    create_markdown_artifact(
        key="ingest-report", markdown=render_report(summary, stories), description=description
    )
    logger.info("%s", ingest_line(summary))
    return summary


def ingest_feeds(feeds: list[FeedState], settings: Settings, run: TrackedRun, counts: IngestCounts) -> None:
    """Poll ``feeds``, record the polls and schedule the next ones, then run the article pipeline."""
    polls = poll_all(feeds, settings)
    counts.add_polls(polls)
    run.lap("poll_s")
    planned = plan_entries([entry for poll in polls for entry in poll.entries], settings)
    counts.new_entries = len(planned)
    new_by_feed = Counter(p.entry.feed_url for p in planned)
    store_polls(polls, feeds, new_by_feed, settings, run.run_id)
    get_run_logger().info(
        "%d feeds polled (%d not modified, %d failed); %d entries, %d new",
        counts.feeds_polled,
        counts.feeds_not_modified,
        counts.feeds_failed,
        counts.entries_seen,
        counts.new_entries,
    )
    if planned:
        pages = sum(p.page_link is not None for p in planned)
        with api_shared_with_workers(), extraction_runner(settings, pages) as runner:
            process_articles(planned, settings, run.run_id, counts, runner)
        if not counts.batches_failed:  # else the next poll fetches those feeds in full and retries them
            save_validators([p for p in polls if new_by_feed[p.feed_url]], settings)
    run.lap("articles_s")


def ingest_lock_name(feeds_file: str | None) -> str:
    """The run lock of an ingest: one per feed selection. Two ingests of every registered feed exclude each
    other; ingests of different feed files run side by side (the write lock keeps overlapping entries
    stored once)."""
    if not feeds_file:
        return "ingest"
    return "ingest:" + hashlib.sha256(str(Path(feeds_file).resolve()).encode()).hexdigest()[:16]


def _public_parameters(feeds_file: str | None, due_only: bool, settings: Settings) -> dict[str, Any]:
    return {
        "feeds_file": feeds_file,
        "due_only": due_only,
        "db": str(settings.db),
        "allow_private_networks": settings.allow_private_networks,
        "batch_size": settings.batch_size,
        "extraction_workers": settings.extraction_workers,
        "extraction_runner": settings.extraction_runner,
    }
