"""Archive backfills as sources of work for the article pipeline: CC-NEWS files, the Wayback Machine and
Common Crawl's index turned into batches of pages (or of captures to read), each with the checkpoint of
its unit of work.

Units: a WARC file (``cc-news``; resumed at the byte offset of the first record not yet stored), a site's
CDX query (``wayback``; resumed at its resume key) and a crawl's index for a site (``cc-index``; resumed at
an index page). A unit done by an earlier run of the same backfill is skipped; a unit that cannot be read
(after the archive client's retries) is recorded as failed with its reason, and the next unit goes on.
Pages already stored (same article id or URL, from any source) are dropped before extraction.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timedelta
from pathlib import Path

from newsflow.clock import utcnow
from newsflow.errors import ConfigError, FetchError
from newsflow.net.archive import shared_archive_client
from newsflow.net.ccnews import news_files
from newsflow.net.cdx import CaptureQuery, IndexedCapture, IndexPage, cc_crawls, cc_index_pages, wayback_pages
from newsflow.net.http import TRANSIENT_STATUS
from newsflow.net.urls import SiteMatcher, site_domain
from newsflow.net.warc import ArchivedResponse, RecordFilter, ScanChunk, ScanCounts, scan_warc
from newsflow.progress import report
from newsflow.records import (
    Archive,
    Article,
    Capture,
    Checkpoint,
    ContentSource,
    FeedEntry,
    FetchedPage,
    PlannedEntry,
    StoreOutcome,
    UnitStatus,
    WorkBatch,
    compress_page,
)
from newsflow.settings import Settings
from newsflow.tasks.storing import identified, unstored
from newsflow.warehouse import backfills as backfills_table
from newsflow.warehouse.backfills import UnitState
from newsflow.warehouse.lakehouse import Warehouse

logger = logging.getLogger(__name__)

GZIP_MAGIC = b"\x1f\x8b"


@dataclass(frozen=True)
class ArchiveJob:
    """One archive backfill: its identity, its sites, the publication window and the capture window (the
    publication window plus the crawl lag: a page is often captured a day or two after it appears)."""

    backfill_id: str
    sites: tuple[str, ...]
    publication_start: datetime
    publication_end: datetime
    crawl_lag: timedelta
    #: WARC files the user has (paths or URLs), read instead of CC-NEWS's listings.
    warc_files: tuple[str, ...] = ()

    @property
    def capture_start(self) -> datetime:
        return self.publication_start

    @property
    def capture_end(self) -> datetime:
        return self.publication_end + self.crawl_lag

    def published_in_window(self, article: Article) -> bool:
        """Whether the article's publication time (the page's, else its capture time) is in the window."""
        moment = article.published_at or (article.capture.captured_at if article.capture else None)
        return moment is not None and self.publication_start <= moment < self.publication_end


@dataclass
class ArchiveCounts:
    """What one archive gave in one run."""

    units: int = 0
    units_done_before: int = 0
    units_done: int = 0
    units_failed: int = 0
    bytes_read: int = 0
    index_rows: int = 0
    records: ScanCounts = field(default_factory=ScanCounts)
    already_stored: int = 0
    outside_publication_window: int = 0
    #: Pages read but not stored for want of text, by reason (``http_404``, ``no_main_text``, ...).
    not_stored: Counter[str] = field(default_factory=Counter)
    articles_stored: int = 0
    problems: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        out["records"] = self.records.as_dict()
        out["not_stored"] = dict(self.not_stored)
        out["problems"] = dict(self.problems)
        return out


#: Why a capture could not be read that may not hold next time: the unit is read again by the next run.
TRANSIENT_REASONS = frozenset(
    {"timeout", "connect_error", "connection_reset", "protocol_error", "dns_error"}
    | {f"http_{status}" for status in TRANSIENT_STATUS}
)


class ArchiveTally:
    """What the article pipeline keeps of the archives' pages, and the run's counts per archive."""

    def __init__(self, job: ArchiveJob, archives: Sequence[Archive]) -> None:
        self.job = job
        self.counts = {archive: ArchiveCounts() for archive in archives}

    def select(self, articles: list[Article]) -> tuple[list[Article], bool]:
        """The articles with text published in the window; and False when a page could not be read for a
        reason that may pass (its unit is then read again next run)."""
        kept, complete = [], True
        for article in articles:
            if article.capture is None:
                kept.append(article)
                continue
            counts = self.counts[article.capture.archive]
            if article.content_source is ContentSource.NONE:  # no page text: not an article
                reason = article.fetch_error or (article.extraction_error or "no_text").split(":")[0]
                counts.not_stored[reason] += 1
                complete = complete and reason not in TRANSIENT_REASONS
            elif self.job.published_in_window(article):
                kept.append(article)
            else:
                counts.outside_publication_window += 1
        return kept, complete

    def stored(self, outcome: StoreOutcome, checkpoints: Sequence[Checkpoint]) -> None:
        """Count what a store committed: articles per archive, and the units it finished or gave up."""
        for (_, archive, _), number in outcome.stored_by_unit.items():
            self.counts[Archive(archive)].articles_stored += number
        for point in checkpoints:
            counts = self.counts[point.archive]
            counts.units_done += point.status is UnitStatus.DONE
            counts.units_failed += point.status is UnitStatus.FAILED
            if point.status is not UnitStatus.PENDING:
                finished = counts.units_done_before + counts.units_done + counts.units_failed
                report(f"{point.archive.value} units", finished, counts.units)


def validate_warc_files(paths: Sequence[str]) -> tuple[str, ...]:
    """Local WARC files as absolute ``file://`` URLs (URLs as given); a missing file or one that is not a
    gzip-compressed WARC is a ConfigError."""
    urls = []
    for given in paths:
        if "://" in given:
            urls.append(given)
            continue
        path = Path(given).expanduser().absolute()
        if not path.is_file():
            raise ConfigError(f"--warc {given}: no such file")
        with path.open("rb") as handle:
            if handle.read(2) != GZIP_MAGIC:
                raise ConfigError(
                    f"--warc {given}: not a gzip-compressed WARC file (.warc.gz, a gzip member per record, "
                    "as Common Crawl writes them)"
                )
        urls.append(path.as_uri())
    return tuple(urls)


# ------------------------------------------------------------------------------------------------ units


def register_units(
    settings: Settings, job: ArchiveJob, archive: Archive, units: Sequence[str]
) -> dict[str, UnitState]:
    """Record the units of this backfill (once) and return where each stands."""
    with Warehouse.open(settings).write() as con:
        return backfills_table.ensure_units(con, job.backfill_id, archive, units, utcnow())


class _Units:
    """The units of one archive in this run: which to skip, and the progress bar of those done."""

    def __init__(self, settings: Settings, job: ArchiveJob, archive: Archive, units: Sequence[str],
                 counts: ArchiveCounts) -> None:  # fmt: skip
        self.job, self.archive, self.counts = job, archive, counts
        self.states = register_units(settings, job, archive, units) if units else {}
        self.total = len(units)
        counts.units += len(units)
        counts.units_done_before += sum(s.status is UnitStatus.DONE for s in self.states.values())
        report(f"{archive.value} units", counts.units_done_before, counts.units)

    def todo(self, unit: str) -> UnitState | None:
        """The unit's state when it is still to do, None when an earlier run finished it."""
        state = self.states.get(unit)
        return None if state is None or state.status is UnitStatus.DONE else state

    def checkpoint(
        self,
        unit: str,
        status: UnitStatus = UnitStatus.PENDING,
        *,
        resume_at: str | None = None,
        records_read: int = 0,
        records_kept: int = 0,
        bytes_read: int | None = None,
        error: str | None = None,
    ) -> Checkpoint:
        return Checkpoint(
            self.job.backfill_id, self.archive, unit, status, resume_at, records_read, records_kept,
            bytes_read, error=error,
        )  # fmt: skip

    def failed(self, unit: str, exc: FetchError) -> WorkBatch:
        logger.warning("%s %s failed: %s", self.archive.value, unit, exc)
        self.counts.problems[exc.reason] += 1
        return WorkBatch(checkpoint=self.checkpoint(unit, UnitStatus.FAILED, error=str(exc)[:500]))


