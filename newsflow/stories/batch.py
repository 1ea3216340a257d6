"""Grouping a batch as one pure step: ``group(batch, snapshot, config) -> Changes``.

The step reads what it needs of the warehouse through a :class:`Snapshot` (the store step's transaction,
or an in-memory one in tests) and writes nothing: it returns every change (near-duplicate marks, MinHash
signatures and bands, site lines, stories, document-frequency increments, decisions) for the caller to
write once. The store step and ``newsflow regroup`` call the same step; the document-frequency arithmetic
lives here only.

Order of precedence: an exact duplicate (guid, URL, content hash) stays exact; an article that nearly
repeats a stored or earlier one is marked ``near_duplicate``; every copy joins the story of its original
(decision ``copy``); the other articles are grouped by :func:`newsflow.stories.assign_batch` against the
stories active around their time, with the lines their site printed in another article set aside.

The reads depend on one another (a near-duplicate is confirmed on its original's text; only originals are
grouped; the candidate stories depend on the batch's vectors), so the snapshot answers them as the step
asks, all from one snapshot of the warehouse.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from newsflow.records import (
    BandRow,
    CandidateQuery,
    DocFreqRow,
    DuplicateMark,
    GroupingChanges,
    SignatureRow,
    StoredSignature,
    StoredStory,
    StoryAssignment,
    StoryProbe,
    TextFeatures,
)
from newsflow.stories import boilerplate, neardup
from newsflow.stories.assign import article_vectors, assign_batch, batch_terms, count_batch
from newsflow.stories.model import (
    DEFAULT_CONFIG,
    DOCS_KEY,
    REASON_FOLLOW_UP,
    REASON_JOINED,
    REASON_NEW,
    REASON_NO_CANDIDATE,
    DocumentFrequencies,
    StoryArticle,
    StoryConfig,
)
from newsflow.stories.scoring import rare_names
from newsflow.stories.state import story_from_stored, story_rows

#: Stored stories loaded per article: the best few by weighted cosine within the time window.
CANDIDATE_STORIES = 5
#: The candidate query looks stories up by each article's heaviest terms and entities only (a story worth
#: joining shares them); the article is then scored on its whole vectors.
PROBE_TERMS = 20
PROBE_ENTITIES = 10
#: ... and the stories it may follow up (beyond the window) by its heaviest rare names; the best
#: ``FOLLOW_UP_STORIES`` of those are loaded (a follow-up's story shares the most names with it; two
#: instead of one gave the same dev scores and loaded twice the stories in bench/stories_speed.py).
PROBE_NAMES = 10
FOLLOW_UP_STORIES = 1
#: Terms and entities in more than this share of all counted documents are no probes: their IDF is near
#: zero, so they add next to nothing to a score, but every story holds them and the query's join grows with
#: stories x such terms (100 templated notes against 10,100 stored stories: +190 MB RSS and 0.44 s).
MAX_PROBE_DOC_SHARE = 0.5
#: ... whatever the share, a term in at most this many documents is a probe (in a young warehouse every
#: shared word is in half of the few documents).
PROBE_DOCS_ALWAYS = 100
REASON_COPY = "copy"


class Snapshot(Protocol):
    """What grouping reads of the warehouse, all from one snapshot of it."""

    def signature_candidates(
        self, keys: Iterable[tuple[int, int]], low: datetime | None, high: datetime | None
    ) -> list[StoredSignature]:
        """Stored signatures timed in [low, high] (None: unbounded) sharing a band bucket with ``keys``."""
        ...

    def texts(self, article_ids: Collection[str]) -> dict[str, str]:
        """Stored articles' texts."""
        ...

    def stories_of(self, article_ids: Collection[str]) -> dict[str, str]:
        """The story of each stored article that has one."""
        ...

    def site_line_counts(self, keys: Collection[tuple[str, int]]) -> dict[tuple[str, int], int]:
        """How many original articles of each (site, line hash) printed that line."""
        ...

    def doc_freqs(self, terms: Collection[str]) -> list[DocFreqRow]:
        """Stored document frequencies of ``terms`` (``DOCS_KEY`` counts the documents)."""
        ...

    def candidate_stories(self, probes: Sequence[StoryProbe], query: CandidateQuery) -> dict[str, list[str]]:
        """For each probe's article, the stored stories that may take it, best first (see
        :class:`CandidateQuery`)."""
        ...

    def stories(self, story_ids: Collection[str], *, active_since: datetime | None) -> list[StoredStory]:
        """Stored stories and their centroids."""
        ...


