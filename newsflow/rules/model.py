"""Rules from a TOML file: filters (block/keep entries and articles), watches and feed-health alerts.

    rules = parse_rules(text, "rules.toml")   # RulesError "rules.toml:7: ..." on the first bad value

Everything is validated before anything is used: unknown keys, wrong types, regexes that do not compile,
duplicate names, bad durations. The text is kept as given (the warehouse stores it; ``rules export`` prints
it back), so comments and order survive.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from newsflow.clock import parse_duration
from newsflow.errors import RulesError, SearchQueryError
from newsflow.query import parse_query

#: Fields a filter's regexes may test, and when they can be tested: before the page is fetched (the
#: feed entry has them) or only after extraction.
ENTRY_FIELDS = ("title", "url", "site", "author", "tags", "summary")
TEXT_FIELDS = ("text",)
_FILTER_KEYS = {"name", "action", "language", "feeds", "min_words", "max_age", *ENTRY_FIELDS, *TEXT_FIELDS}
_WATCH_KEYS = {"name", "query", "min_outlets", "follow_ups", "webhook", "secret_env", "notify"}
_ALERT_KEYS = {"name", "feed_failures", "webhook", "secret_env", "notify"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class FilterRule:
    """One ``[[filter]]``: it matches when every condition it sets holds (regexes search, case as
    written: add ``(?i)`` to ignore case)."""

    name: str
    action: str  # block | keep
    patterns: tuple[tuple[str, re.Pattern[str]], ...] = ()  # (field, regex)
    languages: tuple[str, ...] = ()
    feeds: tuple[str, ...] = ()  # fnmatch globs on the feed's URL
    min_words: int | None = None
    max_age: timedelta | None = None

    @property
    def needs_text(self) -> bool:
        """Whether a condition can only be tested on the extracted article (text, language, words)."""
        return bool(
            self.languages or self.min_words is not None or any(f in TEXT_FIELDS for f, _ in self.patterns)
        )


@dataclass(frozen=True)
class Delivery:
    """Where an alert goes: a signed webhook and/or Apprise URLs."""

    webhook: str | None = None
    secret_env: str | None = None
    notify: tuple[str, ...] = ()


@dataclass(frozen=True)
class Watch:
    """One ``[[watch]]``: stories matching ``query`` (the ``newsflow search`` syntax)."""

    name: str
    query: str
    min_outlets: int = 3
    follow_ups: bool = False
    delivery: Delivery = Delivery()


@dataclass(frozen=True)
class FeedHealthAlert:
    """One ``[[alert]]``: a feed that failed ``feed_failures`` polls in a row, or was paused."""

    name: str
    feed_failures: int
    delivery: Delivery = Delivery()


@dataclass(frozen=True)
class RuleSet:
    """A whole rules file, parsed; ``version`` is the warehouse's number for it (0: not stored)."""

    filters: tuple[FilterRule, ...] = ()
    watches: tuple[Watch, ...] = ()
    alerts: tuple[FeedHealthAlert, ...] = ()
    text: str = ""
    version: int = 0

    @property
    def keeps(self) -> tuple[FilterRule, ...]:
        return tuple(rule for rule in self.filters if rule.action == "keep")

    @property
    def blocks(self) -> tuple[FilterRule, ...]:
        return tuple(rule for rule in self.filters if rule.action == "block")


