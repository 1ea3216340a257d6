"""Writing small RSS feeds for tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from tests.conftest import SCRAPINGHUB


@dataclass(frozen=True)
class Item:
    """One RSS item."""

    title: str
    link: str | None
    guid: str | None = None
    description: str = ""
    pub_date: str = "Mon, 25 Sep 2023 10:00:00 GMT"


def rss(title: str, items: list[Item]) -> str:
    """An RSS 2.0 document."""
    parts = []
    for item in items:
        fields = [f"<title>{escape(item.title)}</title>", f"<pubDate>{item.pub_date}</pubDate>"]
        if item.link:
            fields.append(f"<link>{escape(item.link)}</link>")
        if item.guid:
            fields.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        if item.description:
            fields.append(f"<description>{escape(item.description)}</description>")
        parts.append("<item>" + "".join(fields) + "</item>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://example.invalid/</link>{''.join(parts)}</channel></rss>"
    )


def write_feed(path: Path, title: str, items: list[Item]) -> None:
    """Write an RSS feed file (parents created)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(rss(title, items))


def benchmark_pages() -> dict[str, dict[str, str]]:
    """Gold text of the scrapinghub pages: id -> {"articleBody", "url"}."""
    return dict(json.loads((SCRAPINGHUB / "ground-truth.json").read_text()))
