"""The ingest flow end to end, over real HTTP on loopback, into a real DuckDB file, under Prefect."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from newsflow.text import token_f1
from tests.conftest import LoopbackSite, shared
from tests.feedbuild import Item, benchmark_pages, write_feed
from tests.lake import reader

PAGES_PER_FEED = 10


@pytest.fixture(scope="module")
def scenario(site: LoopbackSite, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Feeds for one run: two good feeds of real benchmark pages (one link with tracking parameters),
    one real third-party feed whose links point off-machine, one 500, one that times out, one malformed
    feed that still has entries, and one HTML page that is not a feed."""
    shared("scrapinghub-article-extraction-benchmark")
    gold = benchmark_pages()
    ids = sorted(gold)[: 2 * PAGES_PER_FEED]
    folder = "flow"
    for number in range(2):
        chunk = ids[number * PAGES_PER_FEED : (number + 1) * PAGES_PER_FEED]
        items = [
            Item(
                f"Story {i}",
                site.url(f"/pages/{i}.html?utm_source=rss&utm_medium=feed"),
                guid=f"g-{i}",
                description=f"Summary of {i}",
            )
            for i in chunk
        ]
        write_feed(site.root / folder / f"good{number}.xml", f"Good {number}", items)
    malformed = site.root / folder / "malformed.xml"
    malformed.write_text(
        "<?xml version='1.0'?><rss version='2.0'><channel><title>Broken</title>"
        f"<item><title>Only item</title><link>{site.url('/pages/' + ids[0] + '.html')}</link>"
        "<guid isPermaLink='false'>broken-1</guid><description>short & broken</description></item>"
    )
    techcrunch = shared("feedjira-sample-feeds/TechCrunch.xml")
    shutil.copy(techcrunch, site.root / folder / "techcrunch.xml")
    not_a_feed = site.root / folder / "page.html"
    not_a_feed.write_bytes(
        gzip.decompress(
            (
                Path(str(techcrunch)).parent.parent
                / "scrapinghub-article-extraction-benchmark"
                / "html"
                / f"{ids[-1]}.html.gz"
            ).read_bytes()
        )
    )
    feeds = {
        "good0": site.url(f"/site/{folder}/good0.xml"),
        "good1": site.url(f"/site/{folder}/good1.xml"),
        "techcrunch": site.url(f"/site/{folder}/techcrunch.xml"),
        "malformed": site.url(f"/site/{folder}/malformed.xml"),
        "error500": site.url("/_status/500"),
        "timeout": site.url("/_sleep/4"),
        "not_a_feed": site.url(f"/site/{folder}/page.html"),
    }
    feeds_file = tmp_path_factory.mktemp("feeds") / "feeds.toml"
    feeds_file.write_text(
        "".join(f'[[feeds]]\nurl = "{url}"\nname = "{name}"\n\n' for name, url in feeds.items())
    )
    return {"feeds": feeds, "feeds_file": feeds_file, "gold": gold, "ids": ids}


@pytest.fixture(scope="module")
def first_run(
    scenario: dict[str, Any],
    site: LoopbackSite,
    prefect_harness: None,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch_module: pytest.MonkeyPatch,
) -> dict[str, Any]:
    from newsflow.flows.ingest import ingest

    monkeypatch_module.setenv("NEWSFLOW_READ_TIMEOUT", "1.5")
    monkeypatch_module.setenv("NEWSFLOW_RETRIES", "1")
    monkeypatch_module.setenv("NEWSFLOW_RETRY_BACKOFF", "0.05")
    db = tmp_path_factory.mktemp("wh") / "news.duckdb"
    site.reset_log()
    summary = ingest(
        feeds_file=str(scenario["feeds_file"]),
        db=str(db),
        allow_private_networks=True,
        batch_size=8,
        extraction_workers=2,
    )
    return {"db": db, "summary": summary, "requests": site.requests()}


