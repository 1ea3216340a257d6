"""A real HTTP server on 127.0.0.1 for tests and benchmarks, run as its own process.

    python tests/loopback_site.py --mount /pages=DIR --mount /feeds=DIR [--port 0] [--hosts N]

prints ``http://127.0.0.1:PORT`` on its first line once it listens. With ``--hosts N`` it also listens on
the same port of 127.0.1.1 .. 127.0.1.N (a site spread over N loopback hosts, e.g. for per-host limits).
It serves:

- ``/<mount>/<path>``: files below each mounted folder (a file named ``<path>?<query>`` answers that
  query, e.g. ``feed.xml?paged=2``). ``X.gz`` files are served at ``X`` with
  ``Content-Encoding: gzip``. Every file gets an ETag and Last-Modified, and conditional requests
  (If-None-Match / If-Modified-Since) get 304.
- ``/_status/<code>``: that status (429 and 503 with ``Retry-After: 1``).
- ``/_retry_after/<seconds>``: 429 with that ``Retry-After``.
- ``/_sleep/<seconds>``: answers after that many seconds.
- ``/_log``: JSON list of every request so far (method, path, status, conditional); ``/_log/reset`` clears it.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import hashlib
import json
import mimetypes
import sys
import threading
import time
from email.utils import formatdate, parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONTENT_TYPES = {
    ".xml": "application/xml",
    ".rss": "application/rss+xml",
    ".atom": "application/atom+xml",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".txt": "text/plain",
}


class Site:
    def __init__(self, mounts: dict[str, Path]) -> None:
        self.mounts = mounts
        self.log: list[dict[str, object]] = []
        self.lock = threading.Lock()

    def resolve(self, path: str, query: str = "") -> tuple[Path, bool] | None:
        # Longest prefix first, so a "/" mount is the fallback for everything else.
        for prefix, root in sorted(self.mounts.items(), key=lambda m: -len(m[0])):
            base = prefix.rstrip("/") + "/"
            if path.startswith(base):
                rel = path[len(base) :]
                if ".." in rel.split("/"):
                    return None
                with_query = root / f"{rel}?{query}"
                if query and with_query.is_file():  # a file named "feed.xml?paged=2" answers that query
                    return with_query, False
                if query and any(root.glob(glob.escape(rel + "?") + "*")):
                    return None  # other queries have files, this one has none: 404, as WordPress pages do
                plain = root / rel
                if plain.is_file():
                    return plain, False
                zipped = root / (rel + ".gz")
                if zipped.is_file():
                    return zipped, True
        return None


class Handler(BaseHTTPRequestHandler):
    server_version = "loopback-site/1"
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stalls

    @property
    def site(self) -> Site:
        return self.server.site  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        return

    def _record(self, status: int) -> None:
        conditional = "If-None-Match" in self.headers or "If-Modified-Since" in self.headers
        with self.site.lock:
            self.site.log.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "status": status,
                    "conditional": conditional,
                    "user_agent": self.headers.get("User-Agent"),
                }
            )

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self._record(status)
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status not in (204, 304):
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        if path == "/_log":
            with self.site.lock:
                body = json.dumps(self.site.log).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if path == "/_log/reset":
            with self.site.lock:
                self.site.log.clear()
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if path.startswith("/_status/"):
            code = int(path.rsplit("/", 1)[1])
            extra = {"Retry-After": "1"} if code in (429, 503) else {}
            self._send(code, f"status {code}\n".encode(), {"Content-Type": "text/plain", **extra})
            return
        if path.startswith("/_retry_after/"):
            seconds = path.rsplit("/", 1)[1]
            self._send(429, b"slow down\n", {"Content-Type": "text/plain", "Retry-After": seconds})
            return
        if path.startswith("/_sleep/"):
            time.sleep(float(path.rsplit("/", 1)[1]))
            self._send(
                200,
                b"<rss version='2.0'><channel><title>late</title></channel></rss>",
                {"Content-Type": "application/rss+xml"},
            )
            return
        found = self.site.resolve(path, self.path.partition("?")[2])
        if found is None:
            self._send(404, b"not found\n", {"Content-Type": "text/plain"})
            return
        file, gzipped = found
        body = file.read_bytes()
        name = file.name[:-3] if gzipped else file.name
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        mtime = int(file.stat().st_mtime)
        headers = {
            "Content-Type": CONTENT_TYPES.get(Path(name).suffix)
            or mimetypes.guess_type(name)[0]
            or "application/octet-stream",
            "ETag": etag,
            "Last-Modified": formatdate(mtime, usegmt=True),
        }
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        if self.headers.get("If-None-Match") == etag or self._not_modified_since(mtime):
            self._send(304, b"", {"ETag": etag, "Last-Modified": headers["Last-Modified"]})
            return
        self._send(200, body, headers)

    def _not_modified_since(self, mtime: int) -> bool:
        value = self.headers.get("If-Modified-Since")
        if not value or "If-None-Match" in self.headers:
            return False
        try:
            return parsedate_to_datetime(value).timestamp() >= mtime
        except (TypeError, ValueError):
            return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mount", action="append", default=[], metavar="/PREFIX=DIR")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hosts", type=int, default=0, help="also listen on 127.0.1.1 .. 127.0.1.N")
    args = parser.parse_args(argv)
    mounts = {}
    for spec in args.mount:
        prefix, _, folder = spec.partition("=")
        mounts["/" + prefix.strip("/")] = Path(folder)  # "/" mounts a folder at the root
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    server.site = Site(mounts)  # type: ignore[attr-defined]
    port = server.server_address[1]
    for host in extra_hosts(args.hosts):
        extra = ThreadingHTTPServer((host, port), Handler)
        extra.daemon_threads = True
        extra.site = server.site  # type: ignore[attr-defined]
        threading.Thread(target=extra.serve_forever, daemon=True).start()
    print(f"http://127.0.0.1:{port}", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()


def extra_hosts(count: int) -> list[str]:
    """The loopback addresses of ``--hosts``: 127.0.1.1 onwards (at most 65,024)."""
    return [f"127.0.{1 + n // 254}.{1 + n % 254}" for n in range(count)]


if __name__ == "__main__":
    sys.exit(main())