def _new_pages(
    pages: list[FetchedPage], settings: Settings, counts: ArchiveCounts
) -> tuple[FetchedPage, ...]:
    """``pages`` without those already stored or repeated (same id or URL); a page whose entry a filter
    drops goes on without its HTML (it is recorded as filtered, never extracted)."""
    if not pages:
        return ()
    fresh = {
        p.article_id: p for p in unstored([page.planned for page in pages], settings, drop_known_urls=True)
    }
    kept: dict[str, FetchedPage] = {}
    for page in pages:
        planned = fresh.get(page.planned.article_id)
        if planned is not None:
            dropped = planned.filtered_by is not None
            kept.setdefault(
                planned.article_id, replace(page, planned=planned, html_zstd=None) if dropped else page
            )
    counts.already_stored += len(pages) - len(kept)
    return tuple(kept.values())


# ----------------------------------------------------------------------------------------------- CC-NEWS


def cc_news_batches(settings: Settings, job: ArchiveJob, counts: ArchiveCounts) -> Iterator[WorkBatch]:
    """The kept pages of the CC-NEWS files of the capture window (or of the user's WARC files), file by
    file, in batches that end with the file's checkpoint."""
    client = shared_archive_client(settings)
    if job.warc_files:
        files = {url: url for url in job.warc_files}
    else:
        selection = news_files(client, settings.cc_data_url, job.capture_start, job.capture_end)
        counts.problems.update(problem.split(":")[0] for problem in selection.problems)
        for problem in selection.problems:
            logger.warning("CC-NEWS: %s", problem)
        files = {f.path: f"{settings.cc_data_url.rstrip('/')}/{f.path}" for f in selection.files}
    units = _Units(settings, job, Archive.CC_NEWS, list(files), counts)
    keep = RecordFilter(SiteMatcher(job.sites), job.capture_start, job.capture_end, settings.max_page_bytes)
    sizes_before = 0  # of the files read in this run before the current one
    for unit, url in files.items():
        state = units.todo(unit)
        if state is None:
            continue
        position = int(state.resume_at or 0)
        try:
            for chunk in scan_warc(client, url, keep, start=position, pages_per_chunk=settings.batch_size):
                counts.records.add(chunk.counts)
                counts.bytes_read += chunk.resume_at - position
                position = chunk.resume_at
                report(
                    "archive MB read",
                    counts.bytes_read >> 20,
                    (sizes_before + (chunk.size or position)) >> 20,
                )
                pages = _new_pages([_archived_page(page, url) for page in chunk.pages], settings, counts)
                yield WorkBatch(pages=pages, checkpoint=_chunk_checkpoint(units, unit, chunk))
        except FetchError as exc:
            yield units.failed(unit, exc)
        sizes_before += position


