"""The web archives' politeness and streams: a pace per kind of request, waits on 429/503 and broken
connections (exponential backoff with jitter, ``Retry-After`` honoured), and WARC files read as streams
that can start at any byte offset (an HTTP ``Range`` request, or a seek in a local file).

The Internet Archive allows about 30 CDX requests a minute and blocks an address that keeps asking after a
429; Common Crawl asks clients to back off on 503 and blocks those that hammer it. So a 429 or 503 pauses
every request of its kind (not only the one that got it) for the wait, and the pace is well under the
limits by default (``NEWSFLOW_INDEX_REQUESTS_PER_MINUTE``, ``NEWSFLOW_REPLAY_REQUESTS_PER_MINUTE``).
The pace is per process: workers on several machines each keep their own.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar
from urllib.parse import unquote, urlsplit
from urllib.request import url2pathname

from newsflow.errors import FetchError, TransientFetchError
from newsflow.net.http import TRANSIENT_STATUS, Fetcher, Response, parse_retry_after, shared_fetcher
from newsflow.settings import Settings

T = TypeVar("T")

#: Statuses after which every request of the same kind waits, not only the one that got it.
SLOW_DOWN_STATUS = frozenset({429, 503})


class Clock(Protocol):
    """Time as the archive client sees it (tests inject one whose ``sleep`` only moves it forward)."""

    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class RequestKind(StrEnum):
    """Kinds of archive request, each with its own pace."""

    INDEX = "index"  # Wayback CDX and Common Crawl index queries
    REPLAY = "replay"  # Wayback raw replays
    DATA = "data"  # Common Crawl's data: listings, WARC files, WARC records (no pace; backoff on 503)


class Pace:
    """Requests start at most ``per_minute`` a minute, evenly spaced; :meth:`hold` stops every caller for
    a while (after a 429). Thread-safe; ``per_minute=None`` only holds."""

    def __init__(self, per_minute: float | None, clock: Clock) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def wait_turn(self) -> None:
        with self._lock:
            now = self.clock.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self.clock.sleep(start - now)

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, self.clock.monotonic() + seconds)


@dataclass(frozen=True)
class LocalFile:
    """A ``file://`` URL's path."""

    path: Path

    @classmethod
    def of(cls, url: str) -> LocalFile | None:
        parts = urlsplit(url)
        if parts.scheme != "file":
            return None
        return cls(Path(url2pathname(unquote(parts.path))))


