"""Cost of grouping one batch of new articles (near-duplicates + stories) against N stored articles.

    .venv/bin/python bench/stories_speed.py [--stored 10000 100000 1000000] [--days 365] [--batch 1000]

For each N, builds a real warehouse (migrated schema) holding N articles spread over ``--days`` days (a
year by default, so more stored also means more per day; ``--days`` = N / rate holds the rate), with their
grouping state: MinHash signatures and LSH bands, one story per 2.5 articles with centroids and term
statistics. Centroids come from real texts of ../shared/data (ECB+, BASIL, SemEval), re-dated and
re-numbered; signatures are random, so stored articles are not copies of each other (the candidate rate
of real unrelated texts is printed separately). Warehouses are cached in bench/results/ (``--rebuild``).

Then a fresh process opens the warehouse as the store step does and times grouping as the store step
runs it (``newsflow.stories.batch.group`` over the warehouse's snapshot, then ``write_changes``) on a
batch of real articles dated in the last two days, ``--repeat`` times, each inside a transaction that is
rolled back. The batch carries its text features (tokens and
MinHash), as articles from the extraction workers do; computing them is timed apart. Prints per-stage
seconds (the median run), the total, and that process's peak RSS.
"""

from __future__ import annotations

import argparse
import functools
import json
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import stories_eval  # noqa: E402
from ingest_bench import checked, render_table  # noqa: E402

from newsflow.settings import load_settings  # noqa: E402
from newsflow.warehouse.lakehouse import Warehouse  # noqa: E402


def _lake(path: Path) -> Warehouse:
    return Warehouse.open(load_settings(db=path))


from newsflow import stories  # noqa: E402
from newsflow.stories import StoryArticle, boilerplate, neardup  # noqa: E402
from newsflow.stories import batch as grouping  # noqa: E402
from newsflow.stories.features import text_features  # noqa: E402
from newsflow.warehouse import grouping as stories_table  # noqa: E402

NOW = datetime(2024, 6, 1, 12, tzinfo=UTC)
ARTICLES_PER_STORY = 2.5
RESULTS = REPO / "bench" / "results"
TARGET_SECONDS = 2.0
TARGET_RSS_MB = 1000
#: Stored state is written in chunks of this many articles (bounded memory while building).
BUILD_CHUNK = 100_000


def corpus_texts() -> list[StoryArticle]:
    """Real articles: ECB+, BASIL and both sides of the SemEval pairs."""
    texts = [x.article for x in stories_eval.load_ecb() + stories_eval.load_basil()]
    texts += [
        StoryArticle(f"p{i}", t, None, NOW, None)
        for i, p in enumerate(stories_eval.load_semeval())
        for t in (p.text1, p.text2)
    ]
    return texts


# ---- building the stored state --------------------------------------------------------------------------


def _text_vectors(texts: Sequence[StoryArticle], df: stories.DocumentFrequencies) -> list[pa.Table]:
    """Each text's centroid rows (kind, term, weight), as a one-article story would store them."""
    config = stories.DEFAULT_CONFIG
    out = []
    for article in texts:
        terms, entities = stories.article_counts(article.text, article.title, config)
        rows = [("t", t, w) for t, w in stories.weigh(terms, df, config.max_article_terms).items()]
        rows += [("e", t, w) for t, w in stories.weigh(entities, df, config.max_article_entities).items()]
        out.append(pa.table({k: [r[i] for r in rows] for i, k in enumerate(("kind", "term", "weight"))}))
    return out


