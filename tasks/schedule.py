"""Adaptive per-feed polling: when to poll a feed next, from what its last poll showed.

- A feed that answered with entries is polled at half the typical gap between its recent entries, so a
  feed publishing every 20 minutes is polled every 10 and a weekly blog about every 3.5 days.
- A 304 (nothing new) stretches the interval by a quarter.
- A failure backs off exponentially from the shortest interval, never earlier than its Retry-After; after
  ``pause_after_errors`` failures in a row the feed is paused until someone resumes it.
All intervals stay within [min_poll_interval, max_poll_interval].
"""

from __future__ import annotations

import itertools
import statistics
from datetime import datetime, timedelta

from newsflow.records import FeedSchedule, FeedState, PollResult, PollStatus
from newsflow.settings import Settings

#: Recent entries whose spacing sets the rhythm.
RHYTHM_ENTRIES = 20
NOT_MODIFIED_STRETCH = 1.25


def publishing_gap(poll: PollResult) -> float | None:
    """Median seconds between the feed's most recent dated entries, or None with fewer than two."""
    stamps = sorted({e.published_at for e in poll.entries if e.published_at is not None}, reverse=True)
    stamps = stamps[:RHYTHM_ENTRIES]
    if len(stamps) < 2:
        return None
    gaps = [(newer - older).total_seconds() for newer, older in itertools.pairwise(stamps)]
    return float(statistics.median(gaps))


def next_schedule(feed: FeedState, poll: PollResult, settings: Settings, now: datetime) -> FeedSchedule:
    """The schedule of ``feed`` after ``poll`` (its state is the one from before the poll)."""
    previous = feed.poll_interval_s or settings.poll_interval
    if poll.status is PollStatus.ERROR:
        streak = feed.error_streak + 1
        interval = _bounded(settings.min_poll_interval * 2 ** min(streak - 1, 30), settings)
        wait = max(float(interval), poll.retry_after or 0.0)
        paused = streak >= settings.pause_after_errors
        reason = f"{streak} failed polls in a row, last: {poll.error_kind}" if paused else None
        return FeedSchedule(poll.feed_url, now + timedelta(seconds=wait), interval, paused, reason)
    if poll.status is PollStatus.NOT_MODIFIED:
        interval = _bounded(previous * NOT_MODIFIED_STRETCH, settings)
    else:
        gap = publishing_gap(poll)
        interval = _bounded(gap / 2 if gap is not None else previous, settings)
    return FeedSchedule(poll.feed_url, now + timedelta(seconds=interval), interval)


def _bounded(seconds: float, settings: Settings) -> int:
    return int(min(max(seconds, settings.min_poll_interval), settings.max_poll_interval))
