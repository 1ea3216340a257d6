"""URL canonicalisation: the key that makes one article from two feeds (or two tracking links) one row."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsflow.net.urls import canonical_url, same_site, site_of


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # tracking parameters go, real ones stay (sorted)
        ("https://example.com/a?utm_source=rss&utm_medium=feed&utm_campaign=x", "https://example.com/a"),
        ("https://example.com/a?fbclid=IwAR0abc", "https://example.com/a"),
        ("https://example.com/a?gclid=Cj0KCQ&id=7", "https://example.com/a?id=7"),
        ("https://example.com/a?UTM_SOURCE=x", "https://example.com/a"),
        ("https://example.com/a?utm_source=x&b=2&a=1", "https://example.com/a?a=1&b=2"),
        ("https://example.com/a?x=1&x=2", "https://example.com/a?x=1&x=2"),
        # the fragment never identifies a different article
        ("https://example.com/story#comments", "https://example.com/story"),
        ("https://example.com/story?utm_content=x#", "https://example.com/story"),
        # scheme and host are case-insensitive; path and query values are not
        ("HTTPS://News.Example.COM/Path/To/Story", "https://news.example.com/Path/To/Story"),
        ("https://example.com/A/B?Q=Val", "https://example.com/A/B?Q=Val"),
        # default ports and an empty path
        ("http://example.com:80/a", "http://example.com/a"),
        ("https://example.com:443", "https://example.com/"),
        ("https://example.com:8080/a", "https://example.com:8080/a"),
        ("https://example.com/?", "https://example.com/"),
        # surrounding whitespace (common in hand-written feeds)
        ("  https://example.com/x\n", "https://example.com/x"),
    ],
)
def test_canonical_url(url: str, expected: str) -> None:
    assert canonical_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        None,
        "",
        "   ",
        "javascript:alert(1)",
        "JavaScript:alert(document.cookie)",
        "mailto:editor@example.com",
        "ftp://example.com/file.txt",
        "data:text/html,<p>hi</p>",
        "/relative/path",
        "//example.com/protocol-relative",
        "http:///no-host",
    ],
)
def test_canonical_url_refuses_non_http(url: str | None) -> None:
    assert canonical_url(url) is None


def test_tracking_variants_of_one_link_share_a_canonical_url() -> None:
    links = [
        "https://www.example.com/2024/01/story.html",
        "https://www.example.com/2024/01/story.html?utm_source=twitter&utm_medium=social",
        "https://WWW.EXAMPLE.COM/2024/01/story.html#top",
        "https://www.example.com:443/2024/01/story.html?fbclid=abc",
    ]
    assert {canonical_url(link) for link in links} == {"https://www.example.com/2024/01/story.html"}


@pytest.mark.parametrize(
    ("url", "site"),
    [
        ("https://www.example.com/a", "example.com"),
        ("https://WWW.Example.COM/a", "example.com"),
        ("https://news.example.com/a", "news.example.com"),
        ("http://example.com:8080/a", "example.com"),
        ("https://www2.example.com/", "www2.example.com"),
        (None, None),
        ("", None),
        ("not a url", None),
    ],
)
def test_site_of(url: str | None, site: str | None) -> None:
    assert site_of(url) == site


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("https://www.example.com/a", "http://example.com/b", True),
        ("https://example.com/a", "https://EXAMPLE.com/b?x=1", True),
        ("https://example.com/a", "https://news.example.com/a", False),
        ("https://example.com/a", "https://example.org/a", False),
        (None, None, False),
        ("not a url", "not a url", False),
        ("https://example.com/a", None, False),
    ],
)
def test_same_site(a: str | None, b: str | None, same: bool) -> None:
    assert same_site(a, b) is same
    assert same_site(b, a) is same


_SEGMENT = st.text(alphabet="abcdefXYZQ0129-_.~", min_size=1, max_size=10)
_QUERY_KEY = st.sampled_from(["a", "B", "id", "Page", "utm_source", "utm_campaign", "fbclid", "gclid"])
_QUERY_VALUE = st.text(alphabet="abcXYZ019-", max_size=6)


@st.composite
def http_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https"]))
    host = draw(st.from_regex(r"[a-zA-Z][a-zA-Z0-9-]{0,10}\.(com|org|DE)", fullmatch=True))
    port = draw(st.sampled_from(["", ":80", ":443", ":8080"]))
    path = "/" + "/".join(draw(st.lists(_SEGMENT, max_size=4)))
    params = draw(st.lists(st.tuples(_QUERY_KEY, _QUERY_VALUE), max_size=4))
    query = "?" + "&".join(f"{k}={v}" for k, v in params) if params else ""
    fragment = draw(st.sampled_from(["", "#top", "#Section-2"]))
    return f"{scheme}://{host}{port}{path}{query}{fragment}"


@given(http_urls())
def test_canonical_url_is_idempotent_and_keeps_path_case(url: str) -> None:
    canonical = canonical_url(url)
    assert canonical is not None
    assert canonical_url(canonical) == canonical
    # The path alphabet above needs no escaping (and has no empty segments, which may be collapsed),
    # so the path must come back byte for byte: servers treat path case as significant.
    assert urlsplit(canonical).path == (urlsplit(url).path or "/")
    assert "utm_" not in canonical and "fbclid" not in canonical and "gclid" not in canonical
    assert "#" not in canonical


def test_canonical_url_of_a_path_parameter_url_is_stable() -> None:
    # courlan percent-encodes ';' in the path: fine for an identity key, which is why pages are fetched at
    # the feed's own link (tests/test_fetching.py), never at the canonical form.
    once = canonical_url("https://example.com/article;jsessionid=ABC")
    assert once == "https://example.com/article%3Bjsessionid=ABC"
    assert canonical_url(once) == once
