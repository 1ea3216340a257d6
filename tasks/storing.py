"""Warehouse stages: plan which entries are new, store polls, store article batches with exact dedupe.

Each task takes one short session of the warehouse: reads see a snapshot; each write holds the lake's write
lock for one transaction, so that what :func:`store` finds stored is what is stored when it commits (the
lake has no UNIQUE: this is what keeps ``article_id`` unique with several writers)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from typing import Any

import duckdb
from prefect import task
from prefect.cache_policies import NO_CACHE

from newsflow.clock import utcnow
from newsflow.net.urls import canonical_url
from newsflow.records import (
    Article,
    Capture,
    Checkpoint,
    DuplicateMark,
    FeedEntry,
    FeedState,
    FetchedPage,
    PlannedEntry,
    PollResult,
    StoreOutcome,
)
from newsflow.settings import Settings
from newsflow.stories import StoryArticle, neardup
from newsflow.stories.batch import GroupingBatch, Replay, group
from newsflow.stories.dedupe import article_id, guid_key, mark_exact_duplicates
from newsflow.tasks.alerting import decide_feed_alerts, decide_watch_alerts, emit_events
from newsflow.tasks.filtering import record_filters, rules_in_force, screen_entries
from newsflow.tasks.schedule import next_schedule
from newsflow.warehouse import articles as articles_table
from newsflow.warehouse import backfills as backfills_table
from newsflow.warehouse import feeds as feeds_table
from newsflow.warehouse import grouping as grouping_table
from newsflow.warehouse import runs as runs_table
from newsflow.warehouse.grouping import WarehouseSnapshot
from newsflow.warehouse.lakehouse import Warehouse


def plan(
    entries: Iterable[FeedEntry], settings: Settings, *, drop_known_urls: bool = False
) -> list[PlannedEntry]:
    """New entries in the given order, each with its stable id.

    Entries already stored (same guid and link) are dropped. An entry whose URL is already stored, or
    appears earlier in this batch, is kept but not fetched, to be stored as a duplicate, unless
    ``drop_known_urls`` (backfills: a sitemap listing a known article is no new copy of it).
    """
    return unstored(identified(entries), settings, drop_known_urls=drop_known_urls)


def identified(entries: Iterable[FeedEntry], capture: Capture | None = None) -> list[PlannedEntry]:
    """Each entry with its stable id (and the archived capture its page is to be read from)."""
    planned = []
    for entry in entries:
        key = guid_key(entry.guid, entry.feed_url)
        url = canonical_url(entry.link)
        planned.append(PlannedEntry(entry, article_id(key, url), key, url, capture=capture))
    return planned


def unstored(
    planned: Iterable[PlannedEntry], settings: Settings, *, drop_known_urls: bool = False
) -> list[PlannedEntry]:
    """``planned`` without the entries already stored (or earlier in it), and with those a filter drops
    marked (see :mod:`.filtering`); see :func:`plan`."""
    candidates: dict[str, PlannedEntry] = {}
    for p in planned:
        candidates.setdefault(p.article_id, p)
    with Warehouse.open(settings).read() as con:
        stored = articles_table.existing_ids(con, list(candidates))
        fresh = screen_entries(con, [p for p in candidates.values() if p.article_id not in stored], utcnow())
        urls = [p.url for p in fresh if p.url]
        known_urls = {
            u
            for row in articles_table.matching_keys(con, urls=urls)
            for u in (row.url, row.canonical_url)
            if u
        }
    planned_entries = []
    seen_urls: set[str] = set()
    for p in fresh:
        if p.filtered_by is not None:
            planned_entries.append(p)  # not fetched; recorded as filtered with its batch
            continue
        if p.url and (p.url in known_urls or p.url in seen_urls):
            if drop_known_urls:
                continue
            p = replace(p, fetch=False, skip_reason="known_url")
        if p.url:
            seen_urls.add(p.url)
        planned_entries.append(p)
    return planned_entries


def store(
    articles: list[Article],
    settings: Settings,
    run_id: str | None,
    checkpoints: Sequence[Checkpoint] = (),
) -> StoreOutcome:
    """Store one batch in one transaction: exact duplicates, then near-duplicates and stories (read, decided
    by :func:`newsflow.stories.batch.group`, written once), and the archive ``checkpoints`` that these
    articles complete. Re-storing a batch adds nothing."""
    now = utcnow()
    with Warehouse.open(settings).write() as con:
        rules = rules_in_force(con)
        articles, filtered = record_filters(con, rules, articles, run_id, now)
        stored_ids = articles_table.existing_ids(con, [a.article_id for a in articles])
        stored = articles_table.matching_keys(
            con,
            guid_keys=[a.guid_key for a in articles if a.guid_key],
            urls=[u for a in articles for u in (a.url, a.canonical_url) if u],
            content_hashes=[a.content_hash for a in articles if a.content_hash],
        )
        marks = mark_exact_duplicates(articles, stored, stored_ids)
        fresh = _fresh(articles, stored_ids)
        # One microsecond apart in arrival order: a regroup replays articles of one time in this order.
        seen_at = {a.article_id: now + timedelta(microseconds=n) for n, a in enumerate(fresh)}
        new = [_for_grouping(a, seen_at[a.article_id]) for a in fresh]
        grouped = group(GroupingBatch(new, marks), WarehouseSnapshot(con))
        grouping_table.write_changes(con, grouped, now)
        marks = {**marks, **grouped.near_marks}
        inserted = articles_table.insert_articles(
            con, fresh, marks, run_id=run_id, now=now, story_ids=grouped.story_ids, first_seen=seen_at
        )
        inserted_ids = {a.article_id for a in new}
        counted = [(point, len(inserted_ids.intersection(point.article_ids))) for point in checkpoints]
        backfills_table.save_checkpoints(con, counted, now)
        alerts = decide_watch_alerts(con, rules, inserted_ids, settings, run_id, now)
    emit_events(alerts)  # after the commit: an event is never about an alert that did not happen
    by_unit: Counter[tuple[str, str, str]] = Counter()
    for point, number in counted:
        by_unit[point.key] += number
    return StoreOutcome(
        inserted=inserted,
        duplicates=dict(Counter(m.reason for m in marks.values())),
        skipped_existing=len({a.article_id for a in articles} & stored_ids),
        new_stories=grouped.new_stories,
        joined_stories=grouped.joined,
        stored_by_unit=dict(by_unit),
        filtered=dict(filtered),
        alerts=len(alerts),
    )


def _fresh(articles: list[Article], stored_ids: set[str]) -> list[Article]:
    """The batch's articles that will be inserted, once each (the first of an id repeated), in order."""
    seen = set(stored_ids)
    out = []
    for a in articles:
        if a.article_id not in seen:
            seen.add(a.article_id)
            out.append(a)
    return out


