"""Rules: a file checked whole before it replaces the rules in force, and filters applied for real: an entry
blocked by its title is never fetched (the loopback site's request log says so), an article blocked by its
text or left by every keep rule is fetched but never stored, and all of them are in ``filtered``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from textwrap import dedent

import pytest

from newsflow.errors import RulesError
from newsflow.rules.model import parse_rules
from tests.conftest import REPO, LoopbackSite
from tests.feedbuild import Item, write_feed
from tests.lake import reader
from tests.test_crash_safety import NEWSFLOW, environment

RULES = dedent("""\
    # what the desk does not want
    [[filter]]
    name = "no-deals"
    action = "block"
    title = '(?i)\\b(deal|sponsored)\\b'

    [[filter]]
    name = "no-casino"
    text = '(?i)casino'

    [[filter]]
    name = "english"
    action = "keep"
    language = ["en"]

    [[watch]]
    name = "anthropic"
    query = 'anthropic -"job ad"'
    min_outlets = 3
""")

ENGLISH = (
    "The city council met on Tuesday evening to debate the new budget for public libraries. Members argued "
    "for two hours about opening times, staff numbers and the cost of repairing the old reading room roof. "
)
GERMAN = (
    "Der Stadtrat hat am Dienstagabend lange über den neuen Haushalt der öffentlichen Bibliotheken beraten. "
    "Die Mitglieder stritten zwei Stunden über Öffnungszeiten, Personal und die Kosten für das alte Dach. "
)
CASINO = (
    "A new casino opened downtown on Friday with slot machines, card tables and a large hotel. The owners "
    "expect thousands of visitors a week and promise new jobs for the region in the coming years. "
)


def _page(folder: Path, name: str, title: str, body: str) -> None:
    paragraphs = "".join(f"<p>{body}</p>" for _ in range(4))
    (folder / f"{name}.html").write_text(
        f"<html><head><title>{title}</title></head><body><article><h1>{title}</h1>{paragraphs}"
        "</article></body></html>",
        encoding="utf-8",
    )


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NEWSFLOW, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_parse_errors_name_the_file_and_line_and_nothing_vague_passes() -> None:
    cases = [
        ('[[filter]]\nname = "a"\ntitle = "(unclosed"\n',
         "rules.toml:3: [[filter]] title = '(unclosed' does not compile"),
        ('[[filter]]\nname = "a"\n\ntitel = "x"\n',
         "rules.toml:4: [[filter]] unknown key 'titel'"),
        ('[[filter]]\nname = "a"\naction = "drop"\ntitle = "x"\n',
         'rules.toml:3: [[filter]] action must be "block" or "keep"'),
        ('[[filter]]\nname = "a"\n',
         "rules.toml:2: [[filter]] filter 'a' has no condition"),
        ('[[filter]]\nname = "a"\ntitle = "x"\n[[filter]]\nname = "a"\nurl = "y"\n',
         "rules.toml:5: [[filter]] a second filter named 'a'"),
        ('[[filter]]\nname = "a"\nmax_age = "soon"\n',
         "rules.toml:3: [[filter]] max_age must be a duration"),
        ('[[watch]]\nname = "w"\nquery = "\\"open"\n',
         "rules.toml:3: [[watch]] search query"),
        ('[[watch]]\nname = "w"\nquery = "x"\nwebhook = "ftp://h/x"\n',
         "rules.toml:4: [[watch]] webhook must be an http"),
        ('[[watch]]\nname = "w"\nquery = "x"\nsecret_env = "S"\n',
         "rules.toml:4: [[watch]] secret_env signs a webhook"),
        ('[[alert]]\nname = "h"\nfeed_failures = 0\n',
         "rules.toml:3: [[alert]] feed_failures must be a whole number >= 1"),
        ("[[feeds]]\nurl = 'x'\n",
         "rules.toml:1: unknown table 'feeds'"),
        ("[[filter]\n",
         "rules.toml:1: not valid TOML"),
    ]  # fmt: skip
    for text, expected in cases:
        with pytest.raises(RulesError) as raised:
            parse_rules(text, "rules.toml")
        assert str(raised.value).startswith(expected), (text, str(raised.value))
    parsed = parse_rules(RULES, "rules.toml")
    assert [rule.name for rule in parsed.blocks] == ["no-deals", "no-casino"]
    assert [rule.name for rule in parsed.keeps] == ["english"] and parsed.watches[0].min_outlets == 3


def test_a_bad_rules_file_is_refused_whole_and_the_rules_in_force_stay(tmp_path: Path) -> None:
    db = tmp_path / "rules.ducklake"
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(RULES)
    bad.write_text(RULES.replace("(?i)casino", "(?i)casino(") + '\n[[filter]]\nname = "fine"\nurl = "x"\n')
    assert _run(["rules", "set", str(good), "--db", str(db)], {}).stdout.startswith(
        "rules version 1 set from"
    )
    refused = _run(["rules", "set", str(bad), "--db", str(db)], {})
    assert refused.returncode == 1 and refused.stderr.startswith(f"Error: {bad}:9: [[filter]] text = ")
    assert len(refused.stderr.splitlines()) == 1
    exported = _run(["rules", "export", "--db", str(db)], {})
    assert exported.stdout == RULES  # as set, comments and all
    listed = _run(["rules", "list", "--db", str(db), "-f", "json"], {})
    assert listed.stdout.startswith("rules version 1\n")
    rows = json.loads(listed.stdout.split("\n", 1)[1])
    assert [(r["kind"], r["name"], r["does"]) for r in rows][:3] == [
        ("filter", "no-deals", "block"), ("filter", "no-casino", "block"), ("filter", "english", "keep")
    ]  # fmt: skip


def test_filters_drop_entries_before_the_fetch_and_articles_after_extraction(
    site: LoopbackSite, prefect_harness: str, tmp_path: Path
) -> None:
    folder = site.root / "rules"
    folder.mkdir(exist_ok=True)
    pages = {
        "deal": ("Great deal on laptops this week", ENGLISH),
        "casino": ("Downtown gets a new entertainment venue", CASINO),
        "german": ("Stadtrat berät Haushalt der Bibliotheken", GERMAN),
        "council": ("Council debates library budget", ENGLISH),
    }
    for name, (title, body) in pages.items():
        _page(folder, name, title, body)
    items = [Item(title, site.url(f"/site/rules/{name}.html"), guid=f"rules-{name}") for name, (title, _) in
             pages.items()]  # fmt: skip
    feed = folder / "feed.xml"
    write_feed(feed, "Rules feed", items)
    feeds_file, rules_file, db = tmp_path / "feeds.toml", tmp_path / "rules.toml", tmp_path / "news.ducklake"
    feeds_file.write_text(f'[[feeds]]\nurl = "{site.url("/site/rules/feed.xml")}"\n')
    rules_file.write_text(RULES)
    env = environment(prefect_harness)
    assert _run(["rules", "set", str(rules_file), "--db", str(db)], env).returncode == 0
    site.reset_log()
    ingest = ["ingest", "--feeds", str(feeds_file), "--db", str(db), "--json"]
    done = _run(ingest, env)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["filtered"] == {"no-deals": 1, "no-casino": 1, "(no keep rule)": 1}
    assert summary["articles_stored"] == 1 and summary["extracted"] == 3  # the deal was never fetched
    fetched = {str(r["path"]) for r in site.requests()}
    assert "/site/rules/deal.html" not in fetched
    assert {"/site/rules/casino.html", "/site/rules/german.html", "/site/rules/council.html"} <= fetched
    with reader(db) as con:
        assert con.execute("SELECT guid FROM articles").fetchall() == [("rules-council",)]
        rows = con.execute("SELECT rule, stage, url, rules_version FROM filtered ORDER BY rule").fetchall()
    assert [(rule, stage, version) for rule, stage, _, version in rows] == [
        ("(no keep rule)", "text", 1), ("no-casino", "text", 1), ("no-deals", "entry", 1)
    ]  # fmt: skip
    assert rows[2][2] == site.url("/site/rules/deal.html")

    # The feed again, with one item more: what was filtered under these rules is not looked at again.
    _page(folder, "later", "Council approves the budget", ENGLISH)
    later = Item("Council approves the budget", site.url("/site/rules/later.html"), guid="rules-later")
    write_feed(feed, "Rules feed", [*items, later])
    site.reset_log()
    again = json.loads(_run(ingest, env).stdout)
    assert again["articles_stored"] == 1 and again["filtered"] == {}
    assert {str(r["path"]) for r in site.requests() if str(r["path"]).endswith(".html")} == {
        "/site/rules/later.html"
    }
    # New rules without the deals filter: the deal entry is looked at again and stored this time.
    rules_file.write_text(RULES.replace("(deal|sponsored)", "(sponsored)"))
    assert _run(["rules", "set", str(rules_file), "--db", str(db)], env).stdout.startswith("rules version 2")
    advert = Item("Sponsored post", site.url("/site/rules/council.html"), guid="rules-ad")
    write_feed(feed, "Rules feed", [*items, later, advert])
    third = json.loads(_run(ingest, env).stdout)
    assert third["filtered"] == {"no-casino": 1, "(no keep rule)": 1, "no-deals": 1}  # the ad
    assert third["articles_stored"] == 1  # the deal
    with reader(db) as con:
        guids = {row[0] for row in con.execute("SELECT guid FROM articles").fetchall()}
        from newsflow.warehouse.metrics import warehouse_figures

        figures = warehouse_figures(con)
    assert "rules-deal" in guids and "rules-ad" not in guids
    assert figures.filtered[("no-deals", "entry")] == 2  # the ad, under version 2
    assert figures.filtered[("no-casino", "text")] == 2  # looked at again under version 2
