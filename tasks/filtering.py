"""Filters where they save most: feed entries before their pages are fetched, articles after extraction.

The rules in force are read from the warehouse in the session that plans or stores, so every worker of
every machine applies the same ones; what a filter drops is recorded in ``filtered`` (never in
``articles``), in the transaction of the batch it came with.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

import duckdb

from newsflow.records import Article, PlannedEntry
from newsflow.rules.model import RuleSet, parse_rules
from newsflow.rules.screen import Stage, article_subject, entry_subject, screen
from newsflow.warehouse import rules as rules_table
from newsflow.warehouse.rules import FilteredRow

_parsed: dict[int, RuleSet] = {}
_parsed_lock = threading.Lock()


def rules_in_force(con: duckdb.DuckDBPyConnection) -> RuleSet:
    """The stored rules, parsed (once per version and process); empty when none were set."""
    stored = rules_table.current_rules(con)
    if stored is None:
        return RuleSet()
    with _parsed_lock:
        if stored.version not in _parsed:
            _parsed[stored.version] = parse_rules(
                stored.text, f"rules version {stored.version}", stored.version
            )
        return _parsed[stored.version]


def screen_entries(
    con: duckdb.DuckDBPyConnection, planned: Sequence[PlannedEntry], now: datetime
) -> list[PlannedEntry]:
    """``planned`` with each entry a filter drops marked (not fetched, recorded when its batch is stored),
    and without those already dropped under these rules (recorded before)."""
    rules = rules_in_force(con)
    if not rules.filters:
        return list(planned)
    known = rules_table.filtered_ids(con, [p.article_id for p in planned], rules.version)
    out = []
    for p in planned:
        if p.article_id in known:
            continue
        rule = screen(rules, entry_subject(p.entry, p.url), now, Stage.ENTRY)
        out.append(p if rule is None else replace(p, fetch=False, skip_reason="filtered", filtered_by=rule))
    return out


def record_filters(
    con: duckdb.DuckDBPyConnection,
    rules: RuleSet,
    articles: Sequence[Article],
    run_id: str | None,
    now: datetime,
) -> tuple[list[Article], Counter[str]]:
    """Drop the batch's articles a filter drops (their entries marked before the fetch, or the text rules
    now) and record them; returns the articles to store and how many each rule dropped."""
    kept, dropped = [], []
    for article in articles:
        if article.filtered_by is not None:  # dropped before the fetch (even if the rules changed since)
            dropped.append(_row(article, article.filtered_by, Stage.ENTRY))
        elif rules.filters and (rule := screen(rules, article_subject(article), now, Stage.TEXT)) is not None:
            dropped.append(_row(article, rule, Stage.TEXT))
        else:
            kept.append(article)
    if dropped:
        rules_table.record_filtered(con, dropped, rules.version, run_id, now)
    return kept, Counter(row.rule for row in dropped)


def _row(article: Article, rule: str, stage: Stage) -> FilteredRow:
    return FilteredRow(
        article.article_id,
        rule,
        stage.value,
        article.feed_url,
        article.url,
        article.title,
        article.published_at,
    )
