"""The backfill flow: fill a past period from archived feeds, sitemaps, or the warehouse's own raw pages.

The window is split into chunks (a day each by default) recorded in ``backfill_chunks``; each chunk is a
resumable unit, so a backfill killed half-way and started again with the same parameters redoes only the
unfinished chunks, and a repeated backfill adds no rows. Discovered articles go through the same fetch,
extraction and dedupe stages as ingestion, under the same politeness limits.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import chain
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.futures import as_completed
from prefect.task_runners import TaskRunner

from newsflow.errors import ConfigError, RunLockedError
from newsflow.flows._pipeline import ArticleCounts, chunked, process_batches, run_pipeline
from newsflow.flows._report import backfill_line, summary_rows
from newsflow.flows._runners import api_shared_with_workers, extraction_runner, unwalked
from newsflow.flows._runs import TrackedRun, tracked_run
from newsflow.flows.ingest import IO_TASK_RUNNER
from newsflow.progress import report
from newsflow.records import Archive, FeedEntry, PlannedEntry
from newsflow.settings import Settings, load_settings
from newsflow.tasks.archives import (
    ARCHIVE_SOURCES,
    ArchiveJob,
    ArchiveTally,
    site_domains,
    validate_warc_files,
)
from newsflow.tasks.discovery import Discovery, Window, discover_feed_archive, discover_sitemaps
from newsflow.tasks.extraction import extract_pages
from newsflow.tasks.storing import (
    finish_backfill_chunk,
    finish_backfill_chunks,
    load_stored_pages,
    plan_entries,
    record_backfill_chunks,
    stored_page_days,
    update_articles,
)
from newsflow.warehouse import feeds as feeds_table
from newsflow.warehouse.lakehouse import Warehouse

Source = Literal["feeds", "sitemaps", "warehouse", "cc-news", "wayback", "cc-index"]
SOURCES: tuple[Source, ...] = ("feeds", "sitemaps", "warehouse", "cc-news", "wayback", "cc-index")
ARCHIVES = {archive.value: archive for archive in Archive}
MAX_WINDOW_DAYS = 3660


@dataclass
class BackfillCounts(ArticleCounts):
    """Running totals of one backfill."""

    chunks_total: int = 0
    chunks_already_done: int = 0
    chunks_done: int = 0
    documents_fetched: int = 0
    entries_in_window: int = 0
    undated_skipped: int = 0
    new_entries: int = 0
    reextracted: int = 0
    discovery_errors: Counter[str] = field(default_factory=Counter)
    #: Per archive source: units (files, sites), bytes, records read and kept, articles stored.
    archives: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_discovery(self, found: Discovery) -> None:
        self.documents_fetched += found.documents_fetched
        self.undated_skipped += found.undated
        self.discovery_errors.update(error.split(":")[0] for error in found.errors)


def day_chunks(since: date, until: date, days: int) -> list[tuple[date, date]]:
    """[start, end] date pairs covering since..until, ``days`` long (the last may be shorter)."""
    chunks = []
    start = since
    while start <= until:
        end = min(start + timedelta(days=days - 1), until)
        chunks.append((start, end))
        start = end + timedelta(days=1)
    return chunks


def backfill_id(parameters: dict[str, Any]) -> str:
    """Stable id of a backfill request: the same parameters resume the same backfill."""
    return hashlib.sha256(json.dumps(parameters, sort_keys=True, default=str).encode()).hexdigest()[:16]


def site_origin(site: str) -> str:
    """``https://DOMAIN`` for a bare domain; an origin URL (``http://host:port``) as it is."""
    if "://" in site:
        parts = urlsplit(site)
        return f"{parts.scheme}://{parts.netloc}"
    return f"https://{site.strip().strip('/')}"