@pytest.fixture(scope="module")
def monkeypatch_module() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def query(db: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with reader(db) as con:
        return con.execute(sql, params or []).fetchall()


def test_run_summary_counts_every_outcome(first_run: dict[str, Any]) -> None:
    summary = first_run["summary"]
    assert summary["feeds_polled"] == 7
    assert summary["feeds_ok"] == 4  # good0, good1, techcrunch, malformed
    assert summary["feeds_failed"] == 3
    assert summary["feed_errors"] == {"http_500": 1, "timeout": 1, "not_a_feed": 1}
    assert summary["feeds_malformed_but_used"] == 2  # ours, and TechCrunch's misplaced XML declaration
    assert summary["entries_seen"] == 2 * PAGES_PER_FEED + 20 + 1
    assert summary["new_entries"] == 41
    assert summary["articles_stored"] == 41
    assert summary["extracted"] == 2 * PAGES_PER_FEED
    # The malformed feed's item links a page already linked by good0: stored as a duplicate, not fetched.
    assert summary["duplicate_reasons"] == {"canonical_url": 1}
    # TechCrunch links point off this machine: robots.txt unreachable, feed text used instead.
    assert summary["fell_back_to_feed"] == 21
    assert summary["fetch_errors"] == {"robots_unavailable": 20}


def test_exact_rows_in_warehouse(first_run: dict[str, Any], scenario: dict[str, Any]) -> None:
    db = first_run["db"]
    assert query(db, "SELECT count(*) FROM articles") == [(41,)]
    assert query(db, "SELECT count(*) FROM raw_pages") == [(2 * PAGES_PER_FEED,)]
    assert query(db, "SELECT count(*) FROM feeds") == [(7,)]
    assert query(db, "SELECT count(*) FROM polls") == [(7,)]
    assert query(db, "SELECT status, counts->>'articles_stored' FROM runs") == [("completed", "41")]
    by_source = dict(query(db, "SELECT content_source, count(*) FROM articles GROUP BY 1"))
    assert by_source == {"page": 20, "feed_content": 20, "feed_summary": 1}


def test_tracking_parameters_are_stripped_from_urls(first_run: dict[str, Any]) -> None:
    urls = [
        row[0] for row in query(first_run["db"], "SELECT url FROM articles WHERE content_source = 'page'")
    ]
    assert urls and all("utm_" not in url for url in urls)


def test_extracted_text_matches_gold(first_run: dict[str, Any], scenario: dict[str, Any]) -> None:
    rows = query(first_run["db"], "SELECT guid, text FROM articles WHERE content_source = 'page'")
    scores = [token_f1(text, scenario["gold"][guid.removeprefix("g-")]["articleBody"]) for guid, text in rows]
    assert len(scores) == 2 * PAGES_PER_FEED
    assert sum(scores) / len(scores) >= 0.90


def test_duplicate_points_at_first_copy(first_run: dict[str, Any], scenario: dict[str, Any]) -> None:
    rows = query(
        first_run["db"],
        "SELECT d.guid, d.dup_reason, o.guid FROM articles d JOIN articles o ON d.duplicate_of = o.article_id"
        " ORDER BY 1",
    )
    assert rows == [("broken-1", "canonical_url", f"g-{scenario['ids'][0]}")]


def test_each_failed_feed_is_recorded_with_its_reason(
    first_run: dict[str, Any], scenario: dict[str, Any]
) -> None:
    feeds = scenario["feeds"]
    polls = dict(query(first_run["db"], "SELECT feed_url, error_kind FROM polls WHERE status = 'error'"))
    assert polls == {
        feeds["error500"]: "http_500",
        feeds["timeout"]: "timeout",
        feeds["not_a_feed"]: "not_a_feed",
    }
    streaks = dict(query(first_run["db"], "SELECT url, error_streak FROM feeds"))
    assert streaks[feeds["error500"]] == 1 and streaks[feeds["good0"]] == 0


def test_raw_html_is_kept_compressed(first_run: dict[str, Any], scenario: dict[str, Any]) -> None:
    import zstandard

    page_id = scenario["ids"][3]
    rows = query(
        first_run["db"],
        """
        SELECT p.html_zstd FROM raw_pages p JOIN articles a USING (article_id) WHERE a.guid = ?""",
        [f"g-{page_id}"],
    )
    original = gzip.decompress(
        (shared("scrapinghub-article-extraction-benchmark/html") / f"{page_id}.html.gz").read_bytes()
    )
    assert zstandard.ZstdDecompressor().decompress(rows[0][0]) == original


def test_second_run_is_conditional_and_adds_nothing(
    first_run: dict[str, Any], scenario: dict[str, Any], site: LoopbackSite
) -> None:
    from newsflow.flows.ingest import ingest

    site.reset_log()
    summary = ingest(
        feeds_file=str(scenario["feeds_file"]),
        db=str(first_run["db"]),
        allow_private_networks=True,
        batch_size=8,
    )
    requests = site.requests()
    feed_requests = [r for r in requests if str(r["path"]).endswith(".xml")]
    assert feed_requests and all(r["conditional"] and r["status"] == 304 for r in feed_requests)
    assert not [r for r in requests if str(r["path"]).startswith("/pages/")]
    assert summary["feeds_not_modified"] == 4
    assert summary["new_entries"] == 0
    assert query(first_run["db"], "SELECT count(*) FROM articles") == [(41,)]


def test_loopback_is_refused_unless_allowed(
    scenario: dict[str, Any], prefect_harness: None, db: Path
) -> None:
    from newsflow.flows.ingest import ingest

    summary = ingest(feeds_file=str(scenario["feeds_file"]), db=str(db), allow_private_networks=False)
    assert summary["feeds_failed"] == 7
    assert summary["feed_errors"] == {"blocked_address": 7}
    assert query(db, "SELECT count(*) FROM articles") == [(0,)]


def test_retry_after_defers_the_next_poll(
    site: LoopbackSite, prefect_harness: None, db: Path, tmp_path: Path
) -> None:
    from newsflow.flows.ingest import ingest

    url = site.url("/_retry_after/3600")
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feeds]]\nurl = "{url}"\n')
    summary = ingest(feeds_file=str(feeds), db=str(db), allow_private_networks=True)
    assert summary["feed_errors"] == {"http_429": 1}
    [(retry_after, wait)] = query(
        db,
        "SELECT p.retry_after, epoch(f.next_poll_at - p.started_at)"
        " FROM polls p JOIN feeds f ON f.url = p.feed_url",
    )
    assert retry_after == 3600.0 and 3600 <= wait < 3700
    site.reset_log()
    summary = ingest(feeds_file=str(feeds), db=str(db), allow_private_networks=True, due_only=True)
    assert summary["feeds_polled"] == 0
    assert [r for r in site.requests() if "_retry_after" in str(r["path"])] == []