@dataclass(frozen=True)
class GroupingBatch:
    """Articles to group, in arrival order (a regroup: time order), and what is known of them.

    ``marks`` are their exact duplicate marks (a regroup: every mark they have, which stays). ``counted``
    are articles whose terms the stored document frequencies hold already (a regroup). With
    ``find_copies`` near-duplicates are looked for (the store step; a regroup keeps the marks it has).
    With ``learn_lines`` the originals' lines are returned to be counted as their site's (the store step;
    a regroup's were counted when they were stored)."""

    articles: Sequence[StoryArticle]
    marks: Mapping[str, DuplicateMark] = field(default_factory=dict)
    counted: Collection[str] = frozenset()
    find_copies: bool = True
    learn_lines: bool = True


class Replay:
    """A snapshot as it was before ``articles`` (in time order) arrived, for a regroup that groups them
    again in that order: the document frequencies of the ``counted`` ones and the site lines of the
    ``originals`` are held back until their batch is grouped (:meth:`release_words` before it,
    :meth:`release_lines` after it, as the store step counted them), so each article is weighed against what
    came before it and not against what came after. The words held back are those the store step counted:
    each article's text with the lines its site printed earlier set aside, found by going through the
    articles in order from the lines stored before them."""

    def __init__(
        self,
        snapshot: Snapshot,
        articles: Sequence[StoryArticle],
        counted: Collection[str],
        originals: Collection[str],
        config: StoryConfig = DEFAULT_CONFIG,
    ) -> None:
        self._snapshot = snapshot
        self._config = config
        self._originals = set(originals)
        self._lines: Counter[tuple[str, int]] = Counter()
        for a in articles:
            if a.site and a.article_id in self._originals:
                self._lines.update((a.site, h) for h in _lines_of(a))
        copies = {a.article_id for a in articles if a.article_id not in originals}
        as_stored = _without_site_lines(articles, copies, self, _Changes(), learn=False)
        self._counted = {a.article_id: a for a in as_stored if a.article_id in counted}
        self._terms: Counter[str] = Counter()
        self._count(list(self._counted.values()), 1)

    def release_words(self, articles: Sequence[StoryArticle]) -> list[StoryArticle]:
        """Let these articles' words into the document frequencies (their batch is grouped next). Returns
        the articles with the word counts just made attached (``features``), so grouping does not count
        them again (it does when it sets lines aside, and gets the same counts)."""
        counted = [self._counted[a.article_id] for a in articles if a.article_id in self._counted]
        counts = dict(zip([a.article_id for a in counted], self._count(counted, -1), strict=True))
        return [
            replace(a, features=TextFeatures(None, dict(counts[a.article_id][0]),
                                             dict(counts[a.article_id][1]), dict(_lines_of(a))))
            if a.article_id in counts
            else a
            for a in articles
        ]  # fmt: skip

    def release_lines(self, articles: Iterable[StoryArticle]) -> None:
        """Let these articles' lines into their sites' counts (their batch has been grouped)."""
        for a in articles:
            if a.site and a.article_id in self._originals:
                self._lines.subtract((a.site, h) for h in _lines_of(a))

    def _count(self, articles: Sequence[StoryArticle], sign: int) -> list[tuple[Counter[str], Counter[str]]]:
        counts = count_batch(articles, self._config)
        for terms, entities in counts:
            self._terms.update(dict.fromkeys(set(terms) | set(entities), sign))
        self._terms[DOCS_KEY] += sign * len(articles)
        return counts

    def doc_freqs(self, terms: Collection[str]) -> list[DocFreqRow]:
        stored = self._snapshot.doc_freqs(terms)
        return [DocFreqRow(r.term, max(r.df - self._terms[r.term], 0)) for r in stored]

    def site_line_counts(self, keys: Collection[tuple[str, int]]) -> dict[tuple[str, int], int]:
        counts = self._snapshot.site_line_counts(keys)
        return {key: n - self._lines[key] for key, n in counts.items() if n > self._lines[key]}

    def signature_candidates(
        self, keys: Iterable[tuple[int, int]], low: datetime | None, high: datetime | None
    ) -> list[StoredSignature]:
        return self._snapshot.signature_candidates(keys, low, high)

    def texts(self, article_ids: Collection[str]) -> dict[str, str]:
        return self._snapshot.texts(article_ids)

    def stories_of(self, article_ids: Collection[str]) -> dict[str, str]:
        return self._snapshot.stories_of(article_ids)

    def candidate_stories(self, probes: Sequence[StoryProbe], query: CandidateQuery) -> dict[str, list[str]]:
        return self._snapshot.candidate_stories(probes, query)

    def stories(self, story_ids: Collection[str], *, active_since: datetime | None) -> list[StoredStory]:
        return self._snapshot.stories(story_ids, active_since=active_since)


