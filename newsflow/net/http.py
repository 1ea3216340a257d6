"""The HTTP client every stage uses: timeouts, a size cap, manual bounded redirects, retries of transient
failures only, per-host concurrency limits and robots.txt, all translated to :mod:`newsflow.errors`."""

from __future__ import annotations

import email.utils
import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC
from urllib.parse import urljoin, urlsplit

import httpx
import tenacity
from protego import Protego

from newsflow.errors import (
    BlockedAddressError,
    FetchError,
    ResponseTooLargeError,
    TransientFetchError,
)
from newsflow.net.policy import GuardedTransport, request_deadline
from newsflow.settings import Settings

logger = logging.getLogger(__name__)

#: Status codes worth another attempt. Everything else is final.
TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
REDIRECT_STATUS = frozenset({301, 302, 303, 307, 308})
ROBOTS_MAX_BYTES = 500_000
#: Content types of article pages.
HTML_TYPES = ("text/html", "application/xhtml+xml")


@dataclass(frozen=True)
class Response:
    """A completed response whose body is within the size cap."""

    url: str
    status: int
    headers: Mapping[str, str]
    content: bytes
    elapsed: float

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None when absent or bad."""
    if not value:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]+", value):
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


@dataclass
class _HostLimits:
    per_host: int
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _semaphores: dict[str, threading.BoundedSemaphore] = field(default_factory=dict)

    def semaphore(self, host: str) -> threading.BoundedSemaphore:
        with self._lock:
            sem = self._semaphores.get(host)
            if sem is None:
                sem = self._semaphores[host] = threading.BoundedSemaphore(self.per_host)
            return sem


class Fetcher:
    """A thread-safe HTTP fetcher built from :class:`Settings`. Use as a context manager."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client = httpx.Client(
            transport=GuardedTransport(
                allow_private=settings.allow_private_networks,
                limits=httpx.Limits(
                    max_connections=settings.max_connections,
                    max_keepalive_connections=settings.max_connections,
                ),
            ),
            timeout=httpx.Timeout(
                connect=settings.connect_timeout,
                read=settings.read_timeout,
                write=settings.read_timeout,
                pool=settings.total_timeout,
            ),
            headers={"User-Agent": settings.user_agent, "Accept-Encoding": "gzip, deflate"},
            follow_redirects=False,
        )
        self._hosts = _HostLimits(settings.per_host_connections)
        self._robots: dict[str, Protego | None] = {}
        self._robots_lock = threading.Lock()

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def get(self, url: str, *, max_bytes: int, headers: Mapping[str, str] | None = None) -> Response:
        """GET ``url`` following redirects, retrying transient failures with backoff.

        Returns any final response (2xx, 304, 4xx): the caller decides what a status means.
        Raises FetchError subclasses for network failures, caps, and transient failures that outlived
        their retries.
        """
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(self._should_retry),
            stop=tenacity.stop_after_attempt(self.settings.retries + 1),
            wait=self._wait,
            reraise=True,
        )
        for attempt in retrying:
            with attempt:
                response = self._get_following_redirects(url, max_bytes, headers or {})
                if response.status in TRANSIENT_STATUS:
                    raise TransientFetchError(
                        url,
                        f"http_{response.status}",
                        f"HTTP {response.status}",
                        http_status=response.status,
                        retry_after=parse_retry_after(response.headers.get("retry-after")),
                    )
                return response
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    def robots_refusal(self, url: str) -> str | None:
        """Why robots.txt forbids fetching ``url`` (RFC 9309), or None when it may be fetched.

        ``robots_disallowed``: a rule forbids it. ``robots_unavailable``: robots.txt answered 5xx or could
        not be fetched, which means "disallow everything" for this run. A 4xx robots.txt means no rules.
        """
        if not self.settings.respect_robots:
            return None
        parts = urlsplit(url)
        rules = self._robots_of(f"{parts.scheme}://{parts.netloc}")
        if rules is None:
            return "robots_unavailable"
        return None if rules.can_fetch(url, self.settings.user_agent) else "robots_disallowed"

    def sitemaps_of(self, origin: str) -> list[str]:
        """The ``Sitemap:`` URLs in the site's robots.txt (none when it lists none or is unreachable)."""
        rules = self._robots_of(origin.rstrip("/"))
        return [urljoin(origin, s) for s in rules.sitemaps] if rules is not None else []

    def _robots_of(self, origin: str) -> Protego | None:
        """The parsed robots.txt of ``origin``, fetched once per Fetcher; None when it means "disallow"."""
        with self._robots_lock:
            known = origin in self._robots
            rules = self._robots.get(origin)
        if not known:
            rules = self._load_robots(origin)
            with self._robots_lock:
                self._robots[origin] = rules
        return rules

    def _load_robots(self, origin: str) -> Protego | None:
        try:
            response = self.get(origin + "/robots.txt", max_bytes=ROBOTS_MAX_BYTES)
        except FetchError as exc:
            logger.info("robots.txt of %s unavailable (%s): pages there are not fetched", origin, exc.reason)
            return None
        if response.status >= 500:
            return None
        if response.status >= 400:
            return Protego.parse("")
        return Protego.parse(response.content.decode("utf-8", errors="replace"))

    def _should_retry(self, exc: BaseException) -> bool:
        if not isinstance(exc, TransientFetchError):
            return False
        return exc.retry_after is None or exc.retry_after <= self.settings.max_retry_after

    def _wait(self, state: tenacity.RetryCallState) -> float:
        backoff = float(self.settings.retry_backoff * (2 ** (state.attempt_number - 1)))
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientFetchError) and exc.retry_after is not None:
            return max(backoff, float(exc.retry_after))
        return backoff

    def _get_following_redirects(self, url: str, max_bytes: int, headers: Mapping[str, str]) -> Response:
        deadline = time.monotonic() + self.settings.total_timeout
        seen = {url}
        current = url
        for _ in range(self.settings.max_redirects + 1):
            response = self._get_once(current, max_bytes, headers, deadline)
            if response.status not in REDIRECT_STATUS or "location" not in response.headers:
                return response
            target = urljoin(current, response.headers["location"])
            if urlsplit(target).scheme not in ("http", "https"):
                raise FetchError(url, "bad_redirect", f"redirect to unsupported URL {target}")
            if target in seen:
                raise FetchError(url, "redirect_loop", f"redirect loop at {target}")
            seen.add(target)
            current = target
        raise FetchError(url, "too_many_redirects", f"more than {self.settings.max_redirects} redirects")

    def _get_once(self, url: str, max_bytes: int, headers: Mapping[str, str], deadline: float) -> Response:
        _check_scheme(url)
        started = time.monotonic()
        # The deadline bounds every socket read, so a server trickling its headers is cut too.
        with (
            self._translated_errors(url, deadline),
            self._host_slot(urlsplit(url).hostname or "", deadline),
            request_deadline(deadline),
            self._client.stream("GET", url, headers=dict(headers)) as stream,
        ):
            declared = stream.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise ResponseTooLargeError(
                    url,
                    "too_large",
                    f"declared {declared} bytes, over the {max_bytes} cap",
                    http_status=stream.status_code,
                )
            body = self._read_capped(stream, url, max_bytes, deadline)
            return Response(
                url=str(stream.url),
                status=stream.status_code,
                headers={k.lower(): v for k, v in stream.headers.items()},
                content=body,
                elapsed=time.monotonic() - started,
            )

    @contextmanager
    def stream(self, url: str, *, headers: Mapping[str, str] | None = None) -> Iterator[BodyStream]:
        """GET ``url`` (following redirects) and hand its raw body over as a stream, undecoded: for a
        file too large to hold (a WARC file of a GB). The network policy and the per-read timeout apply;
        the size cap and the total timeout do not (the reader decides how much it reads). No retries.

        Raises FetchError subclasses as :meth:`get` does; the stream's reads raise them too.
        """
        current = url
        for _ in range(self.settings.max_redirects + 1):
            _check_scheme(current)
            # No total deadline: a whole file takes minutes. The wait for a host slot is bounded.
            slot_deadline = time.monotonic() + self.settings.total_timeout
            with (
                self._translated_errors(current, None),
                self._host_slot(urlsplit(current).hostname or "", slot_deadline),
                self._client.stream("GET", current, headers=dict(headers or {})) as response,
            ):
                location = response.headers.get("location")
                if response.status_code in REDIRECT_STATUS and location:
                    current = urljoin(current, location)
                    continue
                body = BodyStream(
                    url=current,
                    status=response.status_code,
                    headers={k.lower(): v for k, v in response.headers.items()},
                    chunks=response.iter_raw(),
                    translate=functools.partial(self._translated_errors, current, None),
                )
                yield body
                return
        raise FetchError(url, "too_many_redirects", f"more than {self.settings.max_redirects} redirects")

    @contextmanager
    def _translated_errors(self, url: str, deadline: float | None) -> Iterator[None]:
        """httpx's exceptions raised inside, as :mod:`newsflow.errors` ones naming ``url``."""
        try:
            yield
        except (BlockedAddressError, TransientFetchError) as exc:
            if exc.url == url:
                raise
            # Raised by the network backend, which knows only the host: name the URL.
            raise type(exc)(url, exc.reason, exc.detail) from exc
        except httpx.TimeoutException as exc:
            if deadline is not None and time.monotonic() >= deadline:
                detail = f"took over {self.settings.total_timeout:g} s in all"
            else:
                detail = f"timed out ({type(exc).__name__})"
            raise TransientFetchError(url, "timeout", detail) from exc
        except httpx.ConnectError as exc:
            raise TransientFetchError(url, "connect_error", f"{type(exc).__name__}: {exc}") from exc
        except (httpx.ReadError, httpx.WriteError) as exc:
            raise TransientFetchError(url, "connection_reset", f"{type(exc).__name__}: {exc}") from exc
        except httpx.RemoteProtocolError as exc:
            raise TransientFetchError(url, "protocol_error", f"{type(exc).__name__}: {exc}") from exc
        except httpx.InvalidURL as exc:
            # httpx parses a redirect's Location even when not following it (and InvalidURL is no
            # HTTPError): a Location such as "javascript:..." lands here.
            raise FetchError(
                url, "bad_redirect" if _valid_url(url) else "bad_url", f"invalid URL: {exc}"
            ) from exc
        except httpx.DecodingError as exc:
            raise FetchError(url, "bad_encoding", f"cannot decode body: {exc}") from exc
        except httpx.HTTPError as exc:
            raise FetchError(url, "http_error", f"{type(exc).__name__}: {exc}") from exc

    def _read_capped(self, stream: httpx.Response, url: str, max_bytes: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        size = 0
        for chunk in stream.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ResponseTooLargeError(
                    url,
                    "too_large",
                    f"body over the {max_bytes}-byte cap (after decompression)",
                    http_status=stream.status_code,
                )
            if time.monotonic() > deadline:
                raise TransientFetchError(
                    url, "timeout", f"took over {self.settings.total_timeout:g} s in all"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    @contextmanager
    def _host_slot(self, host: str, deadline: float) -> Iterator[None]:
        sem = self._hosts.semaphore(host)
        # Bounded wait (within the request's total time) so a stuck host cannot hold a caller forever.
        if not sem.acquire(timeout=max(0.0, deadline - time.monotonic())):
            raise TransientFetchError(host, "timeout", f"waited too long for a connection slot to {host}")
        try:
            yield
        finally:
            sem.release()


class BodyStream:
    """A response body read as a file (``read(n)``), with the response's status and headers; reads raise
    :mod:`newsflow.errors` exceptions. ``position`` counts the body bytes read so far."""

    def __init__(
        self,
        *,
        url: str,
        status: int,
        headers: Mapping[str, str],
        chunks: Iterator[bytes],
        translate: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self.url = url
        self.status = status
        self.headers = headers
        self.position = 0
        self._chunks = chunks
        self._buffer = bytearray()
        self._translate = translate

    def read(self, size: int = -1) -> bytes:
        with self._translate():
            while size < 0 or len(self._buffer) < size:
                chunk = next(self._chunks, None)
                if chunk is None:
                    break
                self._buffer += chunk
        take = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        self.position += len(data)
        return data


def _check_scheme(url: str) -> None:
    scheme = urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise FetchError(url, "bad_url", f"unsupported URL scheme {scheme!r}")


def _valid_url(url: str) -> bool:
    try:
        httpx.URL(url)
    except httpx.InvalidURL:
        return False
    return True


_FETCHERS: dict[Settings, Fetcher] = {}
_FETCHERS_LOCK = threading.Lock()


def shared_fetcher(settings: Settings) -> Fetcher:
    """The process-wide :class:`Fetcher` for these settings, so concurrent tasks share its host limits,
    connection pool and robots.txt cache."""
    with _FETCHERS_LOCK:
        fetcher = _FETCHERS.get(settings)
        if fetcher is None:
            fetcher = _FETCHERS[settings] = Fetcher(settings)
        return fetcher


def close_shared_fetchers() -> None:
    """Close every shared fetcher (at the end of a flow run)."""
    with _FETCHERS_LOCK:
        fetchers = list(_FETCHERS.values())
        _FETCHERS.clear()
    for fetcher in fetchers:
        fetcher.close()