@flow(name="backfill", task_runner=IO_TASK_RUNNER, validate_parameters=True)
def backfill(
    since: date,
    until: date,
    feed: str | None = None,
    site: str | list[str] | None = None,
    sources: list[Source] | None = None,
    db: str | None = None,
    allow_private_networks: bool | None = None,
    chunk_days: int = 1,
    batch_size: int | None = None,
    extraction_workers: int | None = None,
    warc: list[str] | None = None,
) -> dict[str, Any]:
    """Fill the period since..until (whole days, UTC, both included).

    Args:
        since: first day of the window.
        until: last day of the window.
        feed: only this feed's archive (and its site's sitemaps); default: every registered feed.
        site: only these sites: a domain (``example.com``: https, and with archives its subdomains too) or
            an origin URL; one or a list. Required by the archive sources.
        sources: any of ``feeds`` (archived and paged feeds), ``sitemaps``, ``warehouse`` (re-extract
            stored raw pages with no network), and the web archives ``cc-news``, ``wayback``, ``cc-index``;
            default ``feeds`` and ``sitemaps`` (``cc-news`` with ``warc``).
        db: the warehouse file.
        allow_private_networks: fetch from loopback/private addresses.
        chunk_days: days per resumable chunk (feeds, sitemaps, warehouse).
        batch_size: articles per fetch/extract/store batch.
        extraction_workers: extraction processes.
        warc: WARC files (paths or URLs) to read with ``cc-news`` instead of CC-NEWS's own listings.

    Returns:
        The backfill's counts; ``status`` is ``skipped`` when another backfill holds the warehouse.
    """
    sites = [site] if isinstance(site, str) else list(site or [])
    chosen = validate_request(since, until, sources, chunk_days, sites=sites, warc=warc)
    warc_urls = validate_warc_files(warc or [])
    settings = load_settings(
        db=Path(db) if db else None,
        allow_private_networks=allow_private_networks,
        batch_size=batch_size,
        extraction_workers=extraction_workers,
    )
    # One site is kept as a string, so backfills begun before sites could be several keep their id.
    parameters = {"since": since, "until": until, "feed": feed, "site": sites[0] if len(sites) == 1 else
                  sorted(sites) or None, "sources": sorted(chosen), "chunk_days": chunk_days,
                  "db": str(settings.db)}  # fmt: skip
    if warc_urls:
        parameters["warc"] = list(warc_urls)
    logger = get_run_logger()
    counts = BackfillCounts()
    try:
        with (
            Warehouse.open(settings).run_lock("backfill", settings.run_lock_wait),
            tracked_run(settings, "backfill", parameters, counts, run_lock="backfill") as run,
        ):
            fill(settings, parameters, chosen, counts, run)
    except RunLockedError as exc:
        logger.warning("skipping this backfill: %s", exc)
        return {"run_id": None, "status": "skipped", "reason": str(exc), **counts.as_dict(), "timings": {}}
    summary = {"run_id": run.run_id, "status": run.status, **counts.as_dict(), "timings": run.timings}
    create_table_artifact(
        key="backfill-summary", table=summary_rows(summary),
        description=f"newsflow backfill {run.run_id}: {counts.articles_stored} articles stored",
    )  # fmt: skip
    logger.info("%s", backfill_line(summary))
    return summary


def validate_request(
    since: date,
    until: date,
    sources: list[Source] | None,
    chunk_days: int,
    *,
    sites: list[str] | None = None,
    warc: list[str] | None = None,
) -> set[Source]:
    """The sources to read, or a ConfigError saying what is wrong with the request."""
    if since > until:
        raise ConfigError(f"--since {since} is after --until {until}")
    if (until - since).days > MAX_WINDOW_DAYS:
        raise ConfigError(f"window of {(until - since).days} days is over the {MAX_WINDOW_DAYS}-day limit")
    if chunk_days < 1:
        raise ConfigError("chunk_days must be at least 1")
    chosen = set(sources or (("cc-news",) if warc else ("feeds", "sitemaps")))
    unknown = chosen - set(SOURCES)
    if unknown:
        raise ConfigError(f"unknown source(s) {sorted(unknown)}: choose from {', '.join(SOURCES)}")
    archives = sorted(chosen & set(ARCHIVES))
    if archives and not site_domains(sites or []):
        raise ConfigError(
            f"--source {archives[0]} needs --site DOMAIN (repeatable): a web archive holds every site of "
            "the web, so say which to keep (a domain takes its subdomains: nytimes.com takes www.nytimes.com)"
        )
    if warc and "cc-news" not in chosen:
        raise ConfigError("--warc files are read by --source cc-news: add it")
    return chosen


