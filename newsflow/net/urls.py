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


def site_domain(site: str) -> str:
    """The domain a ``--site`` value names: a bare domain (``nytimes.com``) as it is, or an origin URL's
    host (``https://www.nytimes.com/`` -> ``www.nytimes.com``); lowercased, without a port or final dot."""
    text = site.strip()
    host = urlsplit(text if "://" in text else f"//{text}").hostname or ""
    return host.lower().rstrip(".")


class SiteMatcher:
    """Which URLs belong to the chosen sites: a site's domain itself and its subdomains (``nytimes.com``
    takes ``www.nytimes.com``), never a substring (``notnytimes.com``, ``nytimes.com.mirror.example``)."""

    def __init__(self, sites: list[str] | tuple[str, ...]) -> None:
        self.domains = tuple(sorted({d for d in map(site_domain, sites) if d}))
        self._suffixes = tuple("." + d for d in self.domains)

    def host_matches(self, host: str | None) -> bool:
        if not host:
            return False
        host = host.lower().rstrip(".")
        return host in self.domains or host.endswith(self._suffixes)

    def matches(self, url: str | None) -> bool:
        """Whether ``url``'s host is one of the sites or under one."""
        if not url:
            return False
        try:
            return self.host_matches(urlsplit(url.strip()).hostname)
        except ValueError:
            return False
