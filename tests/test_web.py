"""`newsflow web` in a real browser (Debian's chromium driven by Playwright): the river, a story page, search
and the feeds page, with hostile feed strings shown as text and never run; `/metrics` after a real ingest
equals the warehouse's counts. Screenshots of each page go to $NEWSFLOW_SCREENSHOTS (default: the test's
tmp folder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO, LoopbackSite
from tests.lake import reader, writer
from tests.prefect_server import answers, free_port, stop, wait_until
from tests.test_crash_safety import NEWSFLOW, environment, ingest_command, served_feeds
from tests.test_load import _amazon_jsonl

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HOSTILE_TITLE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2"> Budget & council'
HOSTILE_FEED = 'Feed "><script>window.pwned = 3</script>'


@pytest.fixture(scope="module")
def hostile_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Amazon-Anthropic set, one more article with a hostile title and a ``javascript:`` link, and a
    feed with a hostile name."""
    folder = tmp_path_factory.mktemp("web")
    source = _amazon_jsonl(folder / "amazon.jsonl")
    hostile = {"id": "hostile-1", "title": HOSTILE_TITLE, "site": "evil.example",
               "published_at": "2023-09-25T23:00:00Z",
               "text": "The city council approved the new budget after a long debate. " * 12}  # fmt: skip
    source.write_text(source.read_text() + json.dumps(hostile) + "\n")
    db = folder / "web.ducklake"
    loaded = subprocess.run([NEWSFLOW, "load", str(source), "--db", str(db)], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    added = subprocess.run([NEWSFLOW, "feeds", "add", "https://feeds.example/rss", "--name", HOSTILE_FEED,
                            "--db", str(db)], capture_output=True, text=True)  # fmt: skip
    assert added.returncode == 0, added.stderr
    with writer(db) as con:  # what a feed could have stored as a link
        con.execute("UPDATE articles SET url = 'javascript:window.pwned=4' WHERE external_id = 'hostile-1'")
    return db


@pytest.fixture
def web(hostile_lake: Path) -> Iterator[str]:
    yield from running_web(hostile_lake)


def running_web(db: Path, env: dict[str, str] | None = None) -> Iterator[str]:
    port = free_port()
    command = [NEWSFLOW, "web", "--port", str(port), "--db", str(db)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        return answers(base + "/feeds")

    try:
        wait_until(up, 60, "newsflow web")
        yield base
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install chromium; .ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )  # fmt: skip
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: object, tmp_path: Path) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 420, "height": 900})  # type: ignore[attr-defined]
    new_page = context.new_page()
    dialogs: list[str] = []
    new_page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield new_page
    assert dialogs == []  # no script ever ran an alert
    context.close()


