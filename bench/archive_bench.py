"""Archive backfill benchmark: a CC-NEWS-like WARC file of real pages, read by ``newsflow backfill --source
cc-news`` against the limits of its parts, measured in the same run.

    .venv/bin/python bench/archive_bench.py [--records 20000] [--small 10000] [--share 0.05]
        [--fundus-python PATH] [--out bench/results/archive.json] [--keep]

Steps:

1. Two CC-NEWS-like files (a warcinfo record, then a request and a response per page, a gzip member each,
   written with warcio; ``X-Crawler-*`` headers as StormCrawler writes them) of ``--records`` and ``--small``
   responses: the 820 distinct shared pages over and over, on about 400 hosts. ``--share`` of the responses
   are on the chosen sites: every shared page in turn, the 35 whose publisher Fundus has a parser for under
   their real URLs (with ``?copy=N`` to make each capture its own article), the others on subdomains of
   ``chosen-news.example``. Served by
   ``tests/loopback_site.py``-like plain file serving from ``tests/archive_site.py`` (Range requests).
2. Limits, in this process: FastWARC alone streaming the file over loopback HTTP, matching hosts and reading
   the kept bodies (records/s, MB/s); warcio the same (why FastWARC); trafilatura alone on the kept pages in
   2 processes (pages/s).
3. ``newsflow backfill --source cc-news --json`` cold (fresh warehouse, a Prefect home whose database exists):
   with ``--site`` matching nothing (the scan alone), then the chosen sites on the big and the small file.
   Wall time, the flow body's ``archives_s``, peak PSS of the process tree.
4. The peer: Fundus' ``CCNewsCrawler`` on the same file and publishers, in ``--fundus-python`` (a Python with
   ``fundus`` installed; skipped, and said so, without it).

Ratios: scan = (responses / backfill archives_s with no site) / limit; articles stage = (kept pages /
(archives_s with the sites - archives_s with none)) / trafilatura alone pages/s.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import subprocess
import sys
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest_bench import (
    NEWSFLOW,
    REPO,
    RSS_SAMPLE_SECONDS,
    SHARED_DATA,
    Metric,
    _extract,
    _json_summary,
    _summed_by_kind,
    _warm_worker,
    checked,
    cpu_seconds,
    ingest_env,
    prepare_prefect_home,
    process_kind,
    pss_bytes,
    report,
    scratch_dir,
    tree_rss_bytes,
)

ARCHIVE_SITE = REPO / "tests" / "archive_site.py"
FIRST_CAPTURE = datetime(2023, 9, 25, tzinfo=UTC)
#: Pages of the shared data on hosts Fundus has a publisher (and parser) for (found with Fundus 0.5.7's
#: PublisherCollection: the exact netloc of the page's URL).
FUNDUS_PAGES = (
    "1ace8c85aaee21b9d4505eca506d50c4721c29db62848b567a9703bfe0583892",
    "374ac9a59a85196cdacc1679fb8993521a7b7d9d6533720f102300be1c7face4",
    "57d46c9d751e3fd3ffaf3ede7ac20cebd30eacb5ea78e1a6aa0a72059244e7ca",
    "7dfc3e359d7c0ca48ac9046ae5759286cedf80abe7526fc6c6e6546b9ba43e33",
    "8634d1211c3f2b73041e6cadd5d59676619838949999a83a23c51a3195b44892",
    "8b194530308204139d9c8f7d495a26b117c78756ac1802cfc3c0a8bfdf2c0d50",
    "ba4dfe2d3e817ff7b8b01172ccc307850fc5469bcdd26c3c48ca046cb88ab7cf",
    "d48aeb9cf2f2ff15769a57513249b4a6a669159f3e50b335e741d4206a824e88",
    "eb62ac8425e5573947ecde962d14433d18e5725cc4a8c908fe22f678e96a65a1",
    "fde930b01859de8311c6a14f8aa8c72be0659b551367803deb6736cf3526cf2e",
    "16553571222f6455",
    "167bc5c78df3f649",
    "23a0bfc4c9cc458c",
    "25e047b2f777d42c",
    "267920b40dcd6f57",
    "2c3f26186495201c",
    "35ad5b9601d3d0e7",
    "3ec60b7ac8a4aa14",
    "4089cc026e64ab05",
    "40f4743c7e899828",
    "5264ca030d133bb8",
    "532ee71a9f810a83",
    "5c85bc938c4da7dc",
    "72e45c4154ae6d37",
    "7560012b6d9267df",
    "7680a47b193e24ef",
    "822b92967e73daef",
    "957d6512e2f1199a",
    "9d30e95be26ae6b8",
    "9fba38c473222d7b",
    "a21c4a2514b7d33f",
    "cfd4f6508d73f2e6",
    "d4f8a8655a21da8e",
    "da70a68dc9daa709",
    "e2bf5cbfc3f53131",
)
TARGET_SCAN_RATIO = 0.8
TARGET_ARTICLES_RATIO = 0.8
TARGET_PEAK_PSS_MB = 1000


@dataclass(frozen=True)
class SharedPage:
    page_id: str
    url: str
    html: bytes
    charset: str


def shared_pages() -> list[SharedPage]:
    """The 820 shared pages with their real URLs; a page not in UTF-8 keeps its bytes and says its charset."""
    pages = []
    for folder in ("scrapinghub-article-extraction-benchmark", "trafilatura-eval"):
        truth = json.loads((SHARED_DATA / folder / "ground-truth.json").read_text())
        for page_id, meta in sorted(truth.items()):
            html = gzip.decompress((SHARED_DATA / folder / "html" / f"{page_id}.html.gz").read_bytes())
            try:
                html.decode("utf-8")
                charset = "utf-8"
            except UnicodeDecodeError:
                charset = "windows-1252"
            pages.append(
                SharedPage(page_id, meta.get("url") or f"https://unknown.example/{page_id}", html, charset)
            )
    return pages


#: The chosen site of the kept pages whose publisher Fundus has no parser for (its subdomains hold them).
OTHER_CHOSEN = "chosen-news.example"


def chosen_sites(pages: Sequence[SharedPage]) -> list[str]:
    """The domains of the Fundus pages' hosts (``www.`` dropped: a domain takes its subdomains), and the
    domain the other kept pages are put on."""
    by_id = {p.page_id: p for p in pages}
    fundus = {(urlsplit(by_id[i].url).hostname or "").removeprefix("www.") for i in FUNDUS_PAGES}
    return sorted(fundus | {OTHER_CHOSEN})


def write_news_file(path: Path, pages: Sequence[SharedPage], records: int, share: float) -> dict[str, Any]:
    """A CC-NEWS-like file of ``records`` responses; every ``1/share``-th one is a chosen-site capture."""
    from warcio.statusandheaders import StatusAndHeaders

    by_id = {p.page_id: p for p in pages}
    # Kept pages: every shared page in turn (the Fundus pages under their real URLs, the others on
    # subdomains of OTHER_CHOSEN), so the extraction stage sees the same mix as ingest_bench's.
    chosen = [by_id[i] for i in FUNDUS_PAGES] + [p for p in pages if p.page_id not in FUNDUS_PAGES]
    others = [p for p in pages if p.page_id not in FUNDUS_PAGES]
    step = max(1, round(1 / share))
    kept_ids: list[str] = []
    uncompressed = 0
    with path.open("wb") as out:
        members = _Members(out)
        members.write(members.writer.create_warcinfo_record(path.name, {"isPartOf": "CC-NEWS"}))
        for number in range(records):
            if number % step == 0:
                page = chosen[(number // step) % len(chosen)]
                if page.page_id in FUNDUS_PAGES:
                    url = f"{page.url}{'&' if '?' in page.url else '?'}copy={number}"
                else:
                    url = f"https://news{number % 7}.{OTHER_CHOSEN}/{page.page_id}/{number}"
                kept_ids.append(page.page_id)
            else:
                page = others[number % len(others)]
                url = f"https://site{number % 397}.example/{page.page_id}/{number}"
            stamp = (FIRST_CAPTURE + timedelta(seconds=number)).strftime("%Y-%m-%dT%H:%M:%SZ")
            uncompressed += len(page.html)
            request = members.writer.create_warc_record(
                url,
                "request",
                payload=io.BytesIO(b""),
                warc_headers_dict={"WARC-Date": stamp},
                http_headers=StatusAndHeaders(
                    "GET / HTTP/1.1", [("Host", urlsplit(url).netloc)], is_http_request=True
                ),
            )
            headers = StatusAndHeaders(
                "200 OK",
                [
                    ("Content-Type", f"text/html; charset={page.charset}"),
                    ("Content-Length", str(len(page.html))),
                    ("X-Crawler-Content-Encoding", "gzip"),
                ],
                protocol="HTTP/1.1",
            )
            response = members.writer.create_warc_record(
                url,
                "response",
                payload=io.BytesIO(page.html),
                http_headers=headers,
                warc_headers_dict={"WARC-Date": stamp},
            )
            members.write(request)
            members.write(response)
    return {
        "responses": records,
        "kept": len(kept_ids),
        "kept_ids": kept_ids,
        "bytes": path.stat().st_size,
        "uncompressed_html_bytes": uncompressed,
    }


class _Members:
    """Writes warcio records a gzip member each (level 6, gzip's default: warcio's own writer uses 9,
    which took 10 s per 1,000 records here)."""

    def __init__(self, out: Any) -> None:
        from warcio.warcwriter import WARCWriter

        self.out = out
        self.buffer = io.BytesIO()
        self.writer = WARCWriter(self.buffer, gzip=False)

    def write(self, record: Any) -> None:
        self.buffer.seek(0)
        self.buffer.truncate()
        self.writer.write_record(record)
        compressor = zlib.compressobj(6, zlib.DEFLATED, 31)
        self.out.write(compressor.compress(self.buffer.getvalue()) + compressor.flush())


# -------------------------------------------------------------------------------------------- limits


def scan_limit(url: str, sites: list[str], library: str) -> dict[str, float]:
    """One library alone streaming the file over HTTP, matching hosts, reading the kept bodies."""
    import httpx

    from newsflow.net.urls import SiteMatcher

    matcher = SiteMatcher(sites)
    started, cpu_started = time.monotonic(), time.process_time()
    responses = kept = 0
    with httpx.Client() as client, client.stream("GET", url) as response:
        stream = _Stream(response.iter_raw())
        if library == "fastwarc":
            from fastwarc.stream_io import GzipReader
            from fastwarc.warc import ArchiveIterator, WarcRecordType

            for record in ArchiveIterator(
                GzipReader(stream), record_types=WarcRecordType.response, parse_http=False
            ):
                responses += 1
                if matcher.matches(record.headers.get("WARC-Target-URI")):
                    kept += 1
                    record.parse_http()
                    record.reader.read()
        else:
            from warcio.archiveiterator import ArchiveIterator as WarcioIterator

            for record in WarcioIterator(stream):
                if record.rec_type != "response":
                    continue
                responses += 1
                if matcher.matches(record.rec_headers.get_header("WARC-Target-URI")):
                    kept += 1
                    record.content_stream().read()
        size = stream.position
    seconds = time.monotonic() - started
    return {
        "responses": responses,
        "kept": kept,
        "seconds": seconds,
        "cpu_s": time.process_time() - cpu_started,
        "records_per_s": responses / seconds,
        "mb_per_s": size / 1e6 / seconds,
    }


class _Stream:
    def __init__(self, chunks: Any) -> None:
        self._chunks, self._buffer, self.position = chunks, b"", 0

    def read(self, size: int = -1) -> bytes:
        while size < 0 or len(self._buffer) < size:
            chunk = next(self._chunks, None)
            if chunk is None:
                break
            self._buffer += chunk
        data, self._buffer = (self._buffer, b"") if size < 0 else (self._buffer[:size], self._buffer[size:])
        self.position += len(data)
        return data

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        raise OSError("forward only")

    def close(self) -> None:
        pass


def trafilatura_alone(pages: Sequence[SharedPage], kept_ids: list[str]) -> dict[str, float]:
    """Pages/s of trafilatura alone on the kept pages, 2 warm spawn processes (as ingest_bench's limit)."""
    import multiprocessing

    by_id = {p.page_id: p for p in pages}
    jobs = [(by_id[i].html, by_id[i].url) for i in kept_ids]
    with ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn")) as pool:
        warmed: set[int] = set()
        while len(warmed) < 2:
            warmed.update(pool.map(_warm_worker, range(2)))
        started = time.monotonic()
        list(pool.map(_extract, jobs, chunksize=4))
        seconds = time.monotonic() - started
    return {"pages": len(jobs), "seconds": seconds, "pages_per_s": len(jobs) / seconds}


# -------------------------------------------------------------------------------------------- backfill


def run_backfill(
    base: str, sites: list[str], since: str, db: Path, prefect_home: Path, workdir: Path
) -> dict[str, Any]:
    """A cold ``newsflow backfill --source cc-news --json``: wall, the flow's timings, the tree's peak PSS.
    The pages' own dates are 2016-2020: a window from 2016-08-01 keeps them (86 month listings are read,
    empty but for the file's); the scan alone needs only the capture day (one listing)."""
    command = [
        str(NEWSFLOW),
        "backfill",
        "--source",
        "cc-news",
        "--since",
        since,
        "--until",
        f"{FIRST_CAPTURE:%Y-%m-%d}",
        "--db",
        str(db),
        "--allow-private-networks",
        "--json",
    ]
    for site in sites:
        command += ["--site", site]
    env = ingest_env(prefect_home) | {"NEWSFLOW_CC_DATA_URL": f"{base}/data/"}
    peak_pss = 0
    cpu: dict[int, float] = {}
    kinds: dict[int, str] = {}
    peak_rss: dict[int, int] = {}
    with (workdir / "out.json").open("w") as out, (workdir / "err.txt").open("w") as err:
        started = time.monotonic()
        process = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=workdir)
        while process.poll() is None:
            pids = tree_rss_bytes(process.pid)
            peak_pss = max(peak_pss, sum(pss_bytes(pid) for pid in pids))
            for pid, rss in pids.items():
                cpu[pid] = cpu_seconds(pid) or cpu.get(pid, 0.0)
                kinds.setdefault(pid, process_kind(pid))
                peak_rss[pid] = max(peak_rss.get(pid, 0), rss)
            time.sleep(RSS_SAMPLE_SECONDS)
        wall = time.monotonic() - started
    summary = _json_summary((workdir / "out.json").read_text())
    if process.returncode != 0 or summary is None:
        raise SystemExit(
            f"backfill failed ({process.returncode}): {(workdir / 'err.txt').read_text()[-3000:]}"
        )
    return {
        "wall_s": wall,
        "peak_pss_mb": peak_pss / 2**20,
        "cpu_s_by_kind": _summed_by_kind(cpu, kinds),
        "peak_rss_mb_by_process": {
            f"{kinds[pid]} {pid}": round(rss / 2**20) for pid, rss in peak_rss.items()
        },
        "summary": summary,
    }


