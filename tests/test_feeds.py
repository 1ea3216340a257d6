"""parse_feed on real captured feeds and on the hostile or broken bytes feeds are made of in practice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from newsflow.errors import FeedParseError
from newsflow.net.feeds import ParsedFeed, parse_feed
from tests.conftest import shared
from tests.feedbuild import Item, rss

FEED_URL = "https://feeds.example.com/feed.xml"
RSS = {"content-type": "application/rss+xml"}
XML = {"content-type": "application/xml"}
NOW = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)
TEN_MINUTES = timedelta(minutes=10)


def parse(content: bytes, headers: dict[str, str] | None = None, now: datetime = NOW) -> ParsedFeed:
    return parse_feed(
        content,
        feed_url=FEED_URL,
        headers=RSS if headers is None else headers,
        now=now,
        future_tolerance=TEN_MINUTES,
    )


def parse_shared(relative: str, headers: dict[str, str] | None = None) -> ParsedFeed:
    return parse(shared(relative).read_bytes(), headers or XML, now=datetime(2030, 1, 1, tzinfo=UTC))


@pytest.mark.parametrize(
    ("relative", "count", "index", "title", "guid", "bozo"),
    [
        (
            "node-feedparser-test-feeds/rss2sample.xml",
            4,
            0,
            "Star City",
            "http://liftoff.msfc.nasa.gov/2003/06/03.html#item573",
            False,
        ),
        (
            "node-feedparser-test-feeds/rss2sample.xml",
            4,
            3,
            "Astronauts' Dirty Laundry",
            "http://liftoff.msfc.nasa.gov/2003/05/20.html#item570",
            False,
        ),
        (
            "rss-parser-test-input/heise.atom",
            15,
            1,
            "Scrum Day 2016: Bewerbungen für Vorträge und Workshops",
            "http://heise.de/-3088627",
            False,
        ),
        (
            "rss-parser-test-input/guardian.rss",
            55,
            0,
            "Trump State of the Union address promised unity but emphasized discord",
            "https://www.theguardian.com/us-news/2018/jan/31/donald-trump-state-of-the-union-address-unity-discord",
            False,
        ),
        # a blank line before the XML declaration: bozo, but every item is still there
        (
            "feedjira-sample-feeds/TechCrunch.xml",
            20,
            0,
            "Angie\u2019s List Sets Price Range IPO At $11 To $13 Per Share; Valued At Over $600M",
            "http://techcrunch.com/?p=446154",
            True,
        ),
        (
            "feedjira-sample-feeds/atom_simple_single_entry.xml",
            1,
            0,
            "Atom-Powered Robots Run Amok",
            "urn:uuid:1225c695-cfb8-4ebb-aaaa-80da344efa6a",
            False,
        ),
    ],
)
def test_real_feeds(relative: str, count: int, index: int, title: str, guid: str, bozo: bool) -> None:
    parsed = parse_shared(relative)
    assert len(parsed.entries) == count
    assert parsed.bozo is bozo, parsed.bozo_reason
    assert all(entry.feed_url == FEED_URL for entry in parsed.entries)
    assert parsed.entries[index].title == title
    assert parsed.entries[index].guid == guid


def test_rss2sample_dates_links_and_untitled_item() -> None:
    parsed = parse_shared("node-feedparser-test-feeds/rss2sample.xml")
    assert parsed.title == "Liftoff News"
    first, second = parsed.entries[:2]
    assert first.link == "http://liftoff.msfc.nasa.gov/news/2003/news-starcity.asp"
    assert first.published_at == datetime(2003, 6, 3, 9, 39, 21, tzinfo=UTC)
    assert not first.date_clamped
    # the second item has only a description: kept, with no title
    assert second.title is None
    assert second.summary is not None and "partial eclipse of the Sun" in second.summary


def test_atom_offsets_are_converted_to_utc() -> None:
    # <published>2016-02-01T17:22:00+01:00</published>, <updated>2016-02-01T17:54:50+01:00</updated>
    entry = parse_shared("rss-parser-test-input/heise.atom").entries[0]
    assert entry.guid == "http://heise.de/-3088438"
    assert entry.published_at == datetime(2016, 2, 1, 16, 22, tzinfo=UTC)
    assert entry.updated_at == datetime(2016, 2, 1, 16, 54, 50, tzinfo=UTC)
    assert entry.published_at is not None and entry.published_at.utcoffset() == timedelta(0)


def test_malformed_feed_keeps_its_entries() -> None:
    # saxerror.xml has an unescaped '&' in the second item's link
    parsed = parse_shared("node-feedparser-test-feeds/saxerror.xml")
    assert parsed.bozo
    assert parsed.bozo_reason is not None and parsed.bozo_reason.startswith("SAXParseException")
    assert [e.title for e in parsed.entries] == ["Good Item", "Bad Item", "Item After Error"]
    assert parsed.entries[2].guid == "http://example.com/after"


def test_missing_content_type_is_reported_as_bozo_but_parsed() -> None:
    parsed = parse(shared("node-feedparser-test-feeds/rss2sample.xml").read_bytes(), headers={})
    assert parsed.bozo
    assert len(parsed.entries) == 4


def test_html_page_is_not_a_feed() -> None:
    with pytest.raises(FeedParseError) as info:
        parse(shared("node-feedparser-test-feeds/notafeed.html").read_bytes(), {"content-type": "text/html"})
    assert info.value.reason == "not_a_feed"
    assert info.value.url == FEED_URL


def test_small_html_page_is_not_a_feed() -> None:
    page = b"<!doctype html><html><head><title>Hi</title></head><body><p>Welcome</p></body></html>"
    with pytest.raises(FeedParseError) as info:
        parse(page, {"content-type": "text/html; charset=utf-8"})
    assert info.value.reason == "not_a_feed"


@pytest.mark.parametrize(
    "content",
    [
        b'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY big "xxxxxxxxxx">]>'
        b'<rss version="2.0"><channel><item><title>&big;&big;</title></item></channel></rss>',
        b'<!DOCTYPE rss [<!entity x SYSTEM "file:///etc/passwd">]><rss version="2.0"/>',
    ],
)
def test_entity_declaration_is_refused(content: bytes) -> None:
    with pytest.raises(FeedParseError) as info:
        parse(content)
    assert info.value.reason == "entity_declaration"


@pytest.mark.parametrize("content", [b"", b"   \n\t  "])
def test_empty_body(content: bytes) -> None:
    with pytest.raises(FeedParseError) as info:
        parse(content)
    assert info.value.reason == "empty"


def test_truncated_feed_without_entries_is_malformed() -> None:
    with pytest.raises(FeedParseError) as info:
        parse(b'<rss version="2.0"><channel><title>cut</title></chan')
    assert info.value.reason == "malformed"


def test_well_formed_feed_with_no_items_is_not_an_error() -> None:
    parsed = parse(rss("quiet feed", []).encode())
    assert parsed.entries == ()
    assert parsed.title == "quiet feed"
    assert not parsed.bozo


@pytest.mark.parametrize(
    ("pub_date", "published", "clamped"),
    [
        # beyond the tolerance: clamped to now
        ("Mon, 01 Jan 2024 12:11:00 GMT", NOW, True),
        ("Wed, 01 Jan 2025 00:00:00 +0200", NOW, True),
        # inside the tolerance: kept as given
        ("Mon, 01 Jan 2024 12:09:00 GMT", datetime(2024, 1, 1, 12, 9, tzinfo=UTC), False),
        # an offset that only looks like the future (14:00+02:00 is 12:00 UTC)
        ("Mon, 01 Jan 2024 14:00:00 +0200", NOW, False),
        ("Sun, 31 Dec 2023 23:30:00 -0500", datetime(2024, 1, 1, 4, 30, tzinfo=UTC), False),
        # unparseable: no date rather than a guess
        ("the day after tomorrow", None, False),
    ],
)
def test_publication_dates(pub_date: str, published: datetime | None, clamped: bool) -> None:
    feed = rss("dates", [Item("story", "https://example.com/story", pub_date=pub_date)])
    (entry,) = parse(feed.encode()).entries
    assert entry.published_at == published
    assert entry.date_clamped is clamped
    if published is not None:
        assert entry.published_at is not None and entry.published_at.tzinfo is not None
        assert entry.published_at.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        ("javascript:alert(1)", None),
        ("JAVASCRIPT:alert(document.cookie)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("mailto:editor@example.com", None),
        ("https://example.com/story", "https://example.com/story"),
        # relative links resolve against the feed URL
        ("/2024/story", "https://feeds.example.com/2024/story"),
    ],
)
def test_entry_links(link: str, expected: str | None) -> None:
    feed = rss("links", [Item("story", link)])
    (entry,) = parse(feed.encode()).entries
    assert entry.link == expected
    assert entry.title == "story"


def test_entry_fields() -> None:
    feed = rss(
        "fields",
        [
            Item(
                "A &amp; B <i>x</i>",
                "https://example.com/a",
                guid="12345",
                description="<p>Hello <b>there</b></p>",
            )
        ],
    )
    (entry,) = parse(feed.encode()).entries
    assert entry.guid == "12345"
    assert entry.summary is not None and "Hello" in entry.summary
    assert entry.content is None


def test_json_feed() -> None:
    parsed = parse(
        shared("feedjira-sample-feeds/json_feed.json").read_bytes(), {"content-type": "application/feed+json"}
    )
    assert parsed.title == "inessential.com"
    assert len(parsed.entries) == 20
    first = parsed.entries[0]
    assert (
        first.guid
        == first.link
        == "http://inessential.com/2017/06/02/james_dempsey_and_the_breakpoints_benefi"
    )
    assert first.title == "James Dempsey and the Breakpoints Benefit App Camp for Girls"
    assert first.published_at == datetime(2017, 6, 3, 5, 5, 47, tzinfo=UTC)
    assert first.authors == ("Brent Simmons",)  # the feed's author, inherited
    assert first.content is not None and first.content.startswith("<p>On Wednesday night")


def test_json_that_is_not_a_json_feed() -> None:
    with pytest.raises(FeedParseError) as info:
        parse(b'{"hello": "world"}', {"content-type": "application/json"})
    assert info.value.reason == "not_a_feed"


@pytest.mark.parametrize(
    ("guid_xml", "guid", "key"),
    [
        # a bare permalink guid is stored as written and scoped by its feed (feedparser would resolve it
        # against the feed URL, making two feeds' "1" one global URL)
        ("<guid>1</guid>", "1", f"{FEED_URL}#1"),
        ('<guid isPermaLink="false">1</guid>', "1", f"{FEED_URL}#1"),
        ("<guid>/posts/1</guid>", "/posts/1", f"{FEED_URL}#/posts/1"),
        ("<guid>https://s.example/p/1</guid>", "https://s.example/p/1", "https://s.example/p/1"),
        ("<guid>tag:s.example,2024:1</guid>", "tag:s.example,2024:1", "tag:s.example,2024:1"),
    ],
)
def test_guids_are_kept_as_written_and_bare_ones_scoped_by_feed(guid_xml: str, guid: str, key: str) -> None:
    from newsflow.stories.dedupe import guid_key

    feed = (
        '<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>'
        f"<item><title>a</title><link>/a/1</link>{guid_xml}</item></channel></rss>"
    )
    (entry,) = parse(feed.encode()).entries
    assert entry.guid == guid
    assert guid_key(entry.guid, FEED_URL) == key
    assert entry.link == "https://feeds.example.com/a/1"  # relative links still resolve for fetching


def test_relative_feed_links_resolve_against_the_feed_url() -> None:
    feed = (
        '<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>t</title>'
        '<link rel="prev-archive" href="archive/1.xml"/><id>tag:x</id>'
        "<entry><id>7</id><title>a</title><link href='/a/7'/></entry></feed>"
    )
    parsed = parse(feed.encode())
    assert parsed.links["prev-archive"] == "https://feeds.example.com/archive/1.xml"
    assert parsed.entries[0].guid == "7" and parsed.entries[0].link == "https://feeds.example.com/a/7"
