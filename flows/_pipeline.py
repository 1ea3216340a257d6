"""The article pipeline shared by flows: fetch -> extract -> store, per batch, bounded and in order.

Not a deployable flow (hence the underscore): ``ingest`` and ``backfill`` both feed it planned entries; their
run bookkeeping is in ``_runs``.
"""

from __future__ import annotations

import queue
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from prefect import get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner

from newsflow.flows._runners import unwalked
from newsflow.progress import report
from newsflow.records import Article, ContentSource, FetchedPage, PlannedEntry, StoreOutcome
from newsflow.settings import Settings
from newsflow.system import freeze_start_up_objects
from newsflow.tasks.extraction import extract_pages
from newsflow.tasks.fetching import fetch_pages
from newsflow.tasks.storing import store_articles

#: Fetch batches in flight at once: one saturates the per-host limits; two hide a slow batch's tail.
FETCH_BATCHES_IN_FLIGHT = 2

#: Feed URLs remembered per failure reason, for the run report (the counts say how many there were in all).
URLS_PER_REASON = 10

T = TypeVar("T")


@dataclass
class ArticleCounts:
    """Totals of articles through the pipeline; flows extend it with their own figures."""

    articles_stored: int = 0
    duplicates: int = 0
    stories_new: int = 0
    stories_joined: int = 0
    extracted: int = 0
    fell_back_to_feed: int = 0
    no_text: int = 0
    batches_failed: int = 0
    fetch_errors: Counter[str] = field(default_factory=Counter)
    extraction_errors: Counter[str] = field(default_factory=Counter)
    duplicate_reasons: Counter[str] = field(default_factory=Counter)
    #: reason -> {feed URL: articles} for the first URLS_PER_REASON feeds with that reason.
    fetch_error_feeds: dict[str, Counter[str]] = field(default_factory=dict)
    extraction_error_feeds: dict[str, Counter[str]] = field(default_factory=dict)

    def add_articles(self, articles: Sequence[Article], outcome: StoreOutcome) -> None:
        self.articles_stored += outcome.inserted
        self.duplicates += sum(outcome.duplicates.values())
        self.duplicate_reasons.update(outcome.duplicates)
        self.stories_new += outcome.new_stories
        self.stories_joined += outcome.joined_stories
        self.add_extractions(articles)

    def add_extractions(self, articles: Sequence[Article]) -> None:
        for article in articles:
            if article.content_source is ContentSource.PAGE:
                self.extracted += 1
            elif article.content_source is ContentSource.NONE:
                self.no_text += 1
            else:
                self.fell_back_to_feed += 1
            if article.fetch_error and article.fetch_error != "known_url":
                self.fetch_errors[article.fetch_error] += 1
                _note_feed(self.fetch_error_feeds, article.fetch_error, article.feed_url)
            if article.extraction_error:
                reason = article.extraction_error.split(":")[0]
                self.extraction_errors[reason] += 1
                _note_feed(self.extraction_error_feeds, reason, article.feed_url)

    def as_dict(self) -> dict[str, Any]:
        return {name: _plain(value) for name, value in self.__dict__.items()}


def _note_feed(by_reason: dict[str, Counter[str]], reason: str, feed_url: str) -> None:
    feeds = by_reason.setdefault(reason, Counter())
    if feed_url in feeds or len(feeds) < URLS_PER_REASON:
        feeds[feed_url] += 1


def _plain(value: Any) -> Any:
    """``value`` with Counters as plain dicts and lists copied, nested too (the summary outlives the run)."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return list(value)
    return value


def chunked(items: Sequence[PlannedEntry], size: int) -> Iterator[list[PlannedEntry]]:
    """Consecutive slices of at most ``size`` items."""
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def process_articles(
    planned: Sequence[PlannedEntry],
    settings: Settings,
    run_id: str,
    counts: ArticleCounts,
    runner: TaskRunner[Any],
) -> None:
    """Fetch, extract and store ``planned`` entries in batches of ``settings.batch_size``."""
    process_batches(list(chunked(planned, settings.batch_size)), settings, run_id, counts, runner)


def process_batches(
    batches: Sequence[list[PlannedEntry]],
    settings: Settings,
    run_id: str,
    counts: ArticleCounts,
    runner: TaskRunner[Any],
    after_batch: Callable[[int, bool], None] | None = None,
) -> None:
    """Fetch, extract and store ``batches``; ``after_batch(index, stored)`` is called as each one is
    stored (True) or given up (False).

    Batches are fetched in order, at most FETCH_BATCHES_IN_FLIGHT at a time, and no further ahead of the
    store than twice the extraction workers (memory stays bounded however many entries are new). Each is
    extracted on ``runner`` as soon as it is fetched and stored as soon as it and all earlier batches are
    extracted, so the "first copy" of a duplicate follows feed order. Batches that are ready together
    (the workers finish at about the same time, or finished while the last store ran) are stored in one
    transaction: a store step has a fixed cost of about 0.25 s (twenty-odd statements on the lake and a
    commit that writes a Parquet file per table), so this halves it when the workers keep pace, and keeps
    the lake's files fewer and larger. A batch whose task fails is logged, counted and left unstored: its
    entries are still new for the next run.
    """
    freeze_start_up_objects()
    total = sum(len(batch) for batch in batches)
    max_ahead = 2 * settings.extraction_workers + 1
    events: queue.Queue[tuple[str, int, PrefectFuture[Any]]] = queue.Queue()
    extracted: dict[int, list[Article] | None] = {}
    next_fetch = next_store = fetching = fetched = stored = 0

    def notify(stage: str, index: int) -> Callable[[PrefectFuture[Any]], None]:
        return lambda future: events.put((stage, index, future))

    while next_store < len(batches):
        while (
            next_fetch < len(batches)
            and fetching < FETCH_BATCHES_IN_FLIGHT
            and next_fetch - next_store < max_ahead
        ):
            fetching_batch = fetch_pages.submit(unwalked(batches[next_fetch]), settings)
            fetching_batch.add_done_callback(notify("fetched", next_fetch))
            next_fetch += 1
            fetching += 1
        for stage, index, future in _this_and_waiting(events):
            if stage == "fetched":
                fetching -= 1
                pages: list[FetchedPage] | None = _result_or_none(future, stage, index)
                if pages is None:
                    extracted[index] = None
                else:
                    fetched += len(pages)
                    report("fetch pages", fetched, total)
                    extracting = runner.submit(extract_pages, {"pages": unwalked(pages)})
                    extracting.add_done_callback(notify("extracted", index))
            else:
                extracted[index] = _result_or_none(future, stage, index)
        ready: list[list[Article] | None] = []
        while next_store + len(ready) in extracted:
            ready.append(extracted.pop(next_store + len(ready)))
        articles = [article for batch in ready if batch is not None for article in batch]
        counts.batches_failed += sum(batch is None for batch in ready)
        if articles:
            counts.add_articles(articles, store_articles(unwalked(articles), settings, run_id))
            stored += len(articles)
            report("store articles", stored, total)
        if after_batch is not None:
            for offset, batch in enumerate(ready):
                after_batch(next_store + offset, batch is not None)
        next_store += len(ready)


def _this_and_waiting(events: queue.Queue[T]) -> Iterator[T]:
    """The next event (waiting for it), then every event already queued behind it."""
    yield events.get()
    while True:
        try:
            yield events.get_nowait()
        except queue.Empty:
            return


def _result_or_none(future: PrefectFuture[Any], stage: str, index: int) -> Any:
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - one bad batch must not fail the run
        get_run_logger().error(
            "batch %d failed when %s; its entries stay new and are retried next run: %s", index, stage, exc
        )
        return None
