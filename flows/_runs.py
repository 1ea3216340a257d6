"""Run bookkeeping every flow shares: a row in ``runs`` opened at the start and closed, with status,
counts and timings, however the run ends. Kept apart from the article pipeline so that a flow without
one (``load``, ``regroup``) does not import it."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from prefect.context import FlowRunContext

from newsflow.net.http import close_shared_fetchers
from newsflow.settings import Settings
from newsflow.tasks.alerting import deliver_alerts
from newsflow.tasks.storing import finish_run, start_run

logger = logging.getLogger(__name__)


@dataclass
class TrackedRun:
    """A flow run's row in the ``runs`` table while it runs: its id, stage timings and final status."""

    run_id: str
    status: str = "running"
    timings: dict[str, float] = field(default_factory=dict)
    _clock: float = field(default_factory=time.monotonic)
    _lap: float = field(default_factory=time.monotonic)

    def lap(self, name: str) -> None:
        """Record the seconds since the previous lap (or the start) as ``timings[name]``."""
        now = time.monotonic()
        self.timings[name] = round(now - self._lap, 3)
        self._lap = now


class RunCounts(Protocol):
    """What a run's row stores as its counts (what the alert delivery at its end did among them)."""

    alert_deliveries: dict[str, int]

    def as_dict(self) -> dict[str, Any]: ...


@contextmanager
def tracked_run(
    settings: Settings,
    flow_name: str,
    parameters: Mapping[str, Any],
    counts: RunCounts,
    run_lock: str | None = None,
) -> Iterator[TrackedRun]:
    """Open the run's row, yield it, and close it with status, counts and timings however the body ends.

    ``run_lock`` names the run lock the caller holds: earlier runs of it left 'running' are marked 'crashed'.

    Shared HTTP clients are closed at the end too. The run id is the Prefect flow-run id when there is one;
    without one (a flow's function called by the CLI) the run gets a fresh id.
    """
    context = FlowRunContext.get()  # (prefect.runtime would cost its import, 0.2 s, to every `newsflow load`)
    flow_run_id = str(context.flow_run.id) if context is not None and context.flow_run is not None else None
    run = TrackedRun(str(flow_run_id or uuid.uuid4()))
    # Outside a flow run (`newsflow load`, `regroup`) the bookkeeping runs as plain calls: a task called
    # there would start Prefect's temporary API.
    start, finish = (start_run, finish_run) if flow_run_id else (start_run.fn, finish_run.fn)
    start(settings, run.run_id, flow_name, flow_run_id, parameters, run_lock)
    error = None
    try:
        yield run
        counts.alert_deliveries = _deliver_alerts(settings)
        run.status = "completed"
    except Exception as exc:
        run.status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        close_shared_fetchers()
        run.timings["total_s"] = round(time.monotonic() - run._clock, 3)
        finish(settings, run.run_id, run.status, counts.as_dict(), run.timings, error)


def _deliver_alerts(settings: Settings) -> dict[str, int]:
    """Send the alerts that are due (this run's and earlier undelivered ones); a failure to do so is logged
    and leaves them pending for the next run, never failing this one."""
    try:
        return deliver_alerts(settings).as_dict()
    except Exception as exc:  # noqa: BLE001 - the run's articles are stored; alerts wait for the next run
        logger.warning("alerts not delivered this run (they stay pending): %s: %s", type(exc).__name__, exc)
        return {"delivered": 0, "failed": 0}