def _lines_of(article: StoryArticle) -> Mapping[int, int]:
    """Hashes of the article's lines, with their word counts."""
    return article.features.lines if article.features else boilerplate.lines(article.text)


@dataclass
class _Changes:
    """The changes as the step collects them (see :class:`GroupingChanges`)."""

    near_marks: dict[str, DuplicateMark] = field(default_factory=dict)
    signatures: list[SignatureRow] = field(default_factory=list)
    bands: list[BandRow] = field(default_factory=list)
    signed_at: dict[str, datetime] = field(default_factory=dict)
    signed_roots: dict[str, str] = field(default_factory=dict)
    site_lines: list[tuple[str, int]] = field(default_factory=list)
    stories: list[StoredStory] = field(default_factory=list)
    doc_freq_increments: Counter[str] = field(default_factory=Counter)
    decisions: list[StoryAssignment] = field(default_factory=list)
    story_ids: dict[str, str] = field(default_factory=dict)

    def frozen(self) -> GroupingChanges:
        return GroupingChanges(
            near_marks=self.near_marks, signatures=tuple(self.signatures), bands=tuple(self.bands),
            signed_at=self.signed_at, signed_roots=self.signed_roots, site_lines=tuple(self.site_lines),
            stories=tuple(self.stories), doc_freq_increments=dict(self.doc_freq_increments),
            decisions=tuple(self.decisions), story_ids=self.story_ids,
            new_stories=sum(d.reason in (REASON_NEW, REASON_NO_CANDIDATE) for d in self.decisions),
            joined=sum(d.reason in (REASON_JOINED, REASON_FOLLOW_UP) for d in self.decisions),
        )  # fmt: skip


def group(
    batch: GroupingBatch,
    snapshot: Snapshot,
    config: StoryConfig = DEFAULT_CONFIG,
    unsigned: Iterable[tuple[StoryArticle, str | None]] = (),
) -> GroupingChanges:
    """Mark the batch's near-duplicates (with ``find_copies``) and give each article a story. ``unsigned``
    are stored articles without a MinHash signature (stored before near-duplicates existed; a regroup),
    each with its first copy or None: they get one, so later copies of them are found."""
    changes = _Changes()
    _sign(unsigned, changes)
    marks = dict(batch.marks)
    if batch.find_copies:
        _find_copies(batch.articles, marks, snapshot, changes)
    copies, root_story = _copies(batch.articles, marks, snapshot)
    originals = _without_site_lines(
        [a for a in batch.articles if a.article_id not in copies], marks, snapshot, changes,
        learn=batch.learn_lines,
    )  # fmt: skip
    _assign(originals, batch.counted, snapshot, config, changes)
    root_story.update(changes.story_ids)
    for article in batch.articles:
        mark = marks.get(article.article_id)
        if article.article_id not in copies or mark is None or mark.of not in root_story:
            continue
        changes.story_ids[article.article_id] = root_story[mark.of]
        changes.decisions.append(
            StoryAssignment(
                article.article_id, root_story[mark.of], REASON_COPY, mark.score, best_other=mark.of,
                shared_terms=(mark.reason,),
            )
        )  # fmt: skip
    return changes.frozen()