def _for_grouping(article: Article, seen_at: datetime) -> StoryArticle:
    """An article as grouping sees it, timed by publication. An article without a date (a loaded record, or
    a page and entry without one) is undated: its time is unknown to grouping, and ``seen_at`` (when it was
    first seen) only stands in for it."""
    return StoryArticle(
        article.article_id, article.text, article.title, article.published_at or seen_at, article.site,
        article.features, dated=article.published_at is not None,
    )  # fmt: skip


@task(name="plan-entries", cache_policy=NO_CACHE)
def plan_entries(
    entries: list[FeedEntry], settings: Settings, drop_known_urls: bool = False
) -> list[PlannedEntry]:
    """Prefect task: :func:`plan`."""
    return plan(entries, settings, drop_known_urls=drop_known_urls)


@task(name="store-articles", cache_policy=NO_CACHE)
def store_articles(
    articles: list[Article], settings: Settings, run_id: str | None, checkpoints: Sequence[Checkpoint] = ()
) -> StoreOutcome:
    """Prefect task: :func:`store` (one warehouse write per batch)."""
    return store(articles, settings, run_id, checkpoints)


@task(name="store-polls", cache_policy=NO_CACHE)
def store_polls(
    polls: list[PollResult],
    feeds: list[FeedState],
    new_entries: Mapping[str, int],
    settings: Settings,
    run_id: str,
) -> None:
    """Prefect task: record every poll and update each feed's state and next poll, in one transaction.

    A feed with new entries keeps its previous validators until :func:`save_validators` runs after its
    articles are stored: a run killed in between must not leave the feed answering 304 to the next run,
    which would then never see the unstored entries.
    """
    now = utcnow()
    states = {feed.url: feed for feed in feeds}
    schedules = {
        poll.feed_url: next_schedule(states[poll.feed_url], poll, settings, now)
        for poll in polls
        if poll.feed_url in states
    }
    feed_updates = [
        replace(poll, etag=states[poll.feed_url].etag, last_modified=states[poll.feed_url].last_modified)
        if new_entries.get(poll.feed_url) and poll.feed_url in states
        else poll
        for poll in polls
    ]
    with Warehouse.open(settings).write() as con:
        runs_table.record_polls(con, run_id, polls, new_entries)
        feeds_table.update_feed_states(con, feed_updates, schedules)
        alerts = decide_feed_alerts(con, rules_in_force(con), [p.feed_url for p in polls], run_id, now)
    emit_events(alerts)


@task(name="save-validators", cache_policy=NO_CACHE)
def save_validators(polls: list[PollResult], settings: Settings) -> None:
    """Prefect task: store the ETag / Last-Modified of these polls, once their entries are stored."""
    with Warehouse.open(settings).write() as con:
        feeds_table.save_validators(con, polls)


@task(name="start-run", cache_policy=NO_CACHE)
def start_run(
    settings: Settings,
    run_id: str,
    flow: str,
    flow_run_id: str | None,
    parameters: Mapping[str, Any],
    run_lock: str | None,
) -> None:
    """Prefect task: open the run's row (closing dead runs of the same ``run_lock`` as 'crashed')."""
    with Warehouse.open(settings).write() as con:
        runs_table.start_run(
            con, run_id=run_id, flow=flow, flow_run_id=flow_run_id, parameters=parameters, now=utcnow(),
            run_lock=run_lock,
        )  # fmt: skip


