"""Extracted-text quality on the shared benchmark pages, and what each extraction setting costs.

    .venv/bin/python bench/text_quality.py [--pages N]

Two page sets, two scores:

- scrapinghub (news pages with their gold article body): token F1, bag of lowercased words, averaged over
  pages (a page with no text scores 0).
- trafilatura eval (pages with snippets that must and must not appear in the main text): F1 over the
  snippets, as trafilatura's own evaluation counts them (found "with" snippets are true positives, found
  "without" snippets false positives, missing "with" snippets false negatives), summed over pages.

Run as a script it scores newsflow's own extraction (``extract_html``, what the pipeline runs in its
workers, after the charset handling of the fetch step; for an entry its feed dates and for an undated one)
against trafilatura's defaults and other settings, over the same pages in one process, taking turns page by
page (the first to go moving on by one each page), with CPU milliseconds per page.
``bench/ingest_bench.py`` scores the texts a real ingest stored with the same functions.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from newsflow.text import token_f1

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(os.environ.get("NEWSFLOW_SHARED_DATA", REPO.parent / "shared" / "data"))
SCRAPINGHUB = SHARED_DATA / "scrapinghub-article-extraction-benchmark"
TRAFILATURA_EVAL = SHARED_DATA / "trafilatura-eval"


@dataclass(frozen=True)
class GoldPage:
    """One page of a benchmark set: its id (file stem), URL and HTML bytes."""

    page_id: str
    url: str
    html: bytes


def _gold(folder: Path) -> dict[str, dict[str, object]]:
    return dict(json.loads((folder / "ground-truth.json").read_text()))


def pages_of(folder: Path, limit: int | None = None) -> list[GoldPage]:
    """The pages of one benchmark set that have gold data, in id order."""
    gold = _gold(folder)
    ids = sorted(i for i in gold if (folder / "html" / f"{i}.html.gz").exists())[:limit]
    return [
        GoldPage(i, str(gold[i]["url"]), gzip.decompress((folder / "html" / f"{i}.html.gz").read_bytes()))
        for i in ids
    ]


def scrapinghub_f1(texts: Mapping[str, str]) -> float | None:
    """Mean token F1 over the scrapinghub pages in ``texts`` (page id -> extracted text)."""
    gold = _gold(SCRAPINGHUB)
    scores = [token_f1(text, str(gold[i]["articleBody"])) for i, text in texts.items() if i in gold]
    return sum(scores) / len(scores) if scores else None


def _snippets(value: object) -> list[str]:
    """The snippet list of a ground-truth field (stored as a Python list literal in a string)."""
    items = ast.literal_eval(value) if isinstance(value, str) else value
    return [str(s) for s in items or []]


def _squash(text: str) -> str:
    return " ".join(text.split())


def trafilatura_eval_f1(texts: Mapping[str, str]) -> float | None:
    """Snippet F1 over the trafilatura eval pages in ``texts`` (page id -> extracted text)."""
    gold = _gold(TRAFILATURA_EVAL)
    tp = fp = fn = 0
    for page_id, text in texts.items():
        if page_id not in gold:
            continue
        flat = _squash(text)
        for snippet in _snippets(gold[page_id].get("with")):
            if _squash(snippet) in flat:
                tp += 1
            else:
                fn += 1
        fp += sum(1 for s in _snippets(gold[page_id].get("without")) if _squash(s) in flat)
    if not tp:
        return None if not (fp or fn) else 0.0
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    return 2 * precision * recall / (precision + recall)


# --------------------------------------------------------------------------------------------- settings


def _trafilatura(**options: object) -> Callable[[GoldPage], str]:
    """trafilatura with metadata, by default without comments and its dedupe cache (as the pipeline runs
    it); ``options`` add or override keyword arguments."""
    arguments: dict[str, Any] = {"include_comments": False, "deduplicate": False, **options}

    def extract(page: GoldPage) -> str:
        import trafilatura

        doc = trafilatura.bare_extraction(page.html, url=page.url, with_metadata=True, **arguments)
        return (getattr(doc, "text", None) or "") if doc is not None else ""

    return extract


def _newsflow(*, feed_dated: bool) -> Callable[[GoldPage], str]:
    def extract(page: GoldPage) -> str:
        from newsflow.tasks.extraction import extract_html

        extraction = extract_html(page.html, page.url, date_from_text=not feed_dated)
        return extraction.document.text if extraction.document is not None else ""

    return extract


EXTRACTORS: dict[str, Callable[[GoldPage], str]] = {
    "newsflow (extract_html), entry dated by its feed": _newsflow(feed_dated=True),
    "newsflow (extract_html), undated entry": _newsflow(feed_dated=False),
    # trafilatura's defaults as they come (comments and its dedupe cache on): the ingest bench's limit.
    "trafilatura as it comes (the ingest bench's limit)": _trafilatura(
        include_comments=True, deduplicate=True
    ),
    "trafilatura default": _trafilatura(),
    "trafilatura fast": _trafilatura(fast=True),
    "trafilatura favor_precision": _trafilatura(favor_precision=True),
    "trafilatura favor_recall": _trafilatura(favor_recall=True),
}


@dataclass(frozen=True)
class Scored:
    """One extractor over both sets."""

    name: str
    scrapinghub_f1: float | None
    scrapinghub_ms: float
    trafilatura_f1: float | None
    trafilatura_ms: float


def _timed(pages: Sequence[GoldPage]) -> dict[str, tuple[dict[str, str], float]]:
    """Per extractor: texts by page id and CPU milliseconds per page. The extractors take turns page by
    page, so a noisy machine weighs on each alike, and the one to go first moves on by one each page:
    going first cost more (trafilatura as it comes, first in a fixed order, measured 1.2-1.3x its cost
    going third)."""
    names = list(EXTRACTORS)
    texts: dict[str, dict[str, str]] = {name: {} for name in names}
    seconds = dict.fromkeys(names, 0.0)
    for number, page in enumerate(pages):
        first = number % len(names)
        for name in names[first:] + names[:first]:
            started = time.process_time()
            texts[name][page.page_id] = EXTRACTORS[name](page)
            seconds[name] += time.process_time() - started
    return {name: (texts[name], 1000 * seconds[name] / max(1, len(pages))) for name in names}


def score_all(limit: int | None) -> Iterator[Scored]:
    """Every extractor on both sets in this process (each warmed on a page first)."""
    sets = pages_of(SCRAPINGHUB, limit), pages_of(TRAFILATURA_EVAL, limit)
    for extract in EXTRACTORS.values():
        extract(sets[0][0])
    scrapinghub, trafilatura_eval = (_timed(pages) for pages in sets)
    for name in EXTRACTORS:
        (sh_texts, sh_ms), (te_texts, te_ms) = scrapinghub[name], trafilatura_eval[name]
        yield Scored(name, scrapinghub_f1(sh_texts), sh_ms, trafilatura_eval_f1(te_texts), te_ms)


def _cell(value: float | None, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pages", type=int, default=None, help="at most this many pages per set [all]")
    args = parser.parse_args(argv)
    if not SCRAPINGHUB.exists() or not TRAFILATURA_EVAL.exists():
        print(f"shared data not found under {SHARED_DATA}", file=sys.stderr)
        return 1
    header = ("extractor", "scrapinghub F1", "ms/page", "trafilatura eval F1", "ms/page")
    rows = [header]
    for s in score_all(args.pages):
        rows.append(
            (s.name, _cell(s.scrapinghub_f1, 4), _cell(s.scrapinghub_ms, 1),
             _cell(s.trafilatura_f1, 4), _cell(s.trafilatura_ms, 1))
        )  # fmt: skip
        print(" | ".join(rows[-1]), file=sys.stderr, flush=True)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    for n, row in enumerate(rows):
        print(
            " | ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
        if n == 0:
            print("-+-".join("-" * w for w in widths))
    return 0


if __name__ == "__main__":
    sys.exit(main())
