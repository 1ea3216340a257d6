"""`newsflow search`: BM25 over the index the store step keeps, on a loopback ingest of real pages and on the
Amazon-Anthropic set; filters, phrases, exclusions, empty results and bad queries."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from newsflow.warehouse.search import folded, with_stemmer
from tests.conftest import REPO, LoopbackSite
from tests.lake import reader
from tests.test_crash_safety import NEWSFLOW, environment, ingest_command, served_feeds
from tests.test_load import loaded_amazon_lake


def search(db: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NEWSFLOW, "search", *args, "--db", str(db)], capture_output=True, text=True,
                          timeout=60, env={**os.environ, "COLUMNS": "120"})  # fmt: skip


def hits(db: Path, *args: str) -> list[dict[str, Any]]:
    result = search(db, *args, "-f", "json")
    assert result.returncode == 0, result.stderr
    found: list[dict[str, Any]] = json.loads(result.stdout)
    return found


@pytest.fixture(scope="module")
def ingested(site: LoopbackSite, prefect_harness: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A lake filled by a real `newsflow ingest` of 45 benchmark pages over loopback HTTP."""
    folder = tmp_path_factory.mktemp("search")
    feeds_file, _ = served_feeds(site, "search", 30, folder)
    db = folder / "search.ducklake"
    done = subprocess.run(ingest_command(feeds_file, db), env=environment(prefect_harness), cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return db


@pytest.fixture(scope="module")
def amazon_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return loaded_amazon_lake(tmp_path_factory.mktemp("search-amazon"))


def rare_words(db: Path, count: int, also: str | None = None) -> list[tuple[str, list[str]]]:
    """(article_id, two long words of that article no other article has in any form), for ``count``
    articles (those that also have the word ``also``, if given), in the order of their URL paths (ids and
    ports change from run to run). Words are split and folded as the index does. "In any form": no other
    article has a word starting with the word's first letters (its length less 4, as "-able" or "-ness"
    go), so no stemmer ties them to words of another article."""
    from newsflow.query import words_of

    with reader(db) as con:
        texts = con.execute(
            "SELECT article_id, title || ' ' || text FROM articles WHERE text <> ''"
            " ORDER BY regexp_replace(url, '^[a-z]+://[^/]+', ''), url"
        ).fetchall()
    every = {article: {w for w in words_of(text) if len(w) >= 5 and w.isalpha()} for article, text in texts}
    with_also = {article for article, text in texts if also is None or also in words_of(text)}
    prefixes = Counter(
        p for found in every.values() for p in {w[:n] for w in found for n in range(5, len(w) + 1)}
    )
    picked = []
    for article, found in every.items():
        if article not in with_also:
            continue
        unique = sorted(w for w in found if len(w) >= 8 and prefixes[w[: len(w) - 4]] == 1)
        if len(unique) >= 2:
            picked.append((article, unique[:2]))
    assert len(picked) >= count
    return picked[:count]


def test_an_articles_rare_words_rank_it_first(ingested: Path) -> None:
    for article, words in rare_words(ingested, 8):
        found = hits(ingested, " ".join(words))
        assert [h["article_id"] for h in found] == [article], words  # every word required: only that one
        snippet = found[0]["snippet"]
        marks = " ".join(re.findall(r"\*\*(.+?)\*\*", snippet)).lower()
        assert any(w in marks for w in words), snippet  # a matched word is marked


def test_one_rare_word_among_common_ones_still_ranks_its_article_first(ingested: Path) -> None:
    for article, words in rare_words(ingested, 5, also="the"):
        found = hits(ingested, f"{words[0]} the")  # "the" is in nearly every article: near-zero weight
        assert found[0]["article_id"] == article


def test_every_ingested_article_is_in_the_index(ingested: Path) -> None:
    with reader(ingested) as con:
        missing = con.execute(
            "SELECT count(*) FROM articles ANTI JOIN search_docs USING (article_id)"
        ).fetchall()
        stored = con.execute("SELECT count(*) FROM articles").fetchall()
    assert missing == [(0,)] and stored[0][0] == 45


def test_the_index_holds_the_stored_title_and_text(ingested: Path) -> None:
    """The store step indexes its batch from memory; the index must be what the stored rows give."""
    with reader(ingested) as con:
        with_stemmer(con)
        from_rows = f"""
            SELECT article_id, stem(word, 'porter') AS term, count(*)::INTEGER AS tf
            FROM (SELECT article_id, unnest(regexp_split_to_array({folded("articles")}, '[^a-z0-9]+')) AS word
                  FROM articles)
            WHERE word <> '' GROUP BY ALL
        """
        differ = con.execute(
            f"SELECT count(*) FROM (({from_rows}) EXCEPT ALL (SELECT * FROM search_terms))"
            f" UNION ALL SELECT count(*) FROM ((SELECT * FROM search_terms) EXCEPT ALL ({from_rows}))"
        ).fetchall()
        indexed = con.execute("SELECT count(*) FROM search_terms").fetchall()[0][0]
    assert differ == [(0,), (0,)] and indexed > 45 * 50


def test_the_flagship_story_and_its_filters(amazon_db: Path) -> None:
    found = hits(amazon_db, "anthropic amazon")
    story = found[0]["story_id"]
    assert len(found) >= 5 and all("anthropic" in (h["title"] + h["snippet"]).lower() for h in found[:5])
    assert sorted(found[0]["story_outlets"]) == ["CNET", "ReadWrite", "Reuters", "Slashdot.org", "Time"]
    assert [h["site"] for h in hits(amazon_db, "anthropic amazon", "--site", "reuters")] == ["Reuters"]
    in_story = hits(amazon_db, "amazon", "--story", story[:8])  # a unique prefix, as `newsflow story` takes
    assert {h["story_id"] for h in in_story} == {story} and len(in_story) == 5
    assert hits(amazon_db, "amazon", "--limit", "2") == hits(amazon_db, "amazon")[:2]
    assert hits(amazon_db, "anthropic", "--since", "2030-01-01") == []


def test_phrases_and_excluded_words(amazon_db: Path) -> None:
    phrase = hits(amazon_db, '"4 billion"')
    with reader(amazon_db) as con:
        rows = con.execute(
            r"SELECT article_id FROM articles"
            r" WHERE regexp_matches(lower(title || ' ' || text), '\b4\W+billion\b')"
        ).fetchall()
    holding = {row[0] for row in rows}
    assert phrase and {h["article_id"] for h in phrase} == holding  # exactly the articles with the phrase
    loose = {h["article_id"] for h in hits(amazon_db, "billion 4")}
    assert holding <= loose  # the words anywhere match more than the phrase
    without = hits(amazon_db, '"4 billion" -reuters')
    assert without and "Reuters" not in {h["site"] for h in without}
    assert len(without) < len(phrase)


def test_word_forms_match_through_the_stemmer(amazon_db: Path) -> None:
    forms = {h["article_id"] for h in hits(amazon_db, "investing")}
    assert forms == {h["article_id"] for h in hits(amazon_db, "invests")}
    assert len(forms) >= 5


def test_an_apostrophe_is_part_of_a_word_not_a_quote(amazon_db: Path) -> None:
    found = hits(amazon_db, "amazon's anthropic")  # "amazon's" is the words amazon and s
    assert found and all("anthropic" in (h["title"] + h["snippet"]).lower() for h in found)


def test_no_hit_says_so(amazon_db: Path) -> None:
    result = search(amazon_db, "zyxwvut")
    assert result.returncode == 0 and result.stdout.strip() == "(0 hits)"
    assert hits(amazon_db, "zyxwvut") == []


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ('"unclosed phrase', "No closing quotation"),
        ("!!! ???", "has no words to look for"),
        ("", "has no words to look for"),
    ],
)
def test_a_bad_query_is_one_clean_error(amazon_db: Path, query: str, message: str) -> None:
    result = search(amazon_db, query)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.startswith("Error: search query") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
