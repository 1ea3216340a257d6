"""Cost of one batch of new articles (near-duplicates + stories) against state held in DuckDB tables.

    .venv/bin/python bench/stories_speed.py [--stored 10000 100000] [--batch 1000]

Builds, in a temp folder, the tables proposed for the warehouse (``lsh_bands``, ``minhash_signatures``,
``stories``, ``story_terms``, ``term_stats``) for N stored articles spread over a year, then times one
batch: signatures, the band hash join, the near-duplicate decision, the document-frequency look-up, the
candidate-story join (batch terms x centroids of stories active within the window) and the assignment.
Stored state is generated: centroids and signatures come from real texts of ../shared/data, re-dated and
re-numbered (one story per 2.5 articles); signatures get fresh random values so that stored articles are
not copies of each other, as in a real archive.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import duckdb
import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import stories_eval  # noqa: E402

from tasks import neardup, stories  # noqa: E402

DDL = """
CREATE TABLE minhash_signatures (article_id VARCHAR PRIMARY KEY, signature BLOB NOT NULL);
CREATE TABLE lsh_bands (band SMALLINT NOT NULL, bucket BIGINT NOT NULL, article_id VARCHAR NOT NULL);
CREATE TABLE stories (
    story_id VARCHAR PRIMARY KEY, headline VARCHAR, headline_article_id VARCHAR,
    first_at TIMESTAMPTZ NOT NULL, last_at TIMESTAMPTZ NOT NULL, article_count INTEGER NOT NULL,
    sites VARCHAR[] NOT NULL, join_score_sum DOUBLE NOT NULL,
    term_norm DOUBLE NOT NULL, entity_norm DOUBLE NOT NULL
);
CREATE TABLE story_terms (story_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, term VARCHAR NOT NULL,
    weight DOUBLE NOT NULL);
