"""Exact-duplicate keys: scoped guids, stable ids, the normalised-text hash, and which copy points where."""

from __future__ import annotations

import pytest

from newsflow.records import Article, ContentSource, DuplicateMark, StoredKeys
from newsflow.stories.dedupe import MIN_HASH_WORDS, article_id, content_hash, guid_key, mark_exact_duplicates

FEED = "https://feeds.example.com/rss"
OTHER_FEED = "https://other.example.org/atom.xml"

STORY = (
    "The city council voted on Tuesday to approve a new budget for public libraries, extending opening "
    "hours on weekends and funding two new branches in neighbourhoods that have had none for a decade."
)
OTHER_STORY = (
    "A regional airline cancelled more than forty flights after a software fault grounded its fleet "
    "for several hours on Monday morning, stranding thousands of passengers at three airports."
)

FULLWIDTH = "".join(chr(ord(c) + 0xFEE0) for c in "neighbourhoods")


def article(
    aid: str, *, guid: str | None = None, url: str | None = None, canonical: str | None = None, text: str = ""
) -> Article:
    return Article(
        article_id=aid,
        feed_url=FEED,
        guid=guid,
        guid_key=guid,
        url=url,
        canonical_url=canonical or url,
        title=None,
        author=None,
        published_at=None,
        updated_at=None,
        date_clamped=False,
        site=None,
        language=None,
        text=text,
        word_count=len(text.split()),
        summary=None,
        tags=(),
        content_source=ContentSource.PAGE,
        fetch_error=None,
        extraction_error=None,
        http_status=200,
        content_hash=content_hash(text),
        fetched_at=None,
    )


def stored(
    aid: str,
    root: str | None = None,
    *,
    guid: str | None = None,
    url: str | None = None,
    canonical: str | None = None,
    text: str = "",
) -> StoredKeys:
    return StoredKeys(aid, root or aid, guid, url, canonical or url, content_hash(text))


@pytest.mark.parametrize(
    ("guid", "feed", "key"),
    [
        ("https://example.com/2024/story", FEED, "https://example.com/2024/story"),
        ("http://example.com/?p=446154", FEED, "http://example.com/?p=446154"),
        ("tag:example.com,2024:post-1", FEED, "tag:example.com,2024:post-1"),
        ("urn:uuid:1225c695-cfb8-4ebb-aaaa", FEED, "urn:uuid:1225c695-cfb8-4ebb-aaaa"),
        ("12345", FEED, f"{FEED}#12345"),
        ("12345", OTHER_FEED, f"{OTHER_FEED}#12345"),
        ("cc973b648d6fb41e4e5ef7e4b4ee7604", FEED, f"{FEED}#cc973b648d6fb41e4e5ef7e4b4ee7604"),
        ("", FEED, None),
        (None, FEED, None),
    ],
)
def test_guid_key(guid: str | None, feed: str, key: str | None) -> None:
    assert guid_key(guid, feed) == key


def test_bare_guids_from_two_feeds_do_not_collide_but_url_guids_do() -> None:
    assert guid_key("1", FEED) != guid_key("1", OTHER_FEED)
    assert guid_key("https://example.com/a", FEED) == guid_key("https://example.com/a", OTHER_FEED)


def test_article_id_is_stable_and_pinned() -> None:
    assert article_id("https://example.com/a", "https://example.com/a") == "0f46b2f4ea6916018169"
    assert article_id(None, None) == "01ba4719c80b6fe911b0"
    assert article_id("k", "https://example.com/a") == article_id("k", "https://example.com/a")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (("k", None), (None, "k")),  # a guid is not a URL
        (("k", "https://example.com/a"), ("k", "https://example.com/b")),
        ((f"{FEED}#1", None), (f"{OTHER_FEED}#1", None)),
    ],
)
def test_article_id_differs(a: tuple[str | None, str | None], b: tuple[str | None, str | None]) -> None:
    assert article_id(*a) != article_id(*b)
    assert len(article_id(*a)) == 20


def test_content_hash_is_pinned() -> None:
    text = " ".join(f"word{i}" for i in range(30))
    assert content_hash(text) == "b2676e4c025b7c7882d66ae46aaab4f6"
    fox = "The quick brown fox jumps over the lazy dog. " * 3
    assert content_hash(fox) == "8c9edb12aedd8c78a7a45c4fe88cec83"


@pytest.mark.parametrize(
    "variant",
    [
        STORY.upper(),
        STORY.replace(",", "").replace(".", "!"),
        "\n\n  " + STORY.replace(" ", "   \n") + "  ",
        "“" + STORY.replace("public libraries", "public—libraries") + "”",
        STORY.replace("neighbourhoods", FULLWIDTH),  # NFKC folds fullwidth letters
    ],
)
def test_content_hash_ignores_case_punctuation_and_spacing(variant: str) -> None:
    assert content_hash(variant) == content_hash(STORY)


def test_content_hash_tells_different_texts_apart() -> None:
    assert content_hash(STORY) != content_hash(OTHER_STORY)
    assert content_hash(STORY) != content_hash(STORY.replace("Tuesday", "Wednesday"))


