"""Terminal output of the CLI: result tables in three formats, the ingest progress bar and summary."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sys
import textwrap
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from rich import box
from rich.console import Console
from rich.padding import Padding
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

FORMATS = ("table", "csv", "json")
#: Longest cell a table shows (the rest is cut with "…"; CSV and JSON carry every character).
MAX_CELL = 80
#: Narrowest a text column may get before a table gives way to records.
MIN_TEXT = 16
#: Width of output that is not a terminal (piped, redirected) when COLUMNS is not set.
PIPED_WIDTH = 200
_GAP = 3  # between two table columns: padding, separator, padding


def render_rows(
    columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, *, width: int | None = None
) -> str:
    """Rows as a table, CSV, or a JSON list of objects.

    Every format shows every column. Lists are lists (``a, b`` in tables and CSV, arrays in JSON), times
    are UTC to the second, JSON is UTF-8. A table fits ``width`` (default: the terminal's, ``COLUMNS``,
    or 200 when piped): ids (``*_id`` columns) are never cut, text cells are cut with "…", and when the
    columns cannot all fit it prints each row as a record (one ``column  value`` line per column).
    """
    if fmt == "json":
        return render_json([dict(zip(columns, row, strict=True)) for row in rows])
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[plain_text(v) for v in row] for row in rows])
        return buffer.getvalue().rstrip("\n")
    width = width or output_width()
    cells = [[_cell(v) for v in row] for row in rows]
    widths = _fit(columns, cells, width)
    counted = f"{len(rows)} row{'s' if len(rows) != 1 else ''}"
    if widths is None:
        return _records(columns, cells, width) + (
            f"\n({counted} as records: {len(columns)} columns do not fit in {width}; -f csv for a table)"
        )
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, header_style="bold", pad_edge=False)
    for column, column_width in zip(columns, widths, strict=True):
        table.add_column(column, width=column_width, no_wrap=True, overflow="ellipsis")
    for row in cells:
        table.add_row(*(Text(cell) for cell in row))  # Text: a feed's "[bold]" or ":x:" stays literal
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    lines = [line.rstrip() for line in console.export_text().rstrip("\n").splitlines()]
    return "\n".join(lines) + f"\n({counted})"


def render_hits(hits: Sequence[Any], *, width: int | None = None, color: bool | None = None) -> str:
    """Search hits (``warehouse.search.SearchHit``) for a terminal: per hit one line (rank, score, time, site,
    story id and its outlets, title), then its snippet wrapped below, matched words in bold (``color``,
    default: stdout is a terminal and NO_COLOR is unset) or between ``**``."""
    width = width or output_width()
    if color is None:
        color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    console = Console(
        width=width, record=True, file=io.StringIO(), force_terminal=color, color_system="standard"
    )
    for rank, hit in enumerate(hits, 1):
        outlets = len(hit.story_outlets)
        when = plain_text(hit.published_at)[:16] or "(undated)"
        story = f"  {hit.story_id} ({outlets} outlet{'s' if outlets != 1 else ''})" if hit.story_id else ""
        copy = f"  copy of {hit.duplicate_of}" if hit.duplicate_of else ""
        line = Text(
            f"{rank:>2}. {hit.score:5.2f}  {when}  {hit.site or ''}{story}{copy}  "
        )  # ids first: never cut
        line.append(_cell(hit.title or "(no title)"), style="bold")
        console.print(line, overflow="ellipsis", no_wrap=True, crop=True)
        snippet = Text()
        for piece, matched in hit.snippet:
            piece = " ".join(piece.split()) if piece.strip() else piece
            snippet.append(piece if color or not matched else f"**{piece}**", style="bold" if matched else "")
        console.print(Padding(snippet, (0, 0, 0, 5)))
    console.print(f"({len(hits)} hit{'s' if len(hits) != 1 else ''})")
    return "\n".join(line.rstrip() for line in console.export_text(styles=color).rstrip("\n").splitlines())


def render_json(value: Any) -> str:
    """``value`` as indented UTF-8 JSON: times as ISO 8601 UTC to the second, lists as arrays."""
    return json.dumps(json_value(value), ensure_ascii=False, indent=2)


def render_record(fields: Sequence[tuple[str, Any]], *, width: int | None = None) -> str:
    """``name  value`` lines, long values wrapped (never cut), for one thing shown whole."""
    return _record_lines(
        [name for name, _ in fields], [plain_text(v) for _, v in fields], width or output_width()
    )


def output_width() -> int:
    """Columns to fit: ``COLUMNS`` when set, else the terminal's, else 200 (piped or redirected)."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    if sys.stdout.isatty():
        return shutil.get_terminal_size().columns
    return PIPED_WIDTH