class ArchiveClient:
    """GETs and streams for the archives, paced per :class:`RequestKind`, retried on transient failures.

    A request that still fails after ``archive_retries`` more attempts, or whose ``Retry-After`` is longer
    than ``max_archive_wait``, raises its :class:`FetchError`. ``file://`` URLs read local files (a
    downloaded copy of the archive), with no pace and no network policy.
    """

    def __init__(
        self, settings: Settings, clock: Clock | None = None, jitter: random.Random | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self._jitter = jitter or random.Random()
        # Retries are this client's: its fetcher makes one attempt per call.
        self._fetch_settings = settings.merged(retries=0)
        self._paces = {
            RequestKind.INDEX: Pace(settings.index_requests_per_minute, self.clock),
            RequestKind.REPLAY: Pace(settings.replay_requests_per_minute, self.clock),
            RequestKind.DATA: Pace(None, self.clock),
        }

    @property
    def fetcher(self) -> Fetcher:
        """The process's shared fetcher (made anew after a run closed it)."""
        return shared_fetcher(self._fetch_settings)

    def get(
        self, url: str, kind: RequestKind, *, max_bytes: int, headers: Mapping[str, str] | None = None
    ) -> Response:
        """GET ``url``; any final response (200, 404, ...) is returned for the caller to judge."""
        local = LocalFile.of(url)
        if local is not None:
            return _read_local(url, local, max_bytes)
        return self.retrying(kind, url, lambda: self.fetcher.get(url, max_bytes=max_bytes, headers=headers))

    def retrying(self, kind: RequestKind, url: str, attempt: Callable[[], T]) -> T:
        """``attempt()`` in ``kind``'s pace, again after each transient failure, until it succeeds or the
        retries are spent. A 429 or 503 holds every request of ``kind`` for the wait."""
        pace = self._paces[kind]
        for number in range(self.settings.archive_retries + 1):
            pace.wait_turn()
            try:
                return attempt()
            except TransientFetchError as exc:
                wait = self._wait(number, exc.retry_after)
                if wait > self.settings.max_archive_wait:
                    raise TransientFetchError(
                        url, exc.reason, f"{exc.detail}; the archive asked to wait {wait:.0f} s, over "
                        f"NEWSFLOW_MAX_ARCHIVE_WAIT ({self.settings.max_archive_wait:g} s)",
                        exc.http_status, exc.retry_after,
                    ) from exc  # fmt: skip
                if number == self.settings.archive_retries:
                    raise
                if exc.http_status in SLOW_DOWN_STATUS:
                    pace.hold(wait)  # the next turn of every request of this kind comes after the wait
                else:
                    self.clock.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _wait(self, attempt: int, retry_after: float | None) -> float:
        """The archive's ``Retry-After`` (plus up to a tenth more), else an exponential backoff with
        jitter: half of it fixed, half random, so clients that failed together do not return together."""
        if retry_after is not None:
            return retry_after * (1 + self._jitter.random() / 10)
        backoff = self.settings.archive_backoff * float(2**attempt)
        return backoff / 2 + self._jitter.random() * backoff / 2

    @contextmanager
    def open(self, url: str, start: int = 0) -> Iterator[ArchiveStream]:
        """The file at ``url`` as a stream from byte ``start`` on (a ``Range`` request; a server that
        ignores it has the first ``start`` bytes skipped). Opening is retried as :meth:`get` is; reading
        is not (the caller reopens at the offset it reached)."""
        local = LocalFile.of(url)
        if local is not None:
            with local.path.open("rb") as handle:
                handle.seek(start)
                yield ArchiveStream(handle, start, local.path.stat().st_size)
            return
        headers = {"Range": f"bytes={start}-"} if start else {}

        def attempt() -> tuple[ExitStack, _Readable]:
            stack = ExitStack()
            try:
                return stack, stack.enter_context(_opened(self.fetcher, url, headers))
            except BaseException:
                stack.close()
                raise

        stack, opened = self.retrying(RequestKind.DATA, url, attempt)
        with stack:
            yield _archive_stream(opened, url, start)


class ArchiveStream:
    """A readable byte stream of an archive file from byte ``start`` on; ``position`` is the offset in the
    whole file of the next byte, ``size`` the file's size when known."""

    def __init__(self, raw: BinaryIO | _Readable, start: int, size: int | None) -> None:
        self._raw = raw
        self.position = start
        self.size = size
        #: The error a read raised: a reader that wraps this stream may report it as its own.
        self.failure: FetchError | None = None

    def read(self, size: int = -1) -> bytes:
        try:
            data = self._raw.read(size)
        except FetchError as exc:
            self.failure = exc
            raise
        self.position += len(data)
        return data

    def tell(self) -> int:
        return self.position

    def seek(self, offset: int, whence: int = 0) -> int:
        if (whence, offset) in ((0, self.position), (1, 0)):
            return self.position
        raise OSError("an archive stream reads forward only")

    def close(self) -> None:
        """Closed by its :meth:`ArchiveClient.open` block."""


class _Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


@contextmanager
def _opened(fetcher: Fetcher, url: str, headers: Mapping[str, str]) -> Iterator[_Readable]:
    """One attempt at opening ``url``: the stream of a 200/206 response, TransientFetchError for a
    429/5xx, FetchError for another status (416, the range starts at the end: an empty stream)."""
    with fetcher.stream(url, headers=headers) as body:
        if body.status == 416:
            yield _Empty()
            return
        if body.status in TRANSIENT_STATUS:
            raise TransientFetchError(
                url, f"http_{body.status}", f"HTTP {body.status}", body.status,
                parse_retry_after(body.headers.get("retry-after")),
            )  # fmt: skip
        if body.status not in (200, 206):
            raise FetchError(url, f"http_{body.status}", f"HTTP {body.status}", body.status)
        yield body


class _Empty:
    status = 416
    headers: Mapping[str, str] = {}

    def read(self, size: int = -1) -> bytes:
        return b""


def _archive_stream(opened: _Readable, url: str, start: int) -> ArchiveStream:
    status = getattr(opened, "status", 200)
    headers: Mapping[str, str] = getattr(opened, "headers", {})
    size = _full_size(headers, status)
    if status == 200 and start:
        _skip(opened, start, url)  # the server sent the whole file
    return ArchiveStream(opened, start, size)


def _full_size(headers: Mapping[str, str], status: int) -> int | None:
    """The whole file's size: after the ``/`` of a 206's Content-Range, else a 200's Content-Length."""
    if status == 206:
        total = headers.get("content-range", "").rpartition("/")[2]
        return int(total) if total.isdigit() else None
    length = headers.get("content-length", "")
    return int(length) if status == 200 and length.isdigit() else None


def _skip(stream: _Readable, count: int, url: str) -> None:
    left = count
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            raise FetchError(url, "truncated", f"the file ended before byte {count}")
        left -= len(chunk)


def _read_local(url: str, local: LocalFile, max_bytes: int) -> Response:
    """A local file as a response: 200 with its bytes, or 404."""
    try:
        size = local.path.stat().st_size
        if size > max_bytes:
            raise FetchError(url, "too_large", f"{size} bytes, over the {max_bytes} cap")
        content = local.path.read_bytes()
    except FileNotFoundError:
        return Response(url=url, status=404, headers={}, content=b"", elapsed=0.0)
    except OSError as exc:
        raise FetchError(url, "file_error", f"{type(exc).__name__}: {exc}") from exc
    return Response(url=url, status=200, headers={}, content=content, elapsed=0.0)


_CLIENTS: dict[Settings, ArchiveClient] = {}
_CLIENTS_LOCK = threading.Lock()


def shared_archive_client(settings: Settings) -> ArchiveClient:
    """The process-wide :class:`ArchiveClient` for these settings, so every task keeps one pace."""
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(settings)
        if client is None:
            client = _CLIENTS[settings] = ArchiveClient(settings)
        return client
