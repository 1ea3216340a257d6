"""Property-based tests (hypothesis) of the two normalisations identity rests on: URL canonicalisation and
feed-entry normalisation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from urllib.parse import parse_qsl, urlsplit

from hypothesis import given, settings
from hypothesis import strategies as st

from newsflow.net.feeds import SYNTHETIC_GUID_PREFIX, parse_feed
from newsflow.net.urls import canonical_url
from newsflow.stories.dedupe import article_id, guid_key
from tests.feedbuild import Item, rss

FEED_URL = "https://feeds.example.com/news/feed.xml"
NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
TOLERANCE = timedelta(minutes=10)
TRACKING = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "fbclid", "gclid"]

_label = st.from_regex(r"[a-z][a-z0-9-]{0,8}[a-z0-9]", fullmatch=True)
_segment = st.text(alphabet="abcXYZ019-_.~", min_size=1, max_size=8).filter(lambda s: s not in (".", ".."))
_key = st.text(alphabet="abcdefXYZ", min_size=1, max_size=5)
_value = st.text(alphabet="abcXYZ019-", min_size=1, max_size=6)


@st.composite
def urls(draw: st.DrawFn) -> tuple[str, str, str, list[tuple[str, str]]]:
    """(url, host, path, real query pairs): a URL whose host is randomly cased and whose query mixes
    real parameters with tracking ones in any case."""
    host = ".".join(draw(st.lists(_label, min_size=2, max_size=3)))
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in host)
    path = "/" + "/".join(draw(st.lists(_segment, min_size=1, max_size=4)))
    real = draw(st.lists(st.tuples(_key, _value), max_size=3, unique_by=lambda kv: kv[0]))
    real = [(k, v) for k, v in real if not k.lower().startswith("utm")]
    tracking = [(draw(st.sampled_from(TRACKING)), draw(_value)) for _ in range(draw(st.integers(0, 3)))]
    tracking = [(k.upper() if draw(st.booleans()) else k, v) for k, v in tracking]
    pairs = draw(st.permutations(real + tracking))
    query = "&".join(f"{k}={v}" for k, v in pairs)
    scheme = draw(st.sampled_from(["http", "https", "HTTPS"]))
    url = f"{scheme}://{cased}{draw(st.sampled_from(['', ':80', ':443']))}{path}"
    return url + (f"?{query}" if query else "") + draw(st.sampled_from(["", "#frag"])), host, path, real


@given(urls())
def test_canonical_url_properties(case: tuple[str, str, str, list[tuple[str, str]]]) -> None:
    url, host, path, real = case
    canonical = canonical_url(url)
    assert canonical is not None
    parts = urlsplit(canonical)
    assert canonical_url(canonical) == canonical  # idempotent
    assert parts.hostname == host  # host only lowercased, never otherwise changed
    assert parts.path == path  # path case and bytes kept
    assert sorted(parse_qsl(parts.query)) == sorted(real)  # tracking gone, real parameters kept as given
    assert not parts.fragment
    # Host case, tracking parameters and the fragment never make two identities.
    netloc = url.split("://")[1].split("/")[0]
    assert canonical_url(url.replace(netloc, netloc.lower(), 1)) == canonical


@given(st.text(max_size=40))
def test_canonical_url_never_raises_and_keeps_only_http(text: str) -> None:
    canonical = canonical_url(text)
    assert canonical is None or urlsplit(canonical).scheme in ("http", "https")


_title = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=30)
_link = st.one_of(
    st.none(),
    st.sampled_from(
        ["javascript:alert(1)", "mailto:a@b.example", "data:text/html,x", "../up", "/abs", "rel"]
    ),
    urls().map(lambda case: case[0]),
)
_when = st.datetimes(min_value=datetime(1990, 1, 1), max_value=datetime(2030, 1, 1))
_offset = st.integers(-12 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_title, _link, st.one_of(st.none(), _when), _offset), min_size=1, max_size=6))
def test_feed_entry_normalisation(items: list[tuple[str, str | None, datetime | None, timezone]]) -> None:
    built = [
        Item(
            title or "untitled", link, pub_date=format_datetime(when.replace(tzinfo=tz)) if when else "never"
        )
        for title, link, when, tz in items
    ]
    parsed = parse_feed(
        rss("props", built).encode(),
        feed_url=FEED_URL,
        headers={"content-type": "application/rss+xml"},
        now=NOW,
        future_tolerance=TOLERANCE,
    )
    assert len(parsed.entries) == len(items)
    ids = set()
    for entry, (_, link, when, tz) in zip(parsed.entries, items, strict=True):
        # Links: absolute http(s), resolved against the feed, or none at all (javascript:, mailto:, ...).
        assert entry.link is None or canonical_url(entry.link) is not None
        if link and link.startswith(("javascript:", "mailto:", "data:")):
            assert entry.link is None
        # Dates: UTC, never beyond the tolerance, clamped exactly when the source was.
        if when is None:
            assert entry.published_at is None and not entry.date_clamped
        else:
            assert entry.published_at is not None and entry.published_at.utcoffset() == timedelta(0)
            source = when.replace(tzinfo=tz, microsecond=0)
            assert entry.date_clamped is (source > NOW + TOLERANCE)
            assert entry.published_at == (NOW if entry.date_clamped else source)
        # Identity: every entry has a guid or a link to be told apart by.
        assert entry.guid or entry.link
        if entry.guid and entry.guid.startswith(SYNTHETIC_GUID_PREFIX):
            assert entry.link is None
        ids.add(article_id(guid_key(entry.guid, FEED_URL), canonical_url(entry.link)))
    # One id per distinct (guid, canonical link): entries without either are told apart by their text.
    distinct = {(e.guid, canonical_url(e.link)) for e in parsed.entries}
    assert len(ids) == len(distinct)
