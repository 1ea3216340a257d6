"""Near-duplicates and stories for a batch, with the state read and written in the warehouse.

The store step calls :func:`group_batch` inside its transaction, after exact dedupe and before the
insert; ``newsflow regroup`` calls :func:`regroup` over a date range. Order of precedence: an exact
duplicate (guid, URL, content hash) stays exact; an article that nearly repeats a stored or earlier one
is marked ``near_duplicate``; every copy joins the story of its original (decision ``copy``); the other
articles are grouped by :func:`newsflow.stories.assign_batch` against the stories active around their time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import duckdb

from newsflow import stories
from newsflow.records import DuplicateMark, StoryAssignment
from newsflow.stories import DEFAULT_CONFIG, StoryArticle, StoryConfig, boilerplate, neardup
from newsflow.warehouse import stories as stories_table

#: Stored stories loaded per article: the best few by weighted cosine within the time window.
CANDIDATE_STORIES = 5
#: The candidate query looks stories up by each article's heaviest terms and entities only (a story worth
#: joining shares them); the article is then scored on its whole vectors.
PROBE_TERMS = 20
PROBE_ENTITIES = 10
#: Terms and entities in more than this share of all counted documents are no probes: their IDF is near
#: zero, so they add next to nothing to a score, but every story holds them and the query's join grows with
#: stories x such terms (100 templated notes against 10,100 stored stories: +190 MB RSS and 0.44 s).
MAX_PROBE_DOC_SHARE = 0.5
#: ... whatever the share, a term in at most this many documents is a probe (in a young warehouse every
#: shared word is in half of the few documents).
PROBE_DOCS_ALWAYS = 100
REASON_COPY = "copy"


@dataclass(frozen=True)
class GroupOutcome:
    """Near-duplicate marks and stories of a batch (exact marks are not repeated here)."""

    near_marks: dict[str, DuplicateMark] = field(default_factory=dict)
    story_ids: dict[str, str] = field(default_factory=dict)
    decisions: list[StoryAssignment] = field(default_factory=list)

    @property
    def new_stories(self) -> int:
        return sum(d.reason in (stories.REASON_NEW, stories.REASON_NO_CANDIDATE) for d in self.decisions)

    @property
    def joined(self) -> int:
        return sum(d.reason == stories.REASON_JOINED for d in self.decisions)


def group_batch(
    con: duckdb.DuckDBPyConnection,
    articles: Sequence[StoryArticle],
    exact: Mapping[str, DuplicateMark],
    now: datetime,
    config: StoryConfig = DEFAULT_CONFIG,
) -> GroupOutcome:
    """Mark near-duplicates among ``articles`` (new, in arrival order; ``exact`` holds their exact marks)
    and give each a story; stores signatures, stories, term statistics and decisions."""
    unmarked = [a for a in articles if a.article_id not in exact]
    signatures = {a.article_id: _signature(a) for a in unmarked}
    keys = [key for sig in signatures.values() if sig is not None for key in neardup.band_keys(sig)]
    times = {a.article_id: a.published_at for a in unmarked}
    candidates = stories_table.candidate_signatures(con, keys, *_near_dup_window(unmarked))
    found = neardup.find_near_duplicates(
        [(a.article_id, a.text) for a in unmarked],
        candidates,
        signatures=signatures,
        text_of=lambda article_id: stories_table.article_texts(con, [article_id]).get(article_id),
    )
    stories_table.insert_signatures(
        con, found.signatures, found.bands, times=times, roots={a: m.of for a, m in found.marks.items()}
    )
    marks = {**exact, **found.marks}
    story_ids, decisions = _group_with_copies(con, articles, marks, {}, now, config, learn_lines=True)
    return GroupOutcome(found.marks, story_ids, decisions)


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


def _group_with_copies(
    con: duckdb.DuckDBPyConnection,
    articles: Sequence[StoryArticle],
    marks: Mapping[str, DuplicateMark],
    counted: Collection[str],
    now: datetime,
    config: StoryConfig,
    *,
    learn_lines: bool,
) -> tuple[dict[str, str], list[StoryAssignment]]:
    """Copies join their original's story; the rest (and copies whose original has none) are grouped, with
    the lines their sites printed before left out (``learn_lines``: count the originals' lines, as the store
    step does; a regroup's articles were counted when they were stored)."""
    in_batch = {a.article_id for a in articles}
    stored_roots = {m.of for a, m in marks.items() if a in in_batch and m.of not in in_batch}
    root_story = stories_table.stories_of(con, stored_roots)
    copies = {
        a.article_id
        for a in articles
        if a.article_id in marks
        and (marks[a.article_id].of in in_batch or marks[a.article_id].of in root_story)
    }
    originals = without_site_lines(
        con, [a for a in articles if a.article_id not in copies], marks, now, learn=learn_lines
    )
    story_ids, decisions = assign_stories(con, originals, counted, now, config)
    root_story.update(story_ids)
    copy_decisions = []
    for article in articles:
        mark = marks.get(article.article_id)
        if article.article_id not in copies or mark is None or mark.of not in root_story:
            continue
        story_ids[article.article_id] = root_story[mark.of]
        copy_decisions.append(
            StoryAssignment(
                article.article_id, root_story[mark.of], REASON_COPY, mark.score, best_other=mark.of,
                shared_terms=(mark.reason,),
            )
        )  # fmt: skip
    stories_table.save_decisions(con, decisions + copy_decisions, now)
    return story_ids, decisions + copy_decisions


def without_site_lines(
    con: duckdb.DuckDBPyConnection,
    articles: Sequence[StoryArticle],
    marks: Mapping[str, DuplicateMark],
    now: datetime,
    *,
    learn: bool,
) -> list[StoryArticle]:
    """``articles`` (in order) with the lines their site printed in another original article left out of
    the text their story vectors are counted from; an article that is mostly such lines stays whole.

    With ``learn`` (the store step) the articles' lines are counted afterwards, originals only (a copy
    repeats its original's lines by nature); without it (a regroup) the articles' own lines are already
    counted, so a line must have been printed twice."""
    sited = [(a, a.features.lines if a.features else boilerplate.lines(a.text)) for a in articles]
    keys = {(a.site, h) for a, lines in sited if a.site for h in lines}
    known: Counter[tuple[str, int]] = Counter(stories_table.site_line_counts(con, keys))
    seen_before = 1 if learn else 2
    out, learned = [], []
    for article, lines in sited:
        site = article.site
        if not site:
            out.append(article)
            continue
        repeated = {h for h in lines if known[(site, h)] >= seen_before}
        words = len(article.text.split()) or 1
        if repeated and sum(lines[h] for h in repeated) < boilerplate.COPY_COVERAGE * words:
            article = replace(article, text=boilerplate.without_lines(article.text, repeated), features=None)
        out.append(article)
        if learn and article.article_id not in marks:
            for h in lines:
                known[(site, h)] += 1
                learned.append((site, h))
    stories_table.add_site_lines(con, learned, now)
    return out


def assign_stories(
    con: duckdb.DuckDBPyConnection,
    articles: Sequence[StoryArticle],
    counted: Collection[str],
    now: datetime,
    config: StoryConfig = DEFAULT_CONFIG,
) -> tuple[dict[str, str], list[StoryAssignment]]:
    """Group ``articles`` against the stored stories active around their times and store the result.

    ``counted`` are articles whose terms are in the stored document frequencies already (a regroup):
    they are taken out before grouping and not added again. Articles without a single term get no story.
    """
    all_counts = stories.count_batch(articles, config)
    keep = [i for i, (terms, entities) in enumerate(all_counts) if terms or entities]
    articles = [articles[i] for i in keep]
    counts = [all_counts[i] for i in keep]
    if not articles:
        return {}, []
    df = stories.DocumentFrequencies.from_rows(
        stories_table.doc_freqs(con, stories.batch_terms(counts) | {stories.DOCS_KEY})
    )
    already = [i for i, a in enumerate(articles) if a.article_id in counted]
    for i in already:
        df.n_docs -= 1
        for term in set(counts[i][0]) | set(counts[i][1]):
            df.df[term] = df.df.get(term, 1) - 1
    # The candidate query scores with the weights the batch will have once counted.
    batch_df = stories.DocumentFrequencies(df.n_docs, dict(df.df))
    for terms, entities in counts:
        batch_df.add(set(terms) | set(entities))
    vectors = stories.article_vectors(counts, batch_df, config)
    ubiquitous = max(MAX_PROBE_DOC_SHARE * batch_df.n_docs, PROBE_DOCS_ALWAYS)
    probes = [
        stories_table.ArticleProbe(
            a.article_id,
            a.when,
            _heaviest(v.terms, PROBE_TERMS, batch_df.df, ubiquitous),
            _heaviest(v.entities, PROBE_ENTITIES, batch_df.df, ubiquitous),
        )
        for a, v in zip(articles, vectors, strict=True)
    ]
    candidates = stories_table.candidate_story_ids(
        con,
        probes,
        window_days=config.window_days,
        term_weight=config.term_weight,
        entity_weight=config.entity_weight,
        top=CANDIDATE_STORIES,
        min_score=config.threshold,
    )
    wanted = {story_id for ids in candidates.values() for story_id in ids}
    dated = [a.published_at for a in articles if a.dated]
    active_since = min(dated) - timedelta(days=config.window_days) if dated else None
    loaded = [
        stories.story_from_stored(s)
        for s in stories_table.load_stories(con, wanted, active_since=active_since)
    ]
    result = stories.assign_batch(articles, loaded, df, config, counts, candidates, vectors)
    stories_table.save_stories(con, [stories.story_rows(s) for s in result.stories], now)
    increments = Counter(result.df_increments)  # every article of the batch; counted ones are stored
    for i, (terms, entities) in enumerate(counts):
        if articles[i].article_id in counted:
            increments.subtract(set(terms) | set(entities))
            increments[stories.DOCS_KEY] -= 1
    stories_table.add_doc_freqs(con, increments)
    return {d.article_id: d.story_id for d in result.assignments}, result.assignments


@dataclass(frozen=True)
class RegroupOutcome:
    """What a regroup did."""

    articles: int
    stories_before: int
    stories_after: int
    joined: int


def regroup_range(
    con: duckdb.DuckDBPyConnection,
    start: datetime,
    end: datetime,
    now: datetime,
    batch_size: int,
    config: StoryConfig = DEFAULT_CONFIG,
) -> RegroupOutcome:
    """Group again every article whose time (published, else first seen) is in [start, end), together
    with the other members of the stories they were in, in time order and in batches. Near-duplicate
    marks stay as they are; articles without a MinHash signature (stored before stories existed) get one,
    so later copies of them are found."""
    rows, before = stories_table.release_range(con, start, end)
    counted = {r.article_id for r in rows if r.counted}
    story_ids: dict[str, str] = {}
    joined = 0
    for offset in range(0, len(rows), batch_size):
        chunk = rows[offset : offset + batch_size]
        articles = [StoryArticle(r.article_id, r.text, r.title, r.at, r.site, dated=r.dated) for r in chunk]
        marks = {
            r.article_id: DuplicateMark(r.duplicate_of, r.dup_reason or "", r.dup_score or 1.0)
            for r in chunk
            if r.duplicate_of
        }
        _sign_unsigned(con, chunk)
        chunk_ids, decisions = _group_with_copies(
            con, articles, marks, counted, now, config, learn_lines=False
        )
        stories_table.set_story_ids(con, chunk_ids)
        story_ids.update(chunk_ids)
        joined += sum(d.reason == stories.REASON_JOINED for d in decisions)
    return RegroupOutcome(len(rows), before, len(set(story_ids.values())), joined)


def _sign_unsigned(con: duckdb.DuckDBPyConnection, rows: Sequence[stories_table.GroupingRow]) -> None:
    """Store signatures for the rows that have none and would have got one (not exact duplicates)."""
    wanted = [
        r for r in rows if not r.signed and (r.duplicate_of is None or r.dup_reason == neardup.DUP_REASON)
    ]
    signed = [(r, sig) for r in wanted if (sig := neardup.signature(r.text)) is not None]
    signatures, bands = neardup.index_rows((r.article_id, sig) for r, sig in signed)
    stories_table.insert_signatures(
        con,
        signatures,
        bands,
        times={r.article_id: r.at for r, _ in signed},
        roots={r.article_id: r.duplicate_of for r, _ in signed if r.duplicate_of},
    )


def _heaviest(
    vector: Mapping[str, float], keep: int, doc_freqs: Mapping[str, int], most_docs: float
) -> dict[str, float]:
    """The ``keep`` heaviest entries of ``vector`` among those in at most ``most_docs`` documents."""
    rare = ((term, weight) for term, weight in vector.items() if doc_freqs.get(term, 0) <= most_docs)
    return dict(sorted(rare, key=lambda kv: -kv[1])[:keep])
