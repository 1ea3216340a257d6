"""Grouping's state in the warehouse: MinHash signatures and LSH bands, document frequencies, site lines,
stories and their centroids, decisions; read through :class:`WarehouseSnapshot` (what
``newsflow.stories.batch.group`` asks) and written by :func:`write_changes`, once per batch.

Every look-up for a batch is one set-based query (a hash join with the batch's keys registered as an Arrow
table), never a query per article and never a full read into Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from newsflow.records import (
    BandRow,
    CandidateQuery,
    DocFreqRow,
    GroupingChanges,
    SignatureRow,
    StoredSignature,
    StoredStory,
    StoryAssignment,
    StoryProbe,
    StoryRow,
)
from newsflow.warehouse.arrow import registered
from newsflow.warehouse.articles import affected, article_texts

_TS = pa.timestamp("us", tz="UTC")

_STORY_SCHEMA = pa.schema(
    [
        ("story_id", pa.string()),
        ("headline", pa.string()),
        ("headline_article_id", pa.string()),
        ("first_at", _TS),
        ("last_at", _TS),
        ("article_count", pa.int32()),
        ("sites", pa.list_(pa.string())),
        ("join_score_sum", pa.float64()),
        ("term_norm", pa.float64()),
        ("entity_norm", pa.float64()),
        ("undated", pa.bool_()),
        ("updated_at", _TS),
    ]
)
_STORY_COLUMNS = ", ".join(_STORY_SCHEMA.names)
_TERM_SCHEMA = pa.schema(
    [
        ("story_id", pa.string()),
        ("kind", pa.string()),
        ("term", pa.string()),
        ("weight", pa.float64()),
    ]
)
_DECISION_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("story_id", pa.string()),
        ("reason", pa.string()),
        ("score", pa.float64()),
        ("term_similarity", pa.float64()),
        ("entity_similarity", pa.float64()),
        ("days_apart", pa.float64()),
        ("best_other", pa.string()),
        ("shared_terms", pa.list_(pa.string())),
        ("member_similarity", pa.float64()),
        ("decided_at", _TS),
    ]
)
_VECTOR_SCHEMA = pa.schema(
    [
        ("article_id", pa.string()),
        ("lo", _TS),
        ("hi", _TS),
        ("kind", pa.string()),
        ("term", pa.string()),
        ("weight", pa.float64()),
    ]
)


@dataclass(frozen=True)
class GroupingRow:
    """A stored article as grouping reads it back (regroup)."""

    article_id: str
    text: str
    title: str | None
    at: datetime
    dated: bool  # ``at`` is the publication time (else the time first seen)
    site: str | None
    duplicate_of: str | None
    dup_reason: str | None
    dup_score: float | None
    counted: bool  # its terms are in term_stats already
    signed: bool  # it has a MinHash signature (articles stored before migration 0003 have none)


# ---- near-duplicates ------------------------------------------------------------------------------------


def candidate_signatures(
    con: duckdb.DuckDBPyConnection,
    keys: Iterable[tuple[int, int]],
    low: datetime | None = None,
    high: datetime | None = None,
) -> list[StoredSignature]:
    """Signatures of articles timed in [low, high] (None: unbounded) sharing any (band, bucket) with
    ``keys``, each with its first copy, oldest first. A time range lets the scans skip the rest of
    history."""
    unique = sorted(set(keys))
    if not unique:
        return []
    batch = pa.table(
        {"band": [b for b, _ in unique], "bucket": [k for _, k in unique]},
        schema=pa.schema([("band", pa.int16()), ("bucket", pa.int64())]),
    )
    with registered(con, "band_keys", batch):
        rows = con.execute(
            """
            SELECT s.article_id, s.signature, s.root
            FROM (
                SELECT DISTINCT l.article_id FROM lsh_bands l JOIN band_keys USING (band, bucket)
                WHERE l.article_at BETWEEN $low AND $high
            ) c
            JOIN minhash_signatures s USING (article_id)
            WHERE s.article_at BETWEEN $low AND $high
            ORDER BY s.article_at, s.article_id
            """,
            {"low": low or _EARLIEST, "high": high or _LATEST},
        ).fetchall()
    return [StoredSignature(r[0], r[1], r[2]) for r in rows]


_EARLIEST = datetime.min.replace(tzinfo=UTC)
_LATEST = datetime.max.replace(tzinfo=UTC)


def insert_signatures(
    con: duckdb.DuckDBPyConnection,
    signatures: Sequence[SignatureRow],
    bands: Sequence[BandRow],
    *,
    times: Mapping[str, datetime],
    roots: Mapping[str, str],
) -> None:
    """Store signatures and their band rows (an article already stored keeps its first signature).

    ``times`` holds each article's time (published, else first seen); ``roots`` the first copy of each
    near-duplicate (the others are their own)."""
    if not signatures:
        return
    sigs = pa.table(
        {
            "article_id": [s.article_id for s in signatures],
            "signature": [s.signature for s in signatures],
            "root": [roots.get(s.article_id, s.article_id) for s in signatures],
            "article_at": [times[s.article_id] for s in signatures],
        },
        schema=pa.schema(
            [("article_id", pa.string()), ("signature", pa.binary()), ("root", pa.string()),
             ("article_at", pa.timestamp("us", tz="UTC"))]
        ),
    )  # fmt: skip
    band_table = pa.table(
        {
            "band": [b.band for b in bands],
            "bucket": [b.bucket for b in bands],
            "article_id": [b.article_id for b in bands],
            "article_at": [times[b.article_id] for b in bands],
        },
        schema=pa.schema(
            [("band", pa.int16()), ("bucket", pa.int64()), ("article_id", pa.string()),
             ("article_at", pa.timestamp("us", tz="UTC"))]
        ),
    )  # fmt: skip
    with registered(con, "new_signatures", sigs), registered(con, "new_bands", band_table):
        con.execute(
            """
            INSERT INTO lsh_bands SELECT band, bucket, article_id, article_at FROM new_bands
            WHERE article_id NOT IN (SELECT article_id FROM new_signatures SEMI JOIN minhash_signatures
                                     USING (article_id))
            """
        )
        con.execute(
            "INSERT INTO minhash_signatures"
            " SELECT article_id, signature, root, article_at FROM new_signatures"
            " ANTI JOIN minhash_signatures USING (article_id)"
        )


# ---- document frequencies -------------------------------------------------------------------------------


def doc_freqs(con: duckdb.DuckDBPyConnection, terms: Collection[str]) -> list[DocFreqRow]:
    """Stored document frequencies of ``terms`` (include ``''`` for the number of documents)."""
    if not terms:
        return []
    with registered(con, "wanted_terms", pa.table({"term": sorted(terms)}, schema=_TERMS_ONLY)):
        rows = con.execute("SELECT term, df FROM term_stats JOIN wanted_terms USING (term)").fetchall()
    return [DocFreqRow(r[0], int(r[1])) for r in rows]


_TERMS_ONLY = pa.schema([("term", pa.string())])


def add_doc_freqs(con: duckdb.DuckDBPyConnection, increments: Mapping[str, int]) -> None:
    """Add ``increments`` (documents by term; negative to take documents out; the term ``''`` counts
    documents) to the stored document frequencies. A mapping rather than a row object per term: a batch of
    100 articles has 10,000-20,000 distinct terms."""
    changed = {term: n for term, n in increments.items() if n}
    if not changed:
        return
    table = pa.table(
        {"term": list(changed), "df": list(changed.values())},
        schema=pa.schema([("term", pa.string()), ("df", pa.int64())]),
    )
    with registered(con, "df_increments", table):
        con.execute(
            "MERGE INTO term_stats USING df_increments AS i ON term_stats.term = i.term"
            " WHEN MATCHED THEN UPDATE SET df = term_stats.df + i.df"
            " WHEN NOT MATCHED THEN INSERT (term, df) VALUES (i.term, i.df)"
        )


# ---- site lines (boilerplate) ---------------------------------------------------------------------------

_SITE_LINE_SCHEMA = pa.schema([("site", pa.string()), ("line_hash", pa.int64())])


def site_line_counts(
    con: duckdb.DuckDBPyConnection, keys: Collection[tuple[str, int]]
) -> dict[tuple[str, int], int]:
    """How many original articles of each (site, line hash) printed that line (absent: none)."""
    if not keys:
        return {}
    wanted = pa.table(
        {"site": [k[0] for k in keys], "line_hash": [k[1] for k in keys]}, schema=_SITE_LINE_SCHEMA
    )
    with registered(con, "wanted_lines", wanted):
        rows = con.execute(
            "SELECT site, line_hash, articles FROM site_lines SEMI JOIN wanted_lines USING (site, line_hash)"
        ).fetchall()
    return {(site, line): int(n) for site, line, n in rows}


def add_site_lines(con: duckdb.DuckDBPyConnection, keys: Sequence[tuple[str, int]], now: datetime) -> None:
    """Count one more article for each (site, line hash) of ``keys`` (a key per article and line)."""
    if not keys:
        return
    increments = Counter(keys)
    table = pa.table(
        {
            "site": [k[0] for k in increments],
            "line_hash": [k[1] for k in increments],
            "n": list(increments.values()),
        },
        schema=_SITE_LINE_SCHEMA.append(pa.field("n", pa.int32())),
    )
    with registered(con, "line_increments", table):
        con.execute(
            "MERGE INTO site_lines USING line_increments AS i"
            " ON site_lines.site = i.site AND site_lines.line_hash = i.line_hash"
            " WHEN MATCHED THEN UPDATE SET articles = site_lines.articles + i.n, last_seen = $now"
            " WHEN NOT MATCHED THEN INSERT (site, line_hash, articles, last_seen)"
            " VALUES (i.site, i.line_hash, i.n, $now)",
            {"now": now},
        )


# ---- stories --------------------------------------------------------------------------------------------


def candidate_story_ids(
    con: duckdb.DuckDBPyConnection,
    probes: Sequence[StoryProbe],
    *,
    window_days: float,
    term_weight: float,
    entity_weight: float,
    top: int,
    min_score: float,
    follow_up_days: float | None = None,
    min_names: int = 3,
    follow_up_top: int = 2,
) -> dict[str, list[str]]:
    """Stories that may take the articles: for each article, among stories whose span widened by
    ``window_days`` contains its time, the ``top`` best by weighted cosine over the probe's terms (the best
    one whatever its score, the others only from ``min_score``); then, among stories whose span widened by
    ``follow_up_days`` contains its time and that share ``min_names`` or more of the probe's names, the
    ``follow_up_top`` best by the cosine of those names (follow-ups). Returns article id -> story ids, best
    first.

    An undated probe looks around the batch's dated probes (from the first one's window to the last one's),
    or at every story when none is dated. A story of undated articles is offered to articles published up
    to the window after its stand-in time."""
    if not probes:
        return {}
    window = timedelta(days=window_days)
    reach = timedelta(days=max(follow_up_days or 0.0, window_days)) - window
    dated = [p.at for p in probes if p.at is not None]
    neighbours = (min(dated) - window, max(dated) + window) if dated else (_EARLIEST, _LATEST)
    bounds = {p.article_id: (p.at - window, p.at + window) if p.at else neighbours for p in probes}
    columns = _long_vectors([(p.article_id, p.terms, p.entities, p.names) for p in probes])
    columns["article_id"] = columns.pop("key")
    columns["lo"] = [bounds[article_id][0] for article_id in columns["article_id"]]
    columns["hi"] = [bounds[article_id][1] for article_id in columns["article_id"]]
    table = pa.table(columns, schema=_VECTOR_SCHEMA)
    low = min(lo for lo, _ in bounds.values())
    high = max(hi for _, hi in bounds.values())
    with registered(con, "batch_vectors", table):
        rows = con.execute(
            """
            WITH active AS (
                SELECT story_id, first_at, last_at, term_norm, entity_norm,
                       coalesce(undated, false) AS undated
                FROM stories
                WHERE last_at >= $low AND (first_at <= $high OR undated)
            ),
            hits AS (
                SELECT v.article_id, any_value(v.lo) AS lo, any_value(v.hi) AS hi, t.story_id,
                       coalesce(sum(v.weight * t.weight) FILTER (WHERE v.kind = 't'), 0) AS term_dot,
                       coalesce(sum(v.weight * t.weight) FILTER (WHERE v.kind = 'e'), 0) AS entity_dot
                FROM (SELECT * FROM batch_vectors WHERE kind IN ('t', 'e')) v
                JOIN (SELECT * FROM story_terms WHERE last_at >= $low) t USING (kind, term)
                SEMI JOIN active USING (story_id)
                GROUP BY v.article_id, t.story_id
            ),
            scored AS (
                SELECT h.article_id, h.story_id,
                       $tw * CASE WHEN a.term_norm > 0 THEN h.term_dot / a.term_norm ELSE 0 END
                     + $ew * CASE WHEN a.entity_norm > 0 THEN h.entity_dot / a.entity_norm ELSE 0 END AS score
                FROM hits h JOIN active a USING (story_id)
                WHERE a.last_at >= h.lo AND (a.first_at <= h.hi OR a.undated)
            ),
            near AS (
                SELECT article_id, story_id, score FROM scored
                QUALIFY row_number() OVER (PARTITION BY article_id ORDER BY score DESC, story_id) <= $top
                    AND (row_number() OVER (PARTITION BY article_id ORDER BY score DESC, story_id) = 1
                         OR score >= $min_score)
            ),
            named AS (
                SELECT v.article_id, any_value(v.lo) - $reach AS lo, any_value(v.hi) + $reach AS hi,
                       t.story_id, sum(v.weight * t.weight) AS name_dot
                FROM (SELECT * FROM batch_vectors WHERE kind = 'n') v
                JOIN (SELECT story_id, term, weight FROM story_terms
                      WHERE kind = 'e' AND last_at >= $far_low) t USING (term)
                GROUP BY v.article_id, t.story_id
                HAVING count(*) >= $min_names
            ),
            far AS (
                SELECT n.article_id, n.story_id, n.name_dot / s.entity_norm AS score
                FROM named n JOIN stories s USING (story_id)
                WHERE NOT coalesce(s.undated, false) AND s.entity_norm > 0
                      AND s.last_at >= n.lo AND s.first_at <= n.hi
                QUALIFY row_number() OVER (PARTITION BY n.article_id ORDER BY score DESC, story_id)
                    <= $follow_up_top
            )
            SELECT article_id, story_id, 0 AS part, score FROM near
            UNION ALL
            SELECT article_id, story_id, 1 AS part, score FROM far ANTI JOIN near USING (article_id, story_id)
            ORDER BY article_id, part, score DESC, story_id
            """,
            {
                "low": low,
                "high": high,
                "far_low": low - reach if low - _EARLIEST > reach else _EARLIEST,
                "reach": reach,
                "min_names": min_names,
                "tw": term_weight,
                "ew": entity_weight,
                "top": top,
                "min_score": min_score,
                "follow_up_top": follow_up_top,
            },
        ).fetchall()
    out: dict[str, list[str]] = {}
    for article_id, story_id, _, _ in rows:
        out.setdefault(article_id, []).append(story_id)
    return out


def _long_vectors(
    vectors: Sequence[tuple[str, Mapping[str, float], Mapping[str, float], Mapping[str, float]]],
) -> dict[str, list[Any]]:
    """(key, terms, entities, names) as long columns ``key``, ``kind`` (``t``/``e``/``n``), ``term``,
    ``weight``."""
    columns: dict[str, list[Any]] = {"key": [], "kind": [], "term": [], "weight": []}
    for key, terms, entities, names in vectors:
        for kind, vector in (("t", terms), ("e", entities), ("n", names)):
            columns["key"] += [key] * len(vector)
            columns["kind"] += [kind] * len(vector)
            columns["term"] += vector.keys()
            columns["weight"] += vector.values()
    return columns


def load_stories(
    con: duckdb.DuckDBPyConnection, story_ids: Collection[str], *, active_since: datetime | None = None
) -> list[StoredStory]:
    """Stories and their centroids, by id; ``active_since`` (a lower bound of the stories' ``last_at``)
    lets the scan skip older history."""
    if not story_ids:
        return []
    with registered(con, "wanted_stories", pa.table({"story_id": sorted(story_ids)})):
        since = {"since": active_since or _EARLIEST}
        heads = con.execute(
            f"SELECT {_STORY_COLUMNS} FROM stories SEMI JOIN wanted_stories USING (story_id)"
            " WHERE last_at >= $since ORDER BY story_id",
            since,
        ).fetchall()
        vectors = con.execute(
            "SELECT story_id, kind, list(term), list(weight) FROM story_terms"
            " SEMI JOIN wanted_stories USING (story_id) WHERE last_at >= $since GROUP BY story_id, kind",
            since,
        ).fetchall()
    by_story: dict[tuple[str, str], dict[str, float]] = {
        (story_id, kind): dict(zip(terms, weights, strict=True)) for story_id, kind, terms, weights in vectors
    }
    return [
        StoredStory(
            StoryRow(h[0], h[1], h[2], h[3], h[4], h[5], tuple(h[6]), h[7], h[8], h[9], bool(h[10])),
            by_story.get((h[0], "t"), {}),
            by_story.get((h[0], "e"), {}),
        )
        for h in heads
    ]


def save_stories(con: duckdb.DuckDBPyConnection, stories: Sequence[StoredStory], now: datetime) -> None:
    """Upsert stories and replace their centroids."""
    if not stories:
        return
    heads = pa.Table.from_pylist(
        [s.row.__dict__ | {"sites": list(s.row.sites), "updated_at": now} for s in stories],
        schema=_STORY_SCHEMA,
    )
    term_columns = _long_vectors([(s.row.story_id, s.terms, s.entities, {}) for s in stories])
    term_columns["story_id"] = term_columns.pop("key")
    terms = pa.table(term_columns, schema=_TERM_SCHEMA)
    with registered(con, "story_batch", heads), registered(con, "story_term_batch", terms):
        _upsert(con, "stories", "story_id", "story_batch", _STORY_SCHEMA.names)
        con.execute("DELETE FROM story_terms WHERE story_id IN (SELECT story_id FROM story_batch)")
        con.execute(
            "INSERT INTO story_terms SELECT t.story_id, t.kind, t.term, t.weight, s.last_at"
            " FROM story_term_batch t JOIN story_batch s USING (story_id)"
        )


def save_decisions(
    con: duckdb.DuckDBPyConnection, decisions: Sequence[StoryAssignment], now: datetime
) -> None:
    """Record (or replace) why each article is in its story."""
    if not decisions:
        return
    rows = [d.__dict__ | {"shared_terms": list(d.shared_terms), "decided_at": now} for d in decisions]
    with registered(con, "decision_batch", pa.Table.from_pylist(rows, schema=_DECISION_SCHEMA)):
        _upsert(con, "story_decisions", "article_id", "decision_batch", _DECISION_SCHEMA.names)


def _upsert(con: duckdb.DuckDBPyConnection, table: str, key: str, batch: str, columns: Sequence[str]) -> None:
    """Insert ``batch``'s rows into ``table``, replacing those whose ``key`` is stored (fixed names only:
    the lake has no PRIMARY KEY for ON CONFLICT, so MERGE does it)."""
    updates = ", ".join(f"{c} = b.{c}" for c in columns if c != key)
    names = ", ".join(columns)
    values = ", ".join(f"b.{c}" for c in columns)
    con.execute(
        f"MERGE INTO {table} USING {batch} AS b ON {table}.{key} = b.{key}"
        f" WHEN MATCHED THEN UPDATE SET {updates} WHEN NOT MATCHED THEN INSERT ({names}) VALUES ({values})"
    )


def stories_of(con: duckdb.DuckDBPyConnection, article_ids: Collection[str]) -> dict[str, str]:
    """The story of each stored article that has one."""
    if not article_ids:
        return {}
    with registered(con, "wanted_articles", pa.table({"article_id": sorted(article_ids)})):
        rows = con.execute(
            "SELECT article_id, story_id FROM articles SEMI JOIN wanted_articles USING (article_id)"
            " WHERE story_id IS NOT NULL"
        ).fetchall()
    return {r[0]: r[1] for r in rows}


def set_story_ids(con: duckdb.DuckDBPyConnection, story_ids: Mapping[str, str]) -> int:
    """Set ``articles.story_id`` of stored articles. Returns the number of rows updated."""
    if not story_ids:
        return 0
    table = pa.table({"article_id": list(story_ids), "story_id": list(story_ids.values())})
    with registered(con, "story_assignments", table):
        return affected(
            con,
            "UPDATE articles SET story_id = s.story_id FROM story_assignments s"
            " WHERE articles.article_id = s.article_id",
        )


# ---- regrouping -----------------------------------------------------------------------------------------


def release_range(
    con: duckdb.DuckDBPyConnection, start: datetime, end: datetime
) -> tuple[list[GroupingRow], int]:
    """Take apart every story with a member whose time (published, else first seen) is in [start, end):
    delete those stories, their centroids and their members' decisions, clear the members' ``story_id``.
    Returns the members together with every other article of the range, in time order, and the number
    of stories taken apart."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE regroup_articles AS
        WITH in_range AS (
            SELECT article_id, story_id FROM articles
            WHERE coalesce(published_at, first_seen_at) >= $start
              AND coalesce(published_at, first_seen_at) < $end
        ),
        released AS (SELECT DISTINCT story_id FROM in_range WHERE story_id IS NOT NULL)
        SELECT article_id FROM in_range
        UNION
        SELECT a.article_id FROM articles a SEMI JOIN released USING (story_id)
        """,
        {"start": start, "end": end},
    )
    rows = con.execute(
        """
        SELECT a.article_id, a.text, a.title, coalesce(a.published_at, a.first_seen_at),
               a.published_at IS NOT NULL, a.site,
               a.duplicate_of, a.dup_reason, a.dup_score, d.article_id IS NOT NULL, s.article_id IS NOT NULL
        FROM articles a
        SEMI JOIN regroup_articles USING (article_id)
        LEFT JOIN story_decisions d USING (article_id)
        LEFT JOIN (SELECT article_id FROM minhash_signatures) s USING (article_id)
        ORDER BY coalesce(a.published_at, a.first_seen_at), a.first_seen_at, a.article_id
        """
    ).fetchall()
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE regroup_stories AS
        SELECT DISTINCT story_id FROM articles SEMI JOIN regroup_articles USING (article_id)
        WHERE story_id IS NOT NULL
        """
    )
    released = int(con.execute("SELECT count(*) FROM regroup_stories").fetchall()[0][0])
    con.execute("DELETE FROM story_terms WHERE story_id IN (SELECT story_id FROM regroup_stories)")
    con.execute("DELETE FROM stories WHERE story_id IN (SELECT story_id FROM regroup_stories)")
    con.execute("DELETE FROM story_decisions WHERE article_id IN (SELECT article_id FROM regroup_articles)")
    con.execute(
        "UPDATE articles SET story_id = NULL WHERE article_id IN (SELECT article_id FROM regroup_articles)"
    )
    con.execute("DROP TABLE regroup_articles")
    con.execute("DROP TABLE regroup_stories")
    return [GroupingRow(*row) for row in rows], released


