"""The article pipeline shared by flows: fetch -> extract -> store, per batch, bounded and in order.

Not a deployable flow (hence the underscore): ``ingest`` and ``backfill`` both feed it planned entries; their
run bookkeeping is in ``_runs``.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from prefect import get_run_logger
from prefect.futures import PrefectFuture
from prefect.task_runners import TaskRunner

from newsflow.flows._runners import unwalked
from newsflow.progress import report
from newsflow.records import (
    Article,
    Checkpoint,
    ContentSource,
    FetchedPage,
    PlannedEntry,
    StoreOutcome,
    UnitStatus,
    WorkBatch,
)
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
    #: What filters dropped, by rule (entries before the fetch, articles after extraction).
    filtered: Counter[str] = field(default_factory=Counter)
    #: Alerts decided by this run's stores, and what the delivery at its end did.
    alerts: int = 0
    alert_deliveries: dict[str, int] = field(default_factory=dict)
    #: reason -> {feed URL: articles} for the first URLS_PER_REASON feeds with that reason.
    fetch_error_feeds: dict[str, Counter[str]] = field(default_factory=dict)
    extraction_error_feeds: dict[str, Counter[str]] = field(default_factory=dict)

    def add_articles(self, articles: Sequence[Article], outcome: StoreOutcome) -> None:
        self.articles_stored += outcome.inserted
        self.duplicates += sum(outcome.duplicates.values())
        self.duplicate_reasons.update(outcome.duplicates)
        self.stories_new += outcome.new_stories
        self.stories_joined += outcome.joined_stories
        self.filtered.update(outcome.filtered)
        self.alerts += outcome.alerts
        self.add_extractions([a for a in articles if a.filtered_by is None])  # those were never fetched

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
    """Fetch, extract and store batches of entries (see :func:`run_pipeline`)."""
    run_pipeline(
        (WorkBatch(entries=tuple(batch)) for batch in batches), settings, run_id, counts, runner,
        total=sum(len(batch) for batch in batches), after_batch=after_batch,
    )  # fmt: skip


#: Chooses which of a batch's extracted articles are stored (an archive backfill keeps its window's), and
#: says whether the batch is complete: an incomplete one (a page the archive failed to serve for now) stops
#: its unit's checkpoints there, as a failed batch does, so the unit is read again.
Selector = Callable[[list[Article]], tuple[list[Article], bool]]
#: Why a unit with a failed (or incomplete) batch is recorded as failed.
UNIT_INCOMPLETE = "a batch failed, or a page of it could not be read for now (see the run's log)"
#: Called with each store's outcome and the checkpoints it stored.
AfterStore = Callable[[StoreOutcome, Sequence[Checkpoint]], None]


def run_pipeline(
    batches: Iterable[WorkBatch],
    settings: Settings,
    run_id: str,
    counts: ArticleCounts,
    runner: TaskRunner[Any],
    *,
    total: int | None = None,
    select: Selector | None = None,
    after_batch: Callable[[int, bool], None] | None = None,
    after_store: AfterStore | None = None,
) -> None:
    """Fetch, extract and store ``batches``; ``after_batch(index, stored)`` is called as each one is
    stored (True) or given up (False), ``after_store`` with each store's outcome and checkpoints.

    ``batches`` is drawn on a thread of its own, one batch at a time and no further ahead of the store than
    twice the extraction workers, so memory stays bounded however many entries are new, and a source that
    reads as it goes (an archive file) reads while the workers extract. A batch of entries is fetched
    (at most FETCH_BATCHES_IN_FLIGHT at a time); a batch of pages read already goes straight to
    extraction on ``runner``. Batches are stored in order as soon as they and all earlier ones are
    extracted, so the "first copy" of a duplicate follows feed order. Batches that are ready together (the
    workers finish at about the same time, or finished while the last store ran) are stored in one
    transaction: a store step has a fixed cost of about 0.25 s (twenty-odd statements on the lake and a
    commit that writes a Parquet file per table), so this halves it when the workers keep pace, and keeps
    the lake's files fewer and larger. A batch's checkpoint is stored in the transaction of its articles.
    A batch whose task fails is logged, counted and left unstored: its entries are still new for the next
    run, and the checkpoints of its unit stop there (the unit is recorded as failed, to be read again).
    """
    freeze_start_up_objects()
    events: queue.Queue[tuple[str, int, Any]] = queue.Queue()
    room = threading.Semaphore(2 * settings.extraction_workers + 1)
    _start_source(batches, events, room)
    stage = _Stages(settings, run_id, counts, runner, events, total, select, after_batch, after_store)
    while not stage.finished():
        for event in _this_and_waiting(events):
            stage.handle(*event)
        stage.start_fetches()
        if done := stage.store_ready():
            room.release(done)
    stage.record_failed_units()
    if stage.source_error is not None:
        raise stage.source_error


def _start_source(batches: Iterable[WorkBatch], events: queue.Queue[tuple[str, int, Any]],
                  room: threading.Semaphore) -> None:  # fmt: skip
    """Draw ``batches`` on a thread (in this flow run's context), each after a ``room`` permit, into
    ``events``: ("batch", index, batch) each, then ("end", count, None) or ("error", index, exception)."""

    def pump() -> None:
        index = 0
        try:
            for batch in batches:
                events.put(("batch", index, batch))
                index += 1
                room.acquire()
        except Exception as exc:  # noqa: BLE001 - reported to the pipeline, which ends the run with it
            events.put(("error", index, exc))
            return
        events.put(("end", index, None))

    context = contextvars.copy_context()
    room.acquire()
    threading.Thread(target=context.run, args=(pump,), name="pipeline-source", daemon=True).start()


class _Stages:
    """The pipeline's state between events: what is fetched, extracted and stored."""

    def __init__(
        self,
        settings: Settings,
        run_id: str,
        counts: ArticleCounts,
        runner: TaskRunner[Any],
        events: queue.Queue[tuple[str, int, Any]],
        total: int | None,
        select: Selector | None,
        after_batch: Callable[[int, bool], None] | None,
        after_store: AfterStore | None,
    ) -> None:
        self.settings, self.run_id, self.counts, self.runner = settings, run_id, counts, runner
        self.events, self.total, self.select = events, total, select
        self.after_batch, self.after_store = after_batch, after_store
        self.batches: dict[int, WorkBatch] = {}
        self.received = self.next_store = self.fetching = self.fetched = self.stored = self.seen = 0
        self.to_fetch: deque[int] = deque()
        self.extracted: dict[int, list[Article] | None] = {}
        self.source_done = False
        self.source_error: Exception | None = None
        self.failed_units: dict[tuple[str, str, str], Checkpoint] = {}

    def finished(self) -> bool:
        return self.source_done and self.next_store == self.received

    def handle(self, kind: str, index: int, value: Any) -> None:
        if kind == "batch":
            self.batches[index] = value
            self.received += 1
            self.seen += len(value)
            if value.pages is None and value.entries:
                self.to_fetch.append(index)
            else:
                self._extract(index, list(value.pages or ()))
        elif kind in ("end", "error"):
            self.source_done = True
            if kind == "error":
                get_run_logger().error("reading batch %d failed; the run stops after what it read: %s",
                                       index, value)  # fmt: skip
                self.source_error = value
        elif kind == "fetched":
            self.fetching -= 1
            pages: list[FetchedPage] | None = _result_or_none(value, kind, index)
            if pages is None:
                self.extracted[index] = None
            else:
                self.fetched += len(pages)
                report("fetch pages", self.fetched, self.total or self.seen)
                self._extract(index, pages)
        else:
            self.extracted[index] = _result_or_none(value, kind, index)

    def _notify(self, stage: str, index: int) -> Callable[[PrefectFuture[Any]], None]:
        return lambda future: self.events.put((stage, index, future))

    def _extract(self, index: int, pages: list[FetchedPage]) -> None:
        if not pages:
            self.extracted[index] = []
            return
        extracting = self.runner.submit(extract_pages, {"pages": unwalked(pages)})
        extracting.add_done_callback(self._notify("extracted", index))

    def start_fetches(self) -> None:
        while self.to_fetch and self.fetching < FETCH_BATCHES_IN_FLIGHT:
            index = self.to_fetch.popleft()
            fetching = fetch_pages.submit(unwalked(list(self.batches[index].entries)), self.settings)
            fetching.add_done_callback(self._notify("fetched", index))
            self.fetching += 1

    def store_ready(self) -> int:
        """Store the batches ready in order, in one transaction; returns how many were done with."""
        ready: list[tuple[int, list[Article] | None]] = []
        while self.next_store + len(ready) in self.extracted:
            index = self.next_store + len(ready)
            ready.append((index, self.extracted.pop(index)))
        articles: list[Article] = []
        checkpoints: list[Checkpoint] = []
        for index, extracted in ready:
            point = self.batches.pop(index).checkpoint
            if extracted is None:
                self.counts.batches_failed += 1
                if point is not None:
                    self.failed_units.setdefault(point.key, point)
                continue
            kept, complete = self.select(extracted) if self.select else (extracted, True)
            articles += kept
            if point is not None and not complete:
                self.failed_units.setdefault(point.key, point)
            if point is not None and point.key not in self.failed_units:
                checkpoints.append(replace(point, article_ids=tuple(a.article_id for a in kept)))
        if articles or checkpoints:
            self._store(articles, checkpoints)
            self.stored += len(articles)
            report("store articles", self.stored, self.total or self.seen)
        if self.after_batch is not None:
            for index, extracted in ready:
                self.after_batch(index, extracted is not None)
        self.next_store += len(ready)
        return len(ready)

    def _store(self, articles: list[Article], checkpoints: list[Checkpoint]) -> None:
        outcome = store_articles(unwalked(articles), self.settings, self.run_id, unwalked(checkpoints))
        self.counts.add_articles(articles, outcome)
        if self.after_store is not None:
            self.after_store(outcome, checkpoints)

    def record_failed_units(self) -> None:
        """Units with a batch that failed are recorded as failed (their progress stays at the last batch
        stored before it), so the next run reads them again from there."""
        if not self.failed_units:
            return
        failed = [
            replace(point, status=UnitStatus.FAILED, resume_at=None, records_read=0, records_kept=0,
                    bytes_read=None, article_ids=(), error=UNIT_INCOMPLETE)
            for point in self.failed_units.values()
        ]  # fmt: skip
        self._store([], failed)


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
