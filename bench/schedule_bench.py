"""Scheduled-run overhead: one scheduled ``ingest`` with no feed due, on a warm ``prefect server start``.

    .venv/bin/python bench/schedule_bench.py [--runs 6] [--every 10s] [--out bench/results/schedule.json]

Steps:

1. ``prefect server start`` on a free loopback port, with its own ``PREFECT_HOME`` (scheduler loop 2 s, no UI,
   no telemetry).
2. One feed on a loopback site (``tests/loopback_site.py``, its own process): 6 real article pages an hour
   apart. A ``newsflow ingest --feeds`` against that server registers and polls it, so the feed's next poll
   is set tens of minutes ahead (half the median gap between its entries): no later run finds it due.
3. ``newsflow serve --ingest-every 10s`` (``PREFECT_RUNNER_POLL_FREQUENCY=1``) until ``--runs`` scheduled
   ingest runs have completed; then the flow runs of the ``ingest`` deployment are read from the server API
   (``POST /api/flow_runs/filter``) with each run's state history.
4. Per run: expected start -> start (scheduling + runner pickup + flow process start-up) and expected start
   -> end (total; target < 5 s). The first run is a warm-up and is left out of min/median/max.
5. Every process started is stopped (SIGINT to its process group, then SIGKILL), also on failure; the
   warehouse's ``runs`` table then confirms that the scheduled runs polled no feed.

Prints a table and writes the same figures as JSON to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any, TypeVar
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import (
    NEWSFLOW,
    REPO,
    VENV_BIN,
    Metric,
    _json_summary,
    checked,
    collect_pages,
    ingest_env,
    loopback_site,
    report,
    scratch_dir,
    write_pages,
)

PREFECT = VENV_BIN / "prefect"
FEED_ARTICLES = 6
TARGET_TOTAL_S = 5.0
SERVER_START_TIMEOUT_S = 120
STOP_TIMEOUT_S = 20
T = TypeVar("T")


# --------------------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 1.0) -> T:
    """Poll ``predicate`` until it returns something truthy; raise TimeoutError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


