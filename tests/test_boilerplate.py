"""Site boilerplate on real text: unrelated articles of one outlet that share a real promotion block are
not copies of each other and do not share a story, while edited copies that carry the block still are
copies (through `newsflow load` into a real lake)."""

from __future__ import annotations

import gzip
import json
import random
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsflow.cli import main
from newsflow.stories import boilerplate, neardup
from tests.conftest import shared
from tests.lake import reader

#: Real boilerplate lines from the shared data: VentureBeat's event promotion (Amazon-Anthropic set) and
#: 9to5Mac's affiliate footer (scrapinghub benchmark).
PROMO = (
    "VentureBeat presents: AI Unleashed - An exclusive executive event for enterprise data leaders. "
    "Network and learn with industry peers.Learn More\n"
    "FTC: We use income earning auto affiliate links. More."
)


def _basil(count: int) -> list[dict[str, str]]:
    """One BASIL article per event (unrelated to each other), ``count`` of them."""
    out, events = [], set()
    with gzip.open(shared("basil-news-triplets/articles.jsonl.gz"), "rt", encoding="utf-8") as lines:
        for line in lines:
            doc = json.loads(line)
            if doc["cluster_id"] not in events:
                events.add(doc["cluster_id"])
                out.append(doc)
    return out[:count]


def _teaser(doc: dict[str, str], words: int = 28) -> str:
    """A feed-style item: the article's first words, then the site's promotion."""
    return " ".join(doc["text"].split()[:words]) + "\n" + PROMO


def _edited(text: str, share: float, seed: int) -> str:
    """``text`` with ``share`` of its words replaced, line breaks kept."""
    rng = random.Random(seed)
    lines = [line.split() for line in text.splitlines()]
    slots = [(i, j) for i, words in enumerate(lines) for j in range(len(words))]
    for i, j in rng.sample(slots, round(len(slots) * share)):
        lines[i][j] = "zzz"
    return "\n".join(" ".join(words) for words in lines)


def test_teasers_sharing_a_promotion_would_pass_minhash_but_are_not_the_same_content() -> None:
    a, b = (_teaser(doc) for doc in _basil(2))
    sig_a, sig_b = neardup.signature(a), neardup.signature(b)
    assert sig_a is not None and sig_b is not None
    assert neardup.jaccard_estimate(sig_a, sig_b) >= neardup.THRESHOLD, "the promotion dominates the estimate"
    assert not neardup.same_content(a, b)


@pytest.mark.parametrize("share", [0.02, 0.05, 0.10])
def test_an_edited_copy_carrying_the_promotion_is_the_same_content(share: float) -> None:
    doc = _basil(1)[0]
    original = PROMO + "\n" + doc["text"]
    assert neardup.same_content(_edited(original, share, seed=7), original)


def test_an_update_that_only_adds_a_line_is_the_same_content() -> None:
    original = _teaser(_basil(1)[0])
    assert neardup.same_content("UPDATE: the company responded on Friday.\n" + original, original)


def test_lines_are_folded_and_short_lines_are_not_tracked() -> None:
    assert boilerplate.line_hash("FTC:  We use  income") == boilerplate.line_hash("ftc: we use income")
    assert boilerplate.lines("Read more\nOne two three four") == {
        boilerplate.line_hash("one two three four"): 4
    }
    assert (
        boilerplate.without_lines(PROMO + "\nkept line here", set(boilerplate.lines(PROMO)))
        == "kept line here"
    )


def _load(db: Path, path: Path, records: list[dict[str, object]]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    result = CliRunner().invoke(main, ["load", str(path), "--db", str(db)])
    assert result.exit_code == 0, result.output


def test_one_outlets_promoted_items_are_no_copies_and_their_edited_copies_are(
    tmp_path: Path, db: Path
) -> None:
    docs = _basil(12)
    site = "venturebeat.com"
    teasers = [
        {"id": f"item-{n}", "text": _teaser(doc), "title": doc["title"], "site": site,
         "published_at": f"2023-09-{10 + n:02d}T12:00:00Z"}
        for n, doc in enumerate(docs)
    ]  # fmt: skip
    full = [
        {"id": f"full-{n}", "text": PROMO + "\n" + doc["text"], "title": doc["title"], "site": site,
         "published_at": f"2023-09-{10 + n:02d}T13:00:00Z"}
        for n, doc in enumerate(docs[:6])
    ]  # fmt: skip
    _load(db, tmp_path / "originals.jsonl", teasers + full)
    copies = [
        {
            **record,
            "id": record["id"].replace("full", "copy"),
            "text": _edited(str(record["text"]), 0.10, seed=n),
        }
        for n, record in enumerate(full)
    ]
    _load(db, tmp_path / "copies.jsonl", copies)
    with reader(db) as con:
        rows = con.execute(
            "SELECT a.external_id, o.external_id, a.dup_reason, a.story_id, d.reason FROM articles a"
            " LEFT JOIN articles o ON o.article_id = a.duplicate_of"
            " LEFT JOIN story_decisions d ON d.article_id = a.article_id"
        ).fetchall()
    marks = {ext: original for ext, original, _, _, _ in rows if original is not None}
    assert marks == {f"copy-{n}": f"full-{n}" for n in range(6)}, "no false copy, every edited copy found"
    story = {ext: story_id for ext, _, _, story_id, _ in rows}
    # A teaser and the full article of the same event may share a story; two events never do.
    by_story = Counter(story[f"item-{n}"] for n in range(12))
    assert max(by_story.values()) == 1, "unrelated items of one outlet were put in one story"
    assert all(story[f"copy-{n}"] == story[f"full-{n}"] for n in range(6))
    with reader(db) as con:
        recurring = con.execute("SELECT count(*) FROM site_lines WHERE articles >= 2").fetchall()[0][0]
    assert recurring == 2, (
        "the two promotion lines are counted as the site's recurring lines, copies excluded"
    )
    with reader(db) as con:
        counts = sorted(con.execute("SELECT line_hash, articles FROM site_lines").fetchall())
    regroup = ["regroup", "--since", "2023-09-01", "--until", "2023-09-30", "--db", str(db)]
    regrouped = CliRunner().invoke(main, regroup)
    assert regrouped.exit_code == 0, regrouped.output
    with reader(db) as con:
        assert sorted(con.execute("SELECT line_hash, articles FROM site_lines").fetchall()) == counts
        after = dict(con.execute("SELECT external_id, story_id FROM articles").fetchall())
    assert len({after[f"item-{n}"] for n in range(12)}) == 12, "a regroup keeps the outlet's items apart"
