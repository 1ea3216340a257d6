"""Time as newsflow handles it: aware UTC datetimes everywhere, ISO 8601 dates read one way, and the
time windows people type (``24h``-style durations, ``YYYY-MM-DD`` days, or ``all``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from newsflow.errors import ConfigError

_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def parse_iso_utc(value: str) -> datetime | None:
    """An ISO 8601 date or datetime (``2023-09-25``, ``...T10:00:00+02:00``, ``...Z``) in UTC; a value
    without a zone is taken as UTC. None when it is not ISO 8601."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_duration(value: str) -> timedelta:
    """A ``30m``/``24h``/``7d``/``2w`` duration.

    Raises:
        ValueError: not such a duration.
    """
    text = value.strip().lower()
    if text[-1:] in _UNITS and text[:-1].isdigit():
        return timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])
    raise ValueError(f"expected a duration such as 30m, 24h, 7d or 2w, not {value!r}")


def parse_since(value: str, now: datetime) -> datetime | None:
    """``24h``-style durations back from ``now``, ``YYYY-MM-DD`` days (UTC), or None for ``all``."""
    text = value.strip().lower()
    if text == "all":
        return None
    if text[-1:] in _UNITS and text[:-1].isdigit():
        return now - parse_duration(text)
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(
            f"--since {value!r}: expected a duration (30m, 24h, 7d, 2w), a day (YYYY-MM-DD) or 'all'"
        ) from None
