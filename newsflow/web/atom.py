"""Atom feeds of stories (feedgen): the river and each watch, one entry per story, updated as it grows, so
people follow newsflow in their own feed reader."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from feedgen.feed import FeedGenerator
from markupsafe import escape

#: Stories in a feed, the latest changed first; members listed in an entry.
FEED_STORIES = 50
ENTRY_MEMBERS = 20


def stories_feed(
    base: str,
    path: str,
    title: str,
    stories: Sequence[Mapping[str, Any]],
    members: Mapping[str, Sequence[Mapping[str, Any]]],
) -> bytes:
    """The Atom document at ``base + path``, one entry per story: its id is the story's page (stable: a
    reader updates the entry when the story grows), ``updated`` when it last changed, the content its
    articles."""
    feed = FeedGenerator()
    feed.id(base + path)
    feed.title(title)
    feed.link(href=base + path, rel="self")
    feed.link(href=base + "/", rel="alternate")
    feed.generator("newsflow")
    feed.updated(max((_utc(s["updated_at"]) for s in stories), default=datetime(1970, 1, 1, tzinfo=UTC)))
    for story in reversed(stories):  # feedgen puts each new entry first
        entry = feed.add_entry()
        entry.id(f"{base}/story/{story['story_id']}")
        outlets = story["outlets"]
        entry.title(f"{story['headline'] or '(no headline)'} ({outlets} outlet{'' if outlets == 1 else 's'})")
        entry.link(href=f"{base}/story/{story['story_id']}")
        entry.updated(_utc(story["updated_at"]))
        entry.published(_utc(story["first_at"]))
        entry.content(_content(story, members.get(story["story_id"], [])), type="html")
    return bytes(feed.atom_str(pretty=True))


def _content(story: Mapping[str, Any], members: Sequence[Mapping[str, Any]]) -> str:
    items = []
    for member in list(members)[-ENTRY_MEMBERS:][::-1]:
        title = escape(member["title"] or member["url"] or "(untitled)")
        url = member["url"] if str(member["url"] or "").startswith(("http://", "https://")) else None
        link = f'<a href="{escape(url)}">{title}</a>' if url else str(title)
        items.append(f"<li>{escape(member['site'] or '?')}: {link}</li>")
    sites = escape(", ".join(story["sites"] or []))
    return f"<p>{story['articles']} articles from {sites}</p><ul>{''.join(items)}</ul>"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