def test_repeated_failures_pause_a_feed(
    site: LoopbackSite, prefect_harness: None, db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from newsflow.cli import main
    from newsflow.flows.ingest import ingest

    monkeypatch.setenv("NEWSFLOW_PAUSE_AFTER_ERRORS", "2")
    monkeypatch.setenv("NEWSFLOW_RETRIES", "0")
    url = site.url("/_status/500")
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feeds]]\nurl = "{url}"\n')
    for _ in range(2):
        ingest(feeds_file=str(feeds), db=str(db), allow_private_networks=True)
    assert query(db, "SELECT paused, error_streak, paused_reason FROM feeds") == [
        (True, 2, "2 failed polls in a row, last: http_500")
    ]
    listed = CliRunner().invoke(main, ["feeds", "list", "--db", str(db), "-f", "json"])
    assert json.loads(listed.stdout)[0]["state"] == "paused (2 failed polls in a row, last: http_500)"
    assert ingest(feeds_file=str(feeds), db=str(db), allow_private_networks=True)["feeds_polled"] == 0
    resumed = CliRunner().invoke(main, ["feeds", "resume", url, "--db", str(db)])
    assert resumed.exit_code == 0
    assert query(db, "SELECT paused, error_streak FROM feeds") == [(False, 0)]


def test_the_same_bare_guid_in_two_feeds_is_two_articles(
    site: LoopbackSite, prefect_harness: None, db: Path, tmp_path: Path
) -> None:
    """Two feeds on one host whose items both have <guid>1</guid> (as many CMSs write): two articles, both
    pages fetched, no duplicate mark, and the guid stored as written."""
    from newsflow.flows.ingest import ingest

    pages = sorted(benchmark_pages())[:2]
    urls = []
    for name, page in zip(("a", "b"), pages, strict=True):
        write_feed(site.root / "guids" / f"{name}.xml", f"Feed {name}",
                   [Item(f"Story {name}", site.url(f"/pages/{page}.html"), guid="1")])  # fmt: skip
        urls.append(site.url(f"/site/guids/{name}.xml"))
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("".join(f'[[feeds]]\nurl = "{u}"\n' for u in urls))
    summary = ingest(feeds_file=str(feeds), db=str(db), allow_private_networks=True)
    assert summary["articles_stored"] == 2 and summary["duplicate_reasons"] == {}
    rows = query(db, "SELECT guid, guid_key, content_source, duplicate_of FROM articles ORDER BY feed_url")
    assert rows == [("1", f"{urls[0]}#1", "page", None), ("1", f"{urls[1]}#1", "page", None)]