def fill(
    settings: Settings,
    parameters: dict[str, Any],
    sources: set[Source],
    counts: BackfillCounts,
    run: TrackedRun,
) -> None:
    """The archive sources, then the others: every unfinished chunk in date order, each marked done as it
    completes."""
    archives = [ARCHIVES[source] for source in SOURCES if source in sources and source in ARCHIVES]
    if archives:
        fill_from_archives(settings, parameters, archives, counts, run)
        sources = sources - set(ARCHIVES)
        if not sources:
            return
    since, until = parameters["since"], parameters["until"]
    chunks = day_chunks(since, until, parameters["chunk_days"])
    identity = backfill_id(parameters)
    done = record_backfill_chunks(settings, identity, chunks, parameters)
    pending = [chunk for chunk in chunks if chunk[0] not in done]
    counts.chunks_total, counts.chunks_already_done = len(chunks), len(chunks) - len(pending)
    report("backfill chunks", counts.chunks_already_done, len(chunks))
    if not pending:
        get_run_logger().info("backfill %s is complete already: nothing to do", identity)
        return
    by_chunk = discover(settings, parameters, sources, pending, counts)
    stored_days = stored_page_days(settings, pending) if "warehouse" in sources else set()
    run.lap("discovery_s")
    found = [entry for chunk in pending for entry in by_chunk.get(chunk[0], [])]
    planned = plan_entries(found, settings, drop_known_urls=True) if found else []
    counts.new_entries = len(planned)
    batches, batch_chunks = batches_by_chunk(planned, by_chunk, pending, settings.batch_size)
    to_reextract = [c for c in pending if any(c[0] <= day <= c[1] for day in stored_days)]
    progress = ChunkProgress(
        settings, identity, counts, len(chunks), {c[0]: len(by_chunk.get(c[0], [])) for c in pending}
    )
    for chunk in pending:
        progress.expect(chunk[0], batch_chunks.count(chunk[0]) + (chunk in to_reextract))
    # Chunks with nothing to do are closed together: a long window must not cost task runs per day.
    progress.finish_idle()
    if batches or to_reextract:
        with api_shared_with_workers(), extraction_runner(settings) as runner:
            for chunk in to_reextract:
                reextract(settings, Window(*chunk), counts, runner)
                progress.part_done(chunk[0], True)
            # One pipeline across all chunks, so fetching, extraction and writes overlap between chunks.
            process_batches(
                batches, settings, run.run_id, counts, runner,
                after_batch=lambda index, ok: progress.part_done(batch_chunks[index], ok),
            )  # fmt: skip
    run.lap("chunks_s")


def fill_from_archives(
    settings: Settings,
    parameters: dict[str, Any],
    archives: list[Archive],
    counts: BackfillCounts,
    run: TrackedRun,
) -> None:
    """Read the archives' units for the window's sites through one article pipeline, keeping the articles
    published in the window."""
    run.lap("setup_s")  # the run's row and the lake's migrations, apart from the archives' own time
    sites = parameters["site"]
    job = ArchiveJob(
        backfill_id=backfill_id(parameters),
        sites=site_domains([sites] if isinstance(sites, str) else sites),
        publication_start=Window(parameters["since"], parameters["until"]).start,
        publication_end=Window(parameters["since"], parameters["until"]).end,
        crawl_lag=timedelta(days=settings.crawl_lag_days),
        warc_files=tuple(parameters.get("warc", ())),
    )
    tally = ArchiveTally(job, archives)
    batches = chain.from_iterable(
        ARCHIVE_SOURCES[archive](settings, job, tally.counts[archive]) for archive in archives
    )
    try:
        with api_shared_with_workers(), extraction_runner(settings, on_first_use=True) as runner:
            run_pipeline(batches, settings, run.run_id, counts, runner, select=tally.select,
                         after_store=tally.stored)  # fmt: skip
    finally:
        counts.archives = {archive.value: numbers.as_dict() for archive, numbers in tally.counts.items()}
        counts.new_entries += sum(c.records.kept - c.already_stored for c in tally.counts.values())
        run.lap("archives_s")


def batches_by_chunk(
    planned: Sequence[PlannedEntry],
    by_chunk: dict[date, list[FeedEntry]],
    pending: Sequence[tuple[date, date]],
    batch_size: int,
) -> tuple[list[list[PlannedEntry]], list[date]]:
    """Batches in chunk (date) order that never span two chunks, and the chunk start of each batch."""
    chunk_of = {entry: start for start, entries in by_chunk.items() for entry in entries}
    batches: list[list[PlannedEntry]] = []
    owners: list[date] = []
    for start, _ in pending:
        mine = [p for p in planned if chunk_of.get(p.entry) == start]
        for batch in chunked(mine, batch_size):
            batches.append(batch)
            owners.append(start)
    return batches, owners


