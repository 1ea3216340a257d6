"""Backfill benchmark: 30 days out of a 60-day loopback site of 3,000 real article pages, cold and repeated.

    .venv/bin/python bench/backfill_bench.py [--articles 3000] [--days 60] [--window-days 30]
        [--since 2023-09-01] [--out bench/results/backfill.json] [--keep]

Steps:

1. A temp folder gets ``--articles`` real article pages (the 820 distinct pages of the shared data, reused
   under new names; gzip-encoded on the wire), shuffled and dated over ``--days`` days (the same number per
   day) so that the window ``--since`` .. ``--since + window - 1`` lies in the middle of the site's history.
   They are listed in a WordPress-style paged feed (``/blog/feed.xml?paged=N``, 100 entries a page,
   newest first), and in a sitemap index named by robots.txt with one gzipped child sitemap (``.xml.gz``)
   per 10 days and a Google News sitemap of the newest two days. ``tests/loopback_site.py`` serves it all,
   as a separate process.
2. The feed is registered in a fresh DuckDB file (``newsflow feeds add``: ``--site`` walks the archives of the
   registered feeds of that site, and reads its sitemaps), then a cold ``newsflow backfill --site ORIGIN
   --json`` runs as a subprocess with a fresh ``PREFECT_HOME`` (Prefect's temporary API): wall time, peak RSS
   of its process tree, where the time went (the flow's own ``timings`` and Prefect task runs by name).
3. The same backfill again (same DuckDB file and Prefect home): wall time and rows added (must be 0).

Prints a table and writes the same figures as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import gzip
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import (
    LOOPBACK_SITE,
    NEWSFLOW,
    REPO,
    RSS_SAMPLE_SECONDS,
    Metric,
    Page,
    _json_summary,
    _parse_intervals,
    collect_pages,
    ingest_env,
    process_kind,
    report,
    reset_server_log,
    scratch_dir,
    server_log,
    task_kind,
    tree_rss_bytes,
    union_length,
    write_pages,
)

FEED_PAGE_SIZE = 100
SITEMAP_CHILD_DAYS = 10
NEWS_SITEMAP_DAYS = 2
SHUFFLE_SEED = 20230901
#: Prefect task names by benchmark stage; every other task run counts as "other".
STAGES: dict[str, tuple[str, ...]] = {
    "discovery": ("discover-feed-archive", "discover-sitemaps"),
    "fetching": ("fetch-pages",),
    "extraction": ("extract-pages",),
    "dedupe+writes": ("plan-entries", "store-articles"),
}


# --------------------------------------------------------------------------------------------- site


@dataclass(frozen=True)
class Article:
    """One article of the site: its page, URL and publication time."""

    page: Page
    url: str
    published: datetime


def date_articles(pages: Sequence[Page], base: str, first_day: date, days: int) -> list[Article]:
    """Shuffle the pages and spread them evenly over ``days`` days from ``first_day``, newest first.

    Within a day the articles are 1,440 / per-day minutes apart, from 00:07 UTC, so no date is ambiguous.
    """
    shuffled = list(pages)
    random.Random(SHUFFLE_SEED).shuffle(shuffled)
    per_day = -(-len(shuffled) // days)
    step = timedelta(minutes=1440 // per_day)
    start = datetime(first_day.year, first_day.month, first_day.day, 0, 7, tzinfo=UTC)
    articles = [
        Article(
            page,
            f"{base}/pages/{page.page_id}.html",
            start + timedelta(days=index // per_day) + (index % per_day) * step,
        )
        for index, page in enumerate(shuffled)
    ]
    return sorted(articles, key=lambda a: a.published, reverse=True)


def rss_page(base: str, items: Sequence[Article]) -> str:
    """One page of the blog's RSS feed."""
    body = "".join(
        f"<item><title>Backfill article {escape(a.page.page_id)}</title><link>{escape(a.url)}</link>"
        f'<guid isPermaLink="false">backfill-{escape(a.page.page_id)}</guid>'
        f"<pubDate>{format_datetime(a.published, usegmt=True)}</pubDate></item>"
        for a in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Backfill bench blog</title><link>{base}/blog/</link>{body}</channel></rss>"
    )


