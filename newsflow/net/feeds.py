"""Feed bytes -> normalised :class:`FeedEntry` records: RSS/Atom with feedparser on bytes (never on a URL),
JSON Feed (which feedparser 6.0 does not read) with the json module."""

from __future__ import annotations

import calendar
import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urljoin

import feedparser
from feedparser.encodings import convert_to_utf8

from newsflow.clock import parse_iso_utc
from newsflow.errors import FeedParseError
from newsflow.net.urls import canonical_url
from newsflow.records import FeedEntry

# feedparser stops billion-laughs and XXE but not quadratic blow-up (one big entity used many times),
# and no legitimate feed needs a DTD entity declaration.
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY", re.IGNORECASE)
JSON_FEED_VERSION = "https://jsonfeed.org/version/"
#: Guid given to an entry that has neither guid nor link (bare, so it is scoped by the feed URL).
SYNTHETIC_GUID_PREFIX = "newsflow-text-"


@dataclass(frozen=True)
class ParsedFeed:
    """Entries of a feed plus what the loose parse had to forgive."""

    entries: tuple[FeedEntry, ...]
    title: str | None
    bozo: bool
    bozo_reason: str | None
    links: dict[str, str] = field(default_factory=dict)  # feed-level links by rel: next, prev-archive, ...


def parse_feed(
    content: bytes,
    *,
    feed_url: str,
    headers: Mapping[str, str],
    now: datetime,
    future_tolerance: timedelta,
) -> ParsedFeed:
    """Parse feed bytes. A malformed feed whose loose parse yields entries is returned with ``bozo`` set;
    a well-formed feed with no items is returned empty.

    Raises:
        FeedParseError: the bytes are empty, declare XML entities, are not a feed, or are malformed and
            yield no entries.
    """
    if not content.strip():
        raise FeedParseError(feed_url, "empty", "empty response body")
    headers = {k.lower(): v for k, v in headers.items()}
    if _is_json(content, headers.get("content-type", "")):
        return _parse_json_feed(content, feed_url, now, future_tolerance)
    # An empty content-location (the headers still mark the bytes as an HTTP response, for the bozo
    # checks): with the feed URL there, feedparser would resolve a permalink guid such as <guid>1</guid>
    # to http://host/feeds/1, and a bare guid, which only means something inside its feed, would pass for
    # a global URL. Guids stay as the feed wrote them; links (entries' and the feed's own) are resolved
    # against the feed URL here.
    response_headers = {"content-location": ""}
    if "content-type" in headers:
        response_headers["content-type"] = headers["content-type"]
    if _declares_entities(content, response_headers):
        raise FeedParseError(feed_url, "entity_declaration", "feed declares XML entities; refused")
    parsed = feedparser.parse(content, response_headers=response_headers, sanitize_html=True)
    bozo_reason = _bozo_reason(parsed)
    entries = tuple(
        _with_identity(_entry(raw, feed_url, now, future_tolerance)) for raw in parsed.get("entries", [])
    )
    if not entries:
        if not parsed.get("version"):
            kind = "not_a_feed"
            detail = "no RSS or Atom feed found"
            if bozo_reason:
                detail += f" ({bozo_reason})"
            raise FeedParseError(feed_url, kind, detail)
        if parsed.get("bozo"):
            raise FeedParseError(feed_url, "malformed", f"malformed feed with no entries: {bozo_reason}")
    title = parsed.get("feed", {}).get("title")
    links = {
        link["rel"]: urljoin(feed_url, link["href"])
        for link in reversed(parsed.get("feed", {}).get("links", []))
        if link.get("rel") and link.get("href")
    }
    return ParsedFeed(entries, title, bool(parsed.get("bozo")), bozo_reason, links)


def _declares_entities(content: bytes, response_headers: dict[str, str]) -> bool:
    """Whether the document declares an XML entity, in the bytes or in the UTF-8 that feedparser parses:
    a UTF-16, UTF-32, UTF-7 or EBCDIC body hides ``<!ENTITY`` from a search of its raw bytes."""
    if _ENTITY_DECLARATION.search(content):
        return True
    return bool(_ENTITY_DECLARATION.search(convert_to_utf8(dict(response_headers), content, {})))


