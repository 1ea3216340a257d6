"""Grouping a batch as one pure step, on plain records: an in-memory snapshot stands in for the warehouse,
and every change comes back as a record (nothing is written)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from newsflow.records import (
    CandidateQuery,
    DocFreqRow,
    GroupingChanges,
    StoredSignature,
    StoredStory,
    StoryProbe,
)
from newsflow.stories import StoryArticle
from newsflow.stories.batch import GroupingBatch, Replay, group
from tests.test_stories import STORY, _amazon


@dataclass
class MemorySnapshot:
    """The warehouse as plain collections; :meth:`apply` keeps what a batch changed, as writing would."""

    signatures: list[StoredSignature] = field(default_factory=list)
    texts_by_id: dict[str, str] = field(default_factory=dict)
    story_of: dict[str, str] = field(default_factory=dict)
    lines: Counter[tuple[str, int]] = field(default_factory=Counter)
    df: Counter[str] = field(default_factory=Counter)
    stored: dict[str, StoredStory] = field(default_factory=dict)

    def signature_candidates(
        self, keys: Iterable[tuple[int, int]], low: datetime | None, high: datetime | None
    ) -> list[StoredSignature]:
        return list(self.signatures)  # more candidates than the LSH join finds is harmless

    def texts(self, article_ids: Collection[str]) -> dict[str, str]:
        return {i: self.texts_by_id[i] for i in article_ids if i in self.texts_by_id}

    def stories_of(self, article_ids: Collection[str]) -> dict[str, str]:
        return {i: self.story_of[i] for i in article_ids if i in self.story_of}

    def site_line_counts(self, keys: Collection[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return {k: self.lines[k] for k in keys if self.lines[k]}

    def doc_freqs(self, terms: Collection[str]) -> list[DocFreqRow]:
        return [DocFreqRow(t, self.df[t]) for t in terms if self.df[t]]

    def candidate_stories(self, probes: Sequence[StoryProbe], query: CandidateQuery) -> dict[str, list[str]]:
        return {p.article_id: sorted(self.stored) for p in probes}

    def stories(self, story_ids: Collection[str], *, active_since: datetime | None) -> list[StoredStory]:
        return [self.stored[i] for i in sorted(story_ids)]

    def apply(self, changes: GroupingChanges, articles: Sequence[StoryArticle]) -> None:
        texts = {a.article_id: a.text for a in articles}
        for row in changes.signatures:
            root = changes.signed_roots.get(row.article_id, row.article_id)
            self.signatures.append(StoredSignature(row.article_id, row.signature, root))
        self.texts_by_id |= texts
        self.story_of |= changes.story_ids
        self.lines.update(changes.site_lines)
        self.df.update(changes.doc_freq_increments)
        self.stored |= {s.row.story_id: s for s in changes.stories}


def test_a_batch_is_grouped_on_plain_records_and_every_change_comes_back() -> None:
    articles = {a.article_id: a for a, _ in _amazon()}
    gold = {a.article_id: g for a, g in _amazon()}
    reuters, cnet = articles["reuters-amazon-anthropic"], articles["cnet-amazon-anthropic"]
    distractor = articles["heise-panay-to-amazon"]
    snapshot = MemorySnapshot()

    first = group(GroupingBatch([reuters]), snapshot)
    assert (first.new_stories, first.joined, len(first.signatures)) == (1, 0, 1)
    assert first.doc_freq_increments[""] == 1  # one document counted
    snapshot.apply(first, [reuters])
    [story_id] = set(first.story_ids.values())

    # A copy of Reuters' report with its first line changed, CNET on the same news, a distractor.
    copy = replace(reuters, article_id="reuters-copy", text="Updated: " + reuters.text,
                   published_at=reuters.published_at + timedelta(hours=2))  # fmt: skip
    later = [copy, cnet, distractor]
    second = group(GroupingBatch(later), snapshot)

    assert second.near_marks["reuters-copy"].of == "reuters-amazon-anthropic"
    decisions = {d.article_id: d for d in second.decisions}
    assert decisions["reuters-copy"].reason == "copy" and decisions["reuters-copy"].story_id == story_id
    assert decisions["cnet-amazon-anthropic"].reason == "joined"
    assert second.story_ids["cnet-amazon-anthropic"] == story_id
    assert second.story_ids[distractor.article_id] != story_id and gold[distractor.article_id] != STORY
    # Originals are counted once each; the copy is not a document of its own.
    assert second.doc_freq_increments[""] == 2
    assert {s.row.story_id for s in second.stories} == {story_id, second.story_ids[distractor.article_id]}
    assert next(s for s in second.stories if s.row.story_id == story_id).row.article_count == 2


def test_a_regroup_of_counted_articles_adds_no_documents() -> None:
    reuters = next(a for a, _ in _amazon() if a.article_id == "reuters-amazon-anthropic")
    snapshot = MemorySnapshot()
    snapshot.apply(group(GroupingBatch([reuters]), snapshot), [reuters])
    snapshot.stored.clear()  # the regroup released its story
    again = group(
        GroupingBatch([reuters], counted={reuters.article_id}, find_copies=False, learn_lines=False), snapshot
    )
    assert again.new_stories == 1 and again.signatures == () and again.site_lines == ()
    assert all(n == 0 for n in again.doc_freq_increments.values())


def test_a_regroup_replays_each_batch_against_what_came_before_it() -> None:
    """Stored in two batches, then regrouped through :class:`Replay` in the same batches: every decision
    (story, reason, score) is the one the store step made, though the stored document frequencies and site
    lines already count the later batch."""
    articles = [a for a, _ in _amazon()]
    batches = [articles[:6], articles[6:]]
    snapshot = MemorySnapshot()
    stored = []
    for batch in batches:
        changes = group(GroupingBatch(batch), snapshot)
        snapshot.apply(changes, batch)
        stored += changes.decisions
    snapshot.stored.clear()  # the regroup released every story
    replay = Replay(
        snapshot, articles, counted={a.article_id for a in articles}, originals=set(snapshot.texts_by_id)
    )
    regrouped = []
    for batch in batches:
        released = replay.release_words(batch)
        ids = {a.article_id for a in batch}
        changes = group(GroupingBatch(released, counted=ids, find_copies=False, learn_lines=False), replay)
        replay.release_lines(batch)
        snapshot.stored |= {s.row.story_id: s for s in changes.stories}
        regrouped += changes.decisions
    assert [(d.article_id, d.story_id, d.reason, d.score) for d in regrouped] == [
        (d.article_id, d.story_id, d.reason, d.score) for d in stored
    ]
    unreplayed = MemorySnapshot(texts_by_id=snapshot.texts_by_id, df=snapshot.df, lines=snapshot.lines)
    first = group(GroupingBatch(batches[0], counted={a.article_id for a in batches[0]}, find_copies=False,
                                learn_lines=False), unreplayed)  # fmt: skip
    assert [d.score for d in first.decisions] != [d.score for d in stored[: len(batches[0])]]
