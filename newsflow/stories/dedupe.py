"""Exact-duplicate keys: stable article ids, scoped guids, and a hash of normalised text."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from newsflow.records import Article, DuplicateMark, StoredKeys
from newsflow.text import fold

#: Texts shorter than this are not hashed: teasers such as "Read more" would collide across articles.
MIN_HASH_WORDS = 25

_NON_WORD = re.compile(r"\W+")


def guid_key(guid: str | None, feed_url: str) -> str | None:
    """A guid that identifies an article globally.

    URL- and URN-like guids (``https://...``, ``tag:...``, ``urn:...``) are global already; bare ones
    such as ``12345`` only mean something inside their feed, so they are scoped by the feed URL.
    """
    if not guid:
        return None
    if ":" in guid:
        return guid
    return f"{feed_url}#{guid}"


def article_id(guid_key: str | None, url: str | None) -> str:
    """Stable id of a feed entry: the same guid and link always give the same id."""
    basis = f"{guid_key or ''}\n{url or ''}"
    return hashlib.sha256(basis.encode()).hexdigest()[:20]


def normalise_text(text: str) -> str:
    """Case, accents' composition, punctuation and spacing folded away."""
    return _NON_WORD.sub(" ", fold(text)).strip()


def content_hash(text: str) -> str | None:
    """Hash of the normalised text, or None for text too short to identify an article."""
    normalised = normalise_text(text)
    if len(normalised.split()) < MIN_HASH_WORDS:
        return None
    return hashlib.sha256(normalised.encode()).hexdigest()[:32]


def mark_exact_duplicates(
    articles: Sequence[Article], stored: Sequence[StoredKeys], stored_ids: set[str]
) -> dict[str, DuplicateMark]:
    """Which of ``articles`` (in arrival order) repeat a stored or earlier article, and why.

    Checks, in order: the same guid, the same URL (entry or canonical), the same content hash. A copy
    points at the first copy (never at another copy). Articles whose id is already stored get no mark:
    they are the same entry seen again and will not be inserted.
    """
    first: dict[tuple[str, str], str] = {}

    def remember(root: str, guid: str | None, urls: tuple[str | None, ...], digest: str | None) -> None:
        keys = [("guid", guid), ("hash", digest)] + [("url", u) for u in urls]
        for kind, value in keys:
            if value:
                first.setdefault((kind, value), root)

    for row in stored:
        remember(row.root, row.guid_key, (row.url, row.canonical_url), row.content_hash)
    marks: dict[str, DuplicateMark] = {}
    for article in articles:
        if article.article_id in stored_ids or article.article_id in marks:
            continue
        candidates = (
            ("guid", "guid", article.guid_key),
            ("url", "canonical_url", article.url),
            ("url", "canonical_url", article.canonical_url),
            ("hash", "content_hash", article.content_hash),
        )
        mark = next(
            (
                DuplicateMark(first[(kind, value)], reason)
                for kind, reason, value in candidates
                if value and (kind, value) in first and first[(kind, value)] != article.article_id
            ),
            None,
        )
        if mark is not None:
            marks[article.article_id] = mark
        root = mark.of if mark else article.article_id
        remember(root, article.guid_key, (article.url, article.canonical_url), article.content_hash)
    return marks