def write_paged_feed(articles: Sequence[Article], base: str, folder: Path) -> int:
    """``feed.xml?paged=N`` files, FEED_PAGE_SIZE entries each, newest first. Returns the page count.

    There is deliberately no plain ``feed.xml``: the loopback server answers a query it has no file for
    with the plain file, so ``?paged=N`` past the last page would return page 1 again instead of the 404
    WordPress gives. The feed is registered as ``feed.xml?paged=1``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    pages = [articles[i : i + FEED_PAGE_SIZE] for i in range(0, len(articles), FEED_PAGE_SIZE)]
    for number, items in enumerate(pages, start=1):
        (folder / f"feed.xml?paged={number}").write_text(rss_page(base, items))
    return len(pages)


def w3c(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def urlset(articles: Sequence[Article], news: bool) -> str:
    """A sitemap ``urlset``: ``lastmod`` per URL, or a Google News sitemap with publication dates."""
    if news:
        items = "".join(
            f"<url><loc>{escape(a.url)}</loc><news:news><news:publication><news:name>Backfill bench"
            "</news:name><news:language>en</news:language></news:publication>"
            f"<news:publication_date>{w3c(a.published)}</news:publication_date>"
            f"<news:title>Backfill article {escape(a.page.page_id)}</news:title></news:news></url>"
            for a in articles
        )
    else:
        items = "".join(
            f"<url><loc>{escape(a.url)}</loc><lastmod>{w3c(a.published)}</lastmod></url>" for a in articles
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">{items}</urlset>'
    )


def write_sitemaps(articles: Sequence[Article], base: str, root: Path) -> int:
    """robots.txt -> sitemap index -> gzipped children (SITEMAP_CHILD_DAYS days each) and a news sitemap.

    Returns the number of sitemap documents (index included).
    """
    folder = root / "sitemaps"
    folder.mkdir(parents=True, exist_ok=True)
    oldest = min(a.published for a in articles).date()
    children: dict[int, list[Article]] = {}
    for article in articles:
        children.setdefault((article.published.date() - oldest).days // SITEMAP_CHILD_DAYS, []).append(
            article
        )
    entries = []
    for block, members in sorted(children.items()):
        name = f"posts-{oldest + timedelta(days=block * SITEMAP_CHILD_DAYS)}.xml.gz"
        (folder / name).write_bytes(gzip.compress(urlset(members, news=False).encode()))
        entries.append((name, max(a.published for a in members)))
    newest = max(a.published for a in articles)
    recent = [a for a in articles if a.published > newest - timedelta(days=NEWS_SITEMAP_DAYS)]
    (folder / "news.xml").write_text(urlset(recent, news=True))
    entries.append(("news.xml", newest))
    index = "".join(
        f"<sitemap><loc>{base}/sitemaps/{name}</loc><lastmod>{w3c(modified)}</lastmod></sitemap>"
        for name, modified in entries
    )
    (root / "sitemap_index.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<sitemapindex xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{index}</sitemapindex>'
    )
    (root / "robots.txt").write_text(f"User-agent: *\nAllow: /\nSitemap: {base}/sitemap_index.xml\n")
    return len(entries) + 1


@contextmanager
def served_root(root: Path) -> Iterator[str]:
    """Serve ``root`` at ``/`` from ``tests/loopback_site.py`` in its own process; yield its base URL.

    The server reads files per request, so the site can be written after it has started (its URLs need
    the port).
    """
    proc = subprocess.Popen(
        [sys.executable, str(LOOPBACK_SITE), "--mount", f"/={root}"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        if not base.startswith("http://"):
            raise RuntimeError(f"loopback site did not start (said {base!r})")
        yield base
    finally:
        proc.kill()
        proc.wait(timeout=10)


@dataclass(frozen=True)
class Site:
    """What was written: the expected in-window URLs and the document counts."""

    feed_url: str
    in_window: frozenset[str]
    articles: int
    distinct_pages: int
    feed_pages: int
    sitemaps: int


def build_site(root: Path, base: str, args: argparse.Namespace) -> Site:
    """Write pages, the paged feed and the sitemaps under ``root`` for the site served at ``base``."""
    pages = collect_pages(args.articles)
    write_pages(pages, root / "pages")
    first_day = args.since - timedelta(days=(args.days - args.window_days) // 2)
    articles = date_articles(pages, base, first_day, args.days)
    until = args.since + timedelta(days=args.window_days - 1)
    in_window = frozenset(a.url for a in articles if args.since <= a.published.date() <= until)
    return Site(
        feed_url=f"{base}/blog/feed.xml?paged=1",
        in_window=in_window,
        articles=len(articles),
        distinct_pages=len({p.source for p in pages}),
        feed_pages=write_paged_feed(articles, base, root / "blog"),
        sitemaps=write_sitemaps(articles, base, root),
    )


# --------------------------------------------------------------------------------------------- runs


@dataclass
class MeasuredRun:
    """What one newsflow subprocess did."""

    wall_s: float
    peak_rss_mb: float  # peak of the summed process tree
    peak_rss_by_process_mb: dict[str, float]  # each process's own peak, "kind pid" -> MB
    returncode: int
    summary: dict[str, Any] | None
    stderr_tail: str


def run_measured(cmd: Sequence[str], env: dict[str, str], workdir: Path, label: str) -> MeasuredRun:
    """Run ``cmd``, sampling its process tree's RSS every RSS_SAMPLE_SECONDS; parse its ``--json`` output."""
    stdout_path, stderr_path = workdir / f"{label}.stdout", workdir / f"{label}.stderr"
    peak = 0
    per_process: dict[int, int] = {}
    kinds: dict[int, str] = {}
    with stdout_path.open("w") as out, stderr_path.open("w") as err:
        started = time.monotonic()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=workdir)
        while proc.poll() is None:
            sizes = tree_rss_bytes(proc.pid)
            peak = max(peak, sum(sizes.values()))
            for pid, size in sizes.items():
                per_process[pid] = max(per_process.get(pid, 0), size)
                kinds.setdefault(pid, process_kind(pid))
            time.sleep(RSS_SAMPLE_SECONDS)
        wall = time.monotonic() - started
    run = MeasuredRun(
        wall_s=wall,
        peak_rss_mb=peak / 2**20,
        peak_rss_by_process_mb={
            f"{kinds[pid]} {pid}": round(size / 2**20, 1)
            for pid, size in sorted(per_process.items(), key=lambda item: -item[1])
        },
        returncode=proc.returncode,
        summary=_json_summary(stdout_path.read_text()),
        stderr_tail="\n".join(stderr_path.read_text().splitlines()[-40:]),
    )
    if run.returncode != 0 or run.summary is None:
        print(f"!! {label} exited {run.returncode}; stderr tail:\n{run.stderr_tail}", file=sys.stderr)
    return run