@dataclass
class ChunkProgress:
    """Marks a chunk done once every part of its work (its batches, its re-extraction) is stored; a chunk
    with a failed part stays pending, so a restarted backfill does it again."""

    settings: Settings
    identity: str
    counts: BackfillCounts
    total_chunks: int
    entries_found: dict[date, int]
    remaining: dict[date, int] = field(default_factory=dict)
    failed: set[date] = field(default_factory=set)
    stored: dict[date, int] = field(default_factory=dict)
    _stored_seen: int = 0

    def expect(self, chunk_start: date, parts: int) -> None:
        self.remaining[chunk_start] = parts

    def finish_idle(self) -> None:
        idle = [start for start, parts in self.remaining.items() if parts == 0]
        if idle:
            finish_backfill_chunks(self.settings, self.identity, idle)
            self.counts.chunks_done += len(idle)
        self._report()

    def part_done(self, chunk_start: date, ok: bool) -> None:
        stored_now = self.counts.articles_stored
        self.stored[chunk_start] = self.stored.get(chunk_start, 0) + stored_now - self._stored_seen
        self._stored_seen = stored_now
        self.remaining[chunk_start] -= 1
        if not ok:
            self.failed.add(chunk_start)
        if self.remaining[chunk_start] == 0 and chunk_start not in self.failed:
            finish_backfill_chunk(
                self.settings, self.identity, chunk_start, self.entries_found[chunk_start],
                self.stored[chunk_start],
            )  # fmt: skip
            self.counts.chunks_done += 1
            self._report()

    def _report(self) -> None:
        report(
            "backfill chunks", self.counts.chunks_already_done + self.counts.chunks_done, self.total_chunks
        )


def discover(
    settings: Settings,
    parameters: dict[str, Any],
    sources: set[Source],
    pending: Sequence[tuple[date, date]],
    counts: BackfillCounts,
) -> dict[date, list[FeedEntry]]:
    """In-window entries of the network sources, grouped by the chunk their date falls in."""
    if not sources & {"feeds", "sitemaps"}:
        return {}
    window = Window(pending[0][0], pending[-1][1])
    feed_urls, origins = _targets(settings, parameters)
    futures = []
    if "feeds" in sources:
        futures += [discover_feed_archive.submit(u, window.since, window.until, settings) for u in feed_urls]
    if "sitemaps" in sources:
        futures += [discover_sitemaps.submit(o, window.since, window.until, settings) for o in origins]
    unique: dict[str, FeedEntry] = {}
    for future in as_completed(futures):
        found: Discovery = future.result()
        counts.add_discovery(found)
        for entry in found.entries:
            # An article listed by its feed and by a sitemap is one entry; the feed's has the guid.
            key = entry.link or f"{entry.feed_url}#{entry.guid}"
            if key not in unique or (entry.guid and not unique[key].guid):
                unique[key] = entry
    starts = {start: Window(start, end) for start, end in pending}
    by_chunk: dict[date, list[FeedEntry]] = defaultdict(list)
    for entry in sorted(unique.values(), key=lambda e: (e.published_at or e.updated_at, e.link or "")):
        moment = entry.published_at or entry.updated_at
        for start, chunk in starts.items():
            if chunk.contains(moment):
                by_chunk[start].append(entry)
                break
    counts.entries_in_window = sum(len(v) for v in by_chunk.values())
    return by_chunk


def _targets(settings: Settings, parameters: dict[str, Any]) -> tuple[list[str], list[str]]:
    """Feed URLs whose archives to walk, and site origins whose sitemaps to read."""
    feed, site = parameters["feed"], parameters["site"]
    if feed:
        feed_urls = [feed]
    else:
        with Warehouse.open(settings).read() as con:
            feed_urls = [state.url for state in feeds_table.feed_states(con)]
    if site:
        origins = sorted({site_origin(s) for s in ([site] if isinstance(site, str) else site)})
        feed_urls = [u for u in feed_urls if site_origin(u) in origins] if not feed else feed_urls
        return feed_urls, origins
    return feed_urls, sorted({site_origin(u) for u in feed_urls})


def reextract(settings: Settings, window: Window, counts: BackfillCounts, runner: TaskRunner[Any]) -> None:
    """Re-extract the stored raw pages of the articles published in ``window``, with no network."""
    pages = load_stored_pages(settings, window.start, window.end)
    for start in range(0, len(pages), settings.batch_size):
        batch = pages[start : start + settings.batch_size]
        articles = runner.submit(extract_pages, {"pages": unwalked(batch)}).result()
        counts.reextracted += update_articles(unwalked(articles), settings)
        counts.add_extractions(articles)
