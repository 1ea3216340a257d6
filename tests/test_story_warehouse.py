"""warehouse/stories.py on a real DuckDB file: signatures and band candidates, document frequencies,
story upserts and the candidate query, decisions, and regroup's release of a date range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from newsflow.records import BandRow, SignatureRow, StoredStory, StoryAssignment, StoryProbe, StoryRow
from newsflow.warehouse import grouping as grouping_table
from newsflow.warehouse import stories as stories_table
from newsflow.warehouse.schema import migrate
from newsflow.warehouse.upgrade import upgrade_file
from tests.lake import warehouse, writer

T0 = datetime(2023, 9, 25, 12, tzinfo=UTC)


@pytest.fixture
def con(db: Path) -> duckdb.DuckDBPyConnection:
    with writer(db) as connection:
        yield connection


def _story(
    story_id: str, at: datetime, terms: dict[str, float], entities: dict[str, float] | None = None
) -> StoredStory:
    def norm(vector: dict[str, float]) -> float:
        return sum(w * w for w in vector.values()) ** 0.5

    entities = entities or {}
    row = StoryRow(
        story_id, f"headline {story_id}", None, at, at, 1, ("a.example",), 0.0, norm(terms), norm(entities)
    )
    return StoredStory(row, terms, entities)


def test_band_join_finds_only_articles_sharing_a_bucket_within_the_window(
    con: duckdb.DuckDBPyConnection,
) -> None:
    times = {"a": T0, "b": T0, "old": T0 - timedelta(days=90)}
    grouping_table.insert_signatures(
        con,
        [SignatureRow("a", b"\x01" * 8), SignatureRow("b", b"\x02" * 8), SignatureRow("old", b"\x03" * 8)],
        [BandRow(0, 11, "a"), BandRow(1, 12, "a"), BandRow(0, 21, "b"), BandRow(1, 12, "old")],
        times=times,
        roots={"b": "a"},
    )
    window = (T0 - timedelta(days=30), T0 + timedelta(days=30))
    found = grouping_table.candidate_signatures(con, [(1, 12), (5, 11), (0, 99)], *window)
    assert [(s.article_id, s.signature, s.root) for s in found] == [("a", b"\x01" * 8, "a")]
    assert [s.root for s in grouping_table.candidate_signatures(con, [(0, 21)], *window)] == ["a"]
    # The 90-day-old article shares the bucket but is outside the window; a window around it finds it.
    old_window = (T0 - timedelta(days=100), T0 - timedelta(days=80))
    assert [s.article_id for s in grouping_table.candidate_signatures(con, [(1, 12)], *old_window)] == ["old"]
    # Storing the same article again keeps its first signature and adds no band rows.
    grouping_table.insert_signatures(
        con, [SignatureRow("a", b"\x09" * 8)], [BandRow(3, 3, "a")], times=times, roots={}
    )
    assert con.execute("SELECT count(*) FROM lsh_bands").fetchall() == [(4,)]
    assert grouping_table.candidate_signatures(con, [(3, 3)], *window) == []


def test_migration_0004_keeps_grouping_state_and_times_it(tmp_path: Path) -> None:
    """A file grouped before 0004 keeps every signature, band and centroid row, timed, into the lake."""
    path = tmp_path / "old.duckdb"
    legacy = "newsflow.warehouse.legacy_migrations"
    with duckdb.connect(str(path)) as old:
        migrate(old, upto=3, package=legacy)
        old.execute(
            "INSERT INTO articles (article_id, text, word_count, content_source, first_seen_at,"
            " published_at, duplicate_of, dup_reason)"
            " VALUES ('a', 't', 1, 'loaded', ?, ?, NULL, NULL),"
            " ('b', 't', 1, 'loaded', ?, NULL, 'a', 'guid')",
            [T0, T0 - timedelta(days=1), T0],
        )
        old.execute("INSERT INTO minhash_signatures VALUES ('a', '\\x01'::BLOB), ('b', '\\x02'::BLOB)")
        old.execute("INSERT INTO lsh_bands VALUES (0, 7, 'a'), (0, 7, 'b')")
        old.execute(
            "INSERT INTO stories VALUES ('s', 'h', NULL, ?, ?, 2, ['x'], 0.5, 1.0, 0.0, ?)", [T0, T0, T0]
        )
        old.execute("INSERT INTO story_terms VALUES ('s', 't', 'anthropic', 1.0)")
        assert migrate(old, package=legacy) == [4]
        assert old.execute("SELECT story_id, term, last_at FROM story_terms").fetchall() == [
            ("s", "anthropic", T0)
        ]
    lake = tmp_path / "new.ducklake"
    report = upgrade_file(path, warehouse(lake))
    assert report.ok and report.lake_problems == [] and report.lake_counts["minhash_signatures"] == 2
    with writer(lake) as con:
        found = grouping_table.candidate_signatures(con, [(0, 7)], T0 - timedelta(days=2), T0)
        assert [(s.article_id, s.root) for s in found] == [("a", "a"), ("b", "a")]


def test_document_frequencies_add_up_and_can_be_taken_out(con: duckdb.DuckDBPyConnection) -> None:
    grouping_table.add_doc_freqs(con, {"": 2, "anthropic": 2, "eds": 1})
    grouping_table.add_doc_freqs(con, {"": 1, "anthropic": 1})
    grouping_table.add_doc_freqs(con, {"eds": -1})
    rows = grouping_table.doc_freqs(con, {"", "anthropic", "eds", "missing"})
    assert sorted((r.term, r.df) for r in rows) == [("", 3), ("anthropic", 3), ("eds", 0)]


def test_candidate_query_respects_the_window_and_ranks_by_cosine(con: duckdb.DuckDBPyConnection) -> None:
    grouping_table.save_stories(
        con,
        [
            _story("near", T0, {"amazon": 1.0, "anthropic": 1.0}),
            _story("weak", T0, {"amazon": 1.0, "alexa": 3.0}),
            _story("old", T0 - timedelta(days=30), {"amazon": 1.0, "anthropic": 1.0}),
        ],
        T0,
    )
    vectors = [StoryProbe("x", T0 + timedelta(days=1), {"amazon": 0.7, "anthropic": 0.7}, {})]
    kwargs = {"window_days": 7.0, "term_weight": 0.5, "entity_weight": 0.6, "min_score": 0.3}
    assert grouping_table.candidate_story_ids(con, vectors, top=5, **kwargs) == {"x": ["near"]}  # weak < 0.3
    assert grouping_table.candidate_story_ids(con, vectors, top=5, **kwargs | {"min_score": 0.0}) == {
        "x": ["near", "weak"]
    }
    # Updating a story replaces its centroid.
    grouping_table.save_stories(con, [_story("near", T0, {"eds": 1.0})], T0)
    [stored] = grouping_table.load_stories(con, ["near"])
    assert (stored.row.story_id, stored.terms, stored.entities) == ("near", {"eds": 1.0}, {})
    assert grouping_table.candidate_story_ids(con, vectors, top=5, **kwargs) == {"x": ["weak"]}  # the best


def test_candidate_query_offers_stories_to_follow_up_on_three_shared_names(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Beyond the window, up to the follow-up horizon, a story sharing three of the probe's rare names is
    offered after the stories within the window; two names, or a story past the horizon, is not."""
    names = {"kowalczyk": 1.0, "jane": 1.0, "carbondale": 1.0, "walnut": 1.0}
    grouping_table.save_stories(
        con,
        [
            _story("near", T0, {"officer": 1.0}),
            _story("month-ago", T0 - timedelta(days=30), {"pursuit": 1.0}, names | {"police": 2.0}),
            _story("two-names", T0 - timedelta(days=30), {"pursuit": 1.0}, {"jane": 1.0, "carbondale": 1.0}),
            _story("year-ago", T0 - timedelta(days=365), {"pursuit": 1.0}, names),
        ],
        T0,
    )
    probe = StoryProbe("x", T0, {"officer": 1.0, "pursuit": 1.0}, {"police": 1.0}, names)
    kwargs = {"window_days": 7.0, "term_weight": 0.5, "entity_weight": 0.6, "min_score": 0.0, "top": 5}
    found = grouping_table.candidate_story_ids(con, [probe], follow_up_days=180.0, min_names=3, **kwargs)
    assert found == {"x": ["near", "month-ago"]}
    assert grouping_table.candidate_story_ids(con, [probe], **kwargs) == {"x": ["near"]}  # no horizon
    undated = StoryProbe("u", None, {"officer": 1.0}, {}, {})
    assert grouping_table.candidate_story_ids(
        con, [undated], follow_up_days=180.0, min_names=3, **kwargs
    ) == {"u": ["near"]}


