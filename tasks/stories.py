"""Online story grouping: each batch of articles joins an active story or starts a new one.

An article is two sparse vectors: TF-IDF of title and body words (``terms``) and TF-IDF of name-like
tokens, capitalised words in mid-sentence and numbers (``entities``). A story keeps the sums of its members'
vectors (its centroid, pruned to the heaviest terms), its time span and its outlets. An article is scored
against every story active within ``window_days`` of its publication date:

    score = (term_weight * cos(terms) + entity_weight * cos(entities)) * time_factor

and joins the best story if the score reaches ``threshold``; otherwise it starts a story. Entities carry
much of the score so that similar events with different actors (HP buying EDS vs HP buying EYP, two
celebrities entering rehab) stay apart even when their vocabulary is the same.

Document frequencies are state too (``DocumentFrequencies``), so term weights improve as history grows.
All state converts to records (``StoredStory``, ``DocFreqRow``) for the warehouse; a batch
needs only the candidate stories' rows and the document frequencies of the batch's terms.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from newsflow.records import DocFreqRow, StoredStory, StoryAssignment, StoryRow, TextFeatures

Vector = dict[str, float]

#: Key of the row in ``DocFreqRow``s that holds the number of documents counted.
DOCS_KEY = ""
REASON_JOINED = "joined"
REASON_NEW = "new_story"
REASON_NO_CANDIDATE = "new_story_no_candidate"

_APOSTROPHE = "\u2019"
_TOKEN = re.compile(r"[^\W_]+(?:['\u2019.&-][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?:;\"“”]$")
_STOPWORDS = frozenset(
    """a about above after again against all almost also although am among an and another any are around as
    at be because been before being below between both but by can could did do does doing down during each
    either else ever every few for from further had has have having he her here hers herself him himself his
    how however i if in into is it its itself just last least less like made make many may me might more
    most much must my myself near neither new next no nor not now of off often on once one only or other
    our ours ourselves out over own per perhaps rather really said same say says she should since so some
    still such than that the their theirs them themselves then there these they this those though through
    thus to too two under until up upon us very via was we well were what when where whether which while
    who whom whose why will with within without would yet you your yours yourself yourselves mr mrs ms
    monday tuesday wednesday thursday friday saturday sunday today yesterday tomorrow week weeks year years
    day days time told according reported report reports news read more""".split()  # noqa: SIM905
)


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
    #: A story whose members matched it closely asks as much of newcomers: the score must also reach
    #: ``cohesion`` times the mean score its members joined with (keeps a tight event from absorbing a
    #: similar one with other actors).
    cohesion: float = 0.5
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
    ``dated`` False to say so."""

    article_id: str
    text: str
    title: str | None
    published_at: datetime
    site: str | None
    #: Counts computed earlier (:func:`tasks.features.text_features`); None: tokenise here.
    features: TextFeatures | None = field(default=None, repr=False, compare=False)
    dated: bool = True


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
    """The decisions for a batch, the stories it created or changed, and document-frequency increments."""

    assignments: list[StoryAssignment]
    stories: list[Story]
    df_increments: list[DocFreqRow]


# ---- features -------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1 << 17)
def _normalise(token: str) -> str:
    """Case-fold, drop possessives and plural endings (a light stemmer: 'deals' and 'deal' match)."""
    word = token.casefold().replace(_APOSTROPHE, "'")
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokens(text: str) -> list[tuple[str, bool]]:
    """(word, starts_sentence) for each word of the text, NFKC-normalised."""
    out: list[tuple[str, bool]] = []
    start = True
    for line in unicodedata.normalize("NFKC", text).splitlines():
        start = True
        for match in _TOKEN.finditer(line):
            word = match.group()
            out.append((word, start))
            after = line[match.end() : match.end() + 2].strip()
            start = bool(after) and bool(_SENTENCE_END.match(after[0]))
    return out


