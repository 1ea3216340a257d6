"""The ``load`` flow: already-extracted articles from JSON Lines. Each line is parsed and checked, and the
good ones are stored in batches through the same exact-dedupe, near-duplicate and story stages as ingestion.

``newsflow load`` calls :func:`load_file` in its own process, without Prefect's API (the temporary API
would add seconds to every load, and the load has no tasks to distribute); the ``load`` flow wraps the
same function for deployments and Prefect-triggered runs.

One JSON object per line: ``text``, and optionally ``id``, ``url``, ``title``, ``summary`` (or
``description``), ``published_at`` (ISO 8601), ``site``, ``author``, ``language``; a record needs a text or a
summary. A loaded ``id`` is global: loading it again, from any file, adds nothing.

A text that is cut short (NewsAPI's ``content``: the first 200 characters and ``… [+1135 chars]``) is stored
with its summary before it, as ingestion uses a feed's summary when a page gives no text: a record of
NewsAPI is a description and a cut text, and either alone may say little (a newsletter prompt).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from newsflow.clock import parse_iso_utc, utcnow
from newsflow.errors import ConfigError
from newsflow.flows._runs import tracked_run
from newsflow.net.urls import canonical_url, site_of
from newsflow.records import Article, ContentSource, StoreOutcome
from newsflow.settings import Settings, load_settings
from newsflow.stories.dedupe import article_id, content_hash
from newsflow.tasks.extraction import detect_language
from newsflow.tasks.storing import store

_OPTIONAL_STRINGS = ("url", "title", "site", "author", "language", "summary", "description")
#: The end of a text cut short: NewsAPI's "… [+1135 chars]".
CUT_SHORT = re.compile(r"\s*(?:…|\.\.\.)?\s*\[\+\d+ chars\]\s*$")


@dataclass(frozen=True)
class BadLine:
    """A line that was not loaded, and why."""

    line: int
    reason: str


@dataclass
class LoadCounts:
    """Totals of one load."""

    lines: int = 0
    bad_lines: int = 0
    articles_stored: int = 0
    already_stored: int = 0
    duplicates: Counter[str] = field(default_factory=Counter)
    new_stories: int = 0
    joined_stories: int = 0
    filtered: Counter[str] = field(default_factory=Counter)
    alerts: int = 0
    alert_deliveries: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: StoreOutcome) -> None:
        """Count one stored batch."""
        self.articles_stored += outcome.inserted
        self.already_stored += outcome.skipped_existing
        self.duplicates.update(outcome.duplicates)
        self.new_stories += outcome.new_stories
        self.joined_stories += outcome.joined_stories
        self.filtered.update(outcome.filtered)
        self.alerts += outcome.alerts

    def as_dict(self) -> dict[str, Any]:
        return {k: dict(v) if isinstance(v, Counter) else v for k, v in self.__dict__.items()}


def parse_line(raw: str, number: int, source: str, now: datetime, future_tolerance: float) -> Article:
    """One JSONL line as an article.

    Raises:
        ValueError: the line is not a JSON object, has no text, or has a field of the wrong kind.
    """
    try:
        record = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at column {exc.colno})") from exc
    if not isinstance(record, dict):
        raise ValueError(f"not a JSON object but {type(record).__name__}")
    for name in _OPTIONAL_STRINGS:
        if record.get(name) is not None and not isinstance(record[name], str):
            raise ValueError(f"`{name}` must be a string")
    given = record.get("text")
    if given is not None and not isinstance(given, str):
        raise ValueError("`text` must be a string")
    summary = (record.get("summary") or record.get("description") or "").strip() or None
    text = loaded_text(given or "", summary)
    if not text:
        raise ValueError("no text (`text` or `summary` must be a non-empty string)")
    external_id = record.get("id")
    if external_id is not None and not isinstance(external_id, str | int):
        raise ValueError("`id` must be a string or an integer")
    published, clamped = _published(record.get("published_at"), now, future_tolerance)
    url = canonical_url(record.get("url"))
    digest = content_hash(text)
    if external_id is not None:
        key = f"load:{external_id}"
    elif url is None:
        key = "load:text:" + (digest or hashlib.sha256(text.encode()).hexdigest()[:32])
    else:
        key = None
    return Article(
        article_id=article_id(key, url),
        feed_url=source,
        guid=None if external_id is None else str(external_id),
        guid_key=key,
        url=url,
        canonical_url=url,
        title=record.get("title"),
        author=record.get("author"),
        published_at=published,
        updated_at=None,
        date_clamped=clamped,
        site=record.get("site") or site_of(url),
        language=record.get("language") or detect_language(text),
        text=text,
        word_count=len(text.split()),
        summary=summary,
        tags=(),
        content_source=ContentSource.LOADED,
        fetch_error=None,
        extraction_error=None,
        http_status=None,
        content_hash=digest,
        fetched_at=None,
        external_id=None if external_id is None else str(external_id),
    )


def loaded_text(text: str, summary: str | None) -> str:
    """The text a record is stored and grouped with: its ``text``; where that is cut short (``… [+N
    chars]``), the summary then the text as given (its mark says that it is cut); where there is no text,
    the summary."""
    text = text.strip()
    if not text or not summary:
        return text or summary or ""
    return f"{summary}\n\n{text}" if CUT_SHORT.search(text) else text


def _published(value: object, now: datetime, tolerance: float) -> tuple[datetime | None, bool]:
    if value is None or value == "":
        return None, False
    if not isinstance(value, str):
        raise ValueError("bad date: `published_at` must be an ISO 8601 string")
    when = parse_iso_utc(value)
    if when is None:
        raise ValueError(f"bad date: `published_at` {value[:40]!r} is not ISO 8601")
    if when > now + timedelta(seconds=tolerance):
        return now, True
    return when, False


def read_lines(
    path: Path, source: str, now: datetime, future_tolerance: float
) -> Iterator[Article | BadLine]:
    """Each non-blank line of the file as an article or a bad line, in file order."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from exc
    with handle:
        for number, data in enumerate(handle, start=1):
            try:
                raw = data.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError:
                yield BadLine(number, "not UTF-8 text")
                continue
            if not raw.strip():
                continue
            try:
                yield parse_line(raw, number, source, now, future_tolerance)
            except ValueError as exc:
                yield BadLine(number, str(exc))