def _chunk_checkpoint(units: _Units, unit: str, chunk: ScanChunk) -> Checkpoint:
    return units.checkpoint(
        unit,
        UnitStatus.DONE if chunk.finished else UnitStatus.PENDING,
        resume_at=str(chunk.resume_at),
        records_read=chunk.counts.responses,
        records_kept=chunk.counts.kept,
        bytes_read=chunk.resume_at,
    )


def _archived_page(page: ArchivedResponse, file_url: str) -> FetchedPage:
    """A kept WARC response as a fetched page of its original URL, traced to its record."""
    capture = Capture(Archive.CC_NEWS, file_url, page.captured_at, page.offset, page.length)
    (planned,) = identified([_capture_entry(file_url, page.url, page.captured_at)], capture)
    return FetchedPage(
        planned, final_url=page.url, http_status=200, content_type=page.content_type,
        html_zstd=compress_page(page.html), fetched_at=utcnow(),
    )  # fmt: skip


def _capture_entry(source: str, url: str, captured_at: datetime) -> FeedEntry:
    """The entry of an archived page: its URL, dated by its capture until its page says otherwise (the
    page's own date wins in extraction; its time of day is kept when both fall on one day)."""
    return FeedEntry(feed_url=source, guid=None, link=url, title=None, published_at=captured_at)


# ------------------------------------------------------------------------------- Wayback and CC index