def stop_group(proc: subprocess.Popen[Any]) -> None:
    """SIGINT the process group (what Ctrl-C sends), then SIGKILL it if it has not exited in time."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)
    except ProcessLookupError:
        proc.wait(timeout=STOP_TIMEOUT_S)


@contextmanager
def process_group(cmd: Sequence[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``cmd`` in a new session (its own process group), output to ``log``; stop the group on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            list(cmd), env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            stop_group(proc)


def server_env(prefect_home: Path) -> dict[str, str]:
    """The environment of the Prefect server: its own home, scheduler loop 2 s, no UI, no telemetry."""
    return {
        **ingest_env(prefect_home),
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2",
        "PREFECT_UI_ENABLED": "false",
    }


def api_get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def api_post(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def healthy(api: str) -> bool:
    try:
        return bool(api_get(f"{api}/health"))
    except OSError:
        return False


# --------------------------------------------------------------------------------------------- feed


def write_feed(base: str, page_ids: Sequence[str], folder: Path, now: datetime) -> Path:
    """An RSS feed of the pages, an hour apart, the newest an hour old; returns its feeds TOML file."""
    items = "".join(
        f"<item><title>Scheduled bench {escape(page_id)}</title>"
        f"<link>{base}/pages/{escape(page_id)}.html</link>"
        f'<guid isPermaLink="false">schedule-{escape(page_id)}</guid>'
        f"<pubDate>{format_datetime(now - timedelta(hours=1 + n), usegmt=True)}</pubDate></item>"
        for n, page_id in enumerate(page_ids)
    )
    (folder / "feed.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel><title>Schedule bench</title>'
        f"<link>{base}/</link>{items}</channel></rss>"
    )
    toml = folder.parent / "feeds.toml"
    toml.write_text(f'[[feeds]]\nurl = "{base}/feeds/feed.xml"\n')
    return toml


def first_ingest(toml: Path, db: Path, env: dict[str, str]) -> dict[str, Any]:
    """``newsflow ingest --feeds`` once (on the server), so the feed is registered and not due for a while."""
    cmd = [
        str(NEWSFLOW),
        "ingest",
        "--feeds",
        str(toml),
        "--db",
        str(db),
        "--allow-private-networks",
        "--json",
    ]
    result = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"first ingest failed ({result.returncode}):\n{result.stderr[-3000:]}")
    summary = _json_summary(result.stdout)
    if summary is None:
        raise RuntimeError(f"first ingest printed no JSON summary:\n{result.stdout[-3000:]}")
    return summary


def next_poll_at(db: Path, env: dict[str, str]) -> datetime:
    """The registered feed's next poll time, from ``newsflow feeds list -f json``."""
    result = subprocess.run([str(NEWSFLOW), "feeds", "list", "--db", str(db), "-f", "json"], env=env,
                            cwd=REPO, capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    [feed] = json.loads(result.stdout)
    return parse_time(feed["next_poll_at"])


# --------------------------------------------------------------------------------------------- runs


def parse_time(value: str) -> datetime:
    moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def ingest_deployment_runs(api: str) -> list[dict[str, Any]]:
    """Flow runs of the ``ingest`` flow's ``ingest`` deployment, by expected start time."""
    body = {
        "flows": {"name": {"any_": ["ingest"]}},
        "deployments": {"name": {"any_": ["ingest"]}},
        "sort": "EXPECTED_START_TIME_ASC",
        "limit": 200,
    }
    runs: list[dict[str, Any]] = api_post(f"{api}/flow_runs/filter", body)
    return runs


def completed(runs: Sequence[dict[str, Any]], wanted: int) -> list[dict[str, Any]] | None:
    done = [r for r in runs if r["state_type"] == "COMPLETED"]
    return done if len(done) >= wanted else None


@dataclass
class RunTiming:
    """Seconds from a scheduled run's expected start to its states, and its state at the end."""

    name: str
    state: str
    expected_start: str
    to_pending_s: float | None  # runner picked it up (negative: ahead of time, the runner prefetches)
    startup_s: float | None  # pending -> start: the flow run's own process starting up
    to_start_s: float | None  # flow process is running the flow (scheduling + pickup + start-up)
    to_end_s: float | None  # run completed (the total)
    run_s: float | None  # start -> end: the flow body itself


def state_times(api: str, flow_run_id: str) -> dict[str, datetime]:
    """First timestamp of each state type in a flow run's history."""
    states = api_get(f"{api}/flow_run_states/?flow_run_id={flow_run_id}")
    first: dict[str, datetime] = {}
    for state in sorted(states, key=lambda s: s["timestamp"]):
        first.setdefault(state["type"], parse_time(state["timestamp"]))
    return first


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return None if start is None or end is None else round((end - start).total_seconds(), 3)


def run_timing(api: str, run: dict[str, Any]) -> RunTiming:
    expected = parse_time(run["expected_start_time"])
    start = parse_time(run["start_time"]) if run.get("start_time") else None
    end = parse_time(run["end_time"]) if run.get("end_time") else None
    states = state_times(api, run["id"])
    return RunTiming(
        name=run["name"],
        state=run["state_type"],
        expected_start=run["expected_start_time"],
        to_pending_s=_seconds(expected, states.get("PENDING")),
        startup_s=_seconds(states.get("PENDING"), start),
        to_start_s=_seconds(expected, start),
        to_end_s=_seconds(expected, end),
        run_s=_seconds(start, end),
    )


def warehouse_runs(db: Path) -> list[dict[str, Any]]:
    """The warehouse's ``ingest`` runs (status and counts), oldest first; read after serve has stopped."""
    from newsflow.settings import load_settings
    from newsflow.warehouse.lakehouse import Warehouse

    con = Warehouse.open(load_settings(db=db)).connect()
    try:
        rows = con.execute(
            "SELECT status, counts FROM runs WHERE flow = 'ingest' ORDER BY started_at"
        ).fetchall()
    finally:
        con.close()
    return [{"status": status, **json.loads(counts)} for status, counts in rows]


# --------------------------------------------------------------------------------------------- report


def spread(values: Sequence[float | None]) -> dict[str, float | None]:
    present = [v for v in values if v is not None]
    if not present:
        return {"min": None, "median": None, "max": None}
    return {"min": min(present), "median": statistics.median(present), "max": max(present)}


def build_metrics(r: dict[str, Any]) -> list[Metric]:
    start, total, body = r["to_start_s"], r["to_end_s"], r["run_s"]
    median = total["median"]
    return [
        Metric("scheduled ingest runs measured (after 1 warm-up)", r["runs_measured"]),
        Metric(
            "feeds polled by those runs (warehouse)",
            r["feeds_polled_by_scheduled_runs"],
            "= 0",
            r["feeds_polled_by_scheduled_runs"] == 0,
        ),
        Metric("expected start -> start s: min", start["min"]),
        Metric("expected start -> start s: median", start["median"]),
        Metric("expected start -> start s: max", start["max"]),
        Metric("pending -> start (flow process start-up) s: median", r["startup_s"]["median"]),
        Metric("start -> end (flow body) s: median", body["median"]),
        Metric("expected start -> end s: min", total["min"]),
        checked("expected start -> end s: median", median, "<", TARGET_TOTAL_S),
        Metric("expected start -> end s: max", total["max"]),
        Metric("warm-up run expected start -> end s", r["warm_up"]["to_end_s"] if r["warm_up"] else None),
    ]


def run_table(timings: Sequence[RunTiming]) -> str:
    """Seconds from each run's expected start to pending / start / end, its start-up and its body."""
    columns = ("->pending", "->start", "->end", "start-up", "body")
    header = f"{'run':<30} {'state':<10} " + " ".join(f"{c:>9}" for c in columns)
    lines = [header, "-" * len(header)]
    for n, t in enumerate(timings):
        cells = (t.to_pending_s, t.to_start_s, t.to_end_s, t.startup_s, t.run_s)
        shown = " ".join(f"{'n/a' if v is None else f'{v:.2f}':>9}" for v in cells)
        label = f"{t.name}{' (warm-up)' if n == 0 else ''}"
        lines.append(f"{label:<30} {t.state:<10} {shown}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=6, help="completed scheduled runs to wait for [6]")
    parser.add_argument("--every", default="10s", help="the ingest deployment's interval [10s]")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "results" / "schedule.json",
        help="JSON results file [bench/results/schedule.json]",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (its path is printed)")
    args = parser.parse_args(argv)
    if args.runs < 4:
        parser.error("--runs must be at least 4 (the first is a warm-up)")
    return args


def measure(args: argparse.Namespace, tmp: Path, stack: ExitStack) -> dict[str, Any]:
    """Start everything (registered on ``stack``, so it is stopped however this ends) and measure."""
    home, db = tmp / "prefect-home", tmp / "schedule.ducklake"
    home.mkdir()
    pages = collect_pages(FEED_ARTICLES)
    write_pages(pages, tmp / "site" / "pages")
    (tmp / "site" / "feeds").mkdir(parents=True)
    base, _site = stack.enter_context(loopback_site(tmp / "site" / "pages", tmp / "site" / "feeds"))
    toml = write_feed(base, [p.page_id for p in pages], tmp / "site" / "feeds", datetime.now(UTC))

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = server_env(home)
    server_cmd = [str(PREFECT), "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    stack.enter_context(process_group(server_cmd, env, tmp / "server.log"))
    started = time.monotonic()
    wait_for(lambda: healthy(api), SERVER_START_TIMEOUT_S, "prefect server health")
    print(f"prefect server healthy at {api} after {time.monotonic() - started:.1f} s", flush=True)

    client_env = {**env, "PREFECT_API_URL": api}
    first = first_ingest(toml, db, client_env)
    due = next_poll_at(db, client_env)
    ahead = (due - datetime.now(UTC)).total_seconds()
    print(
        f"first ingest stored {first['articles_stored']}; feed next due in {ahead / 60:.1f} min", flush=True
    )

    serve_env = {**client_env, "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    serve_cmd = [str(NEWSFLOW), "serve", "--ingest-every", args.every, "--db", str(db),
                 "--allow-private-networks"]  # fmt: skip
    with process_group(serve_cmd, serve_env, tmp / "serve.log"):
        print(f"serving; waiting for {args.runs} completed scheduled ingest runs ...", flush=True)
        timeout = 120 + 30 * args.runs
        wait_for(lambda: completed(ingest_deployment_runs(api), args.runs), timeout, "scheduled runs", 2.0)
        finished = [r for r in ingest_deployment_runs(api) if r["state_type"] not in ("SCHEDULED", "PENDING")]
        timings = [run_timing(api, run) for run in finished if run.get("start_time")]
    # serve has stopped, so the warehouse can be opened read-only.
    stored_runs = warehouse_runs(db)
    return summarise(timings, stored_runs[1:], first, ahead)


def summarise(
    timings: Sequence[RunTiming], scheduled: Sequence[dict[str, Any]], first: dict[str, Any], ahead: float
) -> dict[str, Any]:
    measured = [t for t in timings[1:] if t.state == "COMPLETED"]
    return {
        "first_ingest_articles_stored": first.get("articles_stored"),
        "feed_next_poll_ahead_s": round(ahead, 1),
        "runs_seen": len(timings),
        "runs_measured": len(measured),
        "warm_up": asdict(timings[0]) if timings else None,
        "runs": [asdict(t) for t in timings],
        "to_pending_s": spread([t.to_pending_s for t in measured]),
        "startup_s": spread([t.startup_s for t in measured]),
        "to_start_s": spread([t.to_start_s for t in measured]),
        "to_end_s": spread([t.to_end_s for t in measured]),
        "run_s": spread([t.run_s for t in measured]),
        "target_to_end_s": TARGET_TOTAL_S,
        "warehouse_scheduled_runs": [
            {k: r.get(k) for k in ("status", "feeds_polled", "new_entries", "articles_stored", "timings")}
            for r in scheduled
        ],
        "feeds_polled_by_scheduled_runs": sum(int(r.get("feeds_polled") or 0) for r in scheduled),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with scratch_dir("newsflow-schedule-bench-", args.keep) as tmp, ExitStack() as stack:
        results = measure(args, tmp, stack)
    runs = run_table([RunTiming(**run) for run in results["runs"]])
    report(results, build_metrics(results), args.out, before=runs)
    return 0 if results["runs_measured"] >= args.runs - 1 else 1


if __name__ == "__main__":
    sys.exit(main())
