"""Near-duplicates: word-shingle MinHash signatures, LSH band keys, and the decision for a batch.

A near-duplicate is the same article re-published with small edits (syndicated wire copy, an updated
version, a truncated teaser of the full text). Each text gets a MinHash signature of its word 3-shingles;
the signature is cut into bands, and two texts sharing any band bucket are candidates. Candidates are
confirmed by the estimated Jaccard similarity of their shingle sets.

State is two kinds of rows, so the warehouse can hold it and find candidates by one hash join:

- ``SignatureRow(article_id, signature)``: the signature as little-endian uint32 bytes;
- ``BandRow(band, bucket, article_id)``: one row per band of each signature.

With 64 bands of 2 rows, a pair with Jaccard 0.35 becomes a candidate with probability 1 - 4e-4, and an
unrelated pair (Jaccard ~0.01) with probability ~0.6 %; candidates are then checked on the estimate.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from newsflow.records import BandRow, DuplicateMark, SignatureRow, StoredSignature
from newsflow.stories import boilerplate
from newsflow.text import fold

#: Words per shingle. Three keeps unrelated texts near Jaccard 0 while a 10 % edit keeps ~0.55.
SHINGLE_WORDS = 3
NUM_PERM = 128
BANDS = 64
ROWS_PER_BAND = NUM_PERM // BANDS
#: Estimated Jaccard at or above which a candidate is a near-duplicate.
THRESHOLD = 0.35
#: Texts with fewer words get no signature: teasers and captions collide across articles.
MIN_WORDS = 30
DUP_REASON = "near_duplicate"
#: Days around an article's time (published, else first seen) within which stored copies are looked for:
#: syndicated and updated copies appear within days, and the bound keeps a batch's cost independent of
#: the size of history. Identical text further apart is still an exact duplicate (content hash).
WINDOW_DAYS = 30

_WORD = re.compile(r"\w+")
_SEED = 20230925
_MASK32 = np.uint64(0xFFFFFFFF)

Signature = npt.NDArray[np.uint32]


def _permutations() -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    rng = np.random.default_rng(_SEED)
    a = rng.integers(1, 2**63, size=NUM_PERM, dtype=np.uint64) | np.uint64(1)  # odd multipliers
    b = rng.integers(0, 2**63, size=NUM_PERM, dtype=np.uint64)
    return a, b


_A, _B = _permutations()
# One odd 64-bit multiplier per row of a band, to mix a band's values into one bucket id.
_BAND_MIX = np.array(
    [0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0x27D4EB2F165667C5][:ROWS_PER_BAND],
    dtype=np.uint64,
)


def words(text: str) -> list[str]:
    """Case- and accent-composition-folded words of a text."""
    return _WORD.findall(fold(text))


def shingles(text: str) -> list[str]:
    """The text's distinct word shingles, in the order they first occur."""
    tokens = words(text)
    grams = (" ".join(tokens[i : i + SHINGLE_WORDS]) for i in range(len(tokens) - SHINGLE_WORDS + 1))
    return list(dict.fromkeys(grams))


def shingle_hashes(text: str) -> npt.NDArray[np.uint64]:
    """Distinct CRC-32 hashes of the text's word shingles (empty for texts under ``MIN_WORDS`` words)."""
    if len(words(text)) < MIN_WORDS:
        return np.empty(0, dtype=np.uint64)
    grams = shingles(text)
    return np.fromiter((zlib.crc32(g.encode()) for g in grams), dtype=np.uint64, count=len(grams))


def signature(text: str) -> Signature | None:
    """MinHash signature of the text, or None when it is too short to identify an article.

    Each permutation is a multiply-add on 64 bits whose top 32 bits are kept (a universal family).
    """
    hashes = shingle_hashes(text)
    if hashes.size == 0:
        return None
    with np.errstate(over="ignore"):
        mixed = (hashes[:, None] * _A[None, :] + _B[None, :]) >> np.uint64(32)
    sig: Signature = mixed.min(axis=0).astype(np.uint32)
    return sig


def to_bytes(sig: Signature) -> bytes:
    """The signature as stored (little-endian uint32)."""
    return sig.astype("<u4").tobytes()


def from_bytes(data: bytes) -> Signature:
    """A stored signature back as an array."""
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def band_keys(sig: Signature) -> list[tuple[int, int]]:
    """(band, bucket) pairs of a signature; buckets are signed 64-bit ints (DuckDB BIGINT)."""
    rows = sig.astype(np.uint64).reshape(BANDS, ROWS_PER_BAND)
    with np.errstate(over="ignore"):
        mixed = (rows * _BAND_MIX[None, :]).sum(axis=1, dtype=np.uint64)
    buckets: list[int] = (mixed ^ (mixed >> np.uint64(29))).view(np.int64).tolist()
    return list(enumerate(buckets))


def band_rows(
    article_id: str, sig: Signature, keys: Sequence[tuple[int, int]] | None = None
) -> list[BandRow]:
    """The rows to store for one article's signature (``keys``: its :func:`band_keys`, if known)."""
    return [BandRow(band, bucket, article_id) for band, bucket in keys or band_keys(sig)]


def index_rows(signed: Iterable[tuple[str, Signature]]) -> tuple[list[SignatureRow], list[BandRow]]:
    """The rows that store these (article id, signature) pairs: signatures and their bands."""
    pairs = list(signed)
    return (
        [SignatureRow(article_id, to_bytes(sig)) for article_id, sig in pairs],
        [row for article_id, sig in pairs for row in band_rows(article_id, sig)],
    )