# ---- the snapshot and the changes -----------------------------------------------------------------------


class WarehouseSnapshot:
    """What grouping reads, from the session ``con`` (a write session's transaction: what it sees is what
    its writes will be checked against)."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def signature_candidates(
        self, keys: Iterable[tuple[int, int]], low: datetime | None, high: datetime | None
    ) -> list[StoredSignature]:
        return candidate_signatures(self.con, keys, low, high)

    def texts(self, article_ids: Collection[str]) -> dict[str, str]:
        return article_texts(self.con, article_ids)

    def stories_of(self, article_ids: Collection[str]) -> dict[str, str]:
        return stories_of(self.con, article_ids)

    def site_line_counts(self, keys: Collection[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return site_line_counts(self.con, keys)

    def doc_freqs(self, terms: Collection[str]) -> list[DocFreqRow]:
        return doc_freqs(self.con, terms)

    def candidate_stories(self, probes: Sequence[StoryProbe], query: CandidateQuery) -> dict[str, list[str]]:
        return candidate_story_ids(
            self.con, probes, window_days=query.window_days, term_weight=query.term_weight,
            entity_weight=query.entity_weight, top=query.top, min_score=query.min_score,
            follow_up_days=query.follow_up_days, min_names=query.min_names, follow_up_top=query.follow_up_top,
        )  # fmt: skip

    def stories(self, story_ids: Collection[str], *, active_since: datetime | None) -> list[StoredStory]:
        return load_stories(self.con, story_ids, active_since=active_since)


def write_changes(con: duckdb.DuckDBPyConnection, changes: GroupingChanges, now: datetime) -> None:
    """Write what grouping a batch changed (in the caller's transaction). The articles' own rows are the
    caller's: the store step inserts them with their stories, a regroup sets them (:func:`set_story_ids`)."""
    insert_signatures(
        con, changes.signatures, changes.bands, times=changes.signed_at, roots=changes.signed_roots
    )
    add_site_lines(con, changes.site_lines, now)
    save_stories(con, changes.stories, now)
    add_doc_freqs(con, changes.doc_freq_increments)
    save_decisions(con, changes.decisions, now)
