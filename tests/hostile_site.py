"""A misbehaving HTTP server on 127.0.0.1 for fault-injection tests and benchmarks, run as its own process.

    python tests/hostile_site.py [--port 0]

prints ``http://127.0.0.1:PORT`` on its first line once it listens. Raw asyncio sockets, one request per
connection, so each path can misbehave at the byte level:

- ``/reset``: declares 100 kB, sends 1 kB, then resets the connection (RST).
- ``/hang``: reads the request and never answers. ``/trickle``: headers, then one body byte per second
  forever. ``/trickle-headers``: the status line and headers one byte per second, never finished.
- ``/status/<code>[?retry_after=N]``: that status, with ``Retry-After: N`` when given.
- ``/loop/a`` <-> ``/loop/b``: a redirect loop. ``/chain/<n>``: n redirects, then a good feed.
- ``/redirect?to=URL``: a 302 to URL (the tests point it at 169.254.169.254 and friends).
- ``/big/declared``, ``/big/chunked``: an endless feed, with a 50 MB Content-Length or chunked without one.
- ``/gzip-bomb``: 200 MB of zeros, about 200 kB gzip-encoded on the wire.
- ``/feed/<name>`` and ``/page/<name>``: the documents of :data:`FEEDS` and :data:`PAGES` (bad feeds and
  pages: broken XML and encodings, entity bombs, odd entries, empty and script-only pages...).
- ``/robots.txt``: allows everything.

:data:`FEED_CASES` and :data:`PAGE_CASES` list each case with the reason newsflow must record for it, so a
test (or a benchmark) can poll them all and check every outcome.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import socket
import struct
import sys
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

RSS = "application/rss+xml"
HTML = "text/html; charset=utf-8"
LOREM = (
    "The city council met on Tuesday evening to debate the new transit plan, which would add three bus "
    "lines and extend the tram to the northern districts. Supporters said the plan would cut commute "
    "times by a third; critics asked how the city would pay for it without raising fares again. "
)


def rss(title: str, items: list[dict[str, str]], *, declaration: str = "") -> str:
    """An RSS 2.0 document; each item maps element names to their (already escaped) text."""
    body = "".join(
        "<item>" + "".join(f"<{name}>{value}</{name}>" for name, value in item.items()) + "</item>"
        for item in items
    )
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>{declaration}<rss version="2.0"><channel>'
        f"<title>{escape(title)}</title><link>http://example.invalid/</link>{body}</channel></rss>"
    )


def article_page(title: str, paragraphs: int = 6) -> str:
    """A plain article page trafilatura extracts; its words are shuffled by its title, so two pages are
    never (near) duplicates of each other."""
    words = LOREM.split()
    shuffle = random.Random(title).shuffle
    text = ""
    for n in range(paragraphs):
        shuffle(words)
        text += f"<p>{' '.join(words)} Paragraph {n} of {escape(title)}.</p>"
    return (
        f"<!doctype html><html><head><title>{escape(title)}</title></head><body><article>"
        f"<h1>{escape(title)}</h1>{text}</article></body></html>"
    )


def _date(delta: timedelta) -> str:
    return format_datetime(datetime.now(UTC) + delta, usegmt=True)


def _feed_documents() -> dict[str, tuple[bytes, str | None]]:
    """``/feed/<name>`` -> (body, Content-Type or None for no header)."""
    good = rss(
        "good",
        [{"title": "Fine story", "link": "/page/article?n=1", "guid": "hostile-good-1"}],
    )
    big_entity = "x" * 100_000
    quadratic = rss(
        "quadratic",
        [{"title": "&big;" * 2_000, "link": "http://example.invalid/q"}],
        declaration=f'<!DOCTYPE rss [<!ENTITY big "{big_entity}">]>',
    )
    laughs = "".join(
        f'<!ENTITY lol{n} "{("&lol" + str(n - 1) + ";") * 10 if n else "lol"}">' for n in range(10)
    )
    feeds: dict[str, tuple[bytes, str | None]] = {
        "good": (good.encode(), RSS),
        "malformed": (
            b'<?xml version="1.0"?><rss version="2.0"><channel><title>Broken</title><item>'
            b"<title>Survivor & co</title><link>/page/article?n=2</link><guid>hostile-malformed-1</guid>"
            b"</item><item><title>cut off",
            RSS,
        ),
        "malformed-empty": (b'<rss version="2.0"><channel><title>cut</title></chan', RSS),
        "wrong-encoding": (
            rss(
                "Caf\xe9",
                [{"title": "Caf\xe9", "link": "/page/article?n=3", "description": "Caf\xe9 cr\xe8me"}],
            ).encode("latin-1"),
            RSS,
        ),
        "mojibake": (
            rss("mojibake", [{"title": "CafÃ© crÃ¨me", "link": "/page/article?n=4"}]).encode(),
            RSS,
        ),
        "bom": (b"\xef\xbb\xbf" + rss("bom", [{"title": "BOM", "link": "/page/article?n=5"}]).encode(), RSS),
        "utf16": (
            rss("utf16", [{"title": "UTF-16 story", "link": "/page/article?n=6"}])
            .replace('encoding="UTF-8"', 'encoding="UTF-16"')
            .encode("utf-16"),
            RSS,
        ),
        "billion-laughs": (
            rss("laughs", [{"title": "&lol9;"}], declaration=f"<!DOCTYPE rss [{laughs}]>").encode(),
            RSS,
        ),
        "quadratic": (quadratic.encode(), RSS),
        # The same bomb in UTF-16: no "<!ENTITY" bytes to find unless the check decodes first.
        "quadratic-utf16": (quadratic.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"), RSS),
        "xxe": (
            rss(
                "xxe",
                [{"title": "&xxe;", "link": "/page/article?n=7"}],
                declaration='<!DOCTYPE rss [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>',
            ).encode(),
            RSS,
        ),
        "external-dtd": (
            rss(
                "external dtd",
                [{"title": "DTD story", "link": "/page/article?n=8"}],
                declaration='<!DOCTYPE rss SYSTEM "file:///etc/passwd">',
            ).encode(),
            RSS,
        ),
        "no-links": (
            rss(
                "no links",
                [
                    {"title": "No link or guid A", "description": "Summary A of a story with no link."},
                    {"title": "No link or guid B", "description": "Summary B of another story."},
                ],
            ).encode(),
            RSS,
        ),
        "dup-guids": (
            rss(
                "dup guids",
                [
                    {"title": "First", "link": "/page/article?n=9", "guid": "same-guid"},
                    {"title": "Second", "link": "/page/article?n=10", "guid": "same-guid"},
                ],
            ).encode(),
            RSS,
        ),
        "relative": (
            rss("relative", [{"title": "Relative", "link": "../page/article?n=11"}]).encode(),
            RSS,
        ),
        "dates": (
            rss(
                "dates",
                [
                    {"title": "Future", "link": "/page/article?n=12", "pubDate": _date(timedelta(days=400))},
                    {
                        "title": "Tokyo",
                        "link": "/page/article?n=13",
                        "pubDate": "Mon, 01 Jan 2024 09:00:00 +0900",
                    },
                    {"title": "Garbage date", "link": "/page/article?n=14", "pubDate": "the 32nd of Smarch"},
                ],
            ).encode(),
            RSS,
        ),
        "javascript": (
            rss(
                "javascript",
                [{"title": "Click me", "link": "javascript:alert(document.cookie)", "description": "js"}],
            ).encode(),
            RSS,
        ),
        "html": (article_page("Not a feed").encode(), HTML),
        "binary": (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40, "image/png"),
        "wrong-type": (
            rss("wrong type", [{"title": "Typed", "link": "/page/article?n=15"}]).encode(),
            "image/png",
        ),
        "no-type": (rss("no type", [{"title": "Untyped", "link": "/page/article?n=16"}]).encode(), None),
        "pages": (
            rss(
                "hostile pages",
                [
                    {
                        "title": f"Page {name}",
                        "link": f"/page/{name}",
                        "guid": f"urn:hostile-page:{name}",
                        "description": f"Feed summary of the {name} page.",
                    }
                    for name in PAGE_CASES
                ],
            ).encode(),
            RSS,
        ),
    }
    return feeds


def _page_documents() -> dict[str, tuple[bytes, str | None]]:
    """``/page/<name>`` -> (body, Content-Type or None)."""
    latin1 = (
        '<!doctype html><html><head><meta charset="iso-8859-1"><title>Caf\xe9</title></head><body>'
        "<article><h1>Caf\xe9 cr\xe8me</h1>"
        + "".join(f"<p>{LOREM} \xc0 la carte, cr\xe8me br\xfbl\xe9e {n}.</p>" for n in range(5))
        + "</article></body></html>"
    ).encode("latin-1")
    nested = 200_000
    return {
        "empty": (b"", HTML),
        "script-only": (
            b"<!doctype html><html><head><script>document.write('hi')</script></head><body>"
            b"<script>window.location='/app'</script><noscript></noscript></body></html>",
            HTML,
        ),
        "paywall": (
            b"<!doctype html><html><head><title>Subscribe</title></head><body><div class='paywall'>"
            b"<p>Subscribe to continue reading.</p></div></body></html>",
            HTML,
        ),
        "latin1-meta": (latin1, "text/html"),
        "deep-dom": (("<div>" * 20_000 + "deep" + "</div>" * 20_000).encode(), HTML),  # under the tag limit
        "huge-dom": (
            ("<html><body><article>" + "<p>Word.</p>" * nested + "</article></body></html>").encode(),
            HTML,
        ),
        "binary": (bytes(range(256)) * 100, "application/octet-stream"),
        "wrong-type": (article_page("Typed wrong").encode(), "image/jpeg"),
        "no-type": (article_page("No content type").encode(), None),
    }


@dataclass(frozen=True)
class Case:
    """One hostile path and what newsflow must record for it."""

    path: str
    reason: str  # polls.error_kind (feeds), articles.fetch_error or extraction_error prefix (pages); "ok"


#: Feed URLs (paths) and the poll's ``error_kind``; "ok" means the poll succeeds ("ok_bozo": malformed
#: but used). Connection refused is not here: it needs a port where nothing listens.
FEED_CASES: tuple[Case, ...] = (
    Case("/reset", "connection_reset"),
    Case("/hang", "timeout"),
    Case("/trickle", "timeout"),
    Case("/trickle-headers", "timeout"),
    Case("/status/404", "http_404"),
    Case("/status/410", "http_410"),
    Case("/status/500", "http_500"),
    Case("/status/503?retry_after=1", "http_503"),
    Case("/status/429?retry_after=3600", "http_429"),
    Case("/loop/a", "redirect_loop"),
    Case("/chain/12", "too_many_redirects"),
    Case("/chain/2", "ok"),
    Case("/redirect?to=http://169.254.169.254/latest/meta-data/", "blocked_address"),
    Case("/redirect?to=http://2852039166/latest/meta-data/", "blocked_address"),  # 169.254.169.254
    Case("/redirect?to=http://[::ffff:169.254.169.254]/latest/", "blocked_address"),
    Case("/redirect?to=javascript:alert(1)", "bad_redirect"),
    Case("/big/declared", "too_large"),
    Case("/big/chunked", "too_large"),
    Case("/gzip-bomb", "too_large"),
    Case("/feed/good", "ok"),
    Case("/feed/malformed", "ok_bozo"),
    Case("/feed/malformed-empty", "malformed"),
    Case("/feed/wrong-encoding", "ok_bozo"),
    Case("/feed/mojibake", "ok"),
    Case("/feed/bom", "ok"),
    Case("/feed/utf16", "ok"),
    Case("/feed/billion-laughs", "entity_declaration"),
    Case("/feed/quadratic", "entity_declaration"),
    Case("/feed/quadratic-utf16", "entity_declaration"),
    Case("/feed/xxe", "entity_declaration"),
    Case("/feed/external-dtd", "ok"),
    Case("/feed/no-links", "ok"),
    Case("/feed/dup-guids", "ok"),
    Case("/feed/relative", "ok"),
    Case("/feed/dates", "ok"),
    Case("/feed/javascript", "ok"),
    Case("/feed/html", "not_a_feed"),
    Case("/feed/binary", "not_a_feed"),
    Case("/feed/wrong-type", "ok_bozo"),
    Case("/feed/no-type", "ok_bozo"),
    Case("/feed/pages", "ok"),
)

#: Article pages (linked from ``/feed/pages``) and the ``fetch_error`` or ``extraction_error`` prefix
#: recorded on the article; "ok" means extracted from the page.
PAGE_CASES: dict[str, str] = {
    "empty": "empty_page",
    "script-only": "no_main_text",
    "paywall": "ok",  # a stub is still text: stored from the page, with its handful of words
    "latin1-meta": "ok",
    "deep-dom": "no_main_text",
    "huge-dom": "too_complex",
    "binary": "not_html",
    "wrong-type": "not_html",
    "no-type": "ok",
    "status-404": "http_404",
    "status-410": "http_410",
    "reset": "connection_reset",
    "hang": "timeout",
    "gzip-bomb": "too_large",
    "metadata": "blocked_address",
}

# Pages that reuse a misbehaving route.
_PAGE_ALIASES = {
    "status-404": "/status/404",
    "status-410": "/status/410",
    "reset": "/reset",
    "hang": "/hang",
    "gzip-bomb": "/gzip-bomb",
    "metadata": "/redirect?to=http://169.254.169.254/latest/meta-data/",
}


class HostileSite:
    """The request router. Documents are built once, at start-up."""

    def __init__(self) -> None:
        self.feeds = _feed_documents()
        self.pages = _page_documents()
        self.bomb = _gzip_zeros(200_000_000)
        self.huge_item = (
            "<item><title>Endless</title><link>http://example.invalid/x</link>"
            f"<description>{LOREM * 4}</description></item>"
        ).encode()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=30)
            target = head.split(b" ", 2)[1].decode("latin-1")
            await self.route(target, reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, IndexError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    async def route(self, target: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parts = urlsplit(target)
        path, query = parts.path, parse_qs(parts.query)
        if path.startswith("/page/") and path[6:] in _PAGE_ALIASES:
            await self.route(_PAGE_ALIASES[path[6:]], reader, writer)
            return
        handler = self._fixed_routes().get(path)
        if handler is not None:
            await handler(reader, writer)
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            extra = {"Retry-After": query["retry_after"][0]} if "retry_after" in query else {}
            await send(writer, code, f"status {code}\n".encode(), "text/plain", extra)
        elif path in ("/loop/a", "/loop/b"):
            other = "/loop/b" if path == "/loop/a" else "/loop/a"
            await send(writer, 302, b"", "text/plain", {"Location": other})
        elif path.startswith("/chain/"):
            left = int(path.rsplit("/", 1)[1])
            if left > 0:
                await send(writer, 302, b"", "text/plain", {"Location": f"/chain/{left - 1}"})
            else:
                await send(writer, 200, *self.feeds["good"])
        elif path == "/redirect":
            await send(writer, 302, b"", "text/plain", {"Location": query["to"][0]})
        elif path.startswith("/feed/") and path[6:] in self.feeds:
            await send(writer, 200, *self.feeds[path[6:]])
        elif path == "/page/article":
            number = query.get("n", ["0"])[0]
            await send(writer, 200, article_page(f"Hostile site article {number}").encode(), HTML)
        elif path.startswith("/page/") and path[6:] in self.pages:
            await send(writer, 200, *self.pages[path[6:]])
        else:
            await send(writer, 404, b"not found\n", "text/plain")

    def _fixed_routes(self) -> dict[str, Callable[[asyncio.StreamReader, asyncio.StreamWriter], object]]:
        return {
            "/robots.txt": lambda r, w: send(w, 200, b"User-agent: *\nAllow: /\n", "text/plain"),
            "/reset": self.reset,
            "/hang": self.hang,
            "/trickle": self.trickle,
            "/trickle-headers": self.trickle_headers,
            "/big/declared": self.big_declared,
            "/big/chunked": self.big_chunked,
            "/gzip-bomb": self.gzip_bomb,
        }

    async def reset(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n")
        writer.write(b"<html><body>" + b"a" * 1000)
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()

    async def hang(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up and closes

    async def trickle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 1000000\r\n\r\n"
        )
        await _drip(writer, b"<rss version='2.0'><channel><title>" + b"s" * 1_000_000)

    async def trickle_headers(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _drip(writer, b"HTTP/1.1 200 OK\r\nX-Slow: " + b"s" * 1_000_000)

    async def big_declared(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = 50_000_000
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {RSS}\r\nContent-Length: {size}\r\n\r\n".encode())
        await self._endless_feed(writer, lambda chunk: chunk, limit=size)

    async def big_chunked(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(f"HTTP/1.1 200 OK\r\nContent-Type: {RSS}\r\nTransfer-Encoding: chunked\r\n\r\n".encode())
        await self._endless_feed(
            writer, lambda chunk: b"%x\r\n%s\r\n" % (len(chunk), chunk), limit=50_000_000
        )

    async def _endless_feed(
        self, writer: asyncio.StreamWriter, frame: Callable[[bytes], bytes], limit: int
    ) -> None:
        sent = 0
        chunk = b"<rss version='2.0'><channel><title>huge</title>"
        while sent < limit and not writer.is_closing():
            chunk = chunk[: limit - sent]
            writer.write(frame(chunk))
            sent += len(chunk)
            await writer.drain()
            chunk = self.huge_item * 64

    async def gzip_bomb(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await send(writer, 200, self.bomb, RSS, {"Content-Encoding": "gzip"})


async def send(
    writer: asyncio.StreamWriter,
    status: int,
    body: bytes,
    content_type: str | None,
    headers: dict[str, str] | None = None,
) -> None:
    """One complete response, then the connection closes."""
    lines = [f"HTTP/1.1 {status} Status", f"Content-Length: {len(body)}", "Connection: close"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()


async def _drip(writer: asyncio.StreamWriter, data: bytes) -> None:
    """Send ``data`` one byte per second until the client goes away."""
    for byte in data:
        if writer.is_closing():
            return
        writer.write(bytes([byte]))
        await writer.drain()
        await asyncio.sleep(1.0)


def _gzip_zeros(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    block = b"\0" * 1_000_000
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    return b"".join(parts) + compressor.flush()


async def serve(port: int) -> None:
    site = HostileSite()
    server = await asyncio.start_server(site.handle, "127.0.0.1", port, limit=65_536, backlog=256)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port))


if __name__ == "__main__":
    sys.exit(main())