def is_key_column(name: str) -> bool:
    """Columns whose values people paste back (ids): never cut."""
    return name == "id" or name.endswith("_id") or name in {"duplicate_of", "copy_of"}


def _fit(columns: Sequence[str], cells: Sequence[Sequence[str]], width: int) -> list[int] | None:
    """Each column's width in a table of ``width``, or None when they cannot all fit."""
    natural = [max([len(c), *(len(row[i]) for row in cells)]) for i, c in enumerate(columns)]
    least = [
        n if is_key_column(c) else min(n, max(len(c), MIN_TEXT))
        for c, n in zip(columns, natural, strict=True)
    ]
    spare = width - sum(least) - _GAP * (len(columns) - 1)
    if spare < 0:
        return None
    widths = list(least)
    for i in range(len(columns)):  # what is left goes to the cut columns, leftmost (most telling) first
        grant = min(natural[i] - widths[i], spare)
        widths[i] += grant
        spare -= grant
    return widths


def _records(columns: Sequence[str], cells: Sequence[Sequence[str]], width: int) -> str:
    rule = min(width, 40)
    return "\n".join(
        f"-[ {number} ]".ljust(rule, "-") + "\n" + _record_lines(columns, row, width)
        for number, row in enumerate(cells, 1)
    )


def _record_lines(names: Sequence[str], values: Sequence[str], width: int) -> str:
    label = max(len(n) for n in names)
    room = max(20, width - label - 2)
    lines = []
    for name, value in zip(names, values, strict=True):
        wrapped = textwrap.wrap(value, room, break_long_words=True, break_on_hyphens=False) or [""]
        lines.append(f"{name:<{label}}  {wrapped[0]}".rstrip())
        lines += [" " * (label + 2) + more for more in wrapped[1:]]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = " ".join(plain_text(value).split())
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def plain_text(value: Any) -> str:
    """A value as one line of text: lists joined with ", ", times as UTC to the second."""
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(plain_text(v) for v in value)
    if isinstance(value, datetime):
        return f"{_utc(value):%Y-%m-%d %H:%M:%S}"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return f"{_utc(value):%Y-%m-%dT%H:%M:%SZ}"
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def _utc(moment: datetime) -> datetime:
    """Aware times in UTC; naive ones are taken as UTC already (the warehouse stores UTC)."""
    return moment.astimezone(UTC) if moment.tzinfo else moment


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


def backfill_summary(summary: dict[str, Any], warehouse: str) -> str:
    """The end-of-backfill summary: the web archives' units and records, chunks and discovery of the other
    sources, articles; the last line names the warehouse."""
    if summary.get("status") == "skipped":
        return f"skipped: {summary['reason']}\nwarehouse {warehouse}"
    lines = []
    for archive, counts in (summary.get("archives") or {}).items():
        lines += archive_lines(archive, counts)
    if summary["chunks_total"]:
        lines += [
            f"chunks    {summary['chunks_done']} done now, {summary['chunks_already_done']} done before, "
            f"of {summary['chunks_total']}",
            f"discovery {summary['documents_fetched']} feed/sitemap documents fetched, "
            f"{summary['entries_in_window']} entries in the window "
            f"({summary['undated_skipped']} undated skipped)",
        ]
    lines.append(
        f"articles  new {summary['new_entries']}, stored {summary['articles_stored']} (of which duplicates "
        f"{summary['duplicates']}): extracted {summary['extracted']}, fell back to feed text "
        f"{summary['fell_back_to_feed']}, no text {summary['no_text']}"
        + (f", re-extracted from the warehouse {summary['reextracted']}" if summary["reextracted"] else "")
    )
    lines.append(
        f"stories   new {summary['stories_new']}, joined by new articles {summary['stories_joined']}"
    )
    if summary.get("batches_failed"):
        lines.append(f"batches   failed {summary['batches_failed']} (their units are read again next run)")
    lines += alert_lines(summary)
    lines += _reasons(summary, (("discovery problems", "discovery_errors"), *_ARTICLE_REASONS))
    lines.append(f"run {summary['run_id']} took {summary.get('timings', {}).get('total_s', 0):.1f} s")
    lines.append(f"warehouse {warehouse}")
    return "\n".join(lines)


