"""The story grouping's records: its configuration, an article as grouping sees it, a story's state and
document frequencies. Everything here converts to records (``StoredStory``, ``DocFreqRow``) for the
warehouse."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from newsflow.records import DocFreqRow, StoryAssignment, TextFeatures

Vector = dict[str, float]

#: Key of the row in ``DocFreqRow``s that holds the number of documents counted.
DOCS_KEY = ""
REASON_JOINED = "joined"
REASON_NEW = "new_story"
REASON_NO_CANDIDATE = "new_story_no_candidate"
#: Joined a story whose last article is more than the window away, on the rare names they share.
REASON_FOLLOW_UP = "follow_up"


@dataclass(frozen=True)
class StoryConfig:
    """The one configuration used for every corpus (and by ``newsflow ingest``)."""

    window_days: float = 7.0
    threshold: float = 0.22
    term_weight: float = 0.5
    entity_weight: float = 0.6
    #: Days within which time does not lower the score; beyond, it falls linearly to ``min_time_factor``.
    same_time_days: float = 1.5
    min_time_factor: float = 0.5
    #: The time factor when the article's or the story's time is unknown (undated articles).
    undated_time_factor: float = 1.0
    #: A story whose members matched it closely asks as much of newcomers: the score must also reach
    #: ``cohesion`` times the mean score its members joined with (keeps a tight event from absorbing a
    #: similar one with other actors).
    cohesion: float = 0.5
    #: Average linkage: the article's mean score (``term_weight`` x terms + ``entity_weight`` x names, no
    #: time factor) against the story's members must reach this too. A story that grew broad (its sums
    #: cover two close events) then takes only articles close to its members, not to the mix of them.
    member_link: float = 0.15
    #: Beyond ``window_days`` and up to ``follow_up_days`` from a story's span, an article may still join it
    #: as a follow-up (the victim named, an arrest, a trial) when it also shares ``follow_up_names`` or more
    #: of the story's rare names; time then counts as at the window's edge (``min_time_factor``), so the
    #: score asked is the same as there. Look-alike events share common words and the city, not names.
    #: Three, not two: a two-word place ("Long Beach", "Costa Rica") is two names, and look-alike events
    #: in one place share it; a follow-up shares the people or the organisation too.
    follow_up_days: float = 180.0
    follow_up_names: int = 3
    #: A name (an entity that is not a number) is rare when its IDF is at least this share of the highest
    #: IDF possible (a name in no other document): in at most about 1.6 x sqrt(documents) of them, so
    #: rarity scales with the warehouse.
    rare_name_idf: float = 0.5
    title_repeat: int = 2
    #: The first words of the body (the lead: who did what) count ``lead_repeat`` times.
    lead_words: int = 50
    lead_repeat: int = 2
    max_article_terms: int = 80
    max_article_entities: int = 30
    max_story_terms: int = 200
    max_story_entities: int = 60


DEFAULT_CONFIG = StoryConfig()


@dataclass(frozen=True)
class StoryArticle:
    """What grouping needs of an article. ``published_at`` should fall back to first-seen time, with
    ``dated`` False to say so: an undated article's time is unknown to grouping (see :attr:`when`)."""

    article_id: str
    text: str
    title: str | None
    published_at: datetime
    site: str | None
    #: Counts computed earlier (:func:`newsflow.stories.features.text_features`); None: tokenise here.
    features: TextFeatures | None = field(default=None, repr=False, compare=False)
    dated: bool = True

    @property
    def when(self) -> datetime | None:
        """The publication time, or None when unknown (time neither helps nor hurts its score, and it does
        not move a story's span)."""
        return self.published_at if self.dated else None


@dataclass(frozen=True)
class ArticleVectors:
    """An article's L2-normalised term and entity vectors."""

    terms: Vector
    entities: Vector


@dataclass(frozen=True)
class Story:
    """A story's state: summed member vectors (pruned), time span, outlets and headline."""

    story_id: str
    headline: str | None
    headline_article_id: str | None
    first_at: datetime
    last_at: datetime
    article_count: int
    sites: tuple[str, ...]
    #: Sum of the scores with which members after the first joined (their mean is the story's cohesion).
    join_score_sum: float
    terms: Vector = field(repr=False)
    entities: Vector = field(repr=False)
    #: No member has a date: the span is the first member's stand-in time (when newsflow first saw it).
    undated: bool = False


@dataclass
class DocumentFrequencies:
    """Document frequencies of (at least) the terms in play, and the number of documents counted."""

    n_docs: int = 0
    df: dict[str, int] = field(default_factory=dict)

    def add(self, terms: Iterable[str]) -> None:
        """Count one document with these distinct terms."""
        self.n_docs += 1
        for term in terms:
            self.df[term] = self.df.get(term, 0) + 1

    def idf(self, term: str) -> float:
        """Smoothed inverse document frequency (1.0 for a term in every document)."""
        return math.log((self.n_docs + 1) / (self.df.get(term, 0) + 1)) + 1.0

    def rare(self, terms: Iterable[str], share: float) -> set[str]:
        """The ``terms`` whose IDF is at least ``share`` of the highest possible (a term in no document)."""
        bar = share * (math.log(self.n_docs + 1) + 1.0)
        return {term for term in terms if self.idf(term) >= bar}

    @classmethod
    def from_rows(cls, rows: Iterable[DocFreqRow]) -> DocumentFrequencies:
        out = cls()
        for row in rows:
            if row.term == DOCS_KEY:
                out.n_docs = row.df
            else:
                out.df[row.term] = row.df
        return out


@dataclass(frozen=True)
class BatchResult:
    """The decisions for a batch, the stories it created or changed, and document-frequency increments
    (documents of the batch per term, and under ``DOCS_KEY`` the batch's size)."""

    assignments: list[StoryAssignment]
    stories: list[Story]
    df_increments: Mapping[str, int]
