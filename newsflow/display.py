"""Terminal output of the CLI: result tables in three formats, the ingest progress bar and summary."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from rich import box
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

FORMATS = ("table", "csv", "json")
MAX_CELL = 80


def render_rows(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str) -> str:
    """Rows as an aligned table (long cells cut), CSV, or a JSON list of objects."""
    if fmt == "json":
        return json.dumps([dict(zip(columns, row, strict=True)) for row in rows], default=str, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
        return buffer.getvalue().rstrip("\n")
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold")
    for column in columns:
        table.add_column(column, overflow="ellipsis", no_wrap=True, min_width=min(len(column), 20))
    for row in rows:
        table.add_row(*(_cell(v) for v in row))
    terminal = Console()
    # In a terminal, fit it (long cells end in "…"); piped or redirected, allow up to 200 columns.
    width = max(80, terminal.width) if terminal.is_terminal else 200
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text().rstrip("\n") + f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})"


def _cell(value: Any) -> str:
    if value is None:
        return ""
    text = " ".join(str(value).split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


@contextmanager
def progress_bars(enabled: bool) -> Iterator[Any]:
    """A reporter for :mod:`newsflow.progress` that draws one bar per stage on stderr."""
    if not enabled:
        yield lambda stage, done, total: None
        return
    progress = Progress(
        TextColumn("{task.description:<15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=False,
    )
    bars: dict[str, TaskID] = {}

    def update(stage: str, done: int, total: int) -> None:
        if stage not in bars:
            bars[stage] = progress.add_task(stage, total=total)
        progress.update(bars[stage], completed=done, total=total)

    with progress:
        yield update


def backfill_summary(summary: dict[str, Any]) -> str:
    """The end-of-backfill summary: chunks, discovery, articles."""
    if summary.get("status") == "skipped":
        return f"skipped: {summary['reason']}"
    lines = [
        f"chunks    {summary['chunks_done']} done now, {summary['chunks_already_done']} done before, "
        f"of {summary['chunks_total']}",
        f"discovery {summary['documents_fetched']} feed/sitemap documents fetched, "
        f"{summary['entries_in_window']} entries in the window "
        f"({summary['undated_skipped']} undated skipped)",
        f"articles  new {summary['new_entries']}, stored {summary['articles_stored']}: extracted "
        f"{summary['extracted']}, fell back to feed text {summary['fell_back_to_feed']}, "
        f"no text {summary['no_text']}, re-extracted from the warehouse {summary['reextracted']}",
    ]
    lines += _reasons(summary, (("discovery problems", "discovery_errors"), *_ARTICLE_REASONS))
    lines.append(f"run {summary['run_id']} took {summary.get('timings', {}).get('total_s', 0):.1f} s")
    return "\n".join(lines)


_ARTICLE_REASONS = (
    ("page fetch failures", "fetch_errors"),
    ("extraction failures", "extraction_errors"),
    ("duplicates by reason", "duplicate_reasons"),
)


def _reasons(summary: dict[str, Any], sections: Sequence[tuple[str, str]]) -> list[str]:
    lines = []
    for title, key in sections:
        reasons = summary.get(key) or {}
        if reasons:
            counted = ", ".join(
                f"{reason} {n}" for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1])
            )
            lines.append(f"{title}: {counted}")
    return lines


def summary_table(summary: dict[str, Any]) -> str:
    """The end-of-ingest summary a person reads: feeds, entries, articles, reasons counted."""
    if summary.get("status") == "skipped":
        return f"skipped: {summary['reason']}"
    lines = [
        f"feeds    polled {summary['feeds_polled']}, new content {summary['feeds_ok']}, "
        f"not modified {summary['feeds_not_modified']}, failed {summary['feeds_failed']}"
        + (
            f" (malformed but used: {summary['feeds_malformed_but_used']})"
            if summary["feeds_malformed_but_used"]
            else ""
        ),
        f"entries  seen {summary['entries_seen']}, new {summary['new_entries']}",
        f"articles stored {summary['articles_stored']} (of which duplicates {summary['duplicates']}): "
        f"extracted {summary['extracted']}, fell back to feed text {summary['fell_back_to_feed']}, "
        f"no text {summary['no_text']}",
        f"stories  new {summary['stories_new']}, joined by new articles {summary['stories_joined']}",
    ]
    if summary.get("batches_failed"):
        lines.append(f"batches  failed {summary['batches_failed']} (their entries are retried next run)")
    lines += _reasons(summary, (("feed failures", "feed_errors"), *_ARTICLE_REASONS))
    timings = summary.get("timings", {})
    lines.append(f"run {summary['run_id']} took {timings.get('total_s', 0):.1f} s")
    return "\n".join(lines)
