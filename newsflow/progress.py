"""Progress reporting from flows to whoever watches: a debug log line by default, a bar in the CLI."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

logger = logging.getLogger(__name__)

#: Receives (stage, done, total); ``total`` may grow as work is discovered.
ProgressReporter = Callable[[str, int, int], None]


def _log_progress(stage: str, done: int, total: int) -> None:
    logger.debug("%s: %d/%d", stage, done, total)


# A process-wide slot rather than a context variable: Prefect runs tasks and callbacks in other threads.
_reporter: list[ProgressReporter] = [_log_progress]


def report(stage: str, done: int, total: int) -> None:
    """Tell the current reporter how far ``stage`` has got."""
    _reporter[-1](stage, done, total)


@contextmanager
def reporting_to(reporter: ProgressReporter) -> Iterator[None]:
    """Route :func:`report` calls to ``reporter`` while the context is open."""
    _reporter.append(reporter)
    try:
        yield
    finally:
        _reporter.remove(reporter)
