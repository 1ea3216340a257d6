"""Site boilerplate: lines an outlet repeats across its articles (event promotions, newsletter sign-ups,
standard footers), kept out of the content that decides copies and stories.

Two mechanisms, because the second article of a site that carries a promotion is the one that must not
be called a copy of the first, and at that point the promotion has been seen only once:

- :func:`same_content` checks a near-duplicate candidate pair on content: lines the two texts share
  verbatim are set aside unless they make up most of the shorter text (then it is a copy or an update that
  added a line), and the rest must still be similar. No state.
- Per-site line counts (kept in the warehouse, see ``warehouse/stories.py``) say which lines of a new
  article its site has printed in other original articles before; :func:`without_lines` drops them from
  the text story vectors are counted from.
"""

from __future__ import annotations

import hashlib
import re

from newsflow.text import fold

#: Lines with fewer words are not tracked (too common to say anything, too short to matter).
MIN_LINE_WORDS = 3
#: Verbatim shared lines that cover this share of the shorter text make the pair a copy outright.
COPY_COVERAGE = 0.8

_SPACE = re.compile(r"\s+")


def _key(line: str) -> str:
    return _SPACE.sub(" ", fold(line)).strip()


def line_hash(line: str) -> int:
    """A line's identity, folded (case, spacing, compatibility forms), as a signed 64-bit integer."""
    digest = hashlib.blake2b(_key(line).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little", signed=True)


def lines(text: str) -> dict[int, int]:
    """Hash -> words of each distinct line of ``text`` that has at least ``MIN_LINE_WORDS`` words."""
    out: dict[int, int] = {}
    for line in text.splitlines():
        count = len(line.split())
        if count >= MIN_LINE_WORDS:
            out[line_hash(line)] = count
    return out


def without_lines(text: str, hashes: set[int]) -> str:
    """``text`` without the lines whose hash is in ``hashes``."""
    if not hashes:
        return text
    return "\n".join(
        line
        for line in text.splitlines()
        if len(line.split()) < MIN_LINE_WORDS or line_hash(line) not in hashes
    )


def shared_lines(text: str, other: str) -> tuple[set[int], float]:
    """The tracked lines two texts share verbatim, and the share of the shorter text's words they cover."""
    mine, theirs = lines(text), lines(other)
    shared = mine.keys() & theirs.keys()
    if not shared:
        return set(), 0.0
    words = min(len(text.split()), len(other.split())) or 1
    return shared, sum(mine[h] for h in shared) / words