def _article(con: duckdb.DuckDBPyConnection, article_id: str, at: datetime, story: str | None) -> None:
    con.execute(
        "INSERT INTO articles (article_id, site, title, text, word_count, content_source, first_seen_at,"
        " published_at, story_id) VALUES (?, 'a.example', ?, 'some text', 2, 'loaded', ?, ?, ?)",
        [article_id, f"title {article_id}", at, at, story],
    )


def test_decisions_listing_and_release_of_a_range(con: duckdb.DuckDBPyConnection) -> None:
    grouping_table.save_stories(con, [_story("s1", T0, {"a": 1.0}), _story("s2", T0, {"b": 1.0})], T0)
    _article(con, "in", T0, "s1")
    _article(con, "out", T0 + timedelta(days=20), "s1")  # outside the range, but in a released story
    _article(con, "other", T0 + timedelta(days=20), "s2")
    grouping_table.save_decisions(con, [StoryAssignment("in", "s1", "new_story", 0.1)], T0)
    grouping_table.save_decisions(con, [StoryAssignment("in", "s1", "joined", 0.4, best_other="s1")], T0)
    listed = stories_table.list_stories(con, since=None, min_outlets=1, limit=10)
    assert [(r["story_id"], r["articles"], r["outlets"]) for r in listed] == [("s1", 2, 1), ("s2", 1, 1)]
    assert stories_table.list_stories(con, since=T0 + timedelta(days=30), min_outlets=1, limit=10) == []
    members = stories_table.story_members(con, "s1")
    assert [(m["article_id"], m["reason"], m["score"]) for m in members] == [
        ("in", "joined", 0.4),
        ("out", None, None),
    ]
    rows, released = grouping_table.release_range(con, T0 - timedelta(days=1), T0 + timedelta(days=1))
    assert released == 1
    assert [(r.article_id, r.counted) for r in rows] == [("in", True), ("out", False)]
    assert grouping_table.stories_of(con, ["in", "out", "other"]) == {"other": "s2"}
    assert con.execute("SELECT story_id FROM stories").fetchall() == [("s2",)]
    assert con.execute("SELECT count(*) FROM story_decisions").fetchall() == [(0,)]
    assert grouping_table.set_story_ids(con, {"in": "s2", "missing": "s2"}) == 1
