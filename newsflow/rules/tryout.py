"""``newsflow rules test``: what filters would do to the stored articles, changing nothing."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from newsflow.rules.model import RuleSet
from newsflow.rules.screen import NO_KEEP_RULE, Stage, Subject, matches, screen


@dataclass
class RuleTry:
    """One filter over the articles: how many it matches, how many it would be the one to drop."""

    name: str
    action: str
    matches: int = 0
    drops: int = 0
    examples: list[str] = field(default_factory=list)


@dataclass
class FilterTry:
    """Every filter's figures, and the articles kept in all."""

    rules: list[RuleTry]
    total: int = 0
    kept: int = 0


def stored_subject(row: Mapping[str, Any]) -> Subject:
    """A stored article's row (the columns of :func:`warehouse.rules.stored_subjects`) as rules see it."""
    url = row["canonical_url"] or row["url"]
    host = urlsplit(url).hostname if url else None
    return Subject(
        row["feed_url"], row["title"], url, tuple(dict.fromkeys(s for s in (row["site"], host) if s)),
        row["author"], tuple(row["tags"] or ()), row["summary"], row["published_at"], row["text"],
        row["language"], row["word_count"],
    )  # fmt: skip


def try_filters(
    rules: RuleSet, rows: Iterable[Mapping[str, Any]], now: datetime, examples: int = 3
) -> FilterTry:
    """Apply ``rules``' filters to each stored article as if it were new (both stages at once)."""
    tried = {rule.name: RuleTry(rule.name, rule.action) for rule in (*rules.blocks, *rules.keeps)}
    if rules.keeps:
        tried[NO_KEEP_RULE] = RuleTry(NO_KEEP_RULE, "drop")
    report = FilterTry(list(tried.values()))
    for row in rows:
        subject = stored_subject(row)
        report.total += 1
        for rule in rules.filters:
            if matches(rule, subject, now, entry_only=False):
                tried[rule.name].matches += 1
        dropped_by = screen(rules, subject, now, Stage.TEXT)
        if dropped_by is None:
            report.kept += 1
            continue
        entry = tried[dropped_by]
        entry.drops += 1
        if len(entry.examples) < examples:
            entry.examples.append(subject.title or subject.url or "(untitled)")
    return report
