"""The Fetcher against a real HTTP server on 127.0.0.1, plus the pure helpers of the HTTP layer."""

from __future__ import annotations

import gzip
import ipaddress
import time
from collections.abc import Iterator
from email.utils import formatdate

import pytest

from newsflow.errors import BlockedAddressError, FetchError, ResponseTooLargeError, TransientFetchError
from newsflow.net.http import Fetcher, parse_retry_after
from newsflow.net.policy import is_public_address
from newsflow.settings import Settings
from tests.conftest import LoopbackSite

HTML = b"<!doctype html><html><head><title>Hello</title></head><body><p>Hello, loopback.</p></body></html>"


@pytest.fixture
def fetcher(settings: Settings) -> Iterator[Fetcher]:
    with Fetcher(settings) as f:
        yield f


@pytest.fixture
def page(site: LoopbackSite) -> str:
    (site.root / "http").mkdir(exist_ok=True)
    (site.root / "http" / "hello.html").write_bytes(HTML)
    site.reset_log()
    return site.url("site/http/hello.html")


def paths(site: LoopbackSite) -> list[str]:
    return [str(r["path"]) for r in site.requests()]


def test_get_ok(fetcher: Fetcher, site: LoopbackSite, page: str) -> None:
    response = fetcher.get(page, max_bytes=10_000)
    assert response.status == 200
    assert response.content == HTML
    assert response.url == page
    assert response.content_type == "text/html; charset=utf-8"
    assert response.headers["etag"].startswith('"')
    (logged,) = site.requests()
    assert logged["user_agent"] == fetcher.settings.user_agent


def test_conditional_get_gives_304(fetcher: Fetcher, site: LoopbackSite, page: str) -> None:
    etag = fetcher.get(page, max_bytes=10_000).headers["etag"]
    response = fetcher.get(page, max_bytes=10_000, headers={"If-None-Match": etag})
    assert response.status == 304
    assert response.content == b""
    assert [r["conditional"] for r in site.requests()] == [False, True]


def test_gzip_body_is_decoded(fetcher: Fetcher, site: LoopbackSite) -> None:
    (site.root / "http").mkdir(exist_ok=True)
    (site.root / "http" / "zipped.html.gz").write_bytes(gzip.compress(HTML))
    response = fetcher.get(site.url("site/http/zipped.html"), max_bytes=10_000)
    assert response.status == 200
    assert response.content == HTML


def test_404_is_a_response_not_an_exception(fetcher: Fetcher, site: LoopbackSite) -> None:
    site.reset_log()
    response = fetcher.get(site.url("site/http/does-not-exist.html"), max_bytes=10_000)
    assert response.status == 404
    assert response.content == b"not found\n"
    assert len(site.requests()) == 1  # a 404 is final: no retries


@pytest.mark.parametrize("status", [400, 403, 410, 501])
def test_final_error_statuses_are_not_retried(fetcher: Fetcher, site: LoopbackSite, status: int) -> None:
    site.reset_log()
    assert fetcher.get(site.url(f"_status/{status}"), max_bytes=10_000).status == status
    assert paths(site) == [f"/_status/{status}"]


@pytest.mark.parametrize("status", [500, 502, 504])
def test_5xx_is_retried_then_raised(settings: Settings, site: LoopbackSite, status: int) -> None:
    site.reset_log()
    with Fetcher(settings.merged(retries=2, retry_backoff=0.01)) as fetcher:
        with pytest.raises(TransientFetchError) as info:
            fetcher.get(site.url(f"_status/{status}"), max_bytes=10_000)
    assert info.value.reason == f"http_{status}"
    assert info.value.http_status == status
    assert info.value.retry_after is None
    assert paths(site) == [f"/_status/{status}"] * 3


def test_retries_zero_means_one_attempt(settings: Settings, site: LoopbackSite) -> None:
    site.reset_log()
    with Fetcher(settings.merged(retries=0)) as fetcher, pytest.raises(TransientFetchError):
        fetcher.get(site.url("_status/500"), max_bytes=10_000)
    assert len(site.requests()) == 1


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_reported(settings: Settings, site: LoopbackSite, status: int) -> None:
    site.reset_log()
    with Fetcher(settings.merged(retries=0)) as fetcher:
        with pytest.raises(TransientFetchError) as info:
            fetcher.get(site.url(f"_status/{status}"), max_bytes=10_000)
    assert info.value.reason == f"http_{status}"
    assert info.value.retry_after == 1.0


def test_retry_after_is_waited_for(settings: Settings, site: LoopbackSite) -> None:
    site.reset_log()
    started = time.monotonic()
    with Fetcher(settings.merged(retries=1, retry_backoff=0.01)) as fetcher:
        with pytest.raises(TransientFetchError):
            fetcher.get(site.url("_status/429"), max_bytes=10_000)
    assert time.monotonic() - started >= 1.0  # the server's Retry-After: 1, not the 0.01 s backoff
    assert len(site.requests()) == 2


