"""Filters applied: which rule drops an entry before its page is fetched, or an article after extraction.

    dropped_by = screen(rules, entry_subject(entry, url), now, Stage.ENTRY)   # a rule's name, or None

Block rules come first: the first that matches drops. Then, when there are keep rules, whatever none of them
takes is dropped too (recorded as ``NO_KEEP_RULE``). Before the fetch only what the feed entry says can be
tested: a block rule that needs the text waits for it, and a keep rule "could take" an entry when its
entry conditions hold (its text conditions are tested after extraction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

from newsflow.records import Article, FeedEntry
from newsflow.rules.model import ENTRY_FIELDS, FilterRule, RuleSet

#: The rule name recorded for what no keep rule took.
NO_KEEP_RULE = "(no keep rule)"


class Stage(StrEnum):
    ENTRY = "entry"  # a feed entry, before its page is fetched
    TEXT = "text"  # an extracted article, before it is stored


@dataclass(frozen=True)
class Subject:
    """What the rules can see of an entry or article."""

    feed_url: str
    title: str | None = None
    url: str | None = None
    site: tuple[str, ...] = ()  # the link's host, and after extraction the page's site name too
    author: str | None = None
    tags: tuple[str, ...] = ()
    summary: str | None = None
    published_at: datetime | None = None
    text: str | None = None
    language: str | None = None
    word_count: int | None = None


def entry_subject(entry: FeedEntry, url: str | None) -> Subject:
    """A feed entry as the rules see it before the fetch (``url``: its canonical link)."""
    link = url or entry.link
    return Subject(
        entry.feed_url, entry.title, link, _host(link), ", ".join(entry.authors) or None, entry.tags,
        entry.summary, entry.published_at,
    )  # fmt: skip


def article_subject(article: Article) -> Subject:
    """An extracted (or stored) article as the rules see it."""
    url = article.canonical_url or article.url
    sites = tuple(dict.fromkeys(s for s in (article.site, *_host(url)) if s))
    return Subject(
        article.feed_url, article.title, url, sites, article.author, article.tags, article.summary,
        article.published_at, article.text, article.language, article.word_count,
    )  # fmt: skip


def screen(rules: RuleSet, subject: Subject, now: datetime, stage: Stage) -> str | None:
    """The name of the rule that drops ``subject`` at ``stage`` (``NO_KEEP_RULE`` when keep rules exist
    and none takes it), or None to keep it."""
    for rule in rules.blocks:
        if stage is Stage.ENTRY and rule.needs_text:
            continue  # tested once the text is there
        if matches(rule, subject, now, entry_only=False):
            return rule.name
    keeps = rules.keeps
    if keeps and not any(matches(rule, subject, now, entry_only=stage is Stage.ENTRY) for rule in keeps):
        return NO_KEEP_RULE
    return None


def matches(rule: FilterRule, subject: Subject, now: datetime, *, entry_only: bool) -> bool:
    """Whether every condition of ``rule`` holds for ``subject`` (with ``entry_only``, the conditions on
    the text, language and words are left for later and count as holding)."""
    for field, pattern in rule.patterns:
        if field not in ENTRY_FIELDS and entry_only:
            continue
        if not any(pattern.search(value) for value in _values(subject, field)):
            return False
    if rule.feeds and not any(fnmatchcase(subject.feed_url, glob) for glob in rule.feeds):
        return False
    if (
        rule.max_age is not None
        and subject.published_at is not None
        and subject.published_at < now - rule.max_age
    ):
        return False  # an undated entry counts as recent: its age is unknown
    if entry_only:
        return True
    if rule.languages and (subject.language or "").lower().split("-")[0] not in rule.languages:
        return False
    return rule.min_words is None or (subject.word_count or 0) >= rule.min_words


def _values(subject: Subject, field: str) -> Sequence[str]:
    value = getattr(subject, field)
    if isinstance(value, tuple):
        return value
    return (value,) if value else ()


def _host(url: str | None) -> tuple[str, ...]:
    host = urlsplit(url).hostname if url else None
    return (host,) if host else ()
