"""Frozen records passed between stages: tasks return them, the warehouse stores them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

import zstandard

#: zstd level of raw pages, in transit (fetch to extraction) and at rest (``raw_pages``).
PAGE_ZSTD_LEVEL = 3


class PollStatus(StrEnum):
    """What became of one feed poll."""

    OK = "ok"
    NOT_MODIFIED = "not_modified"
    ERROR = "error"


class ContentSource(StrEnum):
    """Where an article's text came from."""

    PAGE = "page"  # trafilatura on the fetched page
    FEED_CONTENT = "feed_content"  # the entry's full content
    FEED_SUMMARY = "feed_summary"  # the entry's summary
    NONE = "none"  # nothing usable anywhere
    LOADED = "loaded"  # given as text by `newsflow load`


@dataclass(frozen=True)
class FeedSpec:
    """A feed as a user lists it."""

    url: str
    name: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class FeedState:
    """A registered feed with the validators of its last successful poll and its polling rhythm."""

    url: str
    name: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    poll_interval_s: int | None = None
    error_streak: int = 0


@dataclass(frozen=True)
class FeedSchedule:
    """When a feed is polled next, decided after a poll."""

    url: str
    next_poll_at: datetime
    poll_interval_s: int
    paused: bool = False
    paused_reason: str | None = None


@dataclass(frozen=True)
class FeedEntry:
    """One feed entry, normalised. Timestamps are timezone-aware UTC."""

    feed_url: str
    guid: str | None
    link: str | None
    title: str | None
    summary: str | None = None
    content: str | None = None
    authors: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    published_at: datetime | None = None
    updated_at: datetime | None = None
    date_clamped: bool = False


@dataclass(frozen=True)
class PollResult:
    """The outcome of polling one feed; ``entries`` is empty unless ``status`` is OK."""

    feed_url: str
    status: PollStatus
    started_at: datetime
    duration_ms: int
    http_status: int | None = None
    etag: str | None = None
    last_modified: str | None = None
    entries: tuple[FeedEntry, ...] = ()
    bozo: bool = False
    bozo_reason: str | None = None
    feed_title: str | None = None
    bytes_received: int = 0
    error_kind: str | None = None
    error_message: str | None = None
    retry_after: float | None = None


class Archive(StrEnum):
    """The web archives a backfill reads."""

    CC_NEWS = "cc-news"  # Common Crawl's news crawl: monthly WARC files
    WAYBACK = "wayback"  # the Internet Archive's Wayback Machine: CDX index + raw replays
    CC_INDEX = "cc-index"  # Common Crawl's main crawls through their URL index: one WARC record each


@dataclass(frozen=True)
class Capture:
    """Where an archived page came from, so a stored row can be traced back to it: the archive, the WARC
    file (``offset``/``length`` of its record there) or the replay URL, and when it was captured."""

    archive: Archive
    uri: str
    captured_at: datetime
    offset: int | None = None
    length: int | None = None

    @property
    def is_record(self) -> bool:
        """Read as one WARC record at ``offset`` of ``uri`` (a Range request), not as a replay."""
        return self.offset is not None and self.length is not None


@dataclass(frozen=True)
class PlannedEntry:
    """A new entry with its stable identity, and whether its page should be fetched."""

    entry: FeedEntry
    article_id: str
    guid_key: str | None
    url: str | None  # canonical form of the entry link
    fetch: bool = True
    skip_reason: str | None = None
    #: An archived capture of the entry's page: fetched from the archive, never from the site itself.
    capture: Capture | None = None
    #: The filter that dropped the entry before its page was fetched: it is recorded, never stored.
    filtered_by: str | None = None

    @property
    def page_link(self) -> str | None:
        """The link the fetch step asks for, or None when the page is not fetched (a known URL, no link)."""
        return self.entry.link if self.fetch and self.url is not None else None


def compress_page(html: bytes) -> bytes:
    """``html`` as a zstd frame (its size in the header, so :attr:`FetchedPage.html` can decompress it).

    The frame is copied out: python-zstandard's ``compress`` returns its frame inside a buffer of the
    worst-case size (the page's own size plus a margin), so each page held the memory of the uncompressed
    page (149.7 KB a page on 200 bench pages, against 31.2 KB copied), and so did a run's pages in flight.
    """
    return bytes(memoryview(zstandard.compress(html, PAGE_ZSTD_LEVEL)))