def _sign(articles: Iterable[tuple[StoryArticle, str | None]], changes: _Changes) -> None:
    signed = [(a, root, sig) for a, root in articles if (sig := neardup.signature(a.text)) is not None]
    signatures, bands = neardup.index_rows((a.article_id, sig) for a, _, sig in signed)
    changes.signatures += signatures
    changes.bands += bands
    changes.signed_at |= {a.article_id: a.published_at for a, _, _ in signed}
    changes.signed_roots |= {a.article_id: root for a, root, _ in signed if root}


# ---- near-duplicates ------------------------------------------------------------------------------------


def _find_copies(
    articles: Sequence[StoryArticle], marks: dict[str, DuplicateMark], snapshot: Snapshot, changes: _Changes
) -> None:
    """Near-duplicates among the articles without an exact mark, against the stored articles timed near
    them (a copy's match confirmed on the original's text); their signatures go to ``changes``."""
    unmarked = [a for a in articles if a.article_id not in marks]
    signatures = {a.article_id: _signature(a) for a in unmarked}
    keys = [key for sig in signatures.values() if sig is not None for key in neardup.band_keys(sig)]
    candidates = snapshot.signature_candidates(keys, *_near_dup_window(unmarked))
    found = neardup.find_near_duplicates(
        [(a.article_id, a.text) for a in unmarked],
        candidates,
        signatures=signatures,
        text_of=lambda article_id: snapshot.texts([article_id]).get(article_id),
    )
    changes.near_marks = found.marks
    changes.signatures += found.signatures
    changes.bands += found.bands
    changes.signed_at |= {a.article_id: a.published_at for a in unmarked}
    changes.signed_roots |= {article_id: mark.of for article_id, mark in found.marks.items()}
    marks.update(found.marks)


def _near_dup_window(articles: Sequence[StoryArticle]) -> tuple[datetime | None, datetime | None]:
    """Times within which stored copies of ``articles`` are looked for; unbounded (None) when an article
    has no publication date (its stand-in time says nothing about when its original appeared)."""
    if not articles or not all(a.dated for a in articles):
        return None, None
    window = timedelta(days=neardup.WINDOW_DAYS)
    return min(a.published_at for a in articles) - window, max(a.published_at for a in articles) + window


def _signature(article: StoryArticle) -> neardup.Signature | None:
    if article.features is None:
        return neardup.signature(article.text)
    return neardup.from_bytes(article.features.signature) if article.features.signature else None


def _copies(
    articles: Sequence[StoryArticle], marks: Mapping[str, DuplicateMark], snapshot: Snapshot
) -> tuple[set[str], dict[str, str]]:
    """The articles that join their original's story (the original in the batch, or stored with a story),
    and the stories of the stored originals."""
    in_batch = {a.article_id for a in articles}
    stored_roots = {m.of for a, m in marks.items() if a in in_batch and m.of not in in_batch}
    root_story = snapshot.stories_of(stored_roots)
    copies = {
        a.article_id
        for a in articles
        if a.article_id in marks
        and (marks[a.article_id].of in in_batch or marks[a.article_id].of in root_story)
    }
    return copies, root_story


# ---- site boilerplate -----------------------------------------------------------------------------------


def _without_site_lines(
    articles: Sequence[StoryArticle],
    copies: Collection[str],
    snapshot: Snapshot,
    changes: _Changes,
    *,
    learn: bool,
) -> list[StoryArticle]:
    """``articles`` (in order) with the lines their site printed in an earlier original article left out
    of the text their story vectors are counted from; an article that is mostly such lines stays whole.

    Each article's lines count for the articles after it, originals only (one of ``copies`` repeats its
    original's lines by nature). With ``learn`` (the store step) they go to ``changes``; a regroup's are
    stored already (its snapshot holds them back until their batch is grouped: :class:`Replay`)."""
    sited = [(a, _lines_of(a)) for a in articles]
    keys = {(a.site, h) for a, lines in sited if a.site for h in lines}
    known: Counter[tuple[str, int]] = Counter(snapshot.site_line_counts(keys))
    out = []
    for article, lines in sited:
        site = article.site
        if not site:
            out.append(article)
            continue
        repeated = {h for h in lines if known[(site, h)] >= 1}
        words = len(article.text.split()) or 1
        if repeated and sum(lines[h] for h in repeated) < boilerplate.COPY_COVERAGE * words:
            article = replace(article, text=boilerplate.without_lines(article.text, repeated), features=None)
        out.append(article)
        if article.article_id not in copies:
            for h in lines:
                known[(site, h)] += 1
                if learn:
                    changes.site_lines.append((site, h))
    return out


