"""Words of an article: tokens, a light stemmer, name-like words (entities) and weighted vectors."""

from __future__ import annotations

import functools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping

from newsflow.stories.model import DEFAULT_CONFIG, DocumentFrequencies, StoryConfig, Vector

_APOSTROPHE = "\u2019"
_TOKEN = re.compile(r"[^\W_]+(?:['\u2019.&-][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?:;\"“”]$")

_TICKER = re.compile(r"[A-Z]{1,5}\.[A-Z]{1,2}")
_STOPWORDS = frozenset(
    """a about above after again against all almost also although am among an and another any are around as
    at be because been before being below between both but by can could did do does doing down during each
    either else ever every few for from further had has have having he her here hers herself him himself his
    how however i if in into is it its itself just last least less like made make many may me might more
    most much must my myself near neither new next no nor not now of off often on once one only or other
    our ours ourselves out over own per perhaps rather really said same say says she should since so some
    still such than that the their theirs them themselves then there these they this those though through
    thus to too two under until up upon us very via was we well were what when where whether which while
    who whom whose why will with within without would yet you your yours yourself yourselves mr mrs ms
    monday tuesday wednesday thursday friday saturday sunday today yesterday tomorrow week weeks year years
    day days time told according reported report reports news read more
    inc corp corporation ltd llc plc gmbh""".split()  # noqa: SIM905
)


@functools.lru_cache(maxsize=1 << 17)
def _normalise(token: str) -> str:
    """Case-fold, drop possessives and plural endings (a light stemmer: 'deals' and 'deal' match)."""
    if _TICKER.fullmatch(token):  # AMZN.O, BRK.B: the exchange or class suffix goes
        token = token.split(".")[0]
    word = token.casefold().replace(_APOSTROPHE, "'")
    if word.endswith(".com") and len(word) > 4:  # Amazon.com is Amazon
        word = word[:-4]
    if word.endswith("'s"):
        word = word[:-2]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokens(text: str) -> list[tuple[str, bool]]:
    """(word, starts_sentence) for each word of the text, NFKC-normalised. Every word of a line in
    capitals or in headline case counts as starting a sentence: its capital says nothing about a name."""
    out: list[tuple[str, bool]] = []
    for line in unicodedata.normalize("NFKC", text).splitlines():
        words = [(m.group(), m.end()) for m in _TOKEN.finditer(line)]
        shouted = _is_shouted([w for w, _ in words]) or _is_headline_case([w for w, _ in words])
        start = True
        for word, end in words:
            out.append((word, start or shouted))
            after = line[end : end + 2].strip()
            start = bool(after) and bool(_SENTENCE_END.match(after[0]))
    return out


def _is_shouted(words: list[str]) -> bool:
    """Most letters-only words of the line are in capitals (a shouted headline or banner), not acronyms
    in a sentence."""
    alpha = [w for w in words if w.isalpha() and len(w) > 1]
    return len(alpha) >= 3 and sum(w.isupper() for w in alpha) / len(alpha) > 0.6


def _is_headline_case(words: list[str]) -> bool:
    """A line of a few words with most content words capitalised (a heading), not a sentence."""
    content = [w for w in words if w.casefold() not in _STOPWORDS and w[:1].isalpha()]
    return 3 <= len(words) <= 15 and sum(w[:1].isupper() for w in content) / max(len(content), 1) > 0.6


def _is_term(word: str) -> bool:
    return word not in _STOPWORDS and (len(word) > 1 or word.isdigit())


def _entity_candidates(words: list[tuple[str, bool]]) -> list[str]:
    """Name-like words: capitalised mid-sentence (or capitalised elsewhere in the text too), and numbers."""
    mid_caps = {w for w, start in words if not start and w[:1].isupper()}
    out = []
    for word, start in words:
        if word[:1].isdigit() or (word[:1].isupper() and (not start or word in mid_caps)):
            norm = _normalise(word)
            if _is_term(norm):
                out.append(norm)
    return out


def _title_is_headline_case(title_words: list[tuple[str, bool]]) -> bool:
    content = [w for w, _ in title_words if w.casefold() not in _STOPWORDS and w[:1].isalpha()]
    return bool(content) and sum(w[:1].isupper() for w in content) / len(content) > 0.6


def article_counts(
    text: str, title_text: str | None, config: StoryConfig = DEFAULT_CONFIG
) -> tuple[Counter[str], Counter[str]]:
    """Raw term and entity counts of a body and its title: the title counts ``title_repeat`` times."""
    body = tokens(text)
    title = tokens(title_text or "")
    terms: Counter[str] = Counter()
    for position, (word, _) in enumerate(body):
        norm = _normalise(word)
        if _is_term(norm):
            terms[norm] += config.lead_repeat if position < config.lead_words else 1
    for word, _ in title:
        norm = _normalise(word)
        if _is_term(norm):
            terms[norm] += config.title_repeat
    entities = Counter(_entity_candidates(body))
    if _title_is_headline_case(title):
        # Headline case capitalises every word: keep the title words after the first that the body
        # capitalises too (a name at the start of the body's sentences counts), and numbers. The first word
        # is capitalised in any title, as a sentence start is.
        capitalised = set(entities) | {_normalise(w) for w, _ in body if w[:1].isupper()}
        title_entities = [
            norm
            for word, _ in title[1:]
            if (word[:1].isupper() or word[:1].isdigit())
            and _is_term(norm := _normalise(word))
            and norm in capitalised
        ]
    else:
        title_entities = _entity_candidates(title)
    for entity in title_entities:
        entities[entity] += config.title_repeat
    return terms, entities


def weigh(counts: Mapping[str, int], df: DocumentFrequencies, keep: int) -> Vector:
    """Sublinear TF times IDF, the ``keep`` heaviest terms, L2-normalised."""
    weights = {t: (1.0 + math.log(c)) * df.idf(t) for t, c in counts.items()}
    top = dict(sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:keep])
    norm = math.sqrt(sum(w * w for w in top.values())) or 1.0
    return {t: w / norm for t, w in top.items()}