def run_artifact(key: str, run_id: str) -> Any:
    """The artifact ``key`` of one flow run, read back from the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[run_id])
            )
        )
    return artifact


def test_run_report_names_failing_feeds_and_links_the_run_stories(
    site: LoopbackSite, prefect_harness: None, db: Path, tmp_path: Path
) -> None:
    """The ``ingest-report`` markdown artifact a user opens in the Prefect UI after a run with dead feeds
    and a dead page link: each failure reason with its feeds, no Python reprs, the run's stories linked;
    and the ``ingest-summary`` table beside it with readable values."""
    from newsflow.flows._report import escape
    from newsflow.flows.ingest import ingest

    pages = sorted(benchmark_pages())[:2]
    good = site.url("/site/report/good.xml")
    items = [Item(f"Story {page}", site.url(f"/pages/{page}.html"), guid=page) for page in pages]
    items.append(Item("Gone", site.url("/pages/no-such-page.html"), guid="gone", description="Feed text"))
    write_feed(site.root / "report" / "good.xml", "Good", items)
    dead = [site.url("/_status/404"), site.url("/_status/404?edition=2")]
    feeds = tmp_path / "feeds.toml"
    feeds.write_text("".join(f'[[feeds]]\nurl = "{u}"\n' for u in [good, *dead]))

    summary = ingest(feeds_file=str(feeds), db=str(db), allow_private_networks=True)

    assert summary["feed_error_urls"] == {"http_404": dead}
    assert summary["fetch_error_feeds"] == {"http_404": {good: 1}}
    artifact = run_artifact("ingest-report", summary["run_id"])
    assert artifact.type == "markdown"
    report = str(artifact.data)
    assert "{'" not in report and "Counter(" not in report
    assert "- Articles: 3 stored, of which 0 duplicates" in report
    lines = report.splitlines()
    reason = lines.index("- `http_404`: 2", lines.index("### Feed failures (2 feeds)"))
    under_reason = lines[reason + 1 : reason + 3]
    assert all(f"(<{url}>)" in line for url, line in zip(dead, under_reason, strict=True))
    reason = lines.index("- `http_404`: 1", lines.index("### Page fetch failures (1 article)"))
    assert lines[reason + 1].startswith("  - [") and lines[reason + 1].endswith(f"(<{good}>): 1")
    with reader(db) as con:
        [(headline, url)] = con.execute(
            "SELECT s.headline, a.url FROM articles a JOIN stories s USING (story_id)"
            " WHERE a.content_source = 'page' ORDER BY a.url LIMIT 1"
        ).fetchall()
    [story] = [
        i for i, line in enumerate(lines) if f"**{escape(headline)}**: 1 article from 1 outlet" in line
    ]
    assert story > lines.index("## Biggest stories of this run")
    assert lines[story + 1].startswith("   - [") and f"(<{url}>)" in lines[story + 1]

    table = json.loads(str(run_artifact("ingest-summary", summary["run_id"]).data))
    values = {row["metric"]: row["value"] for row in table}
    assert values["feed_errors"] == "http_404 2"
    assert values["fetch_errors"] == "http_404 1"
    assert re.fullmatch(r"poll \d+\.\d s, articles \d+\.\d s, total \d+\.\d s", values["timings"])
    assert not [row for row in table if "{" in row["value"] or "[" in row["value"]]