# ---- stories --------------------------------------------------------------------------------------------


def _assign(
    articles: Sequence[StoryArticle],
    counted: Collection[str],
    snapshot: Snapshot,
    config: StoryConfig,
    changes: _Changes,
) -> None:
    """Group ``articles`` against the stored stories active around their times.

    ``counted`` are articles whose terms are in the stored document frequencies already (a regroup):
    they are taken out before grouping and not added again. Articles without a single term get no story.
    """
    all_counts = count_batch(articles, config)
    keep = [i for i, (terms, entities) in enumerate(all_counts) if terms or entities]
    articles = [articles[i] for i in keep]
    counts = [all_counts[i] for i in keep]
    if not articles:
        return
    df = DocumentFrequencies.from_rows(snapshot.doc_freqs(batch_terms(counts) | {DOCS_KEY}))
    for i, article in enumerate(articles):
        if article.article_id in counted:
            df.n_docs -= 1
            for term in set(counts[i][0]) | set(counts[i][1]):
                df.df[term] = max(df.df.get(term, 1) - 1, 0)
    # The candidate query scores with the weights the batch will have once counted.
    batch_df = DocumentFrequencies(df.n_docs, dict(df.df))
    for terms, entities in counts:
        batch_df.add(set(terms) | set(entities))
    vectors = article_vectors(counts, batch_df, config)
    ubiquitous = max(MAX_PROBE_DOC_SHARE * batch_df.n_docs, PROBE_DOCS_ALWAYS)
    probes = [
        StoryProbe(
            a.article_id,
            a.when,
            _heaviest(v.terms, PROBE_TERMS, batch_df.df, ubiquitous),
            _heaviest(v.entities, PROBE_ENTITIES, batch_df.df, ubiquitous),
            _rare_names(v.entities, batch_df, config) if a.dated else {},
        )
        for a, v in zip(articles, vectors, strict=True)
    ]
    query = CandidateQuery(
        window_days=config.window_days,
        follow_up_days=config.follow_up_days,
        min_names=config.follow_up_names,
        term_weight=config.term_weight,
        entity_weight=config.entity_weight,
        top=CANDIDATE_STORIES,
        min_score=config.threshold,
        follow_up_top=FOLLOW_UP_STORIES,
    )
    candidates = snapshot.candidate_stories(probes, query)
    wanted = {story_id for ids in candidates.values() for story_id in ids}
    dated = [a.published_at for a in articles if a.dated]
    active_since = min(dated) - timedelta(days=config.follow_up_days) if dated else None
    loaded = [story_from_stored(s) for s in snapshot.stories(wanted, active_since=active_since)]
    result = assign_batch(articles, loaded, df, config, counts, candidates, vectors)
    changes.stories += [story_rows(s) for s in result.stories]
    increments = Counter(result.df_increments)  # every article of the batch; counted ones are stored
    for i, (terms, entities) in enumerate(counts):
        if articles[i].article_id in counted:
            increments.subtract(set(terms) | set(entities))
            increments[DOCS_KEY] -= 1
    changes.doc_freq_increments.update(increments)
    changes.decisions += result.assignments
    changes.story_ids |= {d.article_id: d.story_id for d in result.assignments}


def _heaviest(
    vector: Mapping[str, float], keep: int, doc_freqs: Mapping[str, int], most_docs: float
) -> dict[str, float]:
    """The ``keep`` heaviest entries of ``vector`` among those in at most ``most_docs`` documents."""
    rare = ((term, weight) for term, weight in vector.items() if doc_freqs.get(term, 0) <= most_docs)
    return dict(sorted(rare, key=lambda kv: -kv[1])[:keep])


def _rare_names(
    entities: Mapping[str, float], doc_freqs: DocumentFrequencies, config: StoryConfig
) -> dict[str, float]:
    """The heaviest ``PROBE_NAMES`` of the entities that are rare names (:func:`rare_names`)."""
    rare = rare_names(entities, doc_freqs, config)
    return _heaviest({e: w for e, w in entities.items() if e in rare}, PROBE_NAMES, {}, 0)