def screenshot(page: object, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("NEWSFLOW_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]


def not_pwned(page: object) -> None:
    assert page.evaluate("typeof window.pwned") == "undefined"  # type: ignore[attr-defined]


def test_the_river_shows_the_flagship_story_and_links_to_it(web: str, page: object, tmp_path: Path) -> None:
    page.goto(web + "/?since=all")  # type: ignore[attr-defined]
    stories = page.locator("article.story")  # type: ignore[attr-defined]
    first = stories.first
    assert "5 articles from 5 outlets" in first.locator("div.meta").inner_text()
    assert first.locator("ul.members li").count() == 5
    headline = first.locator("h2 a")
    title = headline.inner_text()
    screenshot(page, "river", tmp_path)
    headline.click()
    page.wait_for_url("**/story/*")  # type: ignore[attr-defined]
    assert page.locator("h1").inner_text() == title  # type: ignore[attr-defined]
    rows = page.locator("tbody tr")  # type: ignore[attr-defined]
    assert rows.count() == 5
    decisions = [rows.nth(i).locator("td").nth(4).inner_text() for i in range(5)]
    assert decisions[0].startswith("new_story") and all(d for d in decisions)  # each member's decision
    screenshot(page, "story", tmp_path)
    not_pwned(page)


def test_hostile_strings_are_text_and_run_nothing(web: str, page: object, tmp_path: Path) -> None:
    page.goto(web + "/?since=all")  # type: ignore[attr-defined]
    hostile = page.get_by_text("Budget & council", exact=False)  # type: ignore[attr-defined]
    assert HOSTILE_TITLE in hostile.first.inner_text()  # shown literally
    assert page.locator("a[href^='javascript:']").count() == 0  # type: ignore[attr-defined]
    assert page.locator("script").count() == 0  # type: ignore[attr-defined]
    not_pwned(page)
    page.goto(web + "/feeds")  # type: ignore[attr-defined]
    assert HOSTILE_FEED in page.locator("tbody").inner_text()  # type: ignore[attr-defined]
    assert "new" in page.locator("tbody tr td").nth(1).inner_text()  # type: ignore[attr-defined]
    screenshot(page, "feeds", tmp_path)
    not_pwned(page)
    page.goto(web + "/search?q=" + "%3Cscript%3Ewindow.pwned%3D5%3C%2Fscript%3E%20amazon")  # type: ignore[attr-defined]
    assert "<script>" in page.locator("input[name=q]").first.input_value()  # type: ignore[attr-defined]
    not_pwned(page)


def test_search_from_the_header_marks_the_matched_words(web: str, page: object, tmp_path: Path) -> None:
    page.goto(web + "/")  # type: ignore[attr-defined]
    box = page.locator("header input[name=q]")  # type: ignore[attr-defined]
    box.fill('anthropic "4 billion"')
    box.press("Enter")
    page.wait_for_url("**/search?q=*")  # type: ignore[attr-defined]
    hits = page.locator("article.story")  # type: ignore[attr-defined]
    assert hits.count() >= 3
    marks = [m.lower() for m in page.locator("mark").all_inner_texts()]  # type: ignore[attr-defined]
    assert any("anthropic" in m for m in marks) and any("billion" in m for m in marks)
    screenshot(page, "search", tmp_path)
    page.goto(web + "/search?q=%22unclosed")  # type: ignore[attr-defined]
    assert "No closing quotation" in page.locator(".error").inner_text()  # type: ignore[attr-defined]


def test_metrics_after_an_ingest_equal_the_warehouse(
    site: LoopbackSite, prefect_harness: str, tmp_path: Path
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    feeds_file, guids = served_feeds(site, "metrics", 60, tmp_path)
    db = tmp_path / "metrics.ducklake"
    done = subprocess.run(ingest_command(feeds_file, db), env=environment(prefect_harness), cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    for base in running_web(db):
        with urllib.request.urlopen(base + "/metrics", timeout=10) as response:
            assert response.headers["Content-Type"].startswith("text/plain")
            text = response.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    with reader(db) as con:
        articles, stories, polls = (con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0]
                                    for t in ("articles", "stories", "polls"))  # fmt: skip
    assert samples[("newsflow_articles", ())] == articles == len(guids)
    assert samples[("newsflow_stories", ())] == stories > 0
    assert samples[("newsflow_feeds", (("state", "ok"),))] == 3
    assert samples[("newsflow_polls_total", (("status", "ok"),))] == polls == 3
    assert samples[("newsflow_runs_total", (("flow", "ingest"), ("status", "completed")))] == 1
    assert 0 <= samples[("newsflow_last_success_age_seconds", (("flow", "ingest"),))] < 300


def test_the_watches_page_lists_each_watch_with_its_stories_and_feed(
    hostile_lake: Path, web: str, page: object, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[[watch]]\nname = \"anthropic\"\nquery = 'anthropic \"4 billion\"'\nmin_outlets = 3\n"
                     '[[watch]]\nname = "quiet"\nquery = "zeppelin"\nmin_outlets = 2\n')  # fmt: skip
    done = subprocess.run([NEWSFLOW, "rules", "set", str(rules), "--db", str(hostile_lake)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    page.goto(web + "/")  # type: ignore[attr-defined]
    page.locator("header a", has_text="Watches").click()  # type: ignore[attr-defined]
    page.wait_for_url("**/watches")  # type: ignore[attr-defined]
    sections = page.locator("main section")  # type: ignore[attr-defined]
    assert sections.count() == 2
    anthropic = sections.nth(0)
    assert 'query anthropic "4 billion"' in anthropic.locator("div.meta").inner_text()
    first = anthropic.locator("ul.members li a").first
    assert "5 outlets" in anthropic.locator("ul.members li").first.inner_text()
    assert "recorded only" in anthropic.locator("div.meta").inner_text()  # no webhook, no Apprise URL
    assert sections.nth(1).locator("ul.members li").inner_text() == "No story matches yet."
    feed_link = anthropic.locator("a", has_text="Atom feed")
    assert feed_link.get_attribute("href") == "/watch/anthropic.atom"
    screenshot(page, "watches", tmp_path)
    first.click()
    page.wait_for_url("**/story/*")  # type: ignore[attr-defined]
    not_pwned(page)