def _is_term(word: str) -> bool:
    return word not in _STOPWORDS and (len(word) > 1 or word.isdigit())


def _entity_candidates(words: list[tuple[str, bool]]) -> list[str]:
    """Name-like words: capitalised mid-sentence (or capitalised elsewhere in the text too), and numbers."""
    mid_caps = {w for w, start in words if not start and w[:1].isupper()}
    out = []
    for word, start in words:
        if word[:1].isdigit() or (word[:1].isupper() and (not start or word in mid_caps)):
            norm = _normalise(word)
            if _is_term(norm):
                out.append(norm)
    return out


def _title_is_headline_case(title_words: list[tuple[str, bool]]) -> bool:
    content = [w for w, _ in title_words if w.casefold() not in _STOPWORDS and w[:1].isalpha()]
    return bool(content) and sum(w[:1].isupper() for w in content) / len(content) > 0.6


def article_counts(
    text: str, title_text: str | None, config: StoryConfig = DEFAULT_CONFIG
) -> tuple[Counter[str], Counter[str]]:
    """Raw term and entity counts of a body and its title: the title counts ``title_repeat`` times."""
    body = tokens(text)
    title = tokens(title_text or "")
    terms: Counter[str] = Counter()
    for position, (word, _) in enumerate(body):
        norm = _normalise(word)
        if _is_term(norm):
            terms[norm] += config.lead_repeat if position < config.lead_words else 1
    for word, _ in title:
        norm = _normalise(word)
        if _is_term(norm):
            terms[norm] += config.title_repeat
    entities = Counter(_entity_candidates(body))
    body_entities = set(entities)
    # Headline case capitalises every word: keep only title words that are names in the body too.
    title_entities = _entity_candidates(title)
    if _title_is_headline_case(title):
        title_entities = [e for e in title_entities if e in body_entities]
    for entity in title_entities:
        entities[entity] += config.title_repeat
    return terms, entities


def weigh(counts: Mapping[str, int], df: DocumentFrequencies, keep: int) -> Vector:
    """Sublinear TF times IDF, the ``keep`` heaviest terms, L2-normalised."""
    weights = {t: (1.0 + math.log(c)) * df.idf(t) for t, c in counts.items()}
    top = dict(sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:keep])
    norm = math.sqrt(sum(w * w for w in top.values())) or 1.0
    return {t: w / norm for t, w in top.items()}


# ---- scoring --------------------------------------------------------------------------------------------


def _norm(vector: Mapping[str, float]) -> float:
    return math.sqrt(sum(w * w for w in vector.values()))


def cosine(unit: Mapping[str, float], other: Mapping[str, float]) -> float:
    """Cosine of a unit vector with any vector (0 when either is empty)."""
    norm = _norm(other)
    if not unit or norm == 0.0:
        return 0.0
    small, big = (unit, other) if len(unit) <= len(other) else (other, unit)
    return sum(w * big.get(t, 0.0) for t, w in small.items()) / norm


def days_apart(when: datetime, story: Story) -> float:
    """Days from ``when`` to the story's time span (0 inside it)."""
    if story.first_at <= when <= story.last_at:
        return 0.0
    edge = story.first_at if when < story.first_at else story.last_at
    return abs((when - edge).total_seconds()) / 86400.0


def time_factor(days: float, config: StoryConfig = DEFAULT_CONFIG) -> float:
    """1 within ``same_time_days``, falling linearly to ``min_time_factor`` at the window's edge."""
    if days <= config.same_time_days:
        return 1.0
    span = max(config.window_days - config.same_time_days, 1e-9)
    return 1.0 - (1.0 - config.min_time_factor) * min(1.0, (days - config.same_time_days) / span)


