"""Watches and alerts for real: a loopback site on five hosts (one per outlet) releases the Amazon-Anthropic
coverage over three ingests, and a webhook receiver on loopback gets exactly one signed POST per watch when
the story reaches its third outlet (one more for a watch that asks for follow-ups), none for a story under
its threshold. Delivery survives a receiver that is down (sent once on the next run), two writers at once
(one POST), and goes through Apprise too."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from textwrap import dedent

import pytest

from tests.conftest import REPO, LoopbackSite, shared
from tests.feedbuild import Item, write_feed
from tests.test_crash_safety import NEWSFLOW, environment
from tests.test_load import _amazon_jsonl
from tests.webhook_receiver import Receiver

SECRET = "hook-secret-5e1f"
#: The five outlets of the story in the order they are released, and one of another story.
STORY = ["reuters", "readwrite", "slashdot", "cnet", "time"]
OTHER = "sdtimes-alexa-llm-tools"


def _rules(receiver: Receiver) -> str:
    return dedent(f"""\
        [[watch]]
        name = "anthropic"
        query = "anthropic amazon"
        min_outlets = 3
        webhook = "{receiver.url("/hook")}"
        secret_env = "NEWSFLOW_WEBHOOK_SECRET"

        [[watch]]
        name = "anthropic-growth"
        query = "anthropic"
        min_outlets = 3
        follow_ups = true
        webhook = "{receiver.url("/growth")}"

        [[watch]]
        name = "alexa"
        query = "alexa"
        min_outlets = 2
        webhook = "{receiver.url("/alexa")}"
    """)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def outlets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A loopback site on 127.0.0.1 and 127.0.1.1-5 (one host per outlet) serving a folder at /news."""
    folder = tmp_path_factory.mktemp("outlets")
    command = [sys.executable, str(REPO / "tests" / "loopback_site.py"), "--mount", f"/news={folder}",
               "--hosts", "5"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    base = process.stdout.readline().strip()
    try:
        yield base, folder
    finally:
        process.terminate()
        process.wait(timeout=10)


def _items() -> dict[str, dict[str, str]]:
    path = shared("amazon-anthropic-2023-09-25/items.jsonl")
    items = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        item = json.loads(line)
        items[item["item_id"].removesuffix("-amazon-anthropic")] = item
    return items


def _release(base: str, folder: Path, names: list[str]) -> None:
    """Publish ``names``' pages, each on its outlet's host, and a feed listing them."""
    items, port = _items(), base.rsplit(":", 1)[1]
    entries = []
    for number, name in enumerate(names):
        item = items[name]
        text = re.sub(r"\s*(…|\.\.\.)?\s*\[\+\d+ chars\]$", "", item["text"])
        paragraphs = "".join(f"<p>{p}</p>" for p in [item.get("description") or "", *text.split("\n")] if p)
        (folder / f"{name}.html").write_text(
            f"<html><head><title>{item['title']}</title>"
            f'<meta property="og:site_name" content="{item["outlet"]}"></head>'
            f"<body><article><h1>{item['title']}</h1>{paragraphs}</article></body></html>",
            encoding="utf-8",
        )
        host = f"http://127.0.1.{1 + (STORY.index(name) if name in STORY else 4)}:{port}"
        description = " ".join(p for p in (item.get("description"), text) if p)
        entries.append(Item(item["title"], f"{host}/news/{name}.html", guid=name, description=description,
                            pub_date=f"Mon, 25 Sep 2023 {10 + number:02d}:00:00 GMT"))  # fmt: skip
    write_feed(folder / "feed.xml", "Tech news", entries)


def _verify(post: object, secret: str) -> bool:
    body, headers = post.body, post.headers  # type: ignore[attr-defined]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(headers.get("X-Newsflow-Signature", ""), expected)


def _newsflow(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NEWSFLOW, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_one_signed_post_when_a_watched_story_reaches_its_third_outlet_over_three_ingests(
    outlets: tuple[str, Path], receiver: Receiver, prefect_harness: str, tmp_path: Path
) -> None:
    base, folder = outlets
    db, rules, feeds = tmp_path / "news.ducklake", tmp_path / "rules.toml", tmp_path / "feeds.toml"
    rules.write_text(_rules(receiver))
    feeds.write_text(f'[[feeds]]\nurl = "{base}/news/feed.xml"\n')
    env = environment(prefect_harness) | {
        "NEWSFLOW_WEBHOOK_SECRET": SECRET, "NEWSFLOW_ALERT_RETRY_BACKOFF": "0",
        "NEWSFLOW_WEB_BASE_URL": "https://news.example/",
    }  # fmt: skip
    assert _newsflow(["rules", "set", str(rules), "--db", str(db)], env).returncode == 0
    ingest = ["ingest", "--feeds", str(feeds), "--db", str(db), "--json"]
    summaries = []
    for released in ([*STORY[:2], OTHER], [*STORY[:3], OTHER], [*STORY, OTHER]):
        _release(base, folder, released)
        done = _newsflow(ingest, env)
        assert done.returncode == 0, done.stderr[-3000:]
        summaries.append(json.loads(done.stdout))
        if len(summaries) == 1:
            assert receiver.received == [], "two outlets: under every threshold"
    assert [s["alerts"] for s in summaries] == [0, 2, 1]
    assert [s["alert_deliveries"] for s in summaries][1:] == [{"delivered": 2, "failed": 0},
                                                              {"delivered": 1, "failed": 0}]  # fmt: skip
    (hook,) = receiver.posts("/hook")  # once, however many outlets joined later
    assert _verify(hook, SECRET) and hook.headers["X-Newsflow-Event"] == "newsflow.story.threshold"
    body = hook.json()
    assert body["alert_id"] == hook.headers["X-Newsflow-Delivery"]
    assert body["watch"] == "anthropic" and body["outlet_count"] == 3
    assert sorted(body["outlets"]) == ["ReadWrite", "Reuters", "Slashdot.org"]
    assert {a["url"].rsplit("/", 1)[1] for a in body["articles"]} == {"reuters.html", "readwrite.html",
                                                                      "slashdot.html"}  # fmt: skip
    assert body["story_url"] == f"https://news.example/story/{body['story_id']}"
    threshold, growth = receiver.posts("/growth")
    assert "X-Newsflow-Signature" not in threshold.headers  # that watch names no secret
    assert (threshold.json()["outlet_count"], growth.json()["outlet_count"]) == (3, 5)
    assert growth.headers["X-Newsflow-Event"] == "newsflow.story.follow_up"
    assert receiver.posts("/alexa") == []  # its story has one outlet
    listed = json.loads(_newsflow(["alerts", "--db", str(db), "-f", "json"], env).stdout)
    assert sorted((a["rule"], a["state"]) for a in listed) == [
        ("anthropic", "delivered"), ("anthropic-growth", "delivered"), ("anthropic-growth", "delivered")
    ]  # fmt: skip


def test_an_alert_whose_receiver_is_down_is_sent_once_by_the_next_run(
    receiver: Receiver, tmp_path: Path
) -> None:
    db, rules = tmp_path / "down.ducklake", tmp_path / "rules.toml"
    rules.write_text(_rules(receiver))
    env = {**os.environ, "NEWSFLOW_WEBHOOK_SECRET": SECRET, "NEWSFLOW_ALERT_RETRY_BACKOFF": "0"}
    assert _newsflow(["rules", "set", str(rules), "--db", str(db)], env).returncode == 0
    records = _amazon_jsonl(tmp_path / "amazon.jsonl")
    lines = records.read_text().splitlines()
    first, rest = tmp_path / "first.jsonl", tmp_path / "rest.jsonl"
    first.write_text("\n".join(lines[:-1]) + "\n")
    rest.write_text(lines[-1] + "\n")
    receiver.stop()
    loaded = json.loads(_newsflow(["load", str(first), "--db", str(db), "--json"], env).stdout)
    assert loaded["alerts"] == 2 and loaded["alert_deliveries"] == {"delivered": 0, "failed": 2}
    pending = json.loads(_newsflow(["alerts", "--db", str(db), "-f", "json"], env).stdout)
    assert {a["state"] for a in pending} == {"pending"} and all(
        "ConnectError" in a["last_error"] for a in pending
    )
    receiver.start()
    again = json.loads(_newsflow(["load", str(rest), "--db", str(db), "--json"], env).stdout)
    assert again["alerts"] == 0 and again["alert_deliveries"] == {"delivered": 2, "failed": 0}
    assert len(receiver.posts("/hook")) == 1 and len(receiver.posts("/growth")) == 1
    assert receiver.posts("/hook")[0].headers["X-Newsflow-Delivery"] in {a["alert_id"] for a in pending}
    retried = _newsflow(["alerts", "--retry", "--db", str(db), "-f", "json"], env)
    assert retried.returncode == 0 and "delivered 0, failed 0" in retried.stderr
    assert len(receiver.received) == 2  # nothing is sent twice once acknowledged


def test_two_ingests_at_once_make_one_alert_and_one_post(
    outlets: tuple[str, Path], receiver: Receiver, prefect_harness: str, tmp_path: Path
) -> None:
    """Two ingest processes of two feeds listing the same coverage, at once: whichever stores the third
    outlet decides the alert, once; both deliver at their end, and the receiver gets one POST."""
    base, folder = outlets
    _release(base, folder, [*STORY, OTHER])
    (folder / "feed2.xml").write_text((folder / "feed.xml").read_text().replace("Tech news", "Mirror"))
    db, rules = tmp_path / "twice.ducklake", tmp_path / "rules.toml"
    rules.write_text(f'[[watch]]\nname = "anthropic"\nquery = "anthropic amazon"\nmin_outlets = 3\n'
                     f'webhook = "{receiver.url("/hook")}"\n')  # fmt: skip
    env = environment(prefect_harness) | {"NEWSFLOW_ALERT_RETRY_BACKOFF": "0"}
    assert _newsflow(["rules", "set", str(rules), "--db", str(db)], env).returncode == 0
    commands = []
    for name in ("feed", "feed2"):
        feeds = tmp_path / f"{name}.toml"
        feeds.write_text(f'[[feeds]]\nurl = "{base}/news/{name}.xml"\n')
        commands.append([NEWSFLOW, "ingest", "--feeds", str(feeds), "--db", str(db), "--batch-size", "2",
                         "--json"])  # fmt: skip
    both = [subprocess.Popen(c, env=env, cwd=REPO, stdout=subprocess.PIPE, text=True) for c in commands]
    outs = [json.loads(p.communicate(timeout=300)[0]) for p in both]
    assert [o["status"] for o in outs] == ["completed", "completed"]
    assert sum(o["alerts"] for o in outs) == 1  # decided by whichever stored the story's third outlet
    assert sum(o["alert_deliveries"]["delivered"] for o in outs) == 1
    assert len(receiver.posts("/hook")) == 1


def test_apprise_urls_deliver_too(receiver: Receiver, tmp_path: Path) -> None:
    db, rules = tmp_path / "apprise.ducklake", tmp_path / "rules.toml"
    rules.write_text(
        dedent("""\
        [[watch]]
        name = "anthropic"
        query = "anthropic"
        min_outlets = 3
        notify = ["json://127.0.0.1:${RECEIVER_PORT}/apprise"]
    """)
    )  # the variable stands for a token that should not sit in the rules
    env = {**os.environ, "NEWSFLOW_ALERT_RETRY_BACKOFF": "0", "RECEIVER_PORT": str(receiver.port)}
    assert _newsflow(["rules", "set", str(rules), "--db", str(db)], env).returncode == 0
    records = _amazon_jsonl(tmp_path / "a.jsonl")
    loaded = json.loads(_newsflow(["load", str(records), "--db", str(db), "--json"], env).stdout)
    assert loaded["alert_deliveries"] == {"delivered": 1, "failed": 0}
    (note,) = receiver.posts("/apprise")
    message = note.json()
    assert message["title"].startswith("newsflow [anthropic]: ") and "5 outlets" in message["title"]
    assert "Reuters" in message["message"]


AUTOMATION = """
import sys
from prefect.automations import Automation, EventTrigger, SendNotification
from prefect.blocks.notifications import CustomWebhookNotificationBlock

block = CustomWebhookNotificationBlock(
    name="newsflow-threshold", url=sys.argv[1], json_data={"subject": "{{subject}}", "body": "{{body}}"}
)
block_id = block.save("newsflow-threshold", overwrite=True)
Automation(
    name="a newsflow story crossed a watch's threshold",
    trigger=EventTrigger(expect={"newsflow.story.threshold"}, posture="Reactive", threshold=1),
    actions=[SendNotification(block_document_id=block_id, subject="{{ event.resource.name }}",
                              body="{{ event.payload.watch }}: {{ event.payload.outlet_count }} outlets")],
).create()
print("created")
"""


def test_a_prefect_automation_on_the_threshold_event_fires_once(receiver: Receiver, tmp_path: Path) -> None:
    """The README's automation, on a real `prefect server start`: a webhook notification block fired by
    the event a watch's alert emits."""
    from tests.prefect_server import prefect_server, wait_until

    home = tmp_path / "prefect-server"
    home.mkdir()
    with prefect_server(home) as env:
        python = str(Path(sys.executable))
        created = subprocess.run([python, "-c", AUTOMATION, receiver.url("/automation")], env=env,
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
        assert created.returncode == 0 and "created" in created.stdout, created.stderr[-3000:]
        db, rules = tmp_path / "events.ducklake", tmp_path / "rules.toml"
        rules.write_text('[[watch]]\nname = "anthropic"\nquery = "anthropic"\nmin_outlets = 3\n')
        assert _newsflow(["rules", "set", str(rules), "--db", str(db)], env).returncode == 0
        records = _amazon_jsonl(tmp_path / "amazon.jsonl")
        loaded = _newsflow(["load", str(records), "--db", str(db), "--json"], env)
        assert loaded.returncode == 0 and json.loads(loaded.stdout)["alerts"] == 1, loaded.stderr[-3000:]
        wait_until(lambda: receiver.posts("/automation"), 60, "the automation's webhook")
        again = _newsflow(["load", str(records), "--db", str(db), "--json"], env)  # nothing new: no event
        assert json.loads(again.stdout)["alerts"] == 0
        time.sleep(5)  # an automation that fired twice would have done so by now
    (fired,) = receiver.posts("/automation")
    assert fired.json() == {"subject": fired.json()["subject"], "body": "anthropic: 5 outlets"}
    assert "Anthropic" in fired.json()["subject"]  # the story's headline, the event's resource name


def test_the_river_and_each_watch_are_atom_feeds_that_update_as_a_story_grows(tmp_path: Path) -> None:
    import urllib.error
    import urllib.request

    import feedparser

    from tests.test_web import running_web

    db, rules = tmp_path / "atom.ducklake", tmp_path / "rules.toml"
    rules.write_text('[[watch]]\nname = "anthropic"\nquery = "anthropic"\nmin_outlets = 3\n')
    assert _newsflow(["rules", "set", str(rules), "--db", str(db)], dict(os.environ)).returncode == 0
    lines = _amazon_jsonl(tmp_path / "amazon.jsonl").read_text().splitlines()
    first, rest = tmp_path / "first.jsonl", tmp_path / "rest.jsonl"
    first.write_text("\n".join(lines[:7]) + "\n")  # up to the story's Reuters, ReadWrite, Slashdot: 3 outlets
    rest.write_text("\n".join(lines[7:]) + "\n")
    assert _newsflow(["load", str(first), "--db", str(db)], dict(os.environ)).returncode == 0

    def feed(base: str, path: str) -> feedparser.FeedParserDict:
        with urllib.request.urlopen(base + path, timeout=30) as response:
            assert response.headers["Content-Type"].startswith("application/atom+xml")
            parsed = feedparser.parse(response.read())
        assert parsed.bozo == 0 and parsed.version == "atom10", parsed.get("bozo_exception")
        return parsed

    web = running_web(db)
    base = next(web)
    try:
        before = {path: feed(base, path) for path in ("/feeds/stories.atom", "/watch/anthropic.atom")}
        (story,) = [e for e in before["/watch/anthropic.atom"].entries]
        assert story.title.endswith("(3 outlets)") and story.link == story.id
        assert story.id in {e.id for e in before["/feeds/stories.atom"].entries}
        time.sleep(1.1)  # a second later, so the story's update time moves on
        assert _newsflow(["load", str(rest), "--db", str(db)], dict(os.environ)).returncode == 0
        after = feed(base, "/watch/anthropic.atom")
        grown = next(e for e in after.entries if e.id == story.id)  # the same entry, updated
        assert grown.title.endswith("(5 outlets)") and grown.updated_parsed > story.updated_parsed
        assert "Time" in grown.summary and "CNET" in grown.summary
        with urllib.request.urlopen(base + "/watches", timeout=30) as page:
            html = page.read().decode()
        assert "anthropic" in html and grown.title.removesuffix(" (5 outlets)")[:40] in html.replace(
            "&#39;", "'"
        )
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(base + "/watch/nothing.atom", timeout=30)
        assert missing.value.code == 404
    finally:
        web.close()


def test_a_failing_feed_is_alerted_once_per_failing_spell(
    site: LoopbackSite, receiver: Receiver, prefect_harness: str, tmp_path: Path
) -> None:
    db, rules, feeds = tmp_path / "health.ducklake", tmp_path / "rules.toml", tmp_path / "feeds.toml"
    rules.write_text(
        f'[[alert]]\nname = "feed-health"\nfeed_failures = 2\nwebhook = "{receiver.url("/feeds")}"\n'
    )
    feeds.write_text(f'[[feeds]]\nurl = "{site.url("/_status/500")}"\n')
    env = environment(prefect_harness) | {"NEWSFLOW_RETRIES": "0", "NEWSFLOW_ALERT_RETRY_BACKOFF": "0"}
    assert _newsflow(["rules", "set", str(rules), "--db", str(db)], env).returncode == 0
    posted = []
    for _ in range(3):
        done = _newsflow(["ingest", "--feeds", str(feeds), "--db", str(db), "--json"], env)
        assert done.returncode == 0 and json.loads(done.stdout)["feeds_failed"] == 1, done.stderr[-3000:]
        posted.append(len(receiver.posts("/feeds")))
    assert posted == [0, 1, 1]  # at the second failure in a row, and not again while it keeps failing
    (alert,) = receiver.posts("/feeds")
    body = alert.json()
    assert alert.headers["X-Newsflow-Event"] == "newsflow.feed.failing"
    assert body["feed_url"] == site.url("/_status/500") and body["failed_polls_in_a_row"] == 2
    assert body["last_success_at"] is None and "500" in body["last_error"]


def test_rules_test_shows_what_each_filter_would_drop_and_changes_nothing(tmp_path: Path) -> None:
    db, rules = tmp_path / "tryout.ducklake", tmp_path / "rules.toml"
    env = dict(os.environ)
    assert _newsflow(["load", str(_amazon_jsonl(tmp_path / "a.jsonl")), "--db", str(db)], env).returncode == 0
    rules.write_text(
        dedent("""\
        [[filter]]
        name = "no-deals"
        title = '(?i)\\bdeal\\b'

        [[filter]]
        name = "english"
        action = "keep"
        language = ["en"]
    """)
    )
    tried = _newsflow(["rules", "test", str(rules), "--db", str(db), "-f", "json"], env)
    assert tried.returncode == 0, tried.stderr
    rows = {row["filter"]: row for row in json.loads(tried.stdout)}
    assert (rows["no-deals"]["matches"], rows["no-deals"]["would drop"]) == (2, 2)
    assert rows["(no keep rule)"]["would drop"] == 1  # heise's German report
    assert rows["(no keep rule)"]["examples"] == ["Microsoft-Produktchef auf dem Sprung zu Amazon"]
    table = _newsflow(["rules", "test", str(rules), "--db", str(db)], env)
    assert table.stdout.rstrip().endswith("12 articles: 9 kept, 3 dropped")
    counted = _newsflow(["sql", "SELECT (SELECT count(*) FROM articles), (SELECT count(*) FROM filtered),"
                         " (SELECT count(*) FROM rule_sets)", "--db", str(db), "-f", "csv"], env)  # fmt: skip
    assert counted.stdout.splitlines()[1] == "12,0,0"  # nothing stored, dropped or set