@task(name="finish-run", cache_policy=NO_CACHE)
def finish_run(
    settings: Settings,
    run_id: str,
    status: str,
    counts: Mapping[str, Any],
    timings: Mapping[str, float],
    error: str | None,
) -> None:
    """Prefect task: close the run's row with its counts."""
    with Warehouse.open(settings).write() as con:
        runs_table.finish_run(
            con, run_id=run_id, status=status, counts=counts, timings=timings, error=error, now=utcnow()
        )


@task(name="load-stored-pages", cache_policy=NO_CACHE)
def load_stored_pages(settings: Settings, start: datetime, end: datetime) -> list[FetchedPage]:
    """Prefect task: the raw pages of articles published in [start, end), for re-extraction offline."""
    with Warehouse.open(settings).read() as con:
        return articles_table.stored_pages_between(con, start, end)


@task(name="update-articles", cache_policy=NO_CACHE)
def update_articles(articles: list[Article], settings: Settings) -> int:
    """Prefect task: overwrite re-extracted fields of stored articles, in one transaction."""
    with Warehouse.open(settings).write() as con:
        return articles_table.update_extractions(con, articles)


@task(name="record-backfill-chunks", cache_policy=NO_CACHE)
def record_backfill_chunks(
    settings: Settings, backfill_id: str, chunks: list[tuple[date, date]], parameters: Mapping[str, Any]
) -> set[date]:
    """Prefect task: register a backfill's chunks (once) and return the start dates of those done."""
    with Warehouse.open(settings).write() as con:
        backfills_table.ensure_chunks(con, backfill_id, chunks, parameters, utcnow())
        return backfills_table.done_chunks(con, backfill_id)


@task(name="finish-idle-backfill-chunks", cache_policy=NO_CACHE)
def finish_backfill_chunks(settings: Settings, backfill_id: str, chunk_starts: list[date]) -> None:
    """Prefect task: mark chunks that had nothing to do as done, in one transaction."""
    with Warehouse.open(settings).write() as con:
        for start in chunk_starts:
            backfills_table.finish_chunk(con, backfill_id, start, entries=0, articles=0, now=utcnow())


@task(name="stored-page-days", cache_policy=NO_CACHE)
def stored_page_days(settings: Settings, chunks: list[tuple[date, date]]) -> set[date]:
    """Prefect task: the UTC days within these chunks on which stored articles with raw pages were
    published."""
    with Warehouse.open(settings).read() as con:
        return articles_table.stored_page_days(con, chunks[0][0], chunks[-1][1])


@task(name="finish-backfill-chunk", cache_policy=NO_CACHE)
def finish_backfill_chunk(
    settings: Settings, backfill_id: str, chunk_start: date, entries: int, articles: int
) -> None:
    """Prefect task: mark one chunk of a backfill done."""
    with Warehouse.open(settings).write() as con:
        backfills_table.finish_chunk(
            con, backfill_id, chunk_start, entries=entries, articles=articles, now=utcnow()
        )


@dataclass(frozen=True)
class RegroupOutcome:
    """What a regroup did."""

    articles: int
    stories_before: int
    stories_after: int
    joined: int


def regroup_range(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime, now: datetime, batch_size: int
) -> RegroupOutcome:
    """Group again every article whose time (published, else first seen) is in [start, end), together
    with the other members of the stories they were in, in time order and in batches, in the caller's
    write session. Near-duplicate marks stay as they are; articles without a MinHash signature (stored
    before stories existed) get one, so later copies of them are found."""
    rows, before = grouping_table.release_range(con, start, end)
    counted = {r.article_id for r in rows if r.counted}
    every = {r.article_id: StoryArticle(r.article_id, r.text, r.title, r.at, r.site, dated=r.dated)
             for r in rows}  # fmt: skip
    originals = {r.article_id for r in rows if not r.duplicate_of}
    snapshot = Replay(WarehouseSnapshot(con), list(every.values()), counted & originals, originals)
    story_ids: dict[str, str] = {}
    joined = 0
    for offset in range(0, len(rows), batch_size):
        chunk = rows[offset : offset + batch_size]
        released = snapshot.release_words([every[r.article_id] for r in chunk])
        articles = {a.article_id: a for a in released}
        marks = {
            r.article_id: DuplicateMark(r.duplicate_of, r.dup_reason or "", r.dup_score or 1.0)
            for r in chunk
            if r.duplicate_of
        }
        unsigned = [
            (articles[r.article_id], r.duplicate_of)
            for r in chunk
            if not r.signed and (r.duplicate_of is None or r.dup_reason == neardup.DUP_REASON)
        ]
        batch = GroupingBatch(list(articles.values()), marks, counted, find_copies=False, learn_lines=False)
        changes = group(batch, snapshot, unsigned=unsigned)
        snapshot.release_lines(articles.values())
        grouping_table.write_changes(con, changes, now)
        grouping_table.set_story_ids(con, changes.story_ids)
        story_ids.update(changes.story_ids)
        joined += changes.joined
    return RegroupOutcome(len(rows), before, len(set(story_ids.values())), joined)
