"""Fetching article pages, concurrently within a batch, politely (robots.txt, per-host limits)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from prefect import task
from prefect.cache_policies import NO_CACHE

from newsflow.clock import utcnow
from newsflow.errors import FetchError
from newsflow.net.archive import ArchiveClient, RequestKind, shared_archive_client
from newsflow.net.http import HTML_TYPES, Fetcher, shared_fetcher
from newsflow.net.warc import as_utf8, read_response_record
from newsflow.records import Capture, FetchedPage, PlannedEntry, compress_page
from newsflow.settings import Settings

PAGE_ACCEPT = "text/html, application/xhtml+xml;q=0.9, */*;q=0.1"


def fetch_page(planned: PlannedEntry, fetcher: Fetcher) -> FetchedPage:
    """Fetch one article page; failures come back as a FetchedPage with ``error_kind`` set.

    The link is fetched as the feed gave it: the canonical form is an identity key, and normalising a
    URL (percent-encoding, dropped parameters) can change what a server returns.
    """
    link = planned.page_link
    if link is None:
        return FetchedPage(planned, error_kind=planned.skip_reason or "no_link")
    if planned.capture is not None:
        return fetch_capture(planned, planned.capture, shared_archive_client(fetcher.settings))
    refusal = fetcher.robots_refusal(link)
    if refusal is not None:
        return FetchedPage(planned, error_kind=refusal, error_message=f"{link}: {refusal}")
    try:
        response = fetcher.get(
            link, max_bytes=fetcher.settings.max_page_bytes, headers={"Accept": PAGE_ACCEPT}
        )
    except FetchError as exc:
        return FetchedPage(
            planned,
            http_status=exc.http_status,
            fetched_at=utcnow(),
            error_kind=exc.reason,
            error_message=str(exc),
        )
    content_type = response.content_type.split(";")[0].strip().lower()
    page = FetchedPage(
        planned,
        final_url=response.url,
        http_status=response.status,
        content_type=content_type or None,
        fetched_at=utcnow(),
    )
    if response.status != 200:
        return _failed(page, f"http_{response.status}", f"{planned.url}: HTTP {response.status}")
    if content_type and content_type not in HTML_TYPES:
        return _failed(page, "not_html", f"{planned.url}: content type {content_type}")
    return replace(page, html_zstd=compress_page(response.content))


def fetch_capture(planned: PlannedEntry, capture: Capture, client: ArchiveClient) -> FetchedPage:
    """Read an archived capture of the entry's page: one WARC record by a Range request (Common Crawl's
    index), or the Wayback Machine's raw replay (``id_``). The page keeps the entry's own URL as its final
    URL; where it came from is ``capture``. Politeness (pace, waits on 429/503) is the client's; robots.txt
    of the entry's site is not read: the page comes from the archive, not the site."""
    now = utcnow()
    page = FetchedPage(planned, final_url=planned.entry.link, fetched_at=now)
    max_bytes = client.settings.max_page_bytes
    try:
        if capture.is_record:
            assert capture.offset is not None and capture.length is not None
            last = capture.offset + capture.length - 1
            response = client.get(capture.uri, RequestKind.DATA, max_bytes=capture.length + 1,
                                  headers={"Range": f"bytes={capture.offset}-{last}"})  # fmt: skip
            if response.status not in (200, 206):
                return _failed(replace(page, http_status=response.status), f"http_{response.status}",
                               f"{capture.uri}: HTTP {response.status}")  # fmt: skip
            record = read_response_record(response.content, max_bytes)
            status, content_type, html, error = record.status, record.content_type, record.html, record.error
        else:
            response = client.get(capture.uri, RequestKind.REPLAY, max_bytes=max_bytes,
                                  headers={"Accept": PAGE_ACCEPT})  # fmt: skip
            status = response.status
            content_type = response.content_type.split(";")[0].strip().lower() or None
            error = None if status == 200 else f"http_{status}"
            if error is None and content_type and content_type not in HTML_TYPES:
                error = "not_html"
            html = as_utf8(response.content, _charset(response.content_type)) if error is None else None
    except FetchError as exc:
        return _failed(replace(page, http_status=exc.http_status), exc.reason, str(exc))
    page = replace(page, http_status=status, content_type=content_type)
    if error is not None or html is None:
        return _failed(page, error or "no_page", f"{capture.uri}: {error}")
    return replace(page, html_zstd=compress_page(html))


def _charset(content_type: str) -> str | None:
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip("\"'") or None
    return None


def _failed(page: FetchedPage, kind: str, message: str) -> FetchedPage:
    return replace(page, error_kind=kind, error_message=message)


def fetch_page_safely(planned: PlannedEntry, fetcher: Fetcher) -> FetchedPage:
    """:func:`fetch_page`, with an unexpected error recorded on the page instead of failing the batch."""
    try:
        return fetch_page(planned, fetcher)
    except Exception as exc:  # noqa: BLE001 - one bad page must not fail its batch
        return FetchedPage(
            planned, error_kind="internal_error", error_message=f"{planned.url}: {type(exc).__name__}: {exc}"
        )


@task(name="fetch-pages", cache_policy=NO_CACHE)
def fetch_pages(batch: list[PlannedEntry], settings: Settings) -> list[FetchedPage]:
    """Prefect task: fetch one batch of pages, concurrently, in input order."""
    fetcher = shared_fetcher(settings)
    with ThreadPoolExecutor(max_workers=settings.max_connections, thread_name_prefix="fetch") as pool:
        return list(pool.map(lambda planned: fetch_page_safely(planned, fetcher), batch))
