"""What people read at the end of a run: the markdown report, the summary table's values, the log line.

Pure functions of a run's summary (the dict a flow returns) and its biggest stories. Feed-supplied text
(titles, headlines, sites, URLs) is escaped for markdown, so a headline cannot inject links, table cells
or HTML into the report.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

from newsflow.records import RunStory

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-!|~&])")
_WHITESPACE = re.compile(r"[\s\x00-\x1f\x7f]+")
#: Characters a link destination keeps as they are; anything else is percent-encoded.
_URL_SAFE = "!#$%&'()*+,-./:;=?@[]_~"

#: (summary key of the counts by reason, key of the feeds by reason, heading) per kind of article failure.
_ARTICLE_FAILURES = (
    ("fetch_errors", "fetch_error_feeds", "Page fetch failures"),
    ("extraction_errors", "extraction_error_feeds", "Extraction failures"),
)


def one_line(text: str) -> str:
    """``text`` with every run of whitespace and control characters as one space."""
    return _WHITESPACE.sub(" ", text).strip()


def escape(text: str) -> str:
    """``text`` as literal inline markdown: one line, every character with markdown meaning
    backslash-escaped (``<script>`` shows as text, ``[x](y)`` as brackets and parentheses)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line(text))


def code(text: str) -> str:
    """``text`` as a code span, so ``http_404`` reads as it is; escaped text if it cannot be one."""
    return f"`{text}`" if text and "`" not in text and text == one_line(text) else escape(text)


def link(text: str | None, url: str) -> str:
    """A markdown link to an http(s) ``url`` labelled ``text`` (else the URL); for any other scheme
    (``javascript:``, ``data:``) plain text with no link."""
    url = one_line(url)
    label = escape(text or "") or escape(url)
    if urlsplit(url).scheme.lower() not in ("http", "https"):
        return f"{label} ({escape(url)})" if text else label
    return f"[{label}](<{quote(url, safe=_URL_SAFE)}>)"


def render_report(summary: Mapping[str, Any], stories: Sequence[RunStory]) -> str:
    """The ingest run's markdown report: counts, failures by reason with their feeds, timings, and the
    biggest stories that got articles in the run, with links."""
    lines = [
        f"# newsflow ingest: {summary['articles_stored']} articles stored",
        "",
        f"Run {code(str(summary['run_id']))}, {escape(str(summary['status']))}.",
        "",
        "## Counts",
        "",
        *_counts(summary),
        "",
        "## Failures",
        "",
        *_failures(summary),
        "",
        "## Timings",
        "",
        *(f"- {name}: {seconds:.1f} s" for name, seconds in _timings(summary.get("timings"))),
        "",
        "## Biggest stories of this run",
        "",
        *_stories(stories),
    ]
    return "\n".join(lines) + "\n"


def _counts(summary: Mapping[str, Any]) -> list[str]:
    s = summary
    malformed = s["feeds_malformed_but_used"]
    return [
        f"- Feeds: {s['feeds_polled']} polled, {s['feeds_ok']} ok, {s['feeds_not_modified']} not modified, "
        f"{s['feeds_failed']} failed" + (f" ({malformed} malformed but used)" if malformed else ""),
        f"- Entries: {s['entries_seen']} seen, {s['new_entries']} new",
        f"- Articles: {s['articles_stored']} stored, of which {s['duplicates']} duplicates"
        + (f" ({_counted(s['duplicate_reasons'], code)})" if s["duplicate_reasons"] else ""),
        f"- Filtered: {sum(s['filtered'].values())}"
        + (f" ({_counted(s['filtered'], code)})" if s["filtered"] else ""),
        f"- Text: {s['extracted']} extracted from the page, {s['fell_back_to_feed']} fell back to feed "
        f"text, {s['no_text']} no text",
        f"- Stories: {s['stories_new']} new, {s['stories_joined']} joined by new articles",
        f"- Batches failed: {s['batches_failed']}"
        + (" (their entries are retried next run)" if s["batches_failed"] else ""),
    ]


def _failures(summary: Mapping[str, Any]) -> list[str]:
    """A section per kind of failure: each reason, most frequent first, with the feeds that had it."""
    sections: list[list[str]] = []
    feed_errors: Mapping[str, int] = summary.get("feed_errors") or {}
    if feed_errors:
        urls_by_reason: Mapping[str, list[str]] = summary.get("feed_error_urls") or {}
        lines = [f"### Feed failures ({_plural(sum(feed_errors.values()), 'feed')})", ""]
        for reason, count in _by_count(feed_errors):
            urls = urls_by_reason.get(reason, [])
            lines.append(f"- {code(reason)}: {count}")
            lines += [f"  - {link(None, url)}" for url in urls]
            if count > len(urls):
                lines.append(f"  - and {count - len(urls)} more")
        sections.append(lines)
    for counts_key, feeds_key, heading in _ARTICLE_FAILURES:
        reasons: Mapping[str, int] = summary.get(counts_key) or {}
        if not reasons:
            continue
        feeds_by_reason: Mapping[str, Mapping[str, int]] = summary.get(feeds_key) or {}
        lines = [f"### {heading} ({_plural(sum(reasons.values()), 'article')})", ""]
        for reason, count in _by_count(reasons):
            feeds = feeds_by_reason.get(reason, {})
            lines.append(f"- {code(reason)}: {count}")
            lines += [f"  - {link(None, url)}: {n}" for url, n in _by_count(feeds)]
            if count > sum(feeds.values()):
                lines.append(f"  - and {count - sum(feeds.values())} more from other feeds")
        sections.append(lines)
    if not sections:
        return ["None."]
    return [line for section in sections for line in [*section, ""]][:-1]


