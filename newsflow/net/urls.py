"""URL canonicalisation: lowercased scheme and host, no default port, tracking parameters or fragment."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from courlan import normalize_url


def canonical_url(url: str | None) -> str | None:
    """The canonical form of an http(s) URL, or None when it is not one.

    Path and query values keep their case (servers may treat them case-sensitively); the query is sorted
    and stripped of tracking parameters (utm_*, fbclid, gclid, ...) by courlan.
    """
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            return None
        normalized = normalize_url(url)
    except ValueError:
        return None
    parts = urlsplit(normalized)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", parts.query, ""))


def site_of(url: str | None) -> str | None:
    """The host of a URL without a leading ``www.``: the unit of "same site"."""
    if not url:
        return None
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.") or None


def same_site(a: str | None, b: str | None) -> bool:
    """Whether two URLs are on the same site (hosts equal up to ``www.``)."""
    return site_of(a) is not None and site_of(a) == site_of(b)
