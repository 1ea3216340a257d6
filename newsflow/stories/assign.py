"""Online story grouping: each batch of articles joins an active story or starts a new one.

An article is two sparse vectors: TF-IDF of title and body words (``terms``) and TF-IDF of name-like
tokens, capitalised words in mid-sentence and numbers (``entities``). A story keeps the sums of its members'
vectors (its centroid, pruned to the heaviest terms), its time span and its outlets. An article is scored
against every story active within ``window_days`` of its publication date:

    score = (term_weight * cos(terms) + entity_weight * cos(entities)) * time_factor

and joins the best-scoring story for which the score reaches ``threshold`` (more for a cohesive story) and
its mean score against the story's members reaches ``member_link`` (average linkage, read off the story's
summed vectors); when no story passes both, it starts a story. A story more than ``window_days`` away (up
to ``follow_up_days``) takes it only as a follow-up: it must also share ``follow_up_names`` of its rare
names (people, places, organisations in few documents), and time counts as at the window's edge.
Entities carry much of the score so that similar events with different actors (HP buying EDS vs HP
buying EYP, two celebrities entering rehab) stay apart even when their vocabulary is the same.

Document frequencies are state too (``DocumentFrequencies``), so term weights improve as history grows.
All state converts to records (``StoredStory``, ``DocFreqRow``) for the warehouse; a batch
needs only the candidate stories' rows and the document frequencies of the batch's terms.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import NamedTuple

from newsflow.records import StoryAssignment
from newsflow.stories.model import (
    DEFAULT_CONFIG,
    DOCS_KEY,
    REASON_NEW,
    REASON_NO_CANDIDATE,
    ArticleVectors,
    BatchResult,
    DocumentFrequencies,
    Story,
    StoryArticle,
    StoryConfig,
)
from newsflow.stories.scoring import (
    days_apart,
    is_active,
    is_follow_up,
    member_mean,
    norm,
    rare_names,
    required_score,
    score,
    time_weight,
)
from newsflow.stories.state import add_to_story, new_story
from newsflow.stories.tokens import article_counts, weigh


def count_batch(
    articles: Sequence[StoryArticle], config: StoryConfig = DEFAULT_CONFIG
) -> list[tuple[Counter[str], Counter[str]]]:
    """Term and entity counts of each article (tokenise once; pass to :func:`assign_batch`); counts an
    article carries in ``features`` are used as they are when ``config`` counts as the default does."""
    reuse = _counts_key(config) == _counts_key(DEFAULT_CONFIG)
    return [
        (Counter(a.features.terms), Counter(a.features.entities))
        if reuse and a.features is not None
        else article_counts(a.text, a.title, config)
        for a in articles
    ]


def _counts_key(config: StoryConfig) -> tuple[int, int, int]:
    return config.title_repeat, config.lead_words, config.lead_repeat


def batch_terms(counts: Sequence[tuple[Counter[str], Counter[str]]]) -> set[str]:
    """Every term and entity of a batch: the document frequencies to load before :func:`assign_batch`."""
    out: set[str] = set()
    for terms, entities in counts:
        out.update(terms, entities)
    return out


def article_vectors(
    counts: Sequence[tuple[Counter[str], Counter[str]]],
    df: DocumentFrequencies,
    config: StoryConfig = DEFAULT_CONFIG,
) -> list[ArticleVectors]:
    """Weighted, pruned, normalised vectors of counted articles; ``df`` should already count them."""
    return [
        ArticleVectors(
            weigh(terms, df, config.max_article_terms), weigh(entities, df, config.max_article_entities)
        )
        for terms, entities in counts
    ]


def assign_batch(
    articles: Sequence[StoryArticle],
    stories: Iterable[Story],
    df: DocumentFrequencies,
    config: StoryConfig = DEFAULT_CONFIG,
    counts: Sequence[tuple[Counter[str], Counter[str]]] | None = None,
    candidates: Mapping[str, Collection[str]] | None = None,
    vectors: Sequence[ArticleVectors] | None = None,
) -> BatchResult:
    """Assign each article (in publication order, ties in batch order) to an active story or a new one.

    ``stories`` are the stored stories that may be active for the batch (more is harmless); ``df`` holds
    the document frequencies of at least the batch's terms and is updated in place with the batch;
    ``counts`` are the batch's :func:`count_batch` if already computed. ``candidates`` (article id -> story
    ids) limits the stored stories each article is scored against (None: all of ``stories``); stories the
    batch creates are open to every later article of the batch. ``vectors`` are the batch's
    :func:`article_vectors` (with ``df`` counting the batch) if already computed. Articles earlier in the
    batch count for later ones. Returns the decisions, every story created or changed (to upsert), and the
    document-frequency increments (to add to the stored counts).
    """
    counts = counts if counts is not None else count_batch(articles, config)
    increments: Counter[str] = Counter()
    for terms, entities in counts:
        distinct = set(terms) | set(entities)
        df.add(distinct)
        increments.update(distinct)
    increments[DOCS_KEY] = len(articles)
    vectors = vectors if vectors is not None else article_vectors(counts, df, config)
    rare = [rare_names(v.entities, df, config) for v in vectors]
    pool = _Pool(stories, candidates, config)
    touched: dict[str, Story] = {}
    decisions: list[StoryAssignment] = []
    for i in sorted(range(len(articles)), key=lambda i: articles[i].published_at):
        decision, story = _decide(articles[i], vectors[i], rare[i], pool, config)
        pool.put(story)
        touched[story.story_id] = story
        decisions.append(decision)
    position = {a.article_id: n for n, a in enumerate(articles)}
    decisions.sort(key=lambda d: position[d.article_id])
    return BatchResult(decisions, list(touched.values()), increments)


class _Fit(NamedTuple):
    """An article against one story: term and entity cosines with its sums, mean score against its members."""

    terms: float
    entities: float
    members: float


class _Pool:
    """The stories an article may join, scored by sparse dot products.

    Stories in the index (postings term -> stories) are found by any shared term: every story when no
    ``candidates`` are given, else only the stories the batch creates. Stored stories named in
    ``candidates`` (article id -> story ids, from the warehouse's candidate query) are scored, in their
    latest state, for their article only, so a batch does not pay to index thousands of stored centroids.
    """

    def __init__(
        self,
        stories: Iterable[Story],
        candidates: Mapping[str, Collection[str]] | None,
        config: StoryConfig = DEFAULT_CONFIG,
    ) -> None:
        self._config = config
        self.stories: dict[str, Story] = {}
        self._candidates = candidates
        self._norms: dict[str, tuple[float, float]] = {}
        self._indexed: set[str] = set()
        self._postings: dict[tuple[str, str], set[str]] = {}
        for story in stories:
            self._keep(story)
            if candidates is None:
                self._index(story)

    def put(self, story: Story) -> None:
        """Add or replace a story created or changed by the batch (a stored story that is not indexed
        stays reachable through ``candidates`` only)."""
        stored_only = story.story_id in self.stories and story.story_id not in self._indexed
        self._keep(story)
        if not stored_only:
            self._index(story)

    def _keep(self, story: Story) -> None:
        self.stories[story.story_id] = story
        self._norms[story.story_id] = (norm(story.terms), norm(story.entities))

    def _index(self, story: Story) -> None:
        self._indexed.add(story.story_id)
        for kind, vector in (("t", story.terms), ("e", story.entities)):
            for term in vector:
                self._postings.setdefault((kind, term), set()).add(story.story_id)

    def similarities(self, article_id: str, vectors: ArticleVectors) -> dict[str, _Fit]:
        """How the article fits every story it may join."""
        dots: dict[str, list[float]] = {}
        for slot, kind, unit in ((0, "t", vectors.terms), (1, "e", vectors.entities)):
            for term, weight in unit.items():
                for story_id in self._postings.get((kind, term), ()):
                    vector = self.stories[story_id].terms if kind == "t" else self.stories[story_id].entities
                    dots.setdefault(story_id, [0.0, 0.0])[slot] += weight * vector.get(term, 0.0)
        named = self._candidates.get(article_id, ()) if self._candidates is not None else ()
        for story_id in named:
            if story_id in self.stories and story_id not in self._indexed:
                story = self.stories[story_id]
                dots[story_id] = [
                    sum(w * story.terms.get(t, 0.0) for t, w in vectors.terms.items()),
                    sum(w * story.entities.get(t, 0.0) for t, w in vectors.entities.items()),
                ]
        out = {}
        for story_id, (term_dot, entity_dot) in dots.items():
            term_norm, entity_norm = self._norms[story_id]
            out[story_id] = _Fit(
                term_dot / term_norm if term_norm else 0.0,
                entity_dot / entity_norm if entity_norm else 0.0,
                member_mean(term_dot, entity_dot, self.stories[story_id], self._config),
            )
        return out


def _decide(
    article: StoryArticle,
    vectors: ArticleVectors,
    rare_names: set[str],
    pool: _Pool,
    config: StoryConfig,
) -> tuple[StoryAssignment, Story]:
    """The story the article joins (or starts); ``rare_names`` are its rare entities."""
    when = article.when
    totals: list[tuple[float, str]] = []
    linked: set[str] = set()
    for story_id, fit in pool.similarities(article.article_id, vectors).items():
        story = pool.stories[story_id]
        if is_active(story, when, config):
            raw = config.term_weight * fit.terms + config.entity_weight * fit.entities
            totals.append((raw * time_weight(when, story, config), story_id))
            named = not is_follow_up(story, when, config) or (
                len(rare_names.intersection(story.entities)) >= config.follow_up_names
            )
            if fit.members >= config.member_link and named:
                linked.add(story_id)
    totals.sort(key=lambda pair: (-pair[0], pair[1]))
    eligible = [
        sid for total, sid in totals if total >= required_score(pool.stories[sid], config) and sid in linked
    ]
    if eligible:
        best = score(vectors, when, pool.stories[eligible[0]], config, rare_names)
        story = add_to_story(pool.stories[eligible[0]], article, vectors, best.score, config)
        return replace(best, article_id=article.article_id), story
    story = new_story(article, vectors)
    if not totals:
        return StoryAssignment(article.article_id, story.story_id, REASON_NO_CANDIDATE, 0.0), story
    best = score(vectors, when, pool.stories[totals[0][1]], config, rare_names)
    return replace(best, article_id=article.article_id, story_id=story.story_id, reason=REASON_NEW), story


class StoryGrouper:
    """All stories in memory, for evaluation and small archives; the flow keeps them in the warehouse."""

    def __init__(self, config: StoryConfig = DEFAULT_CONFIG, df: DocumentFrequencies | None = None) -> None:
        self.config = config
        self.df = df if df is not None else DocumentFrequencies()
        self.stories: dict[str, Story] = {}

    def add_batch(self, articles: Sequence[StoryArticle]) -> list[StoryAssignment]:
        """Group one batch against the stories active around its dates."""
        if not articles:
            return []
        # As the warehouse does: stories around the batch's dated articles (undated ones are offered those
        # too), plus stories of undated articles; every story when nothing in the batch is dated.
        dated = [a.published_at for a in articles if a.dated]
        if not dated:
            active = list(self.stories.values())
        else:
            low, high = min(dated), max(dated)
            active = [
                s
                for s in self.stories.values()
                if s.undated
                or days_apart(low, s) <= self.config.follow_up_days
                or days_apart(high, s) <= self.config.follow_up_days
                or low <= s.first_at <= high
            ]
        result = assign_batch(articles, active, self.df, self.config)
        for story in result.stories:
            self.stories[story.story_id] = story
        return result.assignments
