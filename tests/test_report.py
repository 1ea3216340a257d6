"""The end-of-run report, table values and log lines (flows/_report.py), rendered as a viewer would."""

from __future__ import annotations

import html
import re
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from newsflow.flows._report import (
    backfill_line,
    escape,
    format_value,
    ingest_line,
    link,
    one_line,
    render_report,
)
from newsflow.flows.backfill import BackfillCounts
from newsflow.flows.ingest import IngestCounts
from newsflow.records import PollResult, PollStatus, RunStory, StoryLink

HOSTILE = (
    "[x](javascript:alert(1)) | <script>alert(2)</script> *bold* &amp; `code` ![img](http://e.example/i.png)"
)

# CommonMark with raw HTML allowed, plus tables: the most a viewer could make of a report.
markdown = MarkdownIt("commonmark").enable("table")


def summary(**counts: Any) -> dict[str, Any]:
    timings = counts.pop("timings", {"poll_s": 0.312, "articles_s": 1.96, "total_s": 2.345})
    return {"run_id": "run-1", "status": "completed", **IngestCounts(**counts).as_dict(), "timings": timings}


def test_a_hostile_headline_and_link_render_as_text() -> None:
    story = RunStory(
        "s1", HOSTILE, articles=3, outlets=2, run_articles=1,
        links=(StoryLink(HOSTILE, "javascript:alert(3)", "evil|site"),
               StoryLink(HOSTILE, "http://news.example/a b)c>d", None)),
        link_count=4,
    )  # fmt: skip
    rendered = markdown.render(render_report(summary(), [story]))
    assert "<script" not in rendered and "<img" not in rendered and "<table" not in rendered
    assert re.findall(r'href="([^"]*)"', rendered) == ["http://news.example/a%20b)c%3Ed"]
    shown = html.escape(HOSTILE, quote=False)
    assert f"<strong>{shown}</strong>: 3 articles from 2 outlets, 1 new in this run" in rendered
    assert f"<li>{shown} (javascript:alert(3)) (evil|site)</li>" in rendered
    assert "<li>and 2 more</li>" in rendered


@given(st.text(alphabet=st.sampled_from("ab1. \t\n\\`*_{}[]()<>#+-!|~&;:/\"'=\u00a0é")))
def test_escaped_text_renders_as_itself(text: str) -> None:
    rendered = markdown.render(f"Title: {escape(text)}")
    expected = html.escape(f"Title: {one_line(text)}".strip(), quote=False).replace('"', "&quot;")
    assert rendered == f"<p>{expected}</p>\n"


@pytest.mark.parametrize(
    ("url", "href"),
    [
        ("https://news.example/a?b=1&c=(2)#top", "https://news.example/a?b=1&amp;c=(2)#top"),
        ("http://news.example/a b>c<d|e", "http://news.example/a%20b%3Ec%3Cd%7Ce"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("JavaScript:alert(1)", None),
        (" javascript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
    ],
)
def test_links_go_to_http_urls_only(url: str, href: str | None) -> None:
    rendered = markdown.render(f"- {link('Title', url)}")
    assert re.findall(r'href="([^"]*)"', rendered) == ([href] if href else [])


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("timings", {"poll_s": 0.312, "articles_s": 1.96, "total_s": 2.345},
         "poll 0.3 s, articles 2.0 s, total 2.3 s"),
        ("timings", {}, "none"),
        ("fetch_errors", {"timeout": 1, "http_404": 2}, "http_404 2, timeout 1"),
        ("feed_errors", {}, "none"),
        ("feed_error_urls", {"http_404": ["http://a/f", "http://b/f"], "timeout": ["http://c/f"]},
         "http_404: http://a/f, http://b/f; timeout: http://c/f"),
        ("fetch_error_feeds", {"http_404": {"http://a/f": 2, "http://b/f": 3}},
         "http_404: http://b/f 3, http://a/f 2"),
        ("articles_stored", 12, "12"),
        ("run_id", None, "none"),
    ],
)  # fmt: skip
def test_table_values_are_readable(key: str, value: Any, shown: str) -> None:
    assert format_value(key, value) == shown


def test_failed_feeds_are_listed_up_to_ten_per_reason() -> None:
    counts = IngestCounts()
    at = datetime(2024, 1, 1, tzinfo=UTC)
    failed = [
        PollResult(f"http://feeds.example/{n:02}", PollStatus.ERROR, at, 5, error_kind="timeout")
        for n in range(12)
    ]
    counts.add_polls([*failed, PollResult("http://feeds.example/ok", PollStatus.OK, at, 5)])
    report = render_report({"run_id": "r", "status": "completed", **counts.as_dict(), "timings": {}}, [])
    lines = report.splitlines()
    start = lines.index("- `timeout`: 12")
    assert lines[start + 1] == "  - [http://feeds.example/00](<http://feeds.example/00>)"
    assert lines[start + 10] == "  - [http://feeds.example/09](<http://feeds.example/09>)"
    assert lines[start + 11] == "  - and 2 more"
    assert "No story got articles in this run." in lines


def test_a_run_without_failures_says_so() -> None:
    lines = render_report(summary(), []).splitlines()
    assert lines[lines.index("## Failures") + 2] == "None."


def test_ingest_log_line() -> None:
    line = ingest_line(
        summary(
            articles_stored=12, duplicates=3, feeds_polled=4, feeds_failed=1, feed_errors=Counter(http_404=1),
            fetch_errors=Counter(timeout=2, http_500=1),
        )
    )  # fmt: skip
    assert line == (
        "ingest done: 12 articles stored (3 duplicates), 4 feeds polled, 1 failed (http_404 1); "
        "page fetch failures timeout 2, http_500 1; 2.3 s"
    )


def test_backfill_log_line() -> None:
    counts = BackfillCounts(
        articles_stored=5, new_entries=6, duplicates=1, chunks_total=7, chunks_done=4, chunks_already_done=3,
        discovery_errors=Counter(http_404=2),
    )  # fmt: skip
    line = backfill_line(
        {"run_id": "r", "status": "completed", **counts.as_dict(), "timings": {"total_s": 9.96}}
    )
    assert line == (
        "backfill done: 5 articles stored (1 duplicates) of 6 new entries, 0 re-extracted; chunks 4 done, "
        "3 done before, of 7; discovery problems http_404 2; 10.0 s"
    )