def parse_rules(text: str, source: str, version: int = 0) -> RuleSet:
    """Parse and validate a rules file's ``text`` (``source`` names it in messages).

    Raises:
        RulesError: ``source:line: what is wrong`` for the first problem found.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        raise RulesError(f"{source}:{line.group(1) if line else 1}: not valid TOML: {exc}") from None
    lines = _KeyLines(text)
    unknown = set(document) - {"filter", "watch", "alert"}
    if unknown:
        key = sorted(unknown)[0]
        raise RulesError(
            f"{source}:{lines.top(key)}: unknown table {key!r}: use [[filter]], [[watch]], [[alert]]"
        )
    tables = {kind: document.get(kind, []) for kind in ("filter", "watch", "alert")}
    for kind, items in tables.items():
        if not isinstance(items, list) or not all(isinstance(item, dict) for item in items):
            raise RulesError(f"{source}:{lines.top(kind)}: {kind} must be an array of tables: [[{kind}]]")
    at = _Locator(source, lines)
    filters = tuple(_filter(item, at.table("filter", n)) for n, item in enumerate(tables["filter"]))
    watches = tuple(_watch(item, at.table("watch", n)) for n, item in enumerate(tables["watch"]))
    alerts = tuple(_alert(item, at.table("alert", n)) for n, item in enumerate(tables["alert"]))
    names = {
        "filter": [rule.name for rule in filters],
        "watch": [watch.name for watch in watches],
        "alert": [alert.name for alert in alerts],
    }
    for kind, named in names.items():
        for n, name in enumerate(named):
            if name in named[:n]:
                at.table(kind, n).fail("name", f"a second {kind} named {name!r}: names must be unique")
    return RuleSet(filters, watches, alerts, text, version)


# ---- one table each -------------------------------------------------------------------------------------


def _filter(item: dict[str, Any], at: _TableAt) -> FilterRule:
    at.only(item, _FILTER_KEYS)
    name = at.name(item)
    action = item.get("action", "block")
    if action not in ("block", "keep"):
        at.fail("action", f'action must be "block" or "keep", not {action!r}')
    patterns = tuple(
        (field, at.regex(item, field)) for field in (*ENTRY_FIELDS, *TEXT_FIELDS) if field in item
    )
    languages = tuple(language.lower() for language in at.strings(item, "language"))
    feeds = at.strings(item, "feeds")
    min_words = at.integer(item, "min_words", 0) if "min_words" in item else None
    max_age = None
    if "max_age" in item:
        value = item["max_age"]
        try:
            max_age = parse_duration(value) if isinstance(value, str) else None
        except ValueError:
            max_age = None
        if max_age is None:
            at.fail("max_age", f'max_age must be a duration such as "30m", "24h" or "7d", not {value!r}')
    rule = FilterRule(name, action, patterns, languages, feeds, min_words, max_age)
    if not (patterns or languages or feeds or min_words is not None or max_age is not None):
        at.fail("name", f"filter {name!r} has no condition: it would match everything")
    return rule


def _watch(item: dict[str, Any], at: _TableAt) -> Watch:
    at.only(item, _WATCH_KEYS)
    name = at.name(item)
    query = item.get("query")
    if not isinstance(query, str) or not query.strip():
        at.fail("query" if "query" in item else "name", 'a watch needs query = "words to look for"')
    try:
        parse_query(str(query))  # the search syntax, checked as `newsflow search` checks it
    except SearchQueryError as exc:
        at.fail("query", str(exc))
    min_outlets = at.integer(item, "min_outlets", 0) if "min_outlets" in item else 3
    follow_ups = item.get("follow_ups", False)
    if not isinstance(follow_ups, bool):
        at.fail("follow_ups", "follow_ups must be true or false")
    return Watch(name, str(query), min_outlets, follow_ups, _delivery(item, at))


def _alert(item: dict[str, Any], at: _TableAt) -> FeedHealthAlert:
    at.only(item, _ALERT_KEYS)
    name = at.name(item)
    if "feed_failures" not in item:
        at.fail("name", "an alert needs feed_failures = N (polls failed in a row)")
    return FeedHealthAlert(name, at.integer(item, "feed_failures", 1), _delivery(item, at))


def _delivery(item: dict[str, Any], at: _TableAt) -> Delivery:
    webhook = item.get("webhook")
    if webhook is not None:
        parts = urlsplit(webhook) if isinstance(webhook, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            at.fail("webhook", f"webhook must be an http:// or https:// URL, not {webhook!r}")
    secret_env = item.get("secret_env")
    if secret_env is not None and (not isinstance(secret_env, str) or not _ENV_NAME.match(secret_env)):
        at.fail(
            "secret_env", "secret_env names an environment variable (the key itself never sits in the file)"
        )
    if secret_env is not None and webhook is None:
        at.fail("secret_env", "secret_env signs a webhook: set webhook too")
    notify = at.strings(item, "notify")
    for url in notify:
        if "://" not in url:
            at.fail("notify", f'notify takes Apprise URLs such as "ntfy://topic", not {url!r}')
    return Delivery(webhook, secret_env, notify)


# ---- where a key is, for messages -------------------------------------------------------------------------


class _KeyLines:
    """Line numbers of each ``[[kind]]`` header and of each key under it, read off the text."""

    _HEADER = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_-]+)\s*\]\]")
    _TOP = re.compile(r"^\s*\[?\[?\s*([A-Za-z0-9_-]+)")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")

    def __init__(self, text: str) -> None:
        self.headers: dict[str, list[int]] = {}
        self.keys: dict[tuple[str, int], dict[str, int]] = {}
        self.first: dict[str, int] = {}
        current: tuple[str, int] | None = None
        for number, line in enumerate(text.splitlines(), 1):
            if header := self._HEADER.match(line):
                kind = header.group(1)
                self.headers.setdefault(kind, []).append(number)
                current = (kind, len(self.headers[kind]) - 1)
                self.keys[current] = {}
            elif (key := self._KEY.match(line)) and current is not None:
                self.keys[current].setdefault(key.group(1), number)
            if (top := self._TOP.match(line)) and top.group(1) not in self.first:
                self.first[top.group(1)] = number

    def top(self, name: str) -> int:
        return self.first.get(name, 1)


class _Locator:
    def __init__(self, source: str, lines: _KeyLines) -> None:
        self.source, self.lines = source, lines

    def table(self, kind: str, index: int) -> _TableAt:
        headers = self.lines.headers.get(kind, [])
        header = headers[index] if index < len(headers) else 1
        return _TableAt(self.source, kind, header, self.lines.keys.get((kind, index), {}))


@dataclass(frozen=True)
class _TableAt:
    """One table of the file, to check values and fail at the right line."""

    source: str
    kind: str
    header: int
    keys: dict[str, int]

    def fail(self, key: str, message: str) -> None:
        raise RulesError(f"{self.source}:{self.keys.get(key, self.header)}: [[{self.kind}]] {message}")

    def only(self, item: dict[str, Any], allowed: set[str]) -> None:
        for key in item:
            if key not in allowed:
                self.fail(key, f"unknown key {key!r} (known: {', '.join(sorted(allowed))})")

    def name(self, item: dict[str, Any]) -> str:
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            self.fail("name", f'needs name = "..." (letters, digits, - _ .; at most 64), not {name!r}')
        return str(name)

    def regex(self, item: dict[str, Any], key: str) -> re.Pattern[str]:
        value = item[key]
        if not isinstance(value, str):
            self.fail(key, f"{key} must be a regular expression in a string")
        try:
            return re.compile(value)
        except re.error as exc:
            self.fail(key, f"{key} = '{value}' does not compile: {exc}")  # as written, no escapes doubled
            raise  # unreachable: fail raises

    def strings(self, item: dict[str, Any], key: str) -> tuple[str, ...]:
        value = item.get(key, [])
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            self.fail(key, f"{key} must be a list of strings")
        return tuple(value)

    def integer(self, item: dict[str, Any], key: str, least: int) -> int:
        value = item[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            self.fail(key, f"{key} must be a whole number >= {least}, not {value!r}")
        return int(value)