def build_warehouse(path: Path, n: int, days: int, texts: Sequence[StoryArticle]) -> None:
    """A warehouse with ``n`` grouped articles (see the module docstring)."""
    rng = np.random.default_rng(1)
    df = stories_eval.warm_df(texts)
    vectors = _text_vectors(texts, df)
    scale = n / max(df.n_docs, 1)
    with _lake(path).write() as con:
        con.execute(
            """
            INSERT INTO articles (article_id, site, title, published_at, text, word_count, content_source,
                                  first_seen_at, story_id)
            SELECT 'a' || i, 'site' || (i % 200) || '.example', 'stored article ' || i,
                   $now - to_days(CAST($days * (1 - i / $n) AS INTEGER)), 'stored', 1, 'feed',
                   $now - to_days(CAST($days * (1 - i / $n) AS INTEGER)),
                   's' || CAST(floor(i / $per_story) AS BIGINT)
            FROM range($n) t(i)
            """,
            {"now": NOW, "days": days, "per_story": ARTICLES_PER_STORY, "n": n},
        )
        con.register(
            "built_df",
            pa.table(
                {
                    "term": [*df.df, stories.DOCS_KEY],
                    "df": [max(1, round(v * scale)) for v in df.df.values()] + [n],
                }
            ),
        )
        con.execute("INSERT INTO term_stats SELECT term, df FROM built_df")
    for start in range(0, n, BUILD_CHUNK):
        stop = min(n, start + BUILD_CHUNK)
        with _lake(path).write() as con:
            _insert_signatures(con, rng, (start, stop, n), days)
            _insert_stories(con, rng, (start, stop, n), days, vectors)
        print(f"  built {stop:,} of {n:,} stored articles", flush=True)
    with _lake(path).maintenance() as con:
        con.execute("CALL ducklake_flush_inlined_data('lake')").fetchall()


def _insert_signatures(con: Any, rng: np.random.Generator, span: tuple[int, int, int], days: int) -> None:
    """Random signatures of articles [start, stop) of n, timed as their ``articles`` rows."""
    start, stop, n = span
    sigs = rng.integers(0, 2**32, size=(stop - start, neardup.NUM_PERM), dtype=np.uint64).astype(np.uint32)
    ids = [f"a{i}" for i in range(start, stop)]
    times = {f"a{i}": NOW - timedelta(days=int(days * (1 - i / n))) for i in range(start, stop)}
    signatures, bands = neardup.index_rows(zip(ids, sigs, strict=True))
    stories_table.insert_signatures(con, signatures, bands, times=times, roots={})


def _insert_stories(
    con: Any, rng: np.random.Generator, span: tuple[int, int, int], days: int, vectors: Sequence[pa.Table]
) -> None:
    """Stories of articles [start, stop) of n, in time order as an ingest writes them."""
    start, stop, n = span
    first = int(np.ceil(start / ARTICLES_PER_STORY))
    last = int(np.ceil(stop / ARTICLES_PER_STORY))
    total = int(np.ceil(n / ARTICLES_PER_STORY))
    heads = []
    term_tables = []
    for k in range(first, last):
        rows = vectors[k % len(vectors)]
        story_id = f"s{k}"
        weights = rows.column("weight").to_numpy()
        is_term = np.array(rows.column("kind").to_pylist()) == "t"
        at = NOW - timedelta(days=days * (1 - k / total), hours=float(rng.uniform(0, 24)))
        heads.append(
            {
                "story_id": story_id, "headline": f"story {k}", "headline_article_id": None,
                "first_at": at, "last_at": at + timedelta(hours=float(rng.uniform(0, 48))),
                "article_count": 2, "sites": ["site1.example", "site2.example"], "join_score_sum": 0.5,
                "term_norm": float(np.linalg.norm(weights[is_term])),
                "entity_norm": float(np.linalg.norm(weights[~is_term])),
                "updated_at": NOW, "undated": False,
            }
        )  # fmt: skip
        term_tables.append(
            rows.add_column(0, "story_id", pa.array([story_id] * rows.num_rows)).append_column(
                "last_at", pa.array([heads[-1]["last_at"]] * rows.num_rows, pa.timestamp("us", tz="UTC"))
            )
        )
    con.register("built_stories", pa.Table.from_pylist(heads))
    con.execute("INSERT INTO stories SELECT * FROM built_stories")
    con.register("built_terms", pa.concat_tables(term_tables))
    con.execute("INSERT INTO story_terms SELECT story_id, kind, term, weight, last_at FROM built_terms")