def run_fundus(python: str, base: str, pages: Sequence[SharedPage], workdir: Path) -> dict[str, Any]:
    """Fundus' CCNewsCrawler on the same file, for the publishers of the chosen pages' hosts
    (bench/peers/fundus_ccnews.py, run by ``python``)."""
    script = Path(__file__).resolve().parent / "peers" / "fundus_ccnews.py"
    by_id = {p.page_id: p for p in pages}
    hosts = sorted({urlsplit(by_id[i].url).netloc for i in FUNDUS_PAGES})
    day = f"{FIRST_CAPTURE:%Y-%m-%d}"
    command = [
        python,
        str(script),
        "--server",
        f"{base}/data/",
        "--start",
        day,
        "--end",
        day,
        "--hosts",
        *hosts,
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=workdir, timeout=3600)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    return dict(json.loads(done.stdout.strip().splitlines()[-1])) | {"wall_s": time.monotonic() - started}


# -------------------------------------------------------------------------------------------- main


def start_archive(root: Path) -> tuple[subprocess.Popen[str], str]:
    (root / "_captures.json").write_text("[]")
    process = subprocess.Popen(
        [sys.executable, str(ARCHIVE_SITE), "--root", str(root)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def write_listings(root: Path, files: dict[str, Path]) -> None:
    """A listing for every month from 2016-08 to the file's (empty but for the file's own month)."""
    month = datetime(2016, 8, 1, tzinfo=UTC)
    while month <= FIRST_CAPTURE:
        folder = root / "crawl-data" / "CC-NEWS" / f"{month:%Y}" / f"{month:%m}"
        folder.mkdir(parents=True, exist_ok=True)
        lines = [str(p.relative_to(root)) for p in files.values() if p.parent == folder]
        (folder / "warc.paths.gz").write_bytes(gzip.compress("".join(f"{line}\n" for line in lines).encode()))
        month = (month + timedelta(days=32)).replace(day=1)


def run_benchmark(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    pages = shared_pages()
    sites = chosen_sites(pages)
    results: dict[str, Any] = {"sites": sites}
    for name, records in (("big", args.records), ("small", args.small)):
        root = tmp / name
        folder = root / "crawl-data" / "CC-NEWS" / f"{FIRST_CAPTURE:%Y}" / f"{FIRST_CAPTURE:%m}"
        folder.mkdir(parents=True)
        path = folder / f"CC-NEWS-{FIRST_CAPTURE:%Y%m%d%H%M%S}-00001.warc.gz"
        started = time.monotonic()
        results[name] = {"file": write_news_file(path, pages, records, args.share)}
        results[name]["file"]["write_s"] = time.monotonic() - started
        write_listings(root, {name: path})
        print(f"{name}: {records} responses, {path.stat().st_size / 1e6:.0f} MB", flush=True)
    kept_ids = results["big"]["file"].pop("kept_ids")
    results["small"]["file"].pop("kept_ids")
    server, base = start_archive(tmp / "big")
    small_server, small_base = start_archive(tmp / "small")
    try:
        name = f"CC-NEWS-{FIRST_CAPTURE:%Y%m%d%H%M%S}-00001.warc.gz"
        big_url = f"{base}/data/crawl-data/CC-NEWS/{FIRST_CAPTURE:%Y/%m}/{name}"
        results["limit_fastwarc"] = scan_limit(big_url, sites, "fastwarc")
        results["limit_warcio"] = scan_limit(big_url, sites, "warcio")
        results["limit_trafilatura"] = trafilatura_alone(pages, kept_ids)
        print("limits measured", flush=True)
        home = tmp / "prefect-home"
        prepare_prefect_home(home)
        day, wide = f"{FIRST_CAPTURE:%Y-%m-%d}", "2016-08-01"
        for label, server_base, chosen, since, db in (
            ("scan_only", base, ["nothing.invalid"], day, tmp / "scan.ducklake"),
            ("scan_only_small", small_base, ["nothing.invalid"], day, tmp / "scan-small.ducklake"),
            ("backfill_big", base, sites, wide, tmp / "big.ducklake"),
            ("backfill_small", small_base, sites, wide, tmp / "small.ducklake"),
        ):
            workdir = tmp / f"run-{label}"
            workdir.mkdir()
            results[label] = run_backfill(server_base, chosen, since, db, home, workdir)
            print(f"{label}: {results[label]['wall_s']:.1f} s", flush=True)
        if args.fundus_python:
            (tmp / "run-fundus").mkdir()
            results["fundus"] = run_fundus(args.fundus_python, base, pages, tmp / "run-fundus")
    finally:
        for process in (server, small_server):
            process.terminate()
            process.wait()
    return results


def build_metrics(results: dict[str, Any], args: argparse.Namespace) -> list[Metric]:
    big = results["big"]["file"]
    limit = results["limit_fastwarc"]
    scan = results["scan_only"]
    scan_s = scan["summary"]["timings"]["archives_s"]
    backfill = results["backfill_big"]
    archives_s = backfill["summary"]["timings"]["archives_s"]
    stored = backfill["summary"]["archives"]["cc-news"]
    articles_rate = big["kept"] / max(archives_s - scan_s, 1e-9)
    trafilatura = results["limit_trafilatura"]["pages_per_s"]
    metrics = [
        Metric(
            "file: responses / MB (gzip) / MB of HTML",
            f"{big['responses']:,} / {big['bytes'] / 1e6:,.0f} / {big['uncompressed_html_bytes'] / 1e6:,.0f}",
        ),
        Metric(
            "FastWARC alone: responses/s, MB/s (CPU s)",
            f"{limit['records_per_s']:,.0f}, {limit['mb_per_s']:,.1f} ({limit['cpu_s']:.1f})",
        ),
        Metric(
            "warcio alone: responses/s, MB/s (CPU s)",
            f"{results['limit_warcio']['records_per_s']:,.0f}, "
            f"{results['limit_warcio']['mb_per_s']:,.1f} ({results['limit_warcio']['cpu_s']:.1f})",
        ),
        Metric("backfill, no site kept: wall s / flow body s", f"{scan['wall_s']:.1f} / {scan_s:.1f}"),
        checked(
            "scan ratio (flow body)",
            big["responses"] / scan_s / limit["records_per_s"],
            ">=",
            TARGET_SCAN_RATIO,
        ),
        Metric("scan ratio (whole command)", big["responses"] / scan["wall_s"] / limit["records_per_s"]),
        Metric(
            "backfill with the sites: wall s / flow body s", f"{backfill['wall_s']:.1f} / {archives_s:.1f}"
        ),
        Metric(
            "kept / stored / outside the window",
            f"{stored['records']['kept']:,} / {stored['articles_stored']:,}"
            f" / {stored['outside_publication_window']:,}",
        ),
        Metric("trafilatura alone on the kept pages, pages/s", trafilatura),
        checked("articles stage ratio", articles_rate / trafilatura, ">=", TARGET_ARTICLES_RATIO),
        checked("peak PSS, big file (MB)", backfill["peak_pss_mb"], "<", TARGET_PEAK_PSS_MB),
        Metric("peak PSS, file of half the size (MB)", results["backfill_small"]["peak_pss_mb"]),
        Metric(
            "peak PSS of the scan alone, big / half-size file (MB)",
            f"{scan['peak_pss_mb']:.0f} / {results['scan_only_small']['peak_pss_mb']:.0f}",
        ),
        Metric(
            "CPU s: extraction workers / flow process / Prefect API (big file)",
            " / ".join(
                f"{backfill['cpu_s_by_kind'].get(kind, 0):.1f}"
                for kind in ("extraction-worker", "newsflow-cli", "prefect-api-server")
            ),
        ),
    ]
    fundus = results.get("fundus")
    if fundus is None:
        metrics.append(Metric("Fundus CCNewsCrawler", "not run (--fundus-python not given)"))
    elif "error" in fundus:
        metrics.append(Metric("Fundus CCNewsCrawler", "failed: " + fundus["error"].splitlines()[-1][:80]))
    else:
        metrics.append(
            Metric(
                "Fundus CCNewsCrawler: complete / all articles, s (one pass)",
                f"{fundus['complete']:,} / {fundus['articles']:,}, {fundus['seconds']:.1f}",
            )
        )
    return metrics


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--share", type=float, default=0.05)
    parser.add_argument("--fundus-python", default=None, help="a Python with fundus installed (the peer)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "archive.json")
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with scratch_dir("newsflow-archive-bench-", args.keep) as tmp:
        results = run_benchmark(args, tmp)
    report(results, build_metrics(results, args), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
