"""A web archive on 127.0.0.1 for tests and benchmarks, run as its own process: Common Crawl's data (with
HTTP Range requests), the Wayback Machine's CDX API and raw replays, and Common Crawl's URL index.

    python tests/archive_site.py --root DIR [--cdx-page-rows N] [--index-page-size N]

prints ``http://127.0.0.1:PORT`` on its first line once it listens. ``DIR`` holds the WARC files (below
``crawl-data/``) and ``_captures.json``, the list of their response records (url, timestamp, status,
mime, file, offset, length) that both indexes answer from. It serves:

- ``/data/<path>``: files below DIR; ``Range: bytes=A-`` and ``bytes=A-B`` answer 206 (416 past the end).
- ``/wayback/cdx/search/cdx``: ``url``, ``matchType`` (exact, prefix, host, domain), ``from``/``to`` (1-14
  digits), ``filter=[!]field:regex`` (repeatable), ``collapse=urlkey``, ``limit``, ``output=json``,
  ``showResumeKey``/``resumeKey``; at most ``--cdx-page-rows`` rows an answer, as the real one caps them.
- ``/wayback/web/<14 digits>id_/<url>``: the capture's original status, Content-Type and bytes.
- ``/index/collinfo.json`` and ``/index/<crawl>-index``: ``url``, ``matchType``, ``output=json``,
  ``from``/``to``, ``showNumPages=true`` or ``page=N`` (``--index-page-size`` captures a page).
- ``POST /_faults`` (a JSON list; each rule applies to requests whose path starts with ``prefix``):
  ``{"prefix", "statuses": [429, 503], "retry_after": "1"}`` answers those statuses to the next requests,
  one each; ``{"prefix", "reset_after": BYTES, "times": N}`` sends that many body bytes, then drops the
  connection; ``{"prefix", "bytes_per_second": N}`` streams bodies slowly.
- ``/_log``: every request so far (method, path, query, range header, status); ``/_log/reset`` clears it.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from warcio.archiveiterator import ArchiveIterator

CRAWLS = [
    {
        "id": "CC-MAIN-2022-05",
        "name": "January 2022 Index",
        "from": "2022-01-16T00:00:00",
        "to": "2022-01-29T23:59:59",
    },
    {
        "id": "CC-MAIN-2021-49",
        "name": "November/December 2021 Index",
        "from": "2021-11-26T00:00:00",
        "to": "2021-12-09T23:59:59",
    },
]


def surt(url: str) -> str:
    """The sort-friendly URL key of the CDX format: ``com,example)/path?query``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower().removeprefix("www.")
    key = ",".join(reversed(host.split("."))) + ")" + (parts.path or "/").lower()
    return key + (f"?{parts.query.lower()}" if parts.query else "")


def padded(stamp: str, high: bool) -> str:
    return stamp + ("99991231235959" if high else "00000101000000")[len(stamp) :]


def host_matches(url: str, wanted: str, match_type: str) -> bool:
    host = (urlsplit(url).hostname or "").lower()
    target = (urlsplit(wanted if "://" in wanted else f"//{wanted}").hostname or "").lower()
    if match_type == "domain":
        return host == target or host.endswith("." + target)
    if match_type == "host":
        return host == target
    if match_type == "prefix":
        return url.startswith(wanted)
    return url == wanted


class Archive:
    def __init__(self, root: Path, cdx_page_rows: int, index_page_size: int) -> None:
        self.root = root
        self.captures = json.loads((root / "_captures.json").read_text())
        for capture in self.captures:
            capture["urlkey"] = surt(capture["url"])
        self.captures.sort(key=lambda c: (c["urlkey"], c["timestamp"]))
        self.cdx_page_rows = cdx_page_rows
        self.index_page_size = index_page_size
        self.log: list[dict[str, Any]] = []
        self.faults: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def fault_for(self, path: str) -> dict[str, Any] | None:
        """The first fault rule for ``path``, used up as it applies."""
        with self.lock:
            for rule in self.faults:
                if not path.startswith(rule["prefix"]):
                    continue
                if rule.get("statuses"):
                    return {"status": rule["statuses"].pop(0), "retry_after": rule.get("retry_after")}
                if rule.get("reset_after") is not None and rule.get("times", 1) > 0:
                    rule["times"] = rule.get("times", 1) - 1
                    return {"reset_after": rule["reset_after"]}
                if rule.get("bytes_per_second"):
                    return {"bytes_per_second": rule["bytes_per_second"]}
        return None

    def matching(self, query: dict[str, list[str]]) -> list[dict[str, Any]]:
        wanted = query.get("url", [""])[0]
        match_type = query.get("matchType", ["exact"])[0]
        low = padded(query.get("from", [""])[0], high=False)
        high = padded(query.get("to", [""])[0], high=True)
        rows = [
            c
            for c in self.captures
            if host_matches(c["url"], wanted, match_type) and low <= c["timestamp"] <= high
        ]
        return rows


