"""``newsflow serve``: the deployments of every flow, served by one long-running process."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from newsflow.errors import ConfigError
from newsflow.settings import Settings

_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
SERVER_HINT = (
    "newsflow serve needs a Prefect server, which the temporary local API is not (it cannot fire "
    "schedules): run `prefect server start` in another terminal, then "
    "`export PREFECT_API_URL=http://127.0.0.1:4200/api`"
)


def parse_duration(text: str) -> int:
    """Seconds in ``90``, ``30s``, ``15m``, ``2h`` or ``1d``."""
    match = _DURATION.match(text)
    if not match or int(match[1]) == 0:
        raise ConfigError(f"bad duration {text!r}: use a positive number of seconds or e.g. 30s, 15m, 2h, 1d")
    return int(match[1]) * _UNIT_SECONDS[match[2]]


def deployments(settings: Settings) -> list[Any]:
    """The ``ingest`` (scheduled, due feeds only), ``backfill`` (on demand) and ``maintenance`` (cron)
    deployments. Each allows one active run at a time; runs inherit this process's environment."""
    from newsflow.flows.backfill import backfill
    from newsflow.flows.ingest import ingest
    from newsflow.flows.maintenance import maintenance

    db = str(settings.db)
    return [
        ingest.to_deployment(
            name="ingest",
            interval=timedelta(seconds=settings.ingest_interval),
            parameters={"db": db, "due_only": True},
            concurrency_limit=1,
            description="Poll the feeds that are due, fetch, extract and store new articles.",
        ),
        backfill.to_deployment(
            name="backfill",
            parameters={"db": db},
            concurrency_limit=1,
            description="Fill a past period: run with since/until (and feed, site, sources) parameters.",
        ),
        maintenance.to_deployment(
            name="maintenance",
            cron=settings.maintenance_cron,
            parameters={"db": db},
            concurrency_limit=1,
            description="Prune old raw pages (retention setting) and checkpoint the warehouse.",
        ),
    ]


def require_server() -> str:
    """The configured PREFECT_API_URL, or a ConfigError explaining how to start a server."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise ConfigError(SERVER_HINT)
    return str(url)


def serve(settings: Settings) -> None:
    """Register the deployments with the server and run their flows until interrupted."""
    from prefect import serve as prefect_serve

    require_server()
    prefect_serve(*deployments(settings), print_starting_message=True)
