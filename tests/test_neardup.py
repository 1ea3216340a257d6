"""Near-duplicates on real articles: a lightly edited copy is found, an unrelated article is not."""

from __future__ import annotations

import gzip
import json
import random

import pytest

from newsflow.stories import neardup
from tests.conftest import shared


def _basil_texts() -> list[str]:
    path = shared("basil-news-triplets/articles.jsonl.gz")
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        return [json.loads(line)["text"] for line in lines][:12]


def _replace_words(text: str, share: float, seed: int = 3) -> str:
    words = text.split()
    rng = random.Random(seed)
    for i in rng.sample(range(len(words)), round(len(words) * share)):
        words[i] = "zzz"
    return " ".join(words)


def _stored(texts: list[str]) -> list[neardup.StoredSignature]:
    outcome = neardup.find_near_duplicates([(f"orig-{i}", t) for i, t in enumerate(texts)], [])
    assert outcome.marks == {}, "distinct BASIL articles must not be marked as copies of each other"
    return [neardup.StoredSignature(r.article_id, r.signature) for r in outcome.signatures]


@pytest.mark.parametrize("share", [0.02, 0.05, 0.10])
def test_lightly_edited_copy_is_a_near_duplicate_of_its_original(share: float) -> None:
    texts = _basil_texts()
    copy = "WASHINGTON (AP) — " + _replace_words(texts[4], share)
    outcome = neardup.find_near_duplicates([("copy", copy)], _stored(texts))
    mark = outcome.marks["copy"]
    assert (mark.of, mark.reason) == ("orig-4", "near_duplicate")
    assert neardup.THRESHOLD <= mark.score < 1.0


def test_unrelated_article_is_not_a_near_duplicate() -> None:
    texts = _basil_texts()
    outcome = neardup.find_near_duplicates([("new", texts[-1])], _stored(texts[:-1]))
    assert outcome.marks == {}
    assert [r.article_id for r in outcome.signatures] == ["new"]


def test_copy_inside_one_batch_points_at_the_first_copy_and_stored_roots_are_kept() -> None:
    texts = _basil_texts()
    stored = [neardup.StoredSignature("copy-0", _stored([texts[0]])[0].signature, root="root-0")]
    batch = [("a", texts[1]), ("b", _replace_words(texts[1], 0.05)), ("c", _replace_words(texts[0], 0.05))]
    marks = neardup.find_near_duplicates(batch, stored).marks
    assert {k: m.of for k, m in marks.items()} == {"b": "a", "c": "root-0"}


def test_rows_round_trip_and_band_layout() -> None:
    sig = neardup.signature(_basil_texts()[0])
    assert sig is not None
    assert sig.shape == (neardup.NUM_PERM,)
    assert (neardup.from_bytes(neardup.to_bytes(sig)) == sig).all()
    rows = neardup.band_rows("x", sig)
    assert [r.band for r in rows] == list(range(neardup.BANDS))
    assert all(-(2**63) <= r.bucket < 2**63 for r in rows)
    # Stable across processes: pinned so stored bands stay valid after an upgrade.
    pinned = neardup.signature(" ".join(["word"] * 40) + " end")
    assert pinned is not None
    assert neardup.band_rows("x", pinned)[0].bucket == 9164798810812666926


def test_short_texts_get_no_signature() -> None:
    assert neardup.signature("Read more about this story on our site.") is None
    assert neardup.find_near_duplicates([("a", "Read more"), ("b", "Read more")], []).marks == {}