def _bozo_reason(parsed: Any) -> str | None:
    exc = parsed.get("bozo_exception")
    if not parsed.get("bozo") or exc is None:
        return None
    return f"{type(exc).__name__}: {exc}"[:300]


def _entry(raw: Any, feed_url: str, now: datetime, tolerance: timedelta) -> FeedEntry:
    # dict.get: FeedParserDict's own lookup maps a missing updated_parsed to published_parsed, with a warning.
    published, updated, clamped = _clamped(
        _timestamp(dict.get(raw, "published_parsed")),
        _timestamp(dict.get(raw, "updated_parsed")),
        now,
        tolerance,
    )
    link = raw.get("link")
    link = urljoin(feed_url, link) if isinstance(link, str) and link.strip() else None
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


def _with_identity(entry: FeedEntry) -> FeedEntry:
    """An entry with neither guid nor link would share its id with every other such entry (and all but
    the first would be lost): it gets a guid hashed from its text, the same each time it is polled."""
    if entry.guid or entry.link:
        return entry
    basis = "\n".join([entry.title or "", entry.summary or "", entry.content or ""])
    return replace(entry, guid=SYNTHETIC_GUID_PREFIX + hashlib.sha256(basis.encode()).hexdigest()[:20])


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


def _clamped(
    published: datetime | None, updated: datetime | None, now: datetime, tolerance: timedelta
) -> tuple[datetime | None, datetime | None, bool]:
    """Dates further in the future than ``tolerance`` become ``now``; the flag says it happened."""
    limit = now + tolerance
    clamped = False
    if published is not None and published > limit:
        published, clamped = now, True
    if updated is not None and updated > limit:
        updated, clamped = now, True
    return published, updated, clamped


def _is_json(content: bytes, content_type: str) -> bool:
    return "json" in content_type.lower() or content.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


def _parse_json_feed(content: bytes, feed_url: str, now: datetime, tolerance: timedelta) -> ParsedFeed:
    """A JSON Feed (https://jsonfeed.org/version/1 and 1.1)."""
    try:
        document = json.loads(content.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeedParseError(feed_url, "malformed", f"invalid JSON: {exc}") from exc
    if not isinstance(document, dict) or not str(document.get("version", "")).startswith(JSON_FEED_VERSION):
        raise FeedParseError(
            feed_url, "not_a_feed", "JSON document is not a JSON Feed (no jsonfeed.org version)"
        )
    items = document.get("items")
    if not isinstance(items, list):
        raise FeedParseError(feed_url, "malformed", "JSON Feed without an items list")
    feed_authors = _json_authors(document)
    entries = tuple(
        _with_identity(_json_entry(item, feed_url, feed_authors, now, tolerance))
        for item in items
        if isinstance(item, dict)
    )
    links = {"next": urljoin(feed_url, document["next_url"])} if _text(document.get("next_url")) else {}
    return ParsedFeed(entries, _text(document.get("title")), False, None, links)


def _json_entry(
    item: dict[str, Any], feed_url: str, feed_authors: tuple[str, ...], now: datetime, tolerance: timedelta
) -> FeedEntry:
    published, updated, clamped = _clamped(
        _iso_timestamp(item.get("date_published")), _iso_timestamp(item.get("date_modified")), now, tolerance
    )
    link = _text(item.get("url"))
    link = urljoin(feed_url, link) if link else None
    raw_tags = item.get("tags")
    return FeedEntry(
        feed_url=feed_url,
        guid=_text(str(item["id"])) if item.get("id") is not None else None,
        link=link if canonical_url(link) else None,
        title=_text(item.get("title")),
        summary=_text(item.get("summary")),
        content=_text(item.get("content_html")) or _text(item.get("content_text")),
        authors=_json_authors(item) or feed_authors,
        tags=tuple(t for t in raw_tags if isinstance(t, str)) if isinstance(raw_tags, list) else (),
        published_at=published,
        updated_at=updated,
        date_clamped=clamped,
    )


def _json_authors(node: dict[str, Any]) -> tuple[str, ...]:
    authors = node.get("authors")
    if not isinstance(authors, list):
        authors = [node["author"]] if isinstance(node.get("author"), dict) else []
    return tuple(a["name"].strip() for a in authors if isinstance(a, dict) and _text(a.get("name")))


def _iso_timestamp(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    return parse_iso_utc(value)