# ---- measuring one batch --------------------------------------------------------------------------------

#: The steps of grouping a batch, timed by wrapping the module functions it calls.
STAGES: tuple[tuple[Any, str, str], ...] = (
    (neardup, "signature", "minhash signatures"),
    (stories_table, "candidate_signatures", "band join (SQL)"),
    (neardup, "find_near_duplicates", "near-dup decision"),
    (stories_table, "insert_signatures", "store signatures"),
    (stories_table, "stories_of", "copies' stories (SQL)"),
    (grouping, "count_batch", "tokenise"),
    (grouping, "article_vectors", "weighting"),
    (stories_table, "doc_freqs", "term stats (SQL)"),
    (stories_table, "candidate_story_ids", "candidate stories (SQL)"),
    (stories_table, "load_stories", "load stories (SQL)"),
    (grouping, "assign_batch", "assignment"),
    (stories_table, "save_stories", "save stories"),
    (stories_table, "add_doc_freqs", "save term stats"),
    (stories_table, "save_decisions", "save decisions"),
    (boilerplate, "lines", "site lines: split and hash"),
    (stories_table, "site_line_counts", "site lines: lookup (SQL)"),
    (stories_table, "add_site_lines", "site lines: count (SQL)"),
    (stories_table, "article_texts", "copy check: texts (SQL)"),
)


def _instrument(timings: dict[str, float]) -> None:
    for module, name, label in STAGES:
        original = getattr(module, name)

        @functools.wraps(original)
        def timed(
            *args: Any, _original: Callable[..., Any] = original, _label: str = label, **kw: Any
        ) -> Any:
            started = time.perf_counter()
            try:
                return _original(*args, **kw)
            finally:
                timings[_label] += time.perf_counter() - started

        setattr(module, name, timed)