CREATE TABLE term_stats (term VARCHAR PRIMARY KEY, df BIGINT NOT NULL);
"""
NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
TOP_STORIES = 5
T = TypeVar("T")


def timed(label: str, timings: dict[str, float], fn: Callable[[], T]) -> T:
    started = time.perf_counter()
    out = fn()
    timings[label] = time.perf_counter() - started
    return out


def build_state(con: duckdb.DuckDBPyConnection, n: int, texts: list[stories.StoryArticle]) -> None:
    rng = np.random.default_rng(1)
    sigs = rng.integers(0, 2**32, size=(n, neardup.NUM_PERM), dtype=np.uint64).astype(np.uint32)
    ids = [f"a{i}" for i in range(n)]
    bands = [neardup.band_keys(s) for s in sigs]
    con.register(
        "b",
        pa.table(
            {
                "band": [b for keys in bands for b, _ in keys],
                "bucket": [k for keys in bands for _, k in keys],
                "article_id": [i for i, keys in zip(ids, bands, strict=True) for _ in keys],
            }
        ),
    )
    con.execute("INSERT INTO lsh_bands SELECT * FROM b")
    con.register("s", pa.table({"article_id": ids, "signature": [neardup.to_bytes(s) for s in sigs]}))
    con.execute("INSERT INTO minhash_signatures SELECT * FROM s")
    df = stories_eval.warm_df(texts)
    con.register("d", pa.table({"term": [*df.df, stories.DOCS_KEY], "df": [*df.df.values(), df.n_docs]}))
    con.execute("INSERT INTO term_stats SELECT * FROM d")
    story_rows: list[dict[str, object]] = []
    term_rows: dict[str, list[object]] = {"story_id": [], "kind": [], "term": [], "weight": []}
    for k in range(int(n / 2.5)):
        article = texts[k % len(texts)]
        counts = stories.article_counts(article)
        story = stories.new_story(
            stories.StoryArticle(
                f"a{k}", "", article.title, NOW - timedelta(days=float(rng.uniform(0, 365))), "x"
            ),
            stories.ArticleVectors(stories.weigh(counts[0], df, 80), stories.weigh(counts[1], df, 30)),
        )
        row, terms = stories.story_rows(story)
        story_rows.append(row.__dict__ | {"sites": list(row.sites)})
        for t in terms:
            for key in term_rows:
                term_rows[key].append(getattr(t, key))
    con.register("st", pa.Table.from_pylist(story_rows))
    con.execute("INSERT INTO stories SELECT * FROM st")
    con.register("tt", pa.table(term_rows))
    con.execute("INSERT INTO story_terms SELECT * FROM tt")


def one_batch(con: duckdb.DuckDBPyConnection, batch: list[stories.StoryArticle]) -> dict[str, float]:
    t: dict[str, float] = {}
    sigs = timed("minhash signatures", t, lambda: [(a.article_id, neardup.signature(a.text)) for a in batch])
    keys = [(b, k, i) for i, s in sigs if s is not None for b, k in neardup.band_keys(s)]

    def candidates() -> list[neardup.StoredSignature]:
        con.register("q", pa.table({"band": [b for b, _, _ in keys], "bucket": [k for _, k, _ in keys]}))
        rows = con.execute(
            "SELECT DISTINCT s.article_id, s.signature FROM lsh_bands l JOIN q USING (band, bucket)"
            " JOIN minhash_signatures s USING (article_id)"
        ).fetchall()
        return [neardup.StoredSignature(r[0], r[1]) for r in rows]

    cands = timed("band join (SQL)", t, candidates)
    timed(
        "near-dup decision",
        t,
        lambda: neardup.find_near_duplicates(
            [(a.article_id, a.text) for a in batch], cands, signatures=dict(sigs)
        ),
    )

    counts = timed("tokenise", t, lambda: stories.count_batch(batch))

    def load_df() -> stories.DocumentFrequencies:
        terms = [*stories.batch_terms(counts), stories.DOCS_KEY]
        rows = con.execute("SELECT term, df FROM term_stats WHERE list_contains(?, term)", [terms]).fetchall()
        return stories.DocumentFrequencies.from_rows(stories.DocFreqRow(r[0], r[1]) for r in rows)

    df = timed("document frequencies (SQL)", t, load_df)

    def load_stories() -> list[stories.Story]:
        vec_rows: dict[str, list[object]] = {"article_id": [], "kind": [], "term": [], "weight": []}
        for a in batch:
            counts = stories.article_counts(a)
            for kind, vec in (
                ("t", stories.weigh(counts[0], df, 80)),
                ("e", stories.weigh(counts[1], df, 30)),
            ):
                for term, w in vec.items():
                    for key, value in zip(vec_rows, (a.article_id, kind, term, w), strict=True):
                        vec_rows[key].append(value)
        con.register("bt", pa.table(vec_rows))
        lo = min(a.published_at for a in batch) - timedelta(days=7)
        hi = max(a.published_at for a in batch) + timedelta(days=7)
        ids = [
            r[0]
            for r in con.execute(
                """
                WITH active AS (
                    SELECT st.* FROM story_terms st
                    SEMI JOIN (SELECT story_id FROM stories WHERE last_at >= $lo AND first_at <= $hi) a
                    USING (story_id)),
                hits AS (
                    SELECT bt.article_id, active.story_id, sum(bt.weight * active.weight) AS dot
                    FROM bt JOIN active USING (kind, term)
                    GROUP BY ALL)
                SELECT DISTINCT story_id FROM hits QUALIFY row_number() OVER (PARTITION BY article_id
                    ORDER BY dot DESC) <= $top
                """,
                {"lo": lo, "hi": hi, "top": TOP_STORIES},
            ).fetchall()
        ]
        heads = con.execute(
            "SELECT * FROM stories WHERE list_contains($ids, story_id)", {"ids": ids}
        ).fetchall()
        terms = con.execute(
            "SELECT * FROM story_terms WHERE list_contains($ids, story_id)", {"ids": ids}
        ).fetchall()
        by_story: dict[str, list[stories.StoryTermRow]] = {}
        for r in terms:
            by_story.setdefault(r[0], []).append(stories.StoryTermRow(*r))
        return [stories.story_from_rows(stories.StoryRow(*h), by_story.get(h[0], [])) for h in heads]

    active = timed("article vectors + candidate stories (SQL)", t, load_stories)
    timed("story assignment", t, lambda: stories.assign_batch(batch, active, df, counts=counts))
    t["candidate stories"] = float(len(active))
    return t


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stored", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    texts = [x.article for x in stories_eval.load_ecb() + stories_eval.load_basil()]
    texts += [
        stories.StoryArticle(f"p{i}", t, None, NOW, None)
        for i, p in enumerate(stories_eval.load_semeval())
        for t in (p.text1, p.text2)
    ]
    batch = [
        stories.StoryArticle(f"new{i}", a.text, a.title, NOW - timedelta(hours=i % 48), a.site)
        for i, a in enumerate(texts[: args.batch])
    ]
    results = []
    for n in args.stored:
        with tempfile.TemporaryDirectory() as tmp:
            con = duckdb.connect(str(Path(tmp) / "state.duckdb"))
            con.execute(DDL)
            started = time.perf_counter()
            build_state(con, n, texts)
            build = time.perf_counter() - started
            rows = con.execute(
                "SELECT (SELECT count(*) FROM lsh_bands), (SELECT count(*) FROM story_terms)"
            ).fetchall()
            timings = one_batch(con, batch)
            con.close()
        results.append((n, build, rows[0], timings))
    print(f"One batch of {len(batch)} new articles against N stored (state in DuckDB tables)\n")
    labels = [k for k in results[0][3] if k != "candidate stories"]
    header = ["stored", "band rows", "story-term rows", *labels, "total s", "stories scored"]
    table_rows = []
    for n, _build, (bands, terms), t in results:
        total = sum(t[k] for k in labels)
        table_rows.append(
            [
                f"{n:,}",
                f"{bands:,}",
                f"{terms:,}",
                *(f"{t[k]:.3f}" for k in labels),
                f"{total:.2f}",
                f"{t['candidate stories']:.0f}",
            ]
        )
    print(stories_eval.table(header, table_rows))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process (state building included): {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
