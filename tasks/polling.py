"""Polling one feed: a conditional GET, then parsing. Never raises for a bad feed: the outcome says why."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE

from newsflow.clock import utcnow
from newsflow.errors import FeedParseError, FetchError, TransientFetchError
from newsflow.net.feeds import parse_feed
from newsflow.net.http import Fetcher, shared_fetcher
from newsflow.records import FeedState, PollResult, PollStatus
from newsflow.settings import Settings

FEED_ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
    "text/xml;q=0.9, */*;q=0.5"
)


def poll(feed: FeedState, fetcher: Fetcher) -> PollResult:
    """Fetch and parse one feed, sending the stored validators so an unchanged feed answers 304."""
    settings = fetcher.settings
    started_at = utcnow()
    clock = time.monotonic()
    headers = {"Accept": FEED_ACCEPT}
    if feed.etag:
        headers["If-None-Match"] = feed.etag
    if feed.last_modified:
        headers["If-Modified-Since"] = feed.last_modified

    def outcome(status: PollStatus, **fields: object) -> PollResult:
        duration = int((time.monotonic() - clock) * 1000)
        return PollResult(feed.url, status, started_at, duration, **fields)  # type: ignore[arg-type]

    try:
        response = fetcher.get(feed.url, max_bytes=settings.max_feed_bytes, headers=headers)
    except FetchError as exc:
        retry_after = exc.retry_after if isinstance(exc, TransientFetchError) else None
        return outcome(
            PollStatus.ERROR,
            http_status=exc.http_status,
            error_kind=exc.reason,
            error_message=str(exc),
            retry_after=retry_after,
        )
    # Validators are saved from every response that carries them, 304 included.
    validators = {
        "etag": response.headers.get("etag") or feed.etag,
        "last_modified": response.headers.get("last-modified") or feed.last_modified,
    }
    if response.status == 304:
        return outcome(PollStatus.NOT_MODIFIED, http_status=304, **validators)
    if response.status >= 400 or response.status < 200:
        return outcome(
            PollStatus.ERROR,
            http_status=response.status,
            error_kind=f"http_{response.status}",
            error_message=f"{feed.url}: HTTP {response.status}",
        )
    try:
        parsed = parse_feed(
            response.content,
            feed_url=feed.url,
            headers=response.headers,
            now=started_at,
            future_tolerance=timedelta(seconds=settings.future_tolerance),
        )
    except FeedParseError as exc:
        return outcome(
            PollStatus.ERROR,
            http_status=response.status,
            error_kind=exc.reason,
            error_message=str(exc),
            bytes_received=len(response.content),
        )
    return outcome(
        PollStatus.OK,
        http_status=response.status,
        entries=parsed.entries,
        bozo=parsed.bozo,
        bozo_reason=parsed.bozo_reason,
        feed_title=parsed.title,
        bytes_received=len(response.content),
        **validators,
    )


def poll_safely(feed: FeedState, fetcher: Fetcher) -> PollResult:
    """:func:`poll`, with an unexpected error recorded as the feed's outcome instead of raised."""
    started_at = utcnow()
    try:
        return poll(feed, fetcher)
    except Exception as exc:  # noqa: BLE001 - one bad feed must not fail the others
        return PollResult(
            feed.url,
            PollStatus.ERROR,
            started_at,
            0,
            error_kind="internal_error",
            error_message=f"{feed.url}: {type(exc).__name__}: {exc}",
        )


@task(name="poll-feeds", cache_policy=NO_CACHE)
def poll_feeds(feeds: list[FeedState], settings: Settings) -> list[PollResult]:
    """Prefect task: poll a group of feeds concurrently (per-host limits apply), results in input order.

    Feeds are grouped so that orchestration stays a small share of a run; each feed's outcome is still
    its own row in the ``polls`` table.
    """
    fetcher = shared_fetcher(settings)
    with ThreadPoolExecutor(max_workers=settings.max_connections, thread_name_prefix="poll") as pool:
        return list(pool.map(lambda feed: poll_safely(feed, fetcher), feeds))