def score(
    vectors: ArticleVectors, when: datetime, story: Story, config: StoryConfig = DEFAULT_CONFIG
) -> StoryAssignment:
    """How well an article fits a story (the assignment it would get if it joined)."""
    term_sim = cosine(vectors.terms, story.terms)
    entity_sim = cosine(vectors.entities, story.entities)
    days = days_apart(when, story)
    total = (config.term_weight * term_sim + config.entity_weight * entity_sim) * time_factor(days, config)
    shared = sorted(
        (t for t in vectors.entities if t in story.entities),
        key=lambda t: -vectors.entities[t] * story.entities[t],
    )[:5]
    return StoryAssignment(
        article_id="",
        story_id=story.story_id,
        reason=REASON_JOINED,
        score=round(total, 4),
        term_similarity=round(term_sim, 4),
        entity_similarity=round(entity_sim, 4),
        days_apart=round(days, 2),
        best_other=story.story_id,
        shared_terms=tuple(shared),
    )


def required_score(story: Story, config: StoryConfig = DEFAULT_CONFIG) -> float:
    """The score an article needs to join: the threshold, or more for a cohesive story."""
    if story.article_count < 2:
        return config.threshold
    mean = story.join_score_sum / (story.article_count - 1)
    return max(config.threshold, config.cohesion * mean)


def is_active(story: Story, when: datetime, config: StoryConfig = DEFAULT_CONFIG) -> bool:
    """The story's span, widened by the window, contains ``when``."""
    return days_apart(when, story) <= config.window_days


# ---- story state ----------------------------------------------------------------------------------------


def story_id_for(article_id: str) -> str:
    """Stable id of the story an article founds (re-running a range gives the same ids)."""
    return "s_" + hashlib.sha256(article_id.encode()).hexdigest()[:16]


def _prune(vector: Vector, keep: int) -> Vector:
    return dict(sorted(vector.items(), key=lambda kv: (-kv[1], kv[0]))[:keep])


def _add(total: Vector, unit: Vector, keep: int) -> Vector:
    out = dict(total)
    for term, weight in unit.items():
        out[term] = out.get(term, 0.0) + weight
    return _prune(out, keep)


def new_story(article: StoryArticle, vectors: ArticleVectors) -> Story:
    """A story of one article."""
    return Story(
        story_id=story_id_for(article.article_id),
        headline=article.title,
        headline_article_id=article.article_id if article.title else None,
        first_at=article.published_at,
        last_at=article.published_at,
        article_count=1,
        sites=(article.site,) if article.site else (),
        join_score_sum=0.0,
        terms=dict(vectors.terms),
        entities=dict(vectors.entities),
    )


def add_to_story(
    story: Story,
    article: StoryArticle,
    vectors: ArticleVectors,
    join_score: float,
    config: StoryConfig = DEFAULT_CONFIG,
) -> Story:
    """The story with one more member; the headline is the first member's title that exists."""
    sites = story.sites
    if article.site and article.site not in sites:
        sites = (*sites, article.site)
    headline_missing = story.headline is None and article.title
    return replace(
        story,
        headline=article.title if headline_missing else story.headline,
        headline_article_id=article.article_id if headline_missing else story.headline_article_id,
        first_at=min(story.first_at, article.published_at),
        last_at=max(story.last_at, article.published_at),
        article_count=story.article_count + 1,
        sites=sites,
        join_score_sum=story.join_score_sum + join_score,
        terms=_add(story.terms, vectors.terms, config.max_story_terms),
        entities=_add(story.entities, vectors.entities, config.max_story_entities),
    )


def story_rows(story: Story) -> StoredStory:
    """A story as the warehouse stores it."""
    row = StoryRow(
        story_id=story.story_id,
        headline=story.headline,
        headline_article_id=story.headline_article_id,
        first_at=story.first_at,
        last_at=story.last_at,
        article_count=story.article_count,
        sites=story.sites,
        join_score_sum=story.join_score_sum,
        term_norm=_norm(story.terms),
        entity_norm=_norm(story.entities),
    )
    return StoredStory(row, dict(story.terms), dict(story.entities))


