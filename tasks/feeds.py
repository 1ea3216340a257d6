"""Feed bytes -> normalised :class:`FeedEntry` records, with feedparser on bytes (never on a URL)."""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import feedparser

from newsflow.errors import FeedParseError
from newsflow.records import FeedEntry
from tasks.urls import canonical_url

# feedparser stops billion-laughs and XXE but not quadratic blow-up (one big entity used many times),
# and no legitimate feed needs a DTD entity declaration.
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedFeed:
    """Entries of a feed plus what the loose parse had to forgive."""

    entries: tuple[FeedEntry, ...]
    title: str | None
    bozo: bool
    bozo_reason: str | None


def parse_feed(
    content: bytes,
    *,
    feed_url: str,
    headers: Mapping[str, str],
    now: datetime,
    future_tolerance: timedelta,
) -> ParsedFeed:
    """Parse feed bytes. A malformed feed whose loose parse yields entries is returned with ``bozo`` set.

    Raises:
        FeedParseError: the bytes declare entities, are empty, are not a feed, or yield no entries.
    """
    if not content.strip():
        raise FeedParseError(feed_url, "empty", "empty response body")
    if _ENTITY_DECLARATION.search(content):
        raise FeedParseError(feed_url, "entity_declaration", "feed declares XML entities; refused")
    response_headers = {"content-location": feed_url}
    if "content-type" in headers:
        response_headers["content-type"] = headers["content-type"]
    parsed = feedparser.parse(content, response_headers=response_headers, sanitize_html=True)
    bozo_reason = _bozo_reason(parsed)
    entries = tuple(
        _entry(raw, feed_url, now, future_tolerance) for raw in parsed.get("entries", [])
    )
    if not entries:
        if not parsed.get("version"):
            kind = "not_a_feed"
            detail = "no RSS/Atom/JSON feed found"
            if bozo_reason:
                detail += f" ({bozo_reason})"
            raise FeedParseError(feed_url, kind, detail)
        if parsed.get("bozo"):
            raise FeedParseError(feed_url, "malformed", f"malformed feed with no entries: {bozo_reason}")
    title = parsed.get("feed", {}).get("title")
    return ParsedFeed(entries, title, bool(parsed.get("bozo")), bozo_reason)


def _bozo_reason(parsed: Any) -> str | None:
    exc = parsed.get("bozo_exception")
    if not parsed.get("bozo") or exc is None:
        return None
    return f"{type(exc).__name__}: {exc}"[:300]


def _entry(raw: Any, feed_url: str, now: datetime, tolerance: timedelta) -> FeedEntry:
    # dict.get: FeedParserDict's own lookup maps a missing updated_parsed to published_parsed, with a warning.
    published = _timestamp(dict.get(raw, "published_parsed"))
    updated = _timestamp(dict.get(raw, "updated_parsed"))
    clamped = False
    limit = now + tolerance
    if published is not None and published > limit:
        published, clamped = now, True
    if updated is not None and updated > limit:
        updated, clamped = now, True
    link = raw.get("link")
    return FeedEntry(
        feed_url=feed_url,
        guid=_text(raw.get("id")),
        link=link if canonical_url(link) else None,
        title=_text(raw.get("title")),
        summary=_text(raw.get("summary")),
        content=_full_content(raw),
        authors=_authors(raw),
        tags=tuple(t["term"] for t in raw.get("tags", []) if t.get("term")),
        published_at=published,
        updated_at=updated,
        date_clamped=clamped,
    )


def _text(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value or None


def _full_content(raw: Any) -> str | None:
    contents = raw.get("content") or []
    html = [c for c in contents if "html" in (c.get("type") or "")]
    best = (html or contents or [None])[0]
    return _text(best.get("value")) if best else None


def _authors(raw: Any) -> tuple[str, ...]:
    names = [a.get("name") for a in raw.get("authors", []) if isinstance(a, dict)]
    found = tuple(n.strip() for n in names if isinstance(n, str) and n.strip())
    if not found and _text(raw.get("author")):
        return (raw["author"].strip(),)
    return found


def _timestamp(parsed: time.struct_time | None) -> datetime | None:
    if parsed is None:
        return None
    try:
        return datetime.fromtimestamp(calendar.timegm(parsed), tz=UTC)
    except (OverflowError, ValueError, OSError):
        return None