def measure(path: Path, batch_size: int, repeat: int) -> dict[str, Any]:
    """Time grouping a batch of new real articles, ``repeat`` times (rolled back each time)."""
    texts = corpus_texts()
    batch = [
        StoryArticle(f"new{i}", a.text, a.title, NOW - timedelta(hours=i % 48), a.site)
        for i, a in enumerate(texts[:batch_size])
    ]
    started = time.perf_counter()
    batch = [replace(a, features=text_features(a.text, a.title)) for a in batch]
    features_seconds = time.perf_counter() - started
    timings: dict[str, float] = defaultdict(float)
    _instrument(timings)
    runs = []
    with _lake(path).maintenance() as con:  # the write lock; each repeat's transaction is rolled back
        for _ in range(repeat):
            timings.clear()
            con.execute("BEGIN TRANSACTION")
            started = time.perf_counter()
            outcome = grouping.group(grouping.GroupingBatch(batch), stories_table.WarehouseSnapshot(con))
            stories_table.write_changes(con, outcome, NOW)
            total = time.perf_counter() - started
            con.execute("ROLLBACK")
            runs.append(
                {"total": total, "stages": dict(timings), "joined": outcome.joined,
                 "new_stories": outcome.new_stories, "near_dups": len(outcome.near_marks)}
            )  # fmt: skip
    median = sorted(runs, key=lambda r: r["total"])[len(runs) // 2]
    median["all_totals"] = [r["total"] for r in runs]
    median["features_s"] = features_seconds
    median["peak_rss_mb"] = peak_rss_mb()
    return median


def peak_rss_mb() -> float:
    """This process's peak RSS since it started its program. Linux's ``ru_maxrss`` would also count the
    parent's RSS at the fork that started this process (exec keeps that high-water mark): a parent that
    had just built a 100,000-article warehouse made a 450 MB measurement read 1,955 MB. ``VmHWM`` belongs
    to the new program's memory only."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def candidate_rate(texts: Sequence[StoryArticle]) -> tuple[int, float]:
    """Share of pairs of real texts that share an LSH bucket (true relatives included)."""
    sigs = [s for s in (neardup.signature(a.text) for a in texts) if s is not None]
    buckets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, sig in enumerate(sigs):
        for key in neardup.band_keys(sig):
            buckets[key].append(i)
    pairs = {(a, b) for ids in buckets.values() for a in ids for b in ids if a < b}
    return len(sigs), len(pairs) / (len(sigs) * (len(sigs) - 1) / 2)


# ---- main -----------------------------------------------------------------------------------------------


def _sizes(path: Path) -> dict[str, int]:
    with _lake(path).read() as con:
        return {
            t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0])
            for t in ("articles", "lsh_bands", "stories", "story_terms")
        }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--stored", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--days", type=int, default=365, help="days the stored articles span")
    parser.add_argument("--rebuild", action="store_true", help="build the warehouses again")
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.batch, args.repeat)))
        return 0
    texts = corpus_texts()
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = []
    for n in args.stored:
        path = RESULTS / f"stories-speed-{n}-{args.days}d.ducklake"
        if args.rebuild or not path.exists():
            path.unlink(missing_ok=True)
            shutil.rmtree(f"{path}.files", ignore_errors=True)  # the lake's data folder
            print(f"building {path} ...", flush=True)
            started = time.perf_counter()
            build_warehouse(path, n, args.days, texts)
            print(f"  built in {time.perf_counter() - started:.0f} s", flush=True)
        child = subprocess.run(
            [sys.executable, __file__, "--measure", str(path), "--batch", str(args.batch),
             "--repeat", str(args.repeat)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        results.append((n, _sizes(path), json.loads(child.stdout.strip().splitlines()[-1])))
    labels = [label for _, _, label in STAGES]
    header = ["stage (s)", *(f"{n:,} stored" for n, _, _ in results)]
    rows = [[label, *(f"{r['stages'].get(label, 0.0):.3f}" for _, _, r in results)] for label in labels]
    rows.append(
        [
            "other (probes, bookkeeping)",
            *(f"{r['total'] - sum(r['stages'].values()):.3f}" for _, _, r in results),
        ]
    )
    rows.append(["(features, in extraction workers)", *(f"{r['features_s']:.3f}" for _, _, r in results)])
    rows.append(["TOTAL (median)", *(f"{r['total']:.3f}" for _, _, r in results)])
    rows.append(["all runs", *(" ".join(f"{t:.2f}" for t in r["all_totals"]) for _, _, r in results)])
    rows.append(["peak RSS MB", *(f"{r['peak_rss_mb']:.0f}" for _, _, r in results)])
    for table in ("lsh_bands", "stories", "story_terms"):
        rows.append([f"{table} rows", *(f"{s[table]:,}" for _, s, _ in results)])
    outcomes = [f"{r['joined']}/{r['new_stories']}/{r['near_dups']}" for _, _, r in results]
    rows.append(["joined / new / near-dup", *outcomes])
    print(
        f"\ngrouping {args.batch} new articles against N stored over {args.days} days"
        " (a fresh process per N)\n"
    )
    print(stories_eval.table(header, rows))
    metrics = [
        checked(f"seconds per {args.batch} at {n:,}", r["total"], "<", TARGET_SECONDS) for n, _, r in results
    ]
    metrics += [checked(f"peak RSS MB at {n:,}", r["peak_rss_mb"], "<", TARGET_RSS_MB) for n, _, r in results]
    print()
    print(render_table(metrics))
    signed, rate = candidate_rate(texts)
    print(
        f"\nLSH candidate rate among {signed:,} real texts: {rate:.2e} of pairs share a bucket; at 1M stored "
        f"that is ~{rate * 1e6:.0f} candidates per new article (random stored signatures here give ~0)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
