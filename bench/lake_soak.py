"""Soak of the lake: many small write batches in a row, with maintenance between rounds.

    .venv/bin/python bench/lake_soak.py [--batches 300] [--per-batch 4] [--rounds 6] [--keep]

Writes ``--batches`` small batches (``--per-batch`` articles each, real article texts of the shared
scrapinghub set, each batch one commit, through the same store step as ingests: dedupe, near-duplicates,
stories), in ``--rounds`` rounds. After each round it counts the lake's data files and times two reader
queries (p50 and p99 of 20 runs on a fresh read-only connection, as a notebook would), then runs the
maintenance compaction (snapshots older than now expire) and measures both again. Prints one row per
round: the curves of file count and query time before and after maintenance.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

import stories_eval  # noqa: E402
from ingest_bench import scratch_dir  # noqa: E402

import newsflow  # noqa: E402
from newsflow.clock import utcnow  # noqa: E402
from newsflow.flows.load import load_file  # noqa: E402
from newsflow.settings import Settings, load_settings  # noqa: E402
from newsflow.warehouse import maintenance as maintenance_sql  # noqa: E402
from newsflow.warehouse.lakehouse import Warehouse  # noqa: E402

GOLD = REPO.parent / "shared" / "data" / "scrapinghub-article-extraction-benchmark" / "ground-truth.json"
QUERIES = {
    "count": "SELECT count(*), avg(word_count) FROM articles",
    "top stories": "SELECT story_id, count(*) FROM articles GROUP BY 1 ORDER BY 2 DESC LIMIT 10",
}


def texts() -> list[str]:
    if not GOLD.exists():
        raise SystemExit(f"shared data not found at {GOLD}")
    return [item["articleBody"] for item in json.loads(GOLD.read_text()).values() if item["articleBody"]]


def write_round(path: Path, first: int, batches: int, per_batch: int, bodies: Sequence[str]) -> None:
    """A JSONL file of ``batches * per_batch`` distinct articles (a real body plus a unique line)."""
    with path.open("w", encoding="utf-8") as out:
        for n in range(first, first + batches * per_batch):
            body = f"{bodies[n % len(bodies)]}\nSoak item {n}."
            out.write(json.dumps({"id": f"soak-{n}", "text": body, "title": f"Soak {n}",
                                  "published_at": f"2024-05-{1 + n % 28:02d}T12:00:00Z"}) + "\n")  # fmt: skip


def reader_times(db: Path, runs: int = 20) -> dict[str, tuple[float, float]]:
    """p50 and p99 (ms) of each query on one fresh read-only connection."""
    con = newsflow.connect(db)
    try:
        out = {}
        for name, sql in QUERIES.items():
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                con.execute(sql).fetchall()
                times.append(1000 * (time.perf_counter() - started))
            times.sort()
            out[name] = (statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))])
        return out
    finally:
        con.close()


def files(settings: Settings) -> int:
    with Warehouse.open(settings).read() as con:
        return maintenance_sql.data_files(con)


def compact(settings: Settings) -> None:
    with Warehouse.open(settings).maintenance() as con:
        maintenance_sql.compact(con, utcnow(), utcnow() - timedelta(hours=1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--per-batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--keep", action="store_true", help="keep the lake and print where it is")
    args = parser.parse_args(argv)
    bodies = texts()
    per_round = args.batches // args.rounds
    rows = []
    with scratch_dir("newsflow-soak-", args.keep) as tmp:
        db = tmp / "soak.ducklake"
        settings = load_settings(db=db, batch_size=args.per_batch)
        for number in range(args.rounds):
            source = tmp / f"round-{number}.jsonl"
            write_round(source, number * per_round * args.per_batch, per_round, args.per_batch, bodies)
            started = time.perf_counter()
            summary = load_file(source, settings)
            seconds = time.perf_counter() - started
            before_files, before = files(settings), reader_times(db)
            compact(settings)
            after_files, after = files(settings), reader_times(db)
            rows.append((
                f"{(number + 1) * per_round}", f"{summary['articles_stored']}",
                f"{seconds / per_round * 1000:.0f}",
                f"{before_files}", f"{after_files}",
                *(f"{before[q][0]:.1f} / {before[q][1]:.1f}" for q in QUERIES),
                *(f"{after[q][0]:.1f} / {after[q][1]:.1f}" for q in QUERIES),
            ))  # fmt: skip
            print(f"round {number + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    header = ("batches", "stored", "ms/batch", "files", "files after maint.",
              *(f"{q} p50/p99 ms" for q in QUERIES), *(f"{q} after maint." for q in QUERIES))  # fmt: skip
    print(f"lake soak: {args.batches} batches of {args.per_batch} articles, maintenance after each round")
    print(stories_eval.table(header, rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