def _stories(stories: Sequence[RunStory]) -> list[str]:
    if not stories:
        return ["No story got articles in this run."]
    lines = []
    for number, story in enumerate(stories, 1):
        headline = escape(story.headline or "") or "(no headline)"
        lines.append(
            f"{number}. **{headline}**: {_plural(story.articles, 'article')} from "
            f"{_plural(story.outlets, 'outlet')}, {story.run_articles} new in this run"
        )
        for member in story.links:
            site = f" ({escape(member.site)})" if member.site else ""
            lines.append(f"   - {link(member.title, member.url)}{site}")
        if story.link_count > len(story.links):
            lines.append(f"   - and {story.link_count - len(story.links)} more")
    return lines


def summary_rows(summary: Mapping[str, Any]) -> list[dict[str, str]]:
    """The summary as metric/value rows for the table artifact, every value a readable string."""
    return [{"metric": key, "value": format_value(key, value)} for key, value in summary.items()]


def format_value(key: str, value: Any) -> str:
    """One summary value as text: ``reason 2, other 1`` for counts by reason, ``poll 0.3 s, total 1.2 s``
    for timings, ``reason: url, url; other: url`` for URLs by reason."""
    if key == "timings":
        return ", ".join(f"{name} {seconds:.1f} s" for name, seconds in _timings(value)) or "none"
    if isinstance(value, Mapping):
        if not value:
            return "none"
        if all(isinstance(v, int) for v in value.values()):
            return _counted(value)
        return "; ".join(f"{reason}: {format_value(reason, inner)}" for reason, inner in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "none"
    return "none" if value is None else str(value)


def ingest_line(summary: Mapping[str, Any]) -> str:
    """The one log line of a finished ingest."""
    s = summary
    line = (
        f"ingest done: {s['articles_stored']} articles stored ({s['duplicates']} duplicates), "
        f"{s['feeds_polled']} feeds polled, {s['feeds_failed']} failed"
        + (f" ({_counted(s['feed_errors'])})" if s["feed_errors"] else "")
    )
    return line + _article_problems(s) + f"; {_total_seconds(s):.1f} s"


def backfill_line(summary: Mapping[str, Any]) -> str:
    """The one log line of a finished backfill."""
    s = summary
    line = (
        f"backfill done: {s['articles_stored']} articles stored ({s['duplicates']} duplicates) of "
        f"{s['new_entries']} new entries, {s['reextracted']} re-extracted; chunks {s['chunks_done']} done, "
        f"{s['chunks_already_done']} done before, of {s['chunks_total']}"
    )
    if s["discovery_errors"]:
        line += f"; discovery problems {_counted(s['discovery_errors'])}"
    for archive, counts in (s.get("archives") or {}).items():
        line += (
            f"; {archive} units {counts['units_done']} done, {counts['units_done_before']} done before, "
            f"{counts['units_failed']} failed, {counts['records']['kept']} kept of "
            f"{counts['records']['responses'] or counts['index_rows']} read, "
            f"{counts['articles_stored']} stored"
        )
    return line + _article_problems(s) + f"; {_total_seconds(s):.1f} s"


def _article_problems(summary: Mapping[str, Any]) -> str:
    parts = [
        f"{label} {_counted(summary[key])}"
        for key, label in (
            ("fetch_errors", "page fetch failures"),
            ("extraction_errors", "extraction failures"),
        )
        if summary.get(key)
    ]
    if summary.get("filtered"):
        parts.append(f"filtered {_counted(summary['filtered'])}")
    if summary.get("batches_failed"):
        parts.append(f"{summary['batches_failed']} batches failed")
    return "".join(f"; {part}" for part in parts)


def _by_count(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def _counted(counts: Mapping[str, int], name: Callable[[str], str] = str) -> str:
    """``reason 2, other 1``, most frequent first."""
    return ", ".join(f"{name(reason)} {n}" for reason, n in _by_count(counts))


def _timings(timings: Mapping[str, float] | None) -> list[tuple[str, float]]:
    """(stage, seconds) pairs: ``poll_s`` reads as ``poll``."""
    return [(name.removesuffix("_s"), float(seconds)) for name, seconds in (timings or {}).items()]


def _total_seconds(summary: Mapping[str, Any]) -> float:
    return float((summary.get("timings") or {}).get("total_s", 0.0))


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
