"""Text folding, written once: what counts as the same word for duplicates, stories and search."""

from __future__ import annotations

import unicodedata


def fold(text: str) -> str:
    """Compatibility-composed (NFKC) and case-folded: the form duplicate and story detection compare."""
    return unicodedata.normalize("NFKC", text).casefold()


def ascii_fold(text: str) -> str:
    """Lower case with accents dropped and other non-ASCII letters removed: the search index's form (its
    SQL twin is ``warehouse.search.folded``)."""
    return unicodedata.normalize("NFKD", text.lower()).encode("ascii", "ignore").decode()
