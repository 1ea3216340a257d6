"""The one exception hierarchy of newsflow.

NewsflowError                  base class; the CLI prints it as one line and exits non-zero
├── ConfigError                a bad setting, flag value or feed-list file
├── FetchError                 an HTTP fetch failed; carries ``url`` and a short ``reason``
│   ├── BlockedAddressError    the host resolves to a loopback/private/reserved address
│   ├── TransientFetchError    worth retrying: 429, 5xx, connect errors, timeouts
│   └── ResponseTooLargeError  the body is over the size cap
├── FeedParseError             the bytes yielded no feed entries; carries ``url`` and ``reason``
├── WarehouseError             a DuckDB problem
│   ├── WarehouseLockedError   another process holds the file lock; names the holder
│   └── QueryError             a ``newsflow sql`` statement was refused or failed
├── ExportError                an export could not be written where it was asked to go
├── NotFoundError              no story/article with that id or id prefix, or the prefix is ambiguous
├── RunLockedError             another run of the same kind holds the run lock; names it
└── PrefectApiError            Prefect's temporary API server did not start
"""

from __future__ import annotations


class NewsflowError(Exception):
    """Base class of every error newsflow raises on purpose."""


class ConfigError(NewsflowError):
    """A setting, flag value or feed-list file is invalid."""


class ExportError(NewsflowError):
    """An export could not be written where it was asked to go (an object store refused it, or is down)."""


class FetchError(NewsflowError):
    """An HTTP fetch failed."""

    def __init__(self, url: str, reason: str, message: str, http_status: int | None = None) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.reason = reason
        self.detail = message
        self.http_status = http_status


class BlockedAddressError(FetchError):
    """The URL's host resolves to an address the network policy refuses."""


class TransientFetchError(FetchError):
    """A failure worth retrying (429, 5xx, connect error, timeout)."""

    def __init__(
        self,
        url: str,
        reason: str,
        message: str,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(url, reason, message, http_status)
        self.retry_after = retry_after


class ResponseTooLargeError(FetchError):
    """The response body exceeds the configured size cap."""


class FeedParseError(NewsflowError):
    """Feed bytes that yield no entries."""

    def __init__(self, url: str, reason: str, message: str) -> None:
        super().__init__(f"{url}: {message}")
        self.url = url
        self.reason = reason


class WarehouseError(NewsflowError):
    """A DuckDB warehouse problem."""


class WarehouseLockedError(WarehouseError):
    """Another process holds the DuckDB file lock."""


class QueryError(WarehouseError):
    """A user query was refused or failed."""


class NotFoundError(NewsflowError):
    """No row has the id (or unique id prefix) asked for; the message lists candidates when ambiguous."""


class RunLockedError(NewsflowError):
    """Another ingest (or backfill) is running on the same warehouse."""


class SearchQueryError(NewsflowError):
    """A search query that cannot be run (unbalanced quotes, no words to look for)."""


class PrefectApiError(NewsflowError):
    """Prefect's temporary API server, started for a command's flow run, did not start."""


class RulesError(ConfigError):
    """A rules file that cannot be used: ``FILE:LINE: what is wrong``."""
