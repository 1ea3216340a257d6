"""Text features for near-duplicates and stories, computed once where the text is made.

The extraction workers call :func:`text_features` next to trafilatura, so tokenising and MinHash run in
parallel, off the store step that groups each batch in order; anything without features (loaded
records, re-extractions, regroups) gets them computed at grouping time by the same functions.
"""

from __future__ import annotations

from newsflow.records import TextFeatures
from newsflow.stories import boilerplate, neardup
from newsflow.stories.tokens import article_counts


def text_features(text: str, title: str | None) -> TextFeatures:
    """MinHash signature, term/entity counts and line hashes of an article's text and title."""
    sig = neardup.signature(text)
    terms, entities = article_counts(text, title)
    return TextFeatures(
        signature=neardup.to_bytes(sig) if sig is not None else None,
        terms=dict(terms),
        entities=dict(entities),
        lines=boilerplate.lines(text),
    )