#: What an archive's unit of work is called in the summary.
_UNIT_NAMES = {"cc-news": "files", "wayback": "sites", "cc-index": "crawl indexes"}
_SKIPPED = (
    ("other_hosts", "other hosts"), ("outside_window", "captured outside the window"), ("not_ok", "not 200"),
    ("not_html", "not HTML"), ("too_large", "too large"), ("malformed", "broken"),
)  # fmt: skip


def archive_lines(archive: str, counts: dict[str, Any]) -> list[str]:
    """Two or three summary lines for one web archive: its units, what it read and kept, what it stored."""
    records = counts["records"]
    skipped = ", ".join(f"{label} {records[key]:,}" for key, label in _SKIPPED if records.get(key))
    listed = (
        f"{records['responses']:,} responses read ({counts['bytes_read'] / 1e6:,.1f} MB)"
        if archive == "cc-news"
        else f"{counts['index_rows']:,} captures listed"
    )
    lines = [
        f"{archive:<9} {counts['units']} {_UNIT_NAMES.get(archive, 'units')}: "
        f"{counts['units_done']} done now, {counts['units_done_before']} done before, "
        f"{counts['units_failed']} failed",
        f"{'':<9} {listed}, {records['kept']:,} kept" + (f" (skipped: {skipped})" if skipped else ""),
        f"{'':<9} already stored {counts['already_stored']:,}, published outside the window "
        f"{counts['outside_publication_window']:,}, no text {sum(counts['not_stored'].values()):,}, "
        f"stored {counts['articles_stored']:,}",
    ]
    if counts.get("not_stored"):
        lines.append(f"{'':<9} no text: " + ", ".join(f"{k} {v}" for k, v in counts["not_stored"].items()))
    if counts.get("problems"):
        lines.append(f"{'':<9} problems: " + ", ".join(f"{k} {v}" for k, v in counts["problems"].items()))
    return lines


_ARTICLE_REASONS = (
    ("filtered by rule", "filtered"),
    ("page fetch failures", "fetch_errors"),
    ("extraction failures", "extraction_errors"),
    ("duplicates by reason", "duplicate_reasons"),
)


def alert_lines(summary: dict[str, Any]) -> list[str]:
    """One line on the alerts a run decided and delivered, when it had any."""
    sent = summary.get("alert_deliveries") or {}
    if not (summary.get("alerts") or sent.get("delivered") or sent.get("failed")):
        return []
    failed = sent.get("failed", 0)
    return [
        f"alerts   decided {summary.get('alerts', 0)}, delivered {sent.get('delivered', 0)}, failed {failed}"
        + (" (retried by the next run; newsflow alerts shows why)" if failed else "")
    ]


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


def summary_table(summary: dict[str, Any], warehouse: str) -> str:
    """The end-of-ingest summary a person reads: feeds, entries, articles, reasons counted; the last line
    names the warehouse."""
    if summary.get("status") == "skipped":
        return f"skipped: {summary['reason']}\nwarehouse {warehouse}"
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
    lines += alert_lines(summary)
    lines += _reasons(summary, (("feed failures", "feed_errors"), *_ARTICLE_REASONS))
    timings = summary.get("timings", {})
    lines.append(f"run {summary['run_id']} took {timings.get('total_s', 0):.1f} s")
    lines.append(f'warehouse {warehouse}  (query it: newsflow stories, newsflow sql "SELECT ...")')
    return "\n".join(lines)
