"""The ``regroup`` flow: group the articles of a period into stories again (after tuning, or after a
backfill), in one write transaction, recorded in ``runs`` as flow ``regroup``.

``newsflow regroup`` calls :func:`regroup_period` in its own process, without Prefect's API; the
``regroup`` flow wraps the same function for deployments and Prefect-triggered runs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from prefect import flow

from newsflow.clock import utcnow
from newsflow.errors import ConfigError
from newsflow.flows._runs import tracked_run
from newsflow.settings import Settings, load_settings
from newsflow.tasks.storing import RegroupOutcome, regroup_range
from newsflow.warehouse.lakehouse import Warehouse


@dataclass
class RegroupCounts:
    """A regroup's outcome, once it has one, as the run's counts."""

    outcome: RegroupOutcome | None = None
    alert_deliveries: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        done = asdict(self.outcome) if self.outcome is not None else {}
        sent = self.alert_deliveries
        return done | ({"alert_deliveries": sent} if any(sent.values()) else {})


def regroup_period(settings: Settings, since: date, until: date) -> RegroupOutcome:
    """Take apart every story with an article published (else first seen) from ``since`` to ``until``
    (days, both included, UTC) and group those stories' articles and the period's others again.

    Raises:
        ConfigError: ``until`` is before ``since``.
    """
    if until < since:
        raise ConfigError(f"the period ends ({until}) before it starts ({since})")
    start = datetime.combine(since, time(), UTC)
    end = datetime.combine(until, time(), UTC) + timedelta(days=1)
    counts = RegroupCounts()
    parameters = {"since": since.isoformat(), "until": until.isoformat()}
    with tracked_run(settings, "regroup", parameters, counts):
        with Warehouse.open(settings).write() as con:
            counts.outcome = regroup_range(con, start, end, utcnow(), settings.batch_size)
    return counts.outcome


@flow(name="regroup", validate_parameters=True)
def regroup(since: date, until: date, db: str | None = None) -> dict[str, Any]:
    """Group the articles of a period (days ``since`` to ``until``, both included, UTC) into stories again.

    Returns:
        Articles regrouped, stories taken apart, stories now, and articles that joined a story.
    """
    settings = load_settings(db=Path(db) if db else None)
    return asdict(regroup_period(settings, since, until))