@dataclass(frozen=True)
class FetchedPage:
    """A planned entry after the page fetch: ``html_zstd`` holds the page's bytes, zstd-compressed, when
    the fetch succeeded.

    Pages travel compressed from the fetch to extraction, and are stored as they came: the batches the
    flow process holds and pickles to the workers are about a sixth of the pages' size (148 KB a page on
    average over the bench pages)."""

    planned: PlannedEntry
    final_url: str | None = None
    http_status: int | None = None
    content_type: str | None = None
    html_zstd: bytes | None = field(default=None, repr=False)
    fetched_at: datetime | None = None
    error_kind: str | None = None
    error_message: str | None = None

    @property
    def html(self) -> bytes | None:
        """The page's bytes (decompressed at each access), or None when there is no page."""
        return None if self.html_zstd is None else zstandard.decompress(self.html_zstd)


@dataclass(frozen=True)
class TextFeatures:
    """What near-duplicate detection and story grouping read of a text, computed once where the text is
    made (the extraction workers), so the store step does not tokenise."""

    #: MinHash signature (little-endian uint32 bytes); None for a text too short to have one.
    signature: bytes | None
    #: Term and entity counts of title and body (``newsflow.stories.article_counts``).
    terms: dict[str, int]
    entities: dict[str, int]
    #: Line hash -> words of the text's lines of 3+ words (``newsflow.stories.boilerplate.lines``).
    lines: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Article:
    """One article row, ready for the warehouse."""

    article_id: str
    feed_url: str
    guid: str | None
    guid_key: str | None
    url: str | None
    canonical_url: str | None
    title: str | None
    author: str | None
    published_at: datetime | None
    updated_at: datetime | None
    date_clamped: bool
    site: str | None
    language: str | None
    text: str
    word_count: int
    summary: str | None
    tags: tuple[str, ...]
    content_source: ContentSource
    fetch_error: str | None
    extraction_error: str | None
    http_status: int | None
    content_hash: str | None
    fetched_at: datetime | None
    raw_html_zstd: bytes | None = field(default=None, repr=False)
    final_url: str | None = None
    content_type: str | None = None
    external_id: str | None = None  # the id a loaded record carried
    features: TextFeatures | None = field(default=None, repr=False)
    capture: Capture | None = None  # the archived capture it was extracted from (archive backfills)
    filtered_by: str | None = None  # the filter that dropped its entry before the fetch


class UnitStatus(StrEnum):
    """Where one unit of an archive backfill stands."""

    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


@dataclass(frozen=True)
class Checkpoint:
    """How far one unit of an archive backfill (a WARC file, a site's CDX query, ...) has got: stored in
    the same transaction as the articles of the batch it ends, so progress and articles never disagree.
    Counts are what this batch adds; ``resume_at`` None keeps the stored one."""

    backfill_id: str
    archive: Archive
    unit: str
    status: UnitStatus = UnitStatus.PENDING
    resume_at: str | None = None
    records_read: int = 0
    records_kept: int = 0
    bytes_read: int | None = None
    #: Ids of the batch's articles: those the store inserts count as stored.
    article_ids: tuple[str, ...] = ()
    error: str | None = None

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.backfill_id, self.archive.value, self.unit)


@dataclass(frozen=True)
class WorkBatch:
    """One batch of the article pipeline: entries whose pages are to be fetched, or ``pages`` already
    read (from an archive file); and the checkpoint to store with its articles, if any."""

    entries: tuple[PlannedEntry, ...] = ()
    pages: tuple[FetchedPage, ...] | None = None
    checkpoint: Checkpoint | None = None

    def __len__(self) -> int:
        return len(self.pages) if self.pages is not None else len(self.entries)


@dataclass(frozen=True)
class StoreOutcome:
    """What one warehouse write did."""

    inserted: int
    duplicates: dict[str, int]
    skipped_existing: int
    new_stories: int = 0
    joined_stories: int = 0
    #: What filters dropped, by rule name (entries before the fetch and articles after extraction).
    filtered: dict[str, int] = field(default_factory=dict)
    #: Alerts this store decided (watches whose stories crossed their threshold).
    alerts: int = 0
    #: Articles stored per checkpointed unit (``Checkpoint.key``).
    stored_by_unit: dict[tuple[str, str, str], int] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredKeys:
    """Identity keys of one stored article, and the first copy it belongs to (``root``)."""

    article_id: str
    root: str
    guid_key: str | None
    url: str | None
    canonical_url: str | None
    content_hash: str | None


@dataclass(frozen=True)
class DuplicateMark:
    """That an article is a copy of ``of`` and why."""

    of: str
    reason: str
    score: float = 1.0


# ---- near-duplicate and story state (rows of the warehouse tables) ---------------------------------


@dataclass(frozen=True)
class SignatureRow:
    """One article's MinHash signature (``NUM_PERM`` little-endian uint32 values)."""

    article_id: str
    signature: bytes


