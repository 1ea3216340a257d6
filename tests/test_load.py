"""`newsflow load`, `stories`, `story` and `regroup` through the CLI runner, on a real warehouse file:
bad lines, reloads, and the Amazon-Anthropic set ending as one story of five."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsflow.cli import main
from newsflow.stories import DEFAULT_CONFIG
from tests.conftest import shared
from tests.lake import reader, writer
from tests.test_stories import NIGERIAN_PRINCE, STORY, _amazon


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _amazon_jsonl(path: Path, dates: str = "all") -> Path:
    """The Amazon-Anthropic set in publication order, each item's text and description as given (a
    NewsAPI item's text is cut short: ``… [+N chars]``), with ``dates``: all, every other one (``half``), or
    none (then undated records, as an archive without dates would give them)."""
    with shared("amazon-anthropic-2023-09-25/items.jsonl").open(encoding="utf-8") as lines:
        given = {item["item_id"]: item for item in map(json.loads, lines)}
    records = []
    for n, (article, _) in enumerate(_amazon()):
        item = given[article.article_id]
        record = {
            "id": article.article_id,
            "text": item["text"],
            "title": article.title,
            "site": article.site,
        }
        if item["description"]:
            record["description"] = item["description"]
        if dates == "all" or (dates == "half" and n % 2 == 0):
            record["published_at"] = article.published_at.isoformat()
        records.append(json.dumps(record))
    return _write(path, records)


def loaded_amazon_lake(folder: Path) -> Path:
    """A lake holding the Amazon-Anthropic set, loaded through `newsflow load`, with tags on every article
    (as feeds give them)."""
    db = folder / "amazon.ducklake"
    loaded = CliRunner().invoke(main, ["load", str(_amazon_jsonl(folder / "amazon.jsonl")), "--db", str(db)])
    assert loaded.exit_code == 0, loaded.output
    with writer(db) as con:
        con.execute("UPDATE articles SET tags = ['tech', 'ai']")
    return db


def _rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with reader(db) as con:
        return con.execute(sql).fetchall()


def test_bad_lines_are_reported_with_their_number_and_the_good_ones_loaded(tmp_path: Path, db: Path) -> None:
    text = "The city council approved the new budget on Tuesday after a long debate. " * 3
    good = {"id": "g1", "text": text, "published_at": "2023-09-25T10:00:00Z", "url": "https://a.example/1"}
    file = _write(
        tmp_path / "in.jsonl",
        [
            json.dumps(good),
            "{not json",
            json.dumps({"id": "g2", "title": "no text"}),
            "",
            json.dumps({"id": "g3", "text": "Some other text entirely.", "published_at": "25/09/2023"}),
            json.dumps(
                {"id": 4, "text": "A fourth article about the harbour.", "published_at": "2023-09-26"}
            ),
        ],
    )
    runner = CliRunner()
    result = runner.invoke(main, ["load", str(file), "--db", str(db)])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        f"{file}:2: not JSON (Expecting property name enclosed in double quotes at column 2)",
        f"{file}:3: no text (`text` or `summary` must be a non-empty string)",
        f"{file}:5: bad date: `published_at` '25/09/2023' is not ISO 8601",
        "Error: 3 of 5 lines were not loaded (see above)",
    ]
    assert "stored 2, already stored 0, bad 3" in result.stdout
    assert _rows(
        db, "SELECT external_id, url, content_source, published_at::VARCHAR FROM articles ORDER BY 1"
    ) == [
        ("4", None, "loaded", "2023-09-26 00:00:00+00"),
        ("g1", "https://a.example/1", "loaded", "2023-09-25 10:00:00+00"),
    ]
    again = runner.invoke(main, ["load", str(file), "--db", str(db), "--json"])
    assert again.exit_code == 1
    summary = json.loads(again.stdout)
    assert (summary["articles_stored"], summary["already_stored"], summary["bad_lines"]) == (0, 2, 3)
    assert _rows(db, "SELECT count(*) FROM articles") == [(2,)]
    assert _rows(db, "SELECT flow, status FROM runs") == [("load", "completed")] * 2


def test_clean_file_exits_zero_and_a_copy_is_a_near_duplicate(tmp_path: Path, db: Path) -> None:
    [(reuters, _)] = [(a, g) for a, g in _amazon() if a.article_id.startswith("reuters")]
    words = reuters.text.split()
    edited = " ".join("reportedly" if i % 20 == 7 else w for i, w in enumerate(words))  # 5 % replaced
    file = _write(
        tmp_path / "copies.jsonl",
        [
            json.dumps({"id": "orig", "text": reuters.text, "site": "Reuters", "published_at": "2023-09-25"}),
            json.dumps(
                {"id": "copy", "text": "(Reuters) - " + edited, "site": "Wire", "published_at": "2023-09-25"}
            ),
        ],
    )
    result = CliRunner().invoke(main, ["load", str(file), "--db", str(db)])
    assert result.exit_code == 0, result.output
    assert "near-duplicates 1" in result.stdout
    [(dup_of, reason, score, same_story)] = _rows(
        db,
        "SELECT o.external_id, c.dup_reason, c.dup_score, c.story_id = o.story_id FROM articles c"
        " JOIN articles o ON c.duplicate_of = o.article_id",
    )
    assert (dup_of, reason, same_story) == ("orig", "near_duplicate", True)
    assert 0.5 < float(score) < 1.0  # type: ignore[arg-type]


@pytest.fixture
def amazon_db(tmp_path: Path, db: Path) -> Path:
    result = CliRunner().invoke(
        main, ["load", str(_amazon_jsonl(tmp_path / "amazon.jsonl")), "--db", str(db)]
    )
    assert result.exit_code == 0, result.output
    return db


@pytest.mark.parametrize(
    ("text", "summary", "stored"),
    [
        # Cut short: the summary, then the text as given.
        ("Sign up for our newsletter! Do you develop… [+268 chars]", "Amazon invests $4 billion.",
         "Amazon invests $4 billion.\n\nSign up for our newsletter! Do you develop… [+268 chars]"),
        ("A whole text.", "Its summary.", "A whole text."),  # a whole text is stored as it is
        (None, "Only a summary.", "Only a summary."),
    ],
)  # fmt: skip
def test_a_text_cut_short_is_stored_with_its_summary(
    tmp_path: Path, db: Path, text: str | None, summary: str, stored: str
) -> None:
    record = {"id": "x", "summary" if text else "description": summary} | ({"text": text} if text else {})
    result = CliRunner().invoke(main, ["load", str(_write(tmp_path / "x.jsonl", [json.dumps(record)])),
                                       "--db", str(db)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert _rows(db, "SELECT text, summary FROM articles") == [(stored, summary)]


def test_amazon_anthropic_loads_as_one_story_of_five_and_distractors_alone(amazon_db: Path) -> None:
    gold = {a.article_id: g for a, g in _amazon()}
    rows = _rows(amazon_db, "SELECT external_id, story_id FROM articles")
    sizes = Counter(story for _, story in rows)
    assert sorted(sizes.values()) == [1] * 7 + [5]
    [big] = [s for s, n in sizes.items() if n == 5]
    assert {gold[ext] for ext, story in rows if story == big} == {STORY}
    assert _rows(
        amazon_db, "SELECT articles, outlets FROM story_overview WHERE story_id = '" + big + "'"
    ) == [(5, 5)]
    reasons = Counter(r for (r,) in _rows(amazon_db, "SELECT reason FROM story_decisions"))
    assert reasons["joined"] == 4 and sum(reasons.values()) == 12


@pytest.mark.parametrize("dates", ["half", "none"])
def test_undated_coverage_joins_its_story_and_never_stretches_it(
    tmp_path: Path, db: Path, dates: str
) -> None:
    """Records without a date have an unknown time: the flagship story stays one story of five, every
    distractor alone, and the story's span is its dated members' (or first-seen times when none is dated)."""
    loaded = CliRunner().invoke(
        main, ["load", str(_amazon_jsonl(tmp_path / "a.jsonl", dates)), "--db", str(db)]
    )
    assert loaded.exit_code == 0, loaded.output
    gold = {a.article_id: g for a, g in _amazon()}
    rows = _rows(db, "SELECT external_id, story_id, published_at FROM articles")
    sizes = Counter(story for _, story, _ in rows)
    assert sorted(sizes.values()) == [1] * 7 + [5]
    [big] = [s for s, n in sizes.items() if n == 5]
    members = [(ext, at) for ext, story, at in rows if story == big]
    assert {gold[ext] for ext, _ in members} == {STORY}
    [(first, last, undated, stored_undated)] = _rows(
        db,
        "SELECT o.first_at, o.last_at, o.undated, s.undated FROM story_overview o"
        f" JOIN stories s USING (story_id) WHERE story_id = '{big}'",
    )
    dated = [at for _, at in members if at is not None]
    assert undated == 5 - len(dated)
    if dated:
        assert (first, last, stored_undated) == (min(dated), max(dated), False)
    else:
        assert stored_undated is True
    shown = CliRunner().invoke(main, ["story", big, "--db", str(db)])
    assert shown.exit_code == 0, shown.output
    assert f"{undated} undated" in shown.stdout and shown.stdout.count(" seen 20") == undated


def test_stories_and_story_commands_show_the_story(amazon_db: Path) -> None:
    runner = CliRunner()
    listed = runner.invoke(main, ["stories", "--since", "all", "--db", str(amazon_db), "-f", "json"])
    assert listed.exit_code == 0, listed.output
    stories = json.loads(listed.stdout)
    assert len(stories) == 8 and stories[0]["articles"] == 5 and stories[0]["outlets"] == 5
    assert stories[0]["sites"] == ["CNET", "ReadWrite", "Reuters", "Slashdot.org", "Time"]
    assert "Anthropic" in stories[0]["headline"]
    wide = runner.invoke(main, ["stories", "--since", "all", "--min-outlets", "2", "--db", str(amazon_db)],
                         env={"COLUMNS": "200"})  # fmt: skip
    assert wide.stdout.rstrip().endswith("(1 row)")
    recent = runner.invoke(main, ["stories", "--db", str(amazon_db), "-f", "csv"])  # default: last 24 h
    assert recent.stdout.splitlines() == ["story_id,articles,outlets,first_at,last_at,headline,sites"]
    shown = runner.invoke(main, ["story", stories[0]["story_id"], "--db", str(amazon_db), "-f", "csv"])
    lines = shown.stdout.splitlines()
    assert lines[0] == "article_id,site,published,title,copy_of,copy,decision,url" and len(lines) == 6
    assert sorted(line.split(",")[1] for line in lines[1:]) == [
        "CNET",
        "ReadWrite",
        "Reuters",
        "Slashdot.org",
        "Time",
    ]
    table = runner.invoke(main, ["story", stories[0]["story_id"], "--db", str(amazon_db)])
    assert "5 articles (5 originals) from 5 outlets" in table.stdout and "joined" in table.stdout
    why = runner.invoke(
        main, ["story", stories[0]["story_id"], "--why", "-f", "json", "--db", str(amazon_db)]
    )
    joined = [a["why"] for a in json.loads(why.stdout)["articles"] if a["why"]["decision"] == "joined"]
    assert len(joined) == 4
    assert all(j["member_similarity"] >= DEFAULT_CONFIG.member_link for j in joined)
    why_table = runner.invoke(main, ["story", stories[0]["story_id"], "--why", "--db", str(amazon_db)])
    assert why_table.stdout.count("mean score against its members 0.") == 5  # 4 joined, and the founder's
    missing = runner.invoke(main, ["story", "s_nope", "--db", str(amazon_db)])
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: no story 's_nope'")
    bad = runner.invoke(main, ["stories", "--since", "yesterday", "--db", str(amazon_db)])
    assert bad.exit_code == 1 and "--since 'yesterday'" in bad.stderr


def test_regroup_gives_the_same_stories_and_keeps_document_counts(amazon_db: Path) -> None:
    before = sorted(_rows(amazon_db, "SELECT external_id, story_id FROM articles"))
    docs = _rows(amazon_db, "SELECT df FROM term_stats WHERE term = ''")
    result = CliRunner().invoke(
        main, ["regroup", "--since", "2023-09-01", "--until", "2023-10-31", "--db", str(amazon_db)]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("regrouped 12 articles: 8 stories taken apart, 8 stories now")
    assert sorted(_rows(amazon_db, "SELECT external_id, story_id FROM articles")) == before
    assert _rows(amazon_db, "SELECT df FROM term_stats WHERE term = ''") == docs == [(12,)]
    assert _rows(amazon_db, "SELECT count(*) FROM story_decisions") == [(12,)]


def test_regroup_signs_articles_stored_without_a_signature(amazon_db: Path) -> None:
    """Articles from before near-duplicates existed get their MinHash rows back from a regroup."""
    signed = _rows(amazon_db, "SELECT article_id, signature, root FROM minhash_signatures ORDER BY 1")
    assert signed, "the Amazon-Anthropic set has articles long enough for a signature"
    with writer(amazon_db) as con:
        con.execute("DELETE FROM minhash_signatures")
        con.execute("DELETE FROM lsh_bands")
    result = CliRunner().invoke(
        main, ["regroup", "--since", "2023-09-01", "--until", "2023-10-31", "--db", str(amazon_db)]
    )
    assert result.exit_code == 0, result.output
    assert _rows(amazon_db, "SELECT article_id, signature, root FROM minhash_signatures ORDER BY 1") == signed
    assert _rows(amazon_db, "SELECT count(*) FROM lsh_bands") == [(64 * len(signed),)]


WIRE_TEXT = (
    "The city council voted on Tuesday to rebuild the old harbour bridge after engineers found deep cracks "
    "in two of its steel piers. The work will close the bridge to cars for eighteen months, and ferries "
    "will run every twenty minutes in the meantime. Residents who cross daily asked for free ferry passes, "
    "which the mayor promised to consider at the next meeting."
)


def test_near_duplicates_are_looked_for_within_30_days_or_everywhere_when_undated(
    tmp_path: Path, db: Path
) -> None:
    edited = WIRE_TEXT.replace("Tuesday", "Wednesday").replace("eighteen", "nineteen")
    lines = [
        json.dumps({"id": "original", "text": WIRE_TEXT, "published_at": "2023-03-01T09:00:00Z"}),
        json.dumps({"id": "week-later", "text": edited, "published_at": "2023-03-08T09:00:00Z"}),
        json.dumps(
            {"id": "year-later", "text": edited + " Updated.", "published_at": "2024-03-01T09:00:00Z"}
        ),
        json.dumps({"id": "undated", "text": edited + " Corrected."}),
    ]
    for number, line in enumerate(lines):  # one load each: the window applies to stored articles
        path = _write(tmp_path / f"copy{number}.jsonl", [line])
        result = CliRunner().invoke(main, ["load", str(path), "--db", str(db)])
        assert result.exit_code == 0, result.output
    marks = dict(
        _rows(
            db,
            "SELECT a.external_id, o.external_id FROM articles a"
            " LEFT JOIN articles o ON o.article_id = a.duplicate_of",
        )
    )
    # A copy a week later is found; a year later it is outside the window (its own original from then
    # on); an undated copy has no time to bound the search, so all of history is searched.
    assert marks == {"original": None, "week-later": "original", "year-later": None, "undated": "original"}


def test_load_and_regroup_run_as_prefect_flows_and_are_recorded(
    tmp_path: Path, db: Path, prefect_harness: str
) -> None:
    """The flows a deployment would run: `load` stores what `newsflow load` stores (a bad line logged, not
    fatal), `regroup` regroups; both are rows in `runs` under their Prefect flow-run ids."""
    from newsflow.flows.load import load
    from newsflow.flows.regroup import regroup

    file = _amazon_jsonl(tmp_path / "amazon.jsonl")
    file.write_text(file.read_text() + "not json\n")
    loaded = load(file=str(file), db=str(db))
    assert (loaded["lines"], loaded["articles_stored"], loaded["bad_lines"]) == (13, 12, 1)
    assert (loaded["new_stories"], loaded["joined_stories"]) == (8, 4)
    regrouped = regroup(since="2023-09-01", until="2023-10-31", db=str(db))
    assert regrouped == {"articles": 12, "stories_before": 8, "stories_after": 8, "joined": 4}
    runs = _rows(db, "SELECT flow, status, flow_run_id IS NOT NULL, counts FROM runs ORDER BY started_at")
    assert [r[:3] for r in runs] == [("load", "completed", True), ("regroup", "completed", True)]
    assert json.loads(str(runs[1][3])) == regrouped


def test_regroup_of_a_period_that_ends_before_it_starts_is_one_clean_error(amazon_db: Path) -> None:
    result = CliRunner().invoke(
        main, ["regroup", "--since", "2023-10-01", "--until", "2023-09-01", "--db", str(amazon_db)]
    )
    assert result.exit_code == 1
    assert result.stderr == "Error: the period ends (2023-09-01) before it starts (2023-10-01)\n"
    assert _rows(amazon_db, "SELECT count(*) FROM runs WHERE flow = 'regroup'") == [(0,)]


def test_story_why_explains_each_decision_and_what_a_copy_shares(tmp_path: Path, db: Path) -> None:
    promo = "Sign up for our newsletter to get the day's top stories in your inbox every morning."
    edited = WIRE_TEXT.replace("Tuesday", "Wednesday").replace("eighteen", "nineteen")
    records = [
        {"id": "original", "text": promo + "\n" + WIRE_TEXT, "site": "news.example",
         "published_at": "2023-03-01T09:00:00Z"},
        {"id": "copy", "text": promo + "\n" + edited, "site": "news.example",
         "published_at": "2023-03-01T11:00:00Z"},
    ]  # fmt: skip
    file = _write(tmp_path / "pair.jsonl", [json.dumps(r) for r in records])
    assert CliRunner().invoke(main, ["load", str(file), "--db", str(db)]).exit_code == 0
    [(story_id, original_id)] = _rows(
        db, "SELECT story_id, article_id FROM articles WHERE external_id = 'original'"
    )
    shown = CliRunner().invoke(main, ["story", story_id, "--why", "--db", str(db)])
    assert shown.exit_code == 0, shown.output
    assert "score 0.000 = " not in shown.stdout and "new_story_no_candidate" in shown.stdout
    assert f"copy of {original_id} (near_duplicate" in shown.stdout
    assert "1 shared lines set aside" in shown.stdout and 'e.g. "the city council"' in shown.stdout
    as_json = json.loads(
        CliRunner().invoke(main, ["story", story_id, "--why", "-f", "json", "--db", str(db)]).stdout
    )
    [copy] = [a["why"]["copy_of"] for a in as_json["articles"] if a["why"].get("copy_of")]
    assert copy["article_id"] == original_id and copy["shared_lines_set_aside"] == 1
    assert 0.35 <= copy["jaccard"] < 1.0 and copy["shingles_shared"] < copy["shingles"]


def test_a_follow_up_ten_days_later_joins_through_load_and_regroup_and_story_why_says_why(
    tmp_path: Path, db: Path
) -> None:
    """Giveme5W1H's 383 articles loaded as records: RT's report of the 'Nigerian prince' arrest, 10.8 days
    after the story's last article, joins it as a follow-up; `story --why` names the rare names it shares,
    and a regroup of the whole period decides every article as the load did (same story, decision and
    score: it weighs each article against what came before it only)."""
    records = []
    with gzip.open(shared("giveme5w1h-news-cluster/items.jsonl.gz"), "rt", encoding="utf-8") as lines:
        for item in map(json.loads, lines):
            records.append(
                json.dumps(
                    {"id": item["id"], "text": item["text"], "title": item["title"], "site": item["site"],
                     "published_at": item["published"], "description": item["description"]}
                )
            )  # fmt: skip
    runner = CliRunner()
    loaded = runner.invoke(main, ["load", str(_write(tmp_path / "giveme.jsonl", records)), "--db", str(db)])
    assert loaded.exit_code == 0, loaded.output
    query = (
        "SELECT a.external_id, a.story_id, d.reason, round(d.score, 6) FROM articles a"
        " JOIN story_decisions d USING (article_id) ORDER BY a.external_id"
    )
    stories_after_load = _rows(db, query)
    story_of = {row[0]: row[1] for row in stories_after_load}
    rt = next(str(i) for i in story_of if str(i).startswith(NIGERIAN_PRINCE[2]))
    assert len({story_of[i] for i in story_of if str(i).startswith(NIGERIAN_PRINCE)}) == 1
    why = runner.invoke(main, ["story", str(story_of[rt]), "--why", "--db", str(db)])
    assert why.exit_code == 0, why.output
    explained = why.stdout.split("\n\n")
    [rt_why] = [block for block in explained if "rt.com" in block.splitlines()[0]]
    assert "joined as a follow-up" in rt_why and "x time 0.50 (10." in rt_why
    assert "rare names shared: " in rt_why and "neu" in rt_why and "more than 7 days" in rt_why
    regrouped = runner.invoke(
        main, ["regroup", "--since", "2013-01-01", "--until", "2018-12-31", "--db", str(db)]
    )
    assert regrouped.exit_code == 0, regrouped.output
    assert _rows(db, query) == stories_after_load