def test_short_texts_are_not_hashed() -> None:
    assert MIN_HASH_WORDS == 25
    assert content_hash(" ".join(["word"] * 24)) is None
    assert content_hash(" ".join(["word"] * 25)) is not None
    assert content_hash("Read more... Continue reading →") is None
    assert content_hash("") is None
    # punctuation does not count as words
    assert content_hash(" ".join(["word"] * 24) + " ... — !!!") is None


def test_no_duplicates() -> None:
    batch = [
        article("a", guid="g1", url="https://example.com/1", text=STORY),
        article("b", guid="g2", url="https://example.com/2", text=OTHER_STORY),
    ]
    assert mark_exact_duplicates(batch, [], set()) == {}


def test_same_guid_as_stored() -> None:
    batch = [article("new", guid="tag:x,2024:1", url="https://example.com/moved")]
    rows = [stored("old", guid="tag:x,2024:1", url="https://example.com/1")]
    marks = mark_exact_duplicates(batch, rows, set())
    assert marks == {"new": DuplicateMark("old", "guid")}


@pytest.mark.parametrize(
    ("stored_url", "stored_canonical", "url", "canonical"),
    [
        ("https://example.com/1", None, "https://example.com/1", None),
        # the new entry's link equals the stored page's canonical URL
        ("https://feedproxy.example/~r/1", "https://example.com/1", "https://example.com/1", None),
        # the new page's canonical URL equals the stored entry's link
        ("https://example.com/1", None, "https://m.example.com/1", "https://example.com/1"),
    ],
)
def test_same_url_as_stored(
    stored_url: str, stored_canonical: str | None, url: str, canonical: str | None
) -> None:
    batch = [article("new", url=url, canonical=canonical)]
    marks = mark_exact_duplicates(batch, [stored("old", url=stored_url, canonical=stored_canonical)], set())
    assert marks == {"new": DuplicateMark("old", "canonical_url")}


def test_same_text_as_stored() -> None:
    batch = [article("new", url="https://syndicated.example.net/x", text=STORY.upper())]
    marks = mark_exact_duplicates(batch, [stored("old", url="https://example.com/1", text=STORY)], set())
    assert marks == {"new": DuplicateMark("old", "content_hash")}


def test_short_identical_texts_are_not_duplicates() -> None:
    teaser = "Read the full story on our website."
    batch = [
        article("a", url="https://example.com/1", text=teaser),
        article("b", url="https://example.com/2", text=teaser),
    ]
    assert mark_exact_duplicates(batch, [], set()) == {}


def test_guid_is_checked_before_url() -> None:
    batch = [article("new", guid="tag:x,2024:1", url="https://example.com/2")]
    rows = [stored("by-url", url="https://example.com/2"), stored("by-guid", guid="tag:x,2024:1")]
    assert mark_exact_duplicates(batch, rows, set()) == {"new": DuplicateMark("by-guid", "guid")}


def test_within_batch_the_first_arrival_is_the_root() -> None:
    batch = [
        article("first", url="https://example.com/1", text=STORY),
        article("second", url="https://example.com/1"),
        article("third", url="https://mirror.example.org/1", text=STORY.lower()),
    ]
    assert mark_exact_duplicates(batch, [], set()) == {
        "second": DuplicateMark("first", "canonical_url"),
        "third": DuplicateMark("first", "content_hash"),
    }


def test_copies_point_at_the_root_not_at_a_copy() -> None:
    # "copy" (stored) already belongs to "root"; "b" shares only the copy's URL, "c" only b's text.
    rows = [
        stored("root", url="https://example.com/1"),
        stored("copy", "root", url="https://example.com/copy"),
    ]
    batch = [
        article("b", url="https://example.com/copy", text=STORY),
        article("c", url="https://example.com/other", text=STORY),
    ]
    marks = mark_exact_duplicates(batch, rows, set())
    assert marks == {"b": DuplicateMark("root", "canonical_url"), "c": DuplicateMark("root", "content_hash")}


def test_chain_inside_one_batch_points_at_the_root() -> None:
    # b copies a by guid; c shares nothing with a, only b's URL
    batch = [
        article("a", guid="tag:x,1:1", url="https://example.com/a"),
        article("b", guid="tag:x,1:1", url="https://example.com/b"),
        article("c", url="https://example.com/b"),
    ]
    marks = mark_exact_duplicates(batch, [], set())
    assert marks == {"b": DuplicateMark("a", "guid"), "c": DuplicateMark("a", "canonical_url")}


def test_already_stored_ids_are_not_marked() -> None:
    rows = [stored("seen", url="https://example.com/1", text=STORY)]
    batch = [article("seen", url="https://example.com/1", text=STORY)]
    assert mark_exact_duplicates(batch, rows, {"seen"}) == {}


def test_an_article_is_never_a_duplicate_of_itself() -> None:
    batch = [
        article("a", guid="tag:x,1:1", url="https://example.com/a", text=STORY),
        article("a", guid="tag:x,1:1", url="https://example.com/a", text=STORY),
    ]
    assert mark_exact_duplicates(batch, [], set()) == {}