class Handler(BaseHTTPRequestHandler):
    archive: Archive
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        if self.path == "/_faults":
            with self.archive.lock:
                self.archive.faults = json.loads(body)
            self._send(200, b"ok", "text/plain", record=False)
        else:
            self._send(404, b"", "text/plain")

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        if path == "/_log":
            with self.archive.lock:
                self._send(200, json.dumps(self.archive.log).encode(), "application/json", record=False)
            return
        if path == "/_log/reset":
            with self.archive.lock:
                self.archive.log.clear()
            self._send(200, b"ok", "text/plain", record=False)
            return
        fault = self.archive.fault_for(path)
        if fault and "status" in fault:
            headers = {"Retry-After": fault["retry_after"]} if fault.get("retry_after") else {}
            self._send(fault["status"], b"slow down", "text/plain", headers=headers)
            return
        if path.startswith("/data/"):
            self._data(path.removeprefix("/data/"), fault or {})
        elif path == "/wayback/cdx/search/cdx":
            self._cdx(query)
        elif path.startswith("/wayback/web/"):
            self._replay(self.path.removeprefix("/wayback/web/"))
        elif path == "/index/collinfo.json":
            self._send(200, json.dumps(CRAWLS).encode(), "application/json")
        elif path.startswith("/index/") and path.endswith("-index"):
            self._cc_index(path.removeprefix("/index/").removesuffix("-index"), query)
        else:
            self._send(404, b"not found", "text/plain")

    # ---------------------------------------------------------------------------------------------- data

    def _data(self, relative: str, fault: dict[str, Any]) -> None:
        file = (self.archive.root / relative).resolve()
        if self.archive.root.resolve() not in file.parents or not file.is_file():
            self._send(404, b"no such file", "text/plain")
            return
        size = file.stat().st_size
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        start, end, status = 0, size - 1, 200
        if wanted:
            start = int(wanted[1])
            end = min(int(wanted[2]), size - 1) if wanted[2] else size - 1
            if start >= size:
                self._send(416, b"", "text/plain", headers={"Content-Range": f"bytes */{size}"})
                return
            status = 206
        headers = {"Accept-Ranges": "bytes"}
        if status == 206:
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start + 1))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        with file.open("rb") as handle:
            handle.seek(start)
            self._stream(handle, end - start + 1, fault)

    def _stream(self, handle: io.BufferedReader, count: int, fault: dict[str, Any]) -> None:
        sent, chunk = 0, 16384
        rate = fault.get("bytes_per_second")
        limit = fault.get("reset_after")
        while sent < count:
            data = handle.read(min(chunk, count - sent))
            if limit is not None and sent + len(data) > limit:
                self.wfile.write(data[: limit - sent])
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the connection drops mid-body
                return
            self.wfile.write(data)
            sent += len(data)
            if rate:
                time.sleep(len(data) / rate)

    # ------------------------------------------------------------------------------------------- Wayback

    def _cdx(self, query: dict[str, list[str]]) -> None:
        rows = self.archive.matching(query)
        for spec in query.get("filter", []):
            negate = spec.startswith("!")
            name, _, pattern = spec.lstrip("!").partition(":")
            field = {"statuscode": "status", "mimetype": "mime", "original": "url"}.get(name, name)
            rows = [r for r in rows if bool(re.fullmatch(pattern, str(r[field]))) != negate]
        if query.get("collapse", [""])[0] == "urlkey":
            seen: set[str] = set()
            rows = [r for r in rows if not (r["urlkey"] in seen or seen.add(r["urlkey"]))]
        resume = query.get("resumeKey", [""])[0]
        if resume:
            rows = [r for r in rows if f"{r['urlkey']} {r['timestamp']}" >= resume]
        limit = min(int(query.get("limit", ["100000"])[0]), self.archive.cdx_page_rows)
        page, rest = rows[:limit], rows[limit:]
        fields = ["urlkey", "timestamp", "original", "mimetype", "statuscode", "digest", "length"]
        out: list[list[str]] = [fields] if page else []
        for r in page:
            out.append(
                [r["urlkey"], r["timestamp"], r["url"], r["mime"], str(r["status"]), "SHA1", str(r["length"])]
            )
        if rest and query.get("showResumeKey", [""])[0] == "true":
            out += [[], [f"{rest[0]['urlkey']} {rest[0]['timestamp']}"]]
        self._send(200, json.dumps(out).encode(), "application/json")

    def _replay(self, rest: str) -> None:
        match = re.fullmatch(r"(\d{14})id_/(.+)", rest)
        capture = None
        if match:
            capture = next(
                (c for c in self.archive.captures if c["timestamp"] == match[1] and c["url"] == match[2]),
                None,
            )
        if capture is None:
            self._send(404, b"not in the archive", "text/plain")
            return
        with (self.archive.root / capture["file"]).open("rb") as handle:
            handle.seek(capture["offset"])
            member = handle.read(capture["length"])
        record = next(iter(ArchiveIterator(io.BytesIO(member))))
        body = record.content_stream().read()
        content_type = record.http_headers.get_header("Content-Type") or "text/html"
        self._send(capture["status"], body, content_type)

    # ------------------------------------------------------------------------------------------- CC index

    def _cc_index(self, crawl_id: str, query: dict[str, list[str]]) -> None:
        crawl = next((c for c in CRAWLS if c["id"] == crawl_id), None)
        if crawl is None:
            self._send(404, b"no such crawl", "text/plain")
            return
        low = crawl["from"].replace("-", "").replace(":", "").replace("T", "")
        high = crawl["to"].replace("-", "").replace(":", "").replace("T", "")
        rows = [r for r in self.archive.matching(query) if low <= r["timestamp"] <= high]
        size = self.archive.index_page_size
        if query.get("showNumPages", [""])[0] == "true":
            answer = {"pages": math.ceil(len(rows) / size), "pageSize": size, "blocks": len(rows)}
            self._send(200, json.dumps(answer).encode(), "application/json")
            return
        if not rows:
            self._send(404, b'{"message": "No Captures found"}', "application/json")
            return
        number = int(query.get("page", ["0"])[0])
        lines = [
            json.dumps(
                {
                    "urlkey": r["urlkey"],
                    "timestamp": r["timestamp"],
                    "url": r["url"],
                    "mime": r["mime"],
                    "mime-detected": r["mime"],
                    "status": str(r["status"]),
                    "digest": "SHA1",
                    "length": str(r["length"]),
                    "offset": str(r["offset"]),
                    "filename": r["file"],
                }
            )
            for r in rows[number * size : (number + 1) * size]
        ]
        self._send(200, ("\n".join(lines) + "\n").encode(), "text/x-ndjson")

    # --------------------------------------------------------------------------------------------- reply

    def _record(self, status: int) -> None:
        parts = urlsplit(self.path)
        with self.archive.lock:
            self.archive.log.append(
                {
                    "method": self.command,
                    "path": unquote(parts.path),
                    "query": parts.query,
                    "range": self.headers.get("Range"),
                    "status": status,
                }
            )

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        record: bool = True,
    ) -> None:
        if record:
            self._record(status)
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that hung up is no error here
            super().handle_error(request, client_address)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cdx-page-rows", type=int, default=1000)
    parser.add_argument("--index-page-size", type=int, default=5)
    args = parser.parse_args()
    Handler.archive = Archive(args.root, args.cdx_page_rows, args.index_page_size)
    server = Server(("127.0.0.1", args.port), Handler)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
