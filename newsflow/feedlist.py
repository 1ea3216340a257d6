"""Feed-list files: newsflow's TOML (``[[feeds]]`` with ``url``, optional ``name`` and ``tags``) and OPML,
the format every feed reader imports and exports."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from urllib.parse import urlsplit
from xml.sax.saxutils import quoteattr

from lxml import etree

from newsflow.errors import ConfigError
from newsflow.records import FeedSpec

DEFAULT_FEEDS_RESOURCE = "default_feeds.toml"


def parse_toml(text: str, source: str) -> list[FeedSpec]:
    """Feeds of a TOML feed list; errors name the file and the entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from exc
    tables = data.get("feeds")
    if not isinstance(tables, list) or not tables:
        raise ConfigError(f"{source}: expected one or more [[feeds]] tables with a url")
    feeds = []
    for number, table in enumerate(tables, start=1):
        if not isinstance(table, dict) or not isinstance(table.get("url"), str):
            raise ConfigError(f"{source}: feeds entry {number} has no url")
        name, tags = table.get("name"), table.get("tags", [])
        if name is not None and not isinstance(name, str):
            raise ConfigError(f"{source}: feeds entry {number}: name must be a string")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ConfigError(f"{source}: feeds entry {number}: tags must be a list of strings")
        feeds.append(
            FeedSpec(checked_url(table["url"], f"{source}: feeds entry {number}"), name, tuple(tags))
        )
    return unique(feeds)


def parse_opml(content: bytes, source: str) -> list[FeedSpec]:
    """Feeds of an OPML file: every ``outline`` with an ``xmlUrl``; enclosing outlines become tags."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
    try:
        root = etree.fromstring(content, parser)
    except etree.XMLSyntaxError as exc:
        raise ConfigError(f"{source}: not valid OPML/XML: {exc}") from exc
    feeds = []
    for outline in root.iter("outline"):
        url = outline.get("xmlUrl")
        if not url:
            continue
        tags = tuple(
            a.get("text") or a.get("title") or ""
            for a in outline.iterancestors("outline")
            if not a.get("xmlUrl") and (a.get("text") or a.get("title"))
        )
        name = outline.get("title") or outline.get("text")
        categories = tuple(c.strip() for c in (outline.get("category") or "").split(",") if c.strip())
        tags = tuple(dict.fromkeys((*reversed(tags), *categories)))
        feeds.append(FeedSpec(checked_url(url, source), name, tags))
    if not feeds:
        raise ConfigError(f"{source}: no outline with an xmlUrl found")
    return unique(feeds)


def to_opml(feeds: Iterable[FeedSpec], title: str = "newsflow feeds") -> str:
    """An OPML 2.0 document listing the feeds."""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<opml version="2.0">',
        f"  <head><title>{_escape(title)}</title></head>",
        "  <body>",
    ]
    for feed in feeds:
        text = quoteattr(feed.name or feed.url)
        category = f" category={quoteattr(','.join(feed.tags))}" if feed.tags else ""
        lines.append(
            f'    <outline type="rss" text={text} title={text} xmlUrl={quoteattr(feed.url)}{category}/>'
        )
    lines += ["  </body>", "</opml>", ""]
    return "\n".join(lines)


def load_feed_file(path: Path) -> list[FeedSpec]:
    """Feeds of a ``.toml`` or ``.opml``/``.xml`` file."""
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read feed list {path}: {exc.strerror}") from exc
    if path.suffix.lower() == ".toml":
        return parse_toml(content.decode("utf-8", errors="replace"), str(path))
    return parse_opml(content, str(path))


def default_feeds() -> list[FeedSpec]:
    """The tech-news feeds that ship with newsflow."""
    text = resources.files("newsflow").joinpath(DEFAULT_FEEDS_RESOURCE).read_text()
    return parse_toml(text, DEFAULT_FEEDS_RESOURCE)


def checked_url(url: str, where: str) -> str:
    """``url`` stripped, if it is an absolute http(s) URL; else a ConfigError saying where."""
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{where}: {url!r} is not an http(s) URL")
    return url


def unique(feeds: Iterable[FeedSpec]) -> list[FeedSpec]:
    """Feeds with repeated URLs dropped (the first wins)."""
    seen: dict[str, FeedSpec] = {}
    for feed in feeds:
        seen.setdefault(feed.url, feed)
    return list(seen.values())


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
