"""The query syntax of ``newsflow search``, the web page's search and the rules' watches.

    parse_query('anthropic amazon "web services" -aws')

Words are runs of ``a-z0-9`` after lower-casing and stripping accents, as the search index splits them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from newsflow.errors import SearchQueryError
from newsflow.text import ascii_fold


@dataclass(frozen=True)
class SearchQuery:
    """What to look for: every word (stemmed in SQL), every phrase as written, no excluded word."""

    words: tuple[str, ...]
    phrases: tuple[str, ...] = ()
    excluded: tuple[str, ...] = ()

    @property
    def required(self) -> tuple[str, ...]:
        """Words an article must contain: the loose words and every phrase's words."""
        return tuple(dict.fromkeys([*self.words, *(w for p in self.phrases for w in words_of(p))]))


def words_of(text: str) -> list[str]:
    """The index's words of ``text`` (lower case, no accents, ``a-z0-9`` runs), as the index splits them."""
    return [w for w in re.split(r"[^a-z0-9]+", ascii_fold(text)) if w]


#: A query's parts: ``-word``, a "quoted phrase" (``-`` before it excludes its words), or a bare word.
_PART = re.compile(r'(-?)"([^"]*)"|(\S+)')


def parse_query(text: str) -> SearchQuery:
    """``anthropic amazon "web services" -aws``: words (all required), quoted phrases, ``-word`` excluded.
    Only double quotes make phrases: an apostrophe (``don't``) is part of a word.

    Raises:
        SearchQueryError: an unclosed double quote, or nothing to search for.
    """
    if text.count('"') % 2:
        raise SearchQueryError(f"search query {text!r}: No closing quotation mark (close the quoted phrase)")
    words: list[str] = []
    phrases: list[str] = []
    excluded: list[str] = []
    for minus, phrase, bare in _PART.findall(text):
        if minus or (bare.startswith("-") and words_of(bare[1:])):
            excluded.extend(words_of(bare[1:] if bare else phrase))
        elif len(words_of(phrase)) > 1:
            phrases.append(phrase)
        else:
            words.extend(words_of(bare or phrase))
    query = SearchQuery(tuple(dict.fromkeys(words)), tuple(phrases), tuple(dict.fromkeys(excluded)))
    if not query.required:
        raise SearchQueryError(f"search query {text!r} has no words to look for (letters or digits)")
    return query
