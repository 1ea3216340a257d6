"""The served ``ingest`` deployment on a long-lived ``prefect server``: 1,000+ real pages in one scheduled
run, against trafilatura alone on the same pages in the same session.

    .venv/bin/python bench/served_bench.py [--pages 1000] [--feeds 50] [--out bench/results/served.json]

Steps:

1. The pages and feeds of ``ingest_bench.py``, on a loopback site (its own process).
2. ``prefect server start`` on a free loopback port, its own ``PREFECT_HOME``; waited on until healthy (not
   timed: a long-lived server is already up).
3. The feeds are registered without polling them (``newsflow feeds import-opml``), so they are all due.
4. ``newsflow serve``, then one run of its ``ingest`` deployment (``prefect deployment run ingest/ingest``,
   as a user triggers one; its schedule is set to hourly so no scheduled run interferes); the bench waits
   for that run to complete and reads its state history from the API.
5. The trafilatura-only limit on the same page bytes (2 processes, as in ``ingest_bench.py``).

Prints one table: the run's wall time from its expected start (scheduling, the runner's pickup, the flow
process's start-up and the run) and from its own start, articles/s, and both ratios to the limit.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from ingest_bench import (
    NEWSFLOW,
    REPO,
    Metric,
    checked,
    collect_pages,
    loopback_site,
    report,
    scratch_dir,
    trafilatura_limit,
    write_feeds,
    write_pages,
)
from schedule_bench import (
    PREFECT,
    SERVER_START_TIMEOUT_S,
    completed,
    free_port,
    healthy,
    ingest_deployment_runs,
    process_group,
    run_timing,
    server_env,
    wait_for,
)

TARGET_RATIO = 0.90
RUN_TIMEOUT_S = 600


def write_opml(feeds_toml: Path, opml: Path) -> int:
    """The feed URLs of an ingest_bench feed list as an OPML file; returns how many."""
    urls = [line.split('"')[1] for line in feeds_toml.read_text().splitlines() if line.startswith("url")]
    outlines = "".join(f"<outline type='rss' text='bench' xmlUrl={quoteattr(u)}/>" for u in urls)
    opml.write_text(f"<?xml version='1.0'?><opml version='2.0'><body>{outlines}</body></opml>")
    return len(urls)


def stored_articles(db: Path) -> int:
    """Articles in the lake (read once ``serve`` has stopped)."""
    import newsflow

    con = newsflow.connect(db)
    try:
        (count,) = con.execute("SELECT count(*) FROM articles").fetchone() or (0,)
    finally:
        con.close()
    return int(count)


def measure(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> dict[str, Any]:
    """Start everything (registered on ``stack``, so it is stopped however this ends) and measure."""
    import subprocess

    home, db = tmp / "prefect-home", tmp / "served.ducklake"
    home.mkdir()
    pages = collect_pages(args.pages)
    write_pages(pages, tmp / "site" / "pages")
    (tmp / "site" / "feeds").mkdir(parents=True)
    base, _site = stack.enter_context(loopback_site(tmp / "site" / "pages", tmp / "site" / "feeds"))
    write_feeds(pages, args.feeds, tmp / "site" / "feeds", base, tmp / "feeds.toml")

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = server_env(home)
    server_cmd = [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    stack.enter_context(process_group(server_cmd, env, tmp / "server.log"))
    wait_for(lambda: healthy(api), SERVER_START_TIMEOUT_S, "prefect server health")

    client_env = {**env, "PREFECT_API_URL": api}
    feeds = write_opml(tmp / "feeds.toml", tmp / "feeds.opml")
    subprocess.run(
        [str(NEWSFLOW), "feeds", "import-opml", str(tmp / "feeds.opml"), "--db", str(db)],
        env=client_env,
        check=True,
        capture_output=True,
    )
    print(f"{len(pages)} pages behind {feeds} registered feeds; serving ...", flush=True)
    serve_env = {**client_env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    serve_cmd = [str(NEWSFLOW), "serve", "--ingest-every", "1h", "--db", str(db), "--allow-private-networks"]
    with process_group(serve_cmd, serve_env, tmp / "serve.log"):
        trigger = [str(PREFECT), "deployment", "run", "ingest/ingest"]
        wait_for(
            lambda: subprocess.run(trigger, env=client_env, capture_output=True).returncode == 0,
            SERVER_START_TIMEOUT_S,
            "the ingest deployment to accept a run",
        )
        started = time.monotonic()
        (run,) = wait_for(
            lambda: completed(ingest_deployment_runs(api), 1), RUN_TIMEOUT_S, "the ingest run", 1.0
        )
        print(f"run completed after {time.monotonic() - started:.1f} s", flush=True)
        timing = run_timing(api, run)
    print("trafilatura-only limit ...", flush=True)
    limit_pps, _, _ = trafilatura_limit(pages, base)
    articles = stored_articles(db)
    return {
        "pages": len(pages),
        "articles_stored": articles,
        "feeds": feeds,
        "run": timing.__dict__,
        "limit_pages_per_s": limit_pps,
        "from_expected_start_per_s": articles / timing.to_end_s if timing.to_end_s else None,
        "from_start_per_s": articles / timing.run_s if timing.run_s else None,
    }


def build_metrics(r: dict[str, Any]) -> list[Metric]:
    run, limit = r["run"], r["limit_pages_per_s"]
    whole = r["from_expected_start_per_s"]
    body = r["from_start_per_s"]
    return [
        Metric("pages behind the feeds", r["pages"]),
        Metric("articles stored by the run", r["articles_stored"]),
        Metric("run state", run["state"]),
        Metric("expected start -> flow running s (schedule, pickup, process start)", run["to_start_s"]),
        Metric("flow running -> completed s", run["run_s"]),
        Metric("expected start -> completed s", run["to_end_s"]),
        Metric("trafilatura-only limit pages/s (2 processes)", limit),
        Metric("articles/s from the run's expected start", whole),
        checked("ratio from expected start / limit", whole / limit if whole else None, ">=", TARGET_RATIO),
        Metric("articles/s from the flow's start", body),
        Metric("ratio from the flow's start / limit", body / limit if body else None),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=1000, help="pages to serve (at least) [1000]")
    parser.add_argument("--feeds", type=int, default=50, help="RSS feeds to spread them over [50]")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "served.json")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (its path is printed)")
    args = parser.parse_args(argv)
    with scratch_dir("newsflow-served-bench-", args.keep) as tmp, ExitStack() as stack:
        results = measure(args, tmp, stack)
    report(results, build_metrics(results), args.out)
    return 0 if results["run"]["state"] == "COMPLETED" else 1


if __name__ == "__main__":
    sys.exit(main())