def story_from_stored(stored: StoredStory) -> Story:
    """A story back from what the warehouse holds."""
    row = stored.row
    return Story(
        story_id=row.story_id,
        headline=row.headline,
        headline_article_id=row.headline_article_id,
        first_at=row.first_at,
        last_at=row.last_at,
        article_count=row.article_count,
        sites=tuple(row.sites),
        join_score_sum=row.join_score_sum,
        terms=stored.terms,
        entities=stored.entities,
    )


# ---- the batch ------------------------------------------------------------------------------------------


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
    """Assign each article (in publication order) to an active story or a new one.

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
    pool = _Pool(stories, candidates)
    touched: dict[str, Story] = {}
    decisions: list[StoryAssignment] = []
    for i in sorted(range(len(articles)), key=lambda i: articles[i].published_at):
        decision, story = _decide(articles[i], vectors[i], pool, config)
        pool.put(story)
        touched[story.story_id] = story
        decisions.append(decision)
    position = {a.article_id: n for n, a in enumerate(articles)}
    decisions.sort(key=lambda d: position[d.article_id])
    return BatchResult(decisions, list(touched.values()), [DocFreqRow(t, n) for t, n in increments.items()])


class _Pool:
    """The stories an article may join, scored by sparse dot products.

    Stories in the index (postings term -> stories) are found by any shared term: every story when no
    ``candidates`` are given, else only the stories the batch creates. Stored stories named in
    ``candidates`` (article id -> story ids, from the warehouse's candidate query) are scored, in their
    latest state, for their article only, so a batch does not pay to index thousands of stored centroids.
    """

    def __init__(self, stories: Iterable[Story], candidates: Mapping[str, Collection[str]] | None) -> None:
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
        self._norms[story.story_id] = (_norm(story.terms), _norm(story.entities))

    def _index(self, story: Story) -> None:
        self._indexed.add(story.story_id)
        for kind, vector in (("t", story.terms), ("e", story.entities)):
            for term in vector:
                self._postings.setdefault((kind, term), set()).add(story.story_id)

    def similarities(self, article_id: str, vectors: ArticleVectors) -> dict[str, tuple[float, float]]:
        """(term cosine, entity cosine) with every story the article may join."""
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
            out[story_id] = (
                term_dot / term_norm if term_norm else 0.0,
                entity_dot / entity_norm if entity_norm else 0.0,
            )
        return out


def _decide(
    article: StoryArticle, vectors: ArticleVectors, pool: _Pool, config: StoryConfig
) -> tuple[StoryAssignment, Story]:
    when = article.published_at
    totals: list[tuple[float, str]] = []
    for story_id, (term_sim, entity_sim) in pool.similarities(article.article_id, vectors).items():
        story = pool.stories[story_id]
        if is_active(story, when, config):
            raw = config.term_weight * term_sim + config.entity_weight * entity_sim
            totals.append((raw * time_factor(days_apart(when, story), config), story_id))
    totals.sort(key=lambda pair: (-pair[0], pair[1]))
    eligible = [sid for total, sid in totals if total >= required_score(pool.stories[sid], config)]
    if eligible:
        best = score(vectors, when, pool.stories[eligible[0]], config)
        story = add_to_story(pool.stories[eligible[0]], article, vectors, best.score, config)
        return replace(best, article_id=article.article_id), story
    story = new_story(article, vectors)
    if not totals:
        return StoryAssignment(article.article_id, story.story_id, REASON_NO_CANDIDATE, 0.0), story
    best = score(vectors, when, pool.stories[totals[0][1]], config)
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
        low = min(a.published_at for a in articles)
        high = max(a.published_at for a in articles)
        active = [
            s
            for s in self.stories.values()
            if days_apart(low, s) <= self.config.window_days
            or days_apart(high, s) <= self.config.window_days
            or low <= s.first_at <= high
        ]
        result = assign_batch(articles, active, self.df, self.config)
        for story in result.stories:
            self.stories[story.story_id] = story
        return result.assignments