def load_file(
    path: Path, settings: Settings, on_bad_line: Callable[[BadLine], None] | None = None
) -> dict[str, Any]:
    """Load a JSONL file into the warehouse, a transaction per batch of ``settings.batch_size``.

    Bad lines are passed to ``on_bad_line`` as they are met and counted; the good ones are stored.
    The run is recorded in ``runs`` (flow ``load``). Returns the counts.
    """
    counts = LoadCounts()
    with tracked_run(settings, "load", {"file": str(path)}, counts) as run:
        batch: list[Article] = []

        def flush() -> None:
            counts.add(store(batch, settings, run.run_id))
            batch.clear()

        for item in read_lines(path, path.resolve().as_uri(), utcnow(), settings.future_tolerance):
            counts.lines += 1
            if isinstance(item, BadLine):
                counts.bad_lines += 1
                if on_bad_line is not None:
                    on_bad_line(item)
                continue
            batch.append(item)
            if len(batch) >= settings.batch_size:
                flush()
        if batch:
            flush()
    return {"run_id": run.run_id, **counts.as_dict(), "timings": run.timings}


@flow(name="load", validate_parameters=True)
def load(file: str, db: str | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """Load already-extracted articles from a JSON Lines file (see the module's docstring for the fields).

    Args:
        file: the JSONL file, as a path on the machine that runs the flow.
        db: the warehouse; default ``NEWSFLOW_DB`` / ``NEWSFLOW_WAREHOUSE``.
        batch_size: articles per stored batch.

    Returns:
        The run's counts, as ``newsflow load --json`` prints them. Each bad line is logged as a warning.
    """
    settings = load_settings(db=Path(db) if db else None, batch_size=batch_size)
    logger = get_run_logger()
    return load_file(
        Path(file), settings, on_bad_line=lambda bad: logger.warning("%s:%d: %s", file, bad.line, bad.reason)
    )
