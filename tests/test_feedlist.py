"""Feed-list files: newsflow's TOML, OPML import/export, and the feeds that ship with newsflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from newsflow.errors import ConfigError
from newsflow.feedlist import default_feeds, load_feed_file, parse_opml, parse_toml, to_opml
from newsflow.records import FeedSpec

GOOD_TOML = """
[[feeds]]
url = "https://example.com/feed.xml"
name = "Example"
tags = ["tech", "news"]

[[feeds]]
url = "  http://blog.example.org/rss  "

[[feeds]]
url = "https://example.com/feed.xml"
name = "a repeat: the first entry wins"
"""

NESTED_OPML = b"""<?xml version="1.0" encoding="UTF-8"?>
<opml version="2.0">
  <head><title>My subscriptions</title></head>
  <body>
    <outline text="Tech">
      <outline text="Security">
        <outline type="rss" text="Krebs" xmlUrl="https://krebsonsecurity.com/feed/"/>
      </outline>
      <outline type="rss" title="Ars" text="Ars Technica (text)" xmlUrl="https://feeds.arstechnica.com/arstechnica/index"/>
    </outline>
    <outline type="rss" text="Top level" xmlUrl="https://example.com/top.xml"/>
  </body>
</opml>
"""


def test_parse_toml() -> None:
    assert parse_toml(GOOD_TOML, "feeds.toml") == [
        FeedSpec("https://example.com/feed.xml", "Example", ("tech", "news")),
        FeedSpec("http://blog.example.org/rss", None, ()),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[feeds]]\nurl = "https://a.example/f"\n\n[[feeds]]\nname = "no url"\n',
            "feeds entry 2 has no url",
        ),
        ("[[feeds]]\nurl = 5\n", "feeds entry 1 has no url"),
        ('[[feeds]]\nurl = "https://a.example/f"\nname = 3\n', "feeds entry 1: name must be a string"),
        ('[[feeds]]\nurl = "https://a.example/f"\ntags = "tech"\n', "feeds entry 1: tags must be a list"),
        (
            '[[feeds]]\nurl = "ftp://a.example/f"\n',
            "feeds entry 1: 'ftp://a.example/f' is not an http(s) URL",
        ),
        ('[[feeds]]\nurl = "example.com/feed"\n', "is not an http(s) URL"),
        ('[[feeds]\nurl = "https://a.example/f"\n', "not valid TOML"),
        ('url = "https://a.example/f"\n', "expected one or more [[feeds]] tables"),
        ("", "expected one or more [[feeds]] tables"),
    ],
)
def test_parse_toml_errors_name_the_file_and_entry(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_toml(text, "my-feeds.toml")
    assert str(info.value).startswith("my-feeds.toml: ")
    assert message in str(info.value)


def test_parse_opml_nested_folders_become_tags() -> None:
    assert parse_opml(NESTED_OPML, "subs.opml") == [
        FeedSpec("https://krebsonsecurity.com/feed/", "Krebs", ("Tech", "Security")),
        FeedSpec("https://feeds.arstechnica.com/arstechnica/index", "Ars", ("Tech",)),
        FeedSpec("https://example.com/top.xml", "Top level", ()),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            b'<opml version="2.0"><body><outline text="Folder"><outline text="no url"/></outline>'
            b"</body></opml>",
            "no outline with an xmlUrl found",
        ),
        (
            b'<opml version="2.0"><body><outline xmlUrl="javascript:alert(1)"/></body></opml>',
            "is not an http(s) URL",
        ),
        (b"<opml><body><outline", "not valid OPML/XML"),
        (b"", "not valid OPML/XML"),
    ],
)
def test_parse_opml_errors(content: bytes, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_opml(content, "subs.opml")
    assert str(info.value).startswith("subs.opml: ")
    assert message in str(info.value)


def test_parse_opml_refuses_external_entities(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-VALUE")
    content = (
        f'<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY e SYSTEM "{secret.as_uri()}">]>'
        '<opml><body><outline text="&e;" xmlUrl="https://example.com/f"/></body></opml>'
    ).encode()
    with pytest.raises(ConfigError, match="external entity") as info:
        parse_opml(content, "subs.opml")
    assert "SECRET-VALUE" not in str(info.value)


def test_parse_opml_refuses_entity_blow_up() -> None:
    # ~106 KB that would expand to 200 MB of outline text
    content = (
        '<?xml version="1.0"?><!DOCTYPE opml [<!ENTITY e "' + "x" * 100_000 + '">]><opml><body>'
        '<outline text="' + "&e;" * 2000 + '" xmlUrl="https://example.com/f"/></body></opml>'
    ).encode()
    with pytest.raises(ConfigError, match="not valid OPML/XML"):
        parse_opml(content, "subs.opml")


def test_to_opml_round_trips_urls_and_names() -> None:
    feeds = [
        FeedSpec("https://example.com/a.xml?x=1&y=2", 'Quotes "and" <brackets> & ampersands'),
        FeedSpec("https://example.org/b.xml", None),
        FeedSpec("https://example.net/c.xml", "Ünïcödé feed"),
    ]
    document = to_opml(feeds, title="Mine & yours")
    assert document.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    back = parse_opml(document.encode(), "export.opml")
    assert [(f.url, f.name) for f in back] == [
        ("https://example.com/a.xml?x=1&y=2", 'Quotes "and" <brackets> & ampersands'),
        ("https://example.org/b.xml", "https://example.org/b.xml"),  # an unnamed feed is named by its URL
        ("https://example.net/c.xml", "Ünïcödé feed"),
    ]


def test_to_opml_round_trips_tags() -> None:
    feeds = [FeedSpec("https://example.com/a.xml", "A", ("tech", "news"))]
    assert parse_opml(to_opml(feeds).encode(), "export.opml") == feeds


def test_load_feed_file_by_suffix(tmp_path: Path) -> None:
    toml_file = tmp_path / "feeds.toml"
    toml_file.write_text(GOOD_TOML)
    opml_file = tmp_path / "feeds.opml"
    opml_file.write_bytes(NESTED_OPML)
    assert [f.url for f in load_feed_file(toml_file)] == [
        "https://example.com/feed.xml",
        "http://blog.example.org/rss",
    ]
    assert len(load_feed_file(opml_file)) == 3
    with pytest.raises(ConfigError, match="cannot read feed list"):
        load_feed_file(tmp_path / "missing.toml")


def test_default_feeds() -> None:
    feeds = default_feeds()
    urls = [f.url for f in feeds]
    assert 28 <= len(feeds) <= 40
    assert len(set(urls)) == len(urls)
    assert all(url.startswith("https://") for url in urls)
    assert all(f.name for f in feeds)
    assert all(f.tags for f in feeds)
    assert feeds[0] == FeedSpec("https://techcrunch.com/feed/", "TechCrunch", ("tech", "startups"))
