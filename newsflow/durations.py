"""Time windows as people type them: ``24h``-style durations, ``YYYY-MM-DD`` days, or ``all``."""

from __future__ import annotations

from datetime import datetime

from newsflow.errors import ConfigError


def parse_since(value: str, now: datetime) -> datetime | None:
    """``24h``-style durations back from ``now``, ``YYYY-MM-DD`` days (UTC), or None for ``all``."""
    from datetime import UTC, timedelta

    text = value.strip().lower()
    if text == "all":
        return None
    units = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return now - timedelta(seconds=int(text[:-1]) * units[text[-1]])
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise ConfigError(
            f"--since {value!r}: expected a duration (30m, 24h, 7d, 2w), a day (YYYY-MM-DD) or 'all'"
        ) from None