def backfill_command(args: argparse.Namespace, origin: str, db: Path) -> list[str]:
    until = args.since + timedelta(days=args.window_days - 1)
    return [
        str(NEWSFLOW), "backfill", "--since", str(args.since), "--until", str(until), "--site", origin,
        "--allow-private-networks", "--json", "--db", str(db),
    ]  # fmt: skip


def register_feed(feed_url: str, db: Path, env: dict[str, str]) -> float:
    """``newsflow feeds add`` the blog feed; returns its wall time."""
    started = time.monotonic()
    subprocess.run([str(NEWSFLOW), "feeds", "add", feed_url, "--db", str(db)], env=env, check=True,
                   capture_output=True, text=True, timeout=120)  # fmt: skip
    return time.monotonic() - started


def stored_urls(db: Path) -> list[str]:
    """Every article URL in the warehouse (duplicates of content included: each is its own row)."""
    from newsflow.settings import load_settings
    from newsflow.warehouse.lakehouse import Warehouse

    con = Warehouse.open(load_settings(db=db)).connect()
    try:
        return [url for (url,) in con.execute("SELECT url FROM articles").fetchall()]
    finally:
        con.close()


# --------------------------------------------------------------------------------------------- prefect


def first_flow_task_intervals(prefect_home: Path) -> dict[str, list[tuple[float, float]]]:
    """Task-run (start, end) seconds by task name, for the first flow run in ``$PREFECT_HOME/prefect.db``."""
    con = sqlite3.connect(f"file:{prefect_home / 'prefect.db'}?mode=ro", uri=True)
    try:
        (flow_run_id,) = con.execute(
            "SELECT id FROM flow_run ORDER BY coalesce(start_time, created) LIMIT 1"
        ).fetchone()
        # julianday() parses the stored ISO timestamps; * 86400 turns days into seconds.
        rows = con.execute(
            "SELECT name, julianday(start_time) * 86400.0, julianday(end_time) * 86400.0"
            " FROM task_run WHERE flow_run_id = ?",
            (flow_run_id,),
        ).fetchall()
    finally:
        con.close()
    by_kind: dict[str, list[tuple[float | None, float | None]]] = {}
    for name, start, end in rows:
        by_kind.setdefault(task_kind(name), []).append((start, end))
    return {kind: _parse_intervals(spans) for kind, spans in by_kind.items()}


