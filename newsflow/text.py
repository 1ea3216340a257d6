"""Text folding, written once: what counts as the same word for duplicates, stories and search; and the
token F1 that extraction quality is measured with."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

_WORD = re.compile(r"\w+")


def fold(text: str) -> str:
    """Compatibility-composed (NFKC) and case-folded: the form duplicate and story detection compare."""
    return unicodedata.normalize("NFKC", text).casefold()


def ascii_fold(text: str) -> str:
    """Lower case with accents dropped and other non-ASCII letters removed: the search index's form (its
    SQL twin is ``warehouse.search.folded``)."""
    return unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()


def token_f1(predicted: str, reference: str) -> float:
    """Bag-of-words F1 of an extracted text against a reference text (lower-cased ``\\w+`` words, counted
    with multiplicity): 1.0 for the same words, 0.0 when none is shared."""
    p, g = Counter(_WORD.findall(predicted.lower())), Counter(_WORD.findall(reference.lower()))
    overlap = sum((p & g).values())
    if not overlap:
        return 0.0
    precision, recall = overlap / sum(p.values()), overlap / sum(g.values())
    return 2 * precision * recall / (precision + recall)