def test_retry_after_over_the_limit_is_not_waited_for(settings: Settings, site: LoopbackSite) -> None:
    site.reset_log()
    started = time.monotonic()
    with Fetcher(settings.merged(retries=3, max_retry_after=0.5)) as fetcher:
        with pytest.raises(TransientFetchError) as info:
            fetcher.get(site.url("_status/429"), max_bytes=10_000)
    assert time.monotonic() - started < 1.0
    assert info.value.retry_after == 1.0
    assert len(site.requests()) == 1


def test_slow_server_times_out(settings: Settings, site: LoopbackSite) -> None:
    started = time.monotonic()
    with Fetcher(settings.merged(read_timeout=0.3, retries=0)) as fetcher:
        with pytest.raises(TransientFetchError) as info:
            fetcher.get(site.url("_sleep/1.5"), max_bytes=10_000)
    assert info.value.reason == "timeout"
    assert time.monotonic() - started < 1.2


def test_declared_size_over_the_cap(fetcher: Fetcher, site: LoopbackSite, page: str) -> None:
    with pytest.raises(ResponseTooLargeError) as info:
        fetcher.get(page, max_bytes=len(HTML) - 1)
    assert info.value.reason == "too_large"
    assert info.value.http_status == 200
    assert fetcher.get(page, max_bytes=len(HTML)).content == HTML  # exactly at the cap is fine


def test_decompressed_size_over_the_cap(fetcher: Fetcher, site: LoopbackSite) -> None:
    # 1 MB of zeros gzips to ~1 KB: the declared length passes the cap, the decoded body does not
    (site.root / "http").mkdir(exist_ok=True)
    bomb = gzip.compress(b"\0" * 1_000_000)
    (site.root / "http" / "bomb.txt.gz").write_bytes(bomb)
    with pytest.raises(ResponseTooLargeError, match="after decompression") as info:
        fetcher.get(site.url("site/http/bomb.txt"), max_bytes=100_000)
    assert len(bomb) < 100_000
    assert info.value.reason == "too_large"


def test_loopback_refused_by_default(settings: Settings, site: LoopbackSite, page: str) -> None:
    site.reset_log()
    with Fetcher(settings.merged(allow_private_networks=False)) as fetcher:
        with pytest.raises(BlockedAddressError) as info:
            fetcher.get(page, max_bytes=10_000)
    assert info.value.reason == "blocked_address"
    assert info.value.url == page
    assert "NEWSFLOW_ALLOW_PRIVATE_NETWORKS" in str(info.value)
    assert site.requests() == []  # refused before connecting


def test_localhost_name_refused_by_default(settings: Settings, site: LoopbackSite) -> None:
    port = site.base.rsplit(":", 1)[1]
    with Fetcher(settings.merged(allow_private_networks=False)) as fetcher:
        with pytest.raises(BlockedAddressError) as info:
            fetcher.get(f"http://localhost:{port}/site/http/hello.html", max_bytes=10_000)
    assert info.value.reason == "blocked_address"


def test_blocked_address_is_not_retried(settings: Settings, page: str) -> None:
    started = time.monotonic()
    with Fetcher(settings.merged(allow_private_networks=False, retries=3, retry_backoff=1.0)) as fetcher:
        with pytest.raises(BlockedAddressError):
            fetcher.get(page, max_bytes=10_000)
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize("url", ["ftp://example.com/feed.xml", "file:///etc/passwd"])
def test_non_http_urls_are_refused(fetcher: Fetcher, url: str) -> None:
    with pytest.raises(FetchError) as info:
        fetcher.get(url, max_bytes=10_000)
    assert info.value.reason == "bad_url"


def test_connection_refused_is_transient(settings: Settings) -> None:
    with Fetcher(settings.merged(retries=0)) as fetcher:
        with pytest.raises(TransientFetchError) as info:
            fetcher.get("http://127.0.0.1:9/nothing-listens-here", max_bytes=10_000)
    assert info.value.reason == "connect_error"


# The loopback server has no redirect route, so redirect following is not tested here.


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 30 ", 30.0),
        ("0", 0.0),
        (None, None),
        ("", None),
        ("soon", None),
        ("-5", None),
        ("1.5", None),
    ],
)
def test_parse_retry_after_seconds(value: str | None, seconds: float | None) -> None:
    assert parse_retry_after(value) == seconds


def test_parse_retry_after_http_date() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after(formatdate(now + 90, usegmt=True), now=now) == 90.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412400.0) == 80.0
    # a date in the past means "now", never a negative wait
    assert parse_retry_after(formatdate(now - 3600, usegmt=True), now=now) == 0.0


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("127.1.2.3", False),
        ("10.0.0.1", False),
        ("10.255.1.2", False),
        ("172.16.0.1", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata endpoint
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("224.0.0.1", False),
        ("255.255.255.255", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("ff02::1", False),
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("8.8.8.8", True),
        ("1.1.1.1", True),
        ("::ffff:8.8.8.8", True),
        ("2606:4700:4700::1111", True),
    ],
)
def test_is_public_address(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


def test_blocked_address_message_names_the_host_once(settings: Settings, page: str) -> None:
    with Fetcher(settings.merged(allow_private_networks=False)) as fetcher:
        with pytest.raises(BlockedAddressError) as info:
            fetcher.get(page, max_bytes=10_000)
    assert str(info.value).startswith(f"{page}: 127.0.0.1 resolves to 127.0.0.1")