@dataclass(frozen=True)
class BandRow:
    """One LSH band of one article: articles sharing (band, bucket) are candidates."""

    band: int
    bucket: int
    article_id: str


@dataclass(frozen=True)
class StoredSignature:
    """A candidate from storage: its signature, and the first copy it belongs to (itself if none)."""

    article_id: str
    signature: bytes
    root: str | None = None


@dataclass(frozen=True)
class StoryAssignment:
    """Which story an article went to, why, and with what score (for a new story: the best rejected)."""

    article_id: str
    story_id: str
    reason: str
    score: float
    term_similarity: float = 0.0
    entity_similarity: float = 0.0
    days_apart: float = 0.0
    best_other: str | None = None
    shared_terms: tuple[str, ...] = ()
    #: The article's mean score against the story's members (average linkage; see ``StoryConfig``).
    member_similarity: float = 0.0

    def explain(self) -> str:
        """One line a user can read."""
        shared = ", ".join(self.shared_terms)
        return (
            f"{self.reason}: score {self.score:.3f} (terms {self.term_similarity:.3f}, entities "
            f"{self.entity_similarity:.3f}, {self.days_apart:.1f} days apart; members' mean "
            f"{self.member_similarity:.3f}) vs {self.best_other}" + (f"; shared: {shared}" if shared else "")
        )


@dataclass(frozen=True)
class StoryRow:
    """One row of the ``stories`` table."""

    story_id: str
    headline: str | None
    headline_article_id: str | None
    first_at: datetime
    last_at: datetime
    article_count: int
    sites: tuple[str, ...]
    join_score_sum: float
    term_norm: float
    entity_norm: float
    #: No member has a publication date: ``first_at``/``last_at`` are when newsflow first saw them.
    undated: bool = False


@dataclass(frozen=True)
class StoredStory:
    """A story as the warehouse holds it: its row and its centroid's term and entity vectors (term ->
    weight; stored as ``story_terms`` rows of kind ``t`` and ``e``)."""

    row: StoryRow
    terms: dict[str, float]
    entities: dict[str, float]


@dataclass(frozen=True)
class StoryProbe:
    """An article's heaviest terms and entities with its time (None: undated): what the stored stories
    that may take it are looked up by; its heaviest rare names (``names``) look up the stories it may
    follow up beyond the window."""

    article_id: str
    at: datetime | None
    terms: Mapping[str, float]
    entities: Mapping[str, float]
    names: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CandidateQuery:
    """How the stored stories that may take a batch's articles are looked up: within ``window_days`` the
    ``top`` best by weighted cosine (from ``min_score``, the best one whatever its score); beyond it, up to
    ``follow_up_days``, the ``follow_up_top`` sharing ``min_names`` or more rare names."""

    window_days: float
    follow_up_days: float
    min_names: int
    term_weight: float
    entity_weight: float
    top: int
    min_score: float
    follow_up_top: int


@dataclass(frozen=True)
class GroupingChanges:
    """What grouping a batch changes (``newsflow.stories.batch.group``), for the warehouse to write once:
    near-duplicate marks, new MinHash signatures and bands (with each one's time and first copy), site lines
    (once per original article that printed them), stories to upsert, document-frequency increments
    (``''`` counts documents), decisions, and each article's story."""

    near_marks: Mapping[str, DuplicateMark] = field(default_factory=dict)
    signatures: tuple[SignatureRow, ...] = ()
    bands: tuple[BandRow, ...] = ()
    signed_at: Mapping[str, datetime] = field(default_factory=dict)
    signed_roots: Mapping[str, str] = field(default_factory=dict)
    site_lines: tuple[tuple[str, int], ...] = ()
    stories: tuple[StoredStory, ...] = ()
    doc_freq_increments: Mapping[str, int] = field(default_factory=dict)
    decisions: tuple[StoryAssignment, ...] = ()
    story_ids: Mapping[str, str] = field(default_factory=dict)
    new_stories: int = 0
    joined: int = 0


@dataclass(frozen=True)
class DocFreqRow:
    """Documents containing ``term`` (the row with ``term == DOCS_KEY`` counts all documents)."""

    term: str
    df: int


# ---- run reports ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoryLink:
    """One member article of a story, as a link."""

    title: str | None
    url: str
    site: str | None


@dataclass(frozen=True)
class RunStory:
    """A story that got articles in one run: its size overall, and its first member links."""

    story_id: str
    headline: str | None
    articles: int
    outlets: int
    run_articles: int
    links: tuple[StoryLink, ...]
    link_count: int  # distinct member URLs, of which ``links`` are the first