def jaccard_estimate(a: Signature, b: Signature) -> float:
    """Share of equal MinHash values: an unbiased estimate of the shingle sets' Jaccard similarity."""
    return float(np.count_nonzero(a == b)) / NUM_PERM


@dataclass(frozen=True)
class NearDupOutcome:
    """Near-duplicate marks for a batch, and the rows to store for it."""

    marks: dict[str, DuplicateMark]
    signatures: list[SignatureRow]
    bands: list[BandRow]


@dataclass(frozen=True)
class CopyEvidence:
    """What a copy shares with its original once their shared verbatim lines are set aside."""

    set_aside_lines: int  # lines both print verbatim, left out (0: they are most of the text, so kept)
    shared: int  # shingles of the copy that the original has too
    total: int  # shingles of the copy
    union: int  # shingles of either
    examples: tuple[str, ...]  # the first few shared shingles, in the copy's order

    @property
    def jaccard(self) -> float:
        return self.shared / self.union if self.union else 0.0


def copy_evidence(text: str, other: str, examples: int = 5) -> CopyEvidence:
    """Compare ``text`` with ``other`` on content: lines both print verbatim are set aside (a promotion or
    footer of their site) unless they cover most of the shorter text (a copy, or an update that added a
    line)."""
    shared_lines, coverage = boilerplate.shared_lines(text, other)
    set_aside = shared_lines if coverage < boilerplate.COPY_COVERAGE else set()
    mine = shingles(boilerplate.without_lines(text, set_aside))
    theirs = set(shingles(boilerplate.without_lines(other, set_aside)))
    common = [g for g in mine if g in theirs]
    return CopyEvidence(
        len(set_aside), len(common), len(mine), len(theirs | set(mine)), tuple(common[:examples])
    )


def same_content(text: str, other: str, threshold: float = THRESHOLD) -> bool:
    """A candidate pair, checked on its texts (:func:`copy_evidence`): the exact shingle Jaccard after
    setting shared boilerplate lines aside reaches ``threshold``."""
    shared, coverage = boilerplate.shared_lines(text, other)
    if not shared or coverage >= boilerplate.COPY_COVERAGE:  # nothing to set aside: the estimate stands
        return True
    return copy_evidence(text, other, examples=0).jaccard >= threshold


def find_near_duplicates(
    batch: Sequence[tuple[str, str]],
    candidates: Iterable[StoredSignature],
    *,
    threshold: float = THRESHOLD,
    signatures: Mapping[str, Signature | None] | None = None,
    text_of: Callable[[str], str | None] | None = None,
) -> NearDupOutcome:
    """Mark the articles of ``batch`` ((article_id, text) in arrival order) that nearly repeat a stored
    candidate or an earlier article of the batch.

    ``candidates`` are stored articles sharing a band bucket with the batch (see :func:`band_rows`);
    passing more is harmless, only slower. ``signatures`` are the batch's, if already computed (for the
    band keys of the candidate query). Each copy points at the root (first copy) of its best match,
    with the estimated Jaccard as score. Articles too short for a signature are never marked.
    ``text_of`` gives a stored candidate's text: a match is then confirmed by :func:`same_content`.
    """
    texts = dict(batch)
    index = _BandIndex()
    roots: dict[str, str] = {}
    for cand in candidates:
        roots[cand.article_id] = cand.root or cand.article_id
        index.add(cand.article_id, from_bytes(cand.signature))
    marks: dict[str, DuplicateMark] = {}
    sig_rows: list[SignatureRow] = []
    rows: list[BandRow] = []
    for article_id, text in batch:
        sig = signatures[article_id] if signatures is not None else signature(text)
        if sig is None or article_id in roots:
            continue
        keys = band_keys(sig)
        best = index.best_match(sig, keys, exclude=article_id)
        if best is not None and best[1] >= threshold and _confirmed(text, best[0], texts, text_of, threshold):
            root = roots[best[0]]
            marks[article_id] = DuplicateMark(of=root, reason=DUP_REASON, score=round(best[1], 4))
            roots[article_id] = root
        else:
            roots[article_id] = article_id
        index.add(article_id, sig, keys)
        sig_rows.append(SignatureRow(article_id, to_bytes(sig)))
        rows.extend(band_rows(article_id, sig, keys))
    return NearDupOutcome(marks, sig_rows, rows)


def _confirmed(
    text: str,
    match: str,
    texts: Mapping[str, str],
    text_of: Callable[[str], str | None] | None,
    threshold: float,
) -> bool:
    other = texts.get(match) if match in texts else (text_of(match) if text_of is not None else None)
    return other is None or same_content(text, other, threshold)


class _BandIndex:
    """In-memory LSH index of the candidates plus the batch seen so far."""

    def __init__(self) -> None:
        self._buckets: dict[tuple[int, int], list[str]] = {}
        self._sigs: dict[str, Signature] = {}  # insertion order breaks ties

    def add(self, article_id: str, sig: Signature, keys: Sequence[tuple[int, int]] | None = None) -> None:
        self._sigs[article_id] = sig
        for key in keys or band_keys(sig):
            self._buckets.setdefault(key, []).append(article_id)

    def best_match(
        self, sig: Signature, keys: Sequence[tuple[int, int]], *, exclude: str
    ) -> tuple[str, float] | None:
        """The most similar indexed article sharing a bucket (``keys``: the signature's band keys); ties go
        to the earliest added."""
        seen = {other for key in keys for other in self._buckets.get(key, ()) if other != exclude}
        best: tuple[str, float] | None = None
        for other in (o for o in self._sigs if o in seen):
            score = jaccard_estimate(sig, self._sigs[other])
            if best is None or score > best[1]:
                best = (other, score)
        return best