def wayback_batches(settings: Settings, job: ArchiveJob, counts: ArchiveCounts) -> Iterator[WorkBatch]:
    """Each site's captures from the Wayback CDX API, in batches of entries whose replays are fetched."""
    client = shared_archive_client(settings)
    units = _Units(settings, job, Archive.WAYBACK, list(job.sites), counts)
    for site in job.sites:
        state = units.todo(site)
        if state is None:
            continue
        query = CaptureQuery(site, job.capture_start, job.capture_end)
        source = f"{settings.wayback_url.rstrip('/')}/cdx/search/cdx?url={site}&matchType=domain"
        try:
            pages = wayback_pages(client, settings.wayback_url, query, state.resume_at)
            yield from _index_batches(pages, units, site, source, settings, counts)
        except FetchError as exc:
            yield units.failed(site, exc)


def cc_index_batches(settings: Settings, job: ArchiveJob, counts: ArchiveCounts) -> Iterator[WorkBatch]:
    """Each site's captures in the Common Crawl crawls of the capture window, in batches of entries whose
    WARC records are read by Range requests."""
    client = shared_archive_client(settings)
    try:
        crawls = cc_crawls(client, settings.cc_index_url, job.capture_start, job.capture_end)
    except FetchError as exc:  # no crawl list, no units: the run says so and goes on with its other sources
        logger.warning("Common Crawl's crawl list could not be read: %s", exc)
        counts.problems[exc.reason] += 1
        return
    pairs = {f"{crawl.crawl_id} {site}": (crawl, site) for crawl in crawls for site in job.sites}
    units = _Units(settings, job, Archive.CC_INDEX, list(pairs), counts)
    for unit, (crawl, site) in pairs.items():
        state = units.todo(unit)
        if state is None:
            continue
        query = CaptureQuery(site, max(job.capture_start, crawl.start), min(job.capture_end, crawl.end))
        source = f"{settings.cc_index_url.rstrip('/')}/{crawl.crawl_id}-index?url={site}&matchType=domain"
        try:
            pages = cc_index_pages(client, settings.cc_index_url, settings.cc_data_url, crawl, query,
                                   int(state.resume_at or 0))  # fmt: skip
            yield from _index_batches(pages, units, unit, source, settings, counts)
        except FetchError as exc:
            yield units.failed(unit, exc)


def _index_batches(
    pages: Iterator[IndexPage],
    units: _Units,
    unit: str,
    source: str,
    settings: Settings,
    counts: ArchiveCounts,
) -> Iterator[WorkBatch]:
    """Batches of an index's new captures; the last batch of each index answer moves the unit's resume
    point to the next answer (or marks it done), so a killed run asks again from the answer it was in."""
    for page in pages:
        counts.index_rows += page.rows
        counts.records.kept += len(page.captures)
        for reason, number in page.skipped.items():
            setattr(counts.records, reason, getattr(counts.records, reason) + number)
        planned = _new_captures(page.captures, source, settings, counts)
        batches = [planned[i : i + settings.batch_size] for i in range(0, len(planned), settings.batch_size)]
        for number, batch in enumerate(batches or [[]]):
            last = number == max(len(batches) - 1, 0)
            yield WorkBatch(
                entries=tuple(batch),
                checkpoint=units.checkpoint(
                    unit,
                    UnitStatus.DONE if last and page.next_cursor is None else UnitStatus.PENDING,
                    resume_at=page.next_cursor if last else None,
                    records_read=page.rows if number == 0 else 0,
                    records_kept=len(page.captures) if number == 0 else 0,
                ),
            )


def _new_captures(
    captures: list[IndexedCapture], source: str, settings: Settings, counts: ArchiveCounts
) -> list[PlannedEntry]:
    planned = [
        identified([_capture_entry(source, c.url, c.capture.captured_at)], c.capture)[0] for c in captures
    ]
    fresh = unstored(planned, settings, drop_known_urls=True)
    counts.already_stored += len(planned) - len(fresh)
    return fresh


ARCHIVE_SOURCES = {
    Archive.CC_NEWS: cc_news_batches,
    Archive.WAYBACK: wayback_batches,
    Archive.CC_INDEX: cc_index_batches,
}


def site_domains(sites: Sequence[str]) -> tuple[str, ...]:
    """The domains of ``--site`` values, once each, in the order given."""
    return tuple(dict.fromkeys(d for d in map(site_domain, sites) if d))