def stage_seconds(intervals: dict[str, list[tuple[float, float]]]) -> dict[str, dict[str, Any]]:
    """Per stage: task runs, the union of their intervals (s) and the sum of their durations (s)."""
    stage_of = {kind: stage for stage, kinds in STAGES.items() for kind in kinds}
    grouped: dict[str, list[tuple[float, float]]] = {stage: [] for stage in (*STAGES, "other")}
    names: dict[str, set[str]] = {stage: set() for stage in grouped}
    for kind, spans in intervals.items():
        stage = stage_of.get(kind, "other")
        grouped[stage] += spans
        names[stage].add(kind)
    return {
        stage: {
            "task_runs": len(spans),
            "tasks": sorted(names[stage]),
            "union_s": round(union_length(sorted(spans)), 3),
            "summed_s": round(sum(end - start for start, end in spans), 3),
        }
        for stage, spans in grouped.items()
    }


# --------------------------------------------------------------------------------------------- report


def _share(part: float | None, wall: float) -> float | None:
    return None if part is None or not wall else round(part / wall, 3)


def build_metrics(r: dict[str, Any]) -> list[Metric]:
    """The report rows from the collected results."""
    stored, expected = r["articles_stored"], r["articles_in_window"]
    rows = [
        Metric(
            "site articles (all dates) / distinct pages", f"{r['site_articles']:,} / {r['pages_distinct']}"
        ),
        Metric("articles in window (generated)", expected),
        Metric("articles stored (cold backfill)", stored, f"= {expected}", stored == expected),
        Metric("stored URLs == in-window URLs", str(r["stored_urls_match"]), "True", r["stored_urls_match"]),
        Metric("cold backfill wall s", r["cold_wall_s"]),
        Metric("articles/s (stored / wall)", r["articles_per_s"]),
        Metric("peak RSS MB (process tree)", r["peak_rss_mb"]),
        Metric("flow timings: discovery_s share of wall", r["timing_shares"]["discovery_s"]),
        Metric("flow timings: chunks_s share of wall", r["timing_shares"]["chunks_s"]),
        Metric("outside the flow body (wall - total_s) share", r["timing_shares"]["outside_flow"]),
    ]
    for stage, share in r["task_run_shares"].items():
        rows.append(Metric(f"task runs: {stage} share of wall (union)", share))
    rows.append(
        Metric("wall inside no task run (start-up, orchestration) share", r["outside_task_runs_share"])
    )
    rows += [
        Metric("repeated backfill wall s", r["repeat_wall_s"]),
        Metric("repeated backfill rows added", r["repeat_rows_added"], "= 0", r["repeat_rows_added"] == 0),
    ]
    return rows


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--articles", type=int, default=3000, help="articles on the site [3000]")
    parser.add_argument("--days", type=int, default=60, help="days the articles are spread over [60]")
    parser.add_argument("--window-days", type=int, default=30, help="days to backfill [30]")
    parser.add_argument(
        "--since", type=date.fromisoformat, default=date(2023, 9, 1), help="first day of the window"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "results" / "backfill.json",
        help="JSON results file [bench/results/backfill.json]",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (its path is printed)")
    return parser.parse_args(argv)


def analyse_cold(cold: MeasuredRun, prefect_home: Path) -> dict[str, Any]:
    """Where the cold backfill's wall time went: the flow's timings and Prefect task runs by stage."""
    timings = (cold.summary or {}).get("timings") or {}
    total = timings.get("total_s")
    intervals = first_flow_task_intervals(prefect_home)
    stages = stage_seconds(intervals)
    in_any_task = union_length(sorted(span for spans in intervals.values() for span in spans))
    return {
        "timings": timings,
        "timing_shares": {
            "discovery_s": _share(timings.get("discovery_s"), cold.wall_s),
            "chunks_s": _share(timings.get("chunks_s"), cold.wall_s),
            "outside_flow": _share(None if total is None else cold.wall_s - total, cold.wall_s),
        },
        "task_runs_by_name": {
            kind: {"task_runs": len(spans), "summed_s": round(sum(e - s for s, e in spans), 3)}
            for kind, spans in sorted(intervals.items())
        },
        "task_run_stages": stages,
        # Stages overlap (fetching the next batch while extracting this one): shares are of wall time,
        # each the union of that stage's task-run intervals, and need not add up to 100 %.
        "task_run_shares": {stage: _share(s["union_s"], cold.wall_s) for stage, s in stages.items()},
        # Wall time inside no task run at all: interpreter and temporary API start-up, flow bookkeeping,
        # gaps between tasks, shutdown.
        "outside_task_runs_share": _share(cold.wall_s - in_any_task, cold.wall_s),
    }


def run_benchmark(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Every measurement; returns the results dict (also what goes to --out)."""
    root, prefect_home, db = tmp / "site", tmp / "prefect-home", tmp / "backfill.ducklake"
    root.mkdir()
    prefect_home.mkdir()
    env = ingest_env(prefect_home)
    with served_root(root) as base:
        site = build_site(root, base, args)
        print(f"{site.articles} articles, {len(site.in_window)} in the window; serving at {base}", flush=True)
        register_s = register_feed(site.feed_url, db, env)
        command = backfill_command(args, base, db)
        print("cold backfill:", " ".join(command), flush=True)
        cold = run_measured(command, env, tmp, "cold")
        cold_log = server_log(base)
        urls = stored_urls(db)
        reset_server_log(base)
        print(f"cold backfill: {cold.wall_s:.1f} s; repeating it ...", flush=True)
        repeat = run_measured(command, env, tmp, "repeat")
        repeat_log = server_log(base)
    rows_after = len(stored_urls(db))
    stored = (cold.summary or {}).get("articles_stored")
    return {
        "command": " ".join(backfill_command(args, "http://127.0.0.1:PORT", Path("FRESH.ducklake"))),
        "register_feed_s": round(register_s, 3),
        "site_articles": site.articles,
        "pages_distinct": site.distinct_pages,
        "site_feed_pages": site.feed_pages,
        "site_sitemap_documents": site.sitemaps,
        "articles_in_window": len(site.in_window),
        "articles_stored": stored,
        "rows_after_cold": len(urls),
        "stored_urls_match": set(urls) == site.in_window and len(urls) == len(site.in_window),
        "cold_wall_s": round(cold.wall_s, 3),
        "articles_per_s": None if stored is None else round(stored / cold.wall_s, 2),
        "peak_rss_mb": round(cold.peak_rss_mb, 1),
        "peak_rss_by_process_mb": cold.peak_rss_by_process_mb,
        "cold_returncode": cold.returncode,
        "cold_requests": request_counts(cold_log),
        "cold_summary": cold.summary,
        **analyse_cold(cold, prefect_home),
        "repeat_wall_s": round(repeat.wall_s, 3),
        "repeat_returncode": repeat.returncode,
        "repeat_rows_added": rows_after - len(urls),
        "repeat_articles_stored": (repeat.summary or {}).get("articles_stored"),
        "repeat_requests": request_counts(repeat_log),
        "repeat_summary": repeat.summary,
        "cold_stderr_tail": cold.stderr_tail if cold.returncode else "",
        "repeat_stderr_tail": repeat.stderr_tail if repeat.returncode else "",
    }


def request_counts(log: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Requests the site saw, by top-level folder (``pages``, ``blog``, ``sitemaps``, ``robots.txt``...)."""
    counts: dict[str, int] = {}
    for entry in log:
        top = str(entry["path"]).lstrip("/").split("/", 1)[0].split("?", 1)[0]
        counts[top] = counts.get(top, 0) + 1
    return dict(sorted(counts.items()))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with scratch_dir("newsflow-backfill-bench-", args.keep) as tmp:
        results = run_benchmark(args, tmp)
    report(
        results, build_metrics(results), args.out,
        after="Shares are of the cold backfill's wall time, each the union of a stage's task-run intervals."
        "\nStages can overlap (discovery tasks run together; within a chunk of several batches the next"
        "\nbatch is fetched while one is extracted), so the shares need not add up to 100 %.",
    )  # fmt: skip
    ok = results["cold_returncode"] == 0 and results["repeat_returncode"] == 0
    return 0 if ok and results["stored_urls_match"] and results["repeat_rows_added"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
