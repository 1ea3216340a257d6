"""Polling at scale: thousands of small feeds over many loopback hosts, polled once, then re-polled
with nearly all of them unchanged (conditional requests answered 304).

    .venv/bin/python bench/poll_bench.py [--feeds 10000] [--hosts 100] [--changed 0.01]

1. A temp folder gets ``--feeds`` RSS files of one item each (title, description, guid, date, no link:
   the feed's text is the article, so no page is fetched and the figures are about polling).
   ``tests/loopback_site.py`` serves them, as a separate process, on 127.0.0.1 and ``--hosts`` more
   loopback addresses; each feed lives on one host, round robin.
2. A first ``newsflow ingest --feeds LIST`` (fresh warehouse, a Prefect home whose database exists):
   it registers and polls every feed and stores one article per feed.
3. ``--changed`` of the feeds get a second item; a second ``newsflow ingest --feeds LIST`` polls them
   all again: the others answer 304 to the validators saved by the first poll.

Prints one table (wall time, Prefect task runs, requests and 304s seen by the server, peak memory of the
ingest's process tree, CPU seconds by process) and writes it as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from ingest_bench import (
    REPO,
    IngestRun,
    Metric,
    checked,
    flow_task_runs,
    loopback_site,
    prepare_prefect_home,
    report,
    reset_server_log,
    run_ingest,
    scratch_dir,
    server_log,
)

TARGET_REPOLL_S = 60
TARGET_REPOLL_PSS_MB = 500


def feed_document(index: int, items: int) -> str:
    """A small RSS 2.0 feed: ``items`` link-less items, each with its own guid, text and date."""
    published = datetime(2026, 11, 1, tzinfo=UTC)
    body = "".join(
        f"<item><title>Feed {index} note {n}</title>"
        f"<description>{escape(f'Note {n} of bench feed {index}: a short item whose text is the feed text.')}"
        f"</description><guid isPermaLink='false'>bench-{index}-{n}</guid>"
        f"<pubDate>{format_datetime(published + timedelta(hours=n))}</pubDate></item>"
        for n in range(items)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>Bench feed {index}</title><link>http://example.invalid/{index}</link>{body}</channel></rss>"
    )


def host_of(index: int, hosts: int, port: int) -> str:
    """The base URL of the loopback host feed ``index`` lives on (127.0.0.1 when there are no others)."""
    if not hosts:
        return f"http://127.0.0.1:{port}"
    n = index % hosts
    return f"http://127.0.{1 + n // 254}.{1 + n % 254}:{port}"


def write_feeds(folder: Path, count: int, hosts: int, port: int, feeds_toml: Path) -> None:
    """``count`` one-item feeds in ``folder`` and the feed list naming each at its host."""
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        (folder / f"feed-{index:05d}.xml").write_text(feed_document(index, 1))
    feeds_toml.write_text(
        "".join(
            f'[[feeds]]\nurl = "{host_of(i, hosts, port)}/feeds/feed-{i:05d}.xml"\n\n' for i in range(count)
        )
    )


def change_feeds(folder: Path, count: int, share: float) -> int:
    """Give ``share`` of the feeds (spread evenly) a second item; returns how many changed."""
    step = max(1, round(1 / share)) if share > 0 else count + 1
    changed = list(range(0, count, step))
    for index in changed:
        (folder / f"feed-{index:05d}.xml").write_text(feed_document(index, 2))
    return len(changed)


def poll_figures(
    label: str, run: IngestRun, log: list[dict[str, Any]], prefect_home: Path, index: int
) -> dict[str, Any]:
    summary = run.summary or {}
    tasks = flow_task_runs(prefect_home, index)
    return {
        f"{label}_wall_s": round(run.wall_s, 2),
        f"{label}_returncode": run.returncode,
        f"{label}_feed_requests": len(log),
        f"{label}_304s": sum(1 for e in log if e["status"] == 304),
        f"{label}_feeds_polled": summary.get("feeds_polled"),
        f"{label}_feeds_failed": summary.get("feeds_failed"),
        f"{label}_articles_stored": summary.get("articles_stored"),
        f"{label}_task_runs": tasks.count,
        f"{label}_task_runs_by_name": tasks.by_name,
        f"{label}_flow_timings": summary.get("timings"),
        f"{label}_peak_pss_mb": round(run.peak_pss_mb, 1),
        f"{label}_peak_rss_mb": round(run.peak_rss_mb, 1),
        f"{label}_peak_rss_by_process_mb": run.peak_rss_by_process_mb,
        f"{label}_cpu_s_by_process": run.cpu_s_by_kind,
        f"{label}_stderr_tail": run.stderr_tail if run.returncode else "",
    }


def build_metrics(r: dict[str, Any]) -> list[Metric]:
    rows = [
        Metric("feeds", r["feeds"]),
        Metric("loopback hosts", r["hosts"] + 1),
        Metric("feeds changed before the re-poll", r["changed"]),
    ]
    for label, title in (("first", "first poll"), ("repoll", "re-poll")):
        rows += [
            Metric(
                f"{title}: feed requests (304s)", f"{r[f'{label}_feed_requests']:,} ({r[f'{label}_304s']:,})"
            ),
            Metric(f"{title}: feeds failed", r[f"{label}_feeds_failed"]),
            Metric(f"{title}: articles stored", r[f"{label}_articles_stored"]),
            Metric(f"{title}: Prefect task runs", r[f"{label}_task_runs"]),
            *(
                Metric(f"{title}:   {name.removesuffix('_s')} stage wall s", seconds)
                for name, seconds in (r[f"{label}_flow_timings"] or {}).items()
            ),
            *(
                Metric(f"{title}:   CPU s: {kind}", seconds)
                for kind, seconds in r[f"{label}_cpu_s_by_process"].items()
            ),
            Metric(f"{title}: peak RSS MB", r[f"{label}_peak_rss_mb"]),
            *(
                Metric(f"{title}:   peak RSS MB: {process}", mb)
                for process, mb in r[f"{label}_peak_rss_by_process_mb"].items()
            ),
        ]
        if label == "first":
            rows += [
                Metric(f"{title}: wall s", r["first_wall_s"]),
                Metric(f"{title}: peak PSS MB", r["first_peak_pss_mb"]),
            ]
        else:
            rows += [
                checked(f"{title}: wall s", r["repoll_wall_s"], "<", TARGET_REPOLL_S),
                checked(f"{title}: peak PSS MB", r["repoll_peak_pss_mb"], "<", TARGET_REPOLL_PSS_MB),
            ]
    return rows


def run_benchmark(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    feeds_dir, pages_dir = tmp / "site" / "feeds", tmp / "site" / "pages"
    pages_dir.mkdir(parents=True)
    prefect_home, db, feeds_toml = tmp / "prefect-home", tmp / "bench.ducklake", tmp / "feeds.toml"
    prepare_prefect_home(prefect_home)
    results: dict[str, Any] = {"feeds": args.feeds, "hosts": args.hosts}
    feeds_dir.mkdir(parents=True)
    with loopback_site(pages_dir, feeds_dir, hosts=args.hosts) as (base, _server):
        port = int(base.rsplit(":", 1)[1])
        write_feeds(feeds_dir, args.feeds, args.hosts, port, feeds_toml)
        print(
            f"{args.feeds} feeds on {args.hosts + 1} loopback hosts, port {port}; first poll ...", flush=True
        )
        first = run_ingest(feeds_toml, db, prefect_home, tmp)
        results.update(poll_figures("first", first, server_log(base), prefect_home, 0))
        reset_server_log(base)
        results["changed"] = change_feeds(feeds_dir, args.feeds, args.changed)
        print(f"first poll: {first.wall_s:.1f} s; re-poll ...", flush=True)
        repoll = run_ingest(feeds_toml, db, prefect_home, tmp)
        results.update(poll_figures("repoll", repoll, server_log(base), prefect_home, 1))
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--feeds", type=int, default=10_000, help="feeds to register and poll [10000]")
    parser.add_argument("--hosts", type=int, default=100, help="loopback hosts besides 127.0.0.1 [100]")
    parser.add_argument("--changed", type=float, default=0.01, help="share of feeds changed for the re-poll")
    parser.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "poll.json", help="JSON results file"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (its path is printed)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with scratch_dir("newsflow-poll-bench-", args.keep) as tmp:
        results = run_benchmark(args, tmp)
    report(results, build_metrics(results), args.out)
    for label in ("first", "repoll"):
        if results[f"{label}_stderr_tail"]:
            print(f"!! {label} ingest failed:\n{results[f'{label}_stderr_tail']}", file=sys.stderr)
    return 0 if results["first_returncode"] == 0 and results["repoll_returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
