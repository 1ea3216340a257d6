"""``newsflow serve``: the deployments of every flow, served by one long-running process."""

from __future__ import annotations

import os
import re
import tempfile
from datetime import timedelta
from pathlib import Path
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
    deployments. Each allows one active run at a time; runs inherit this process's environment.

    Entrypoints are module paths (``newsflow.flows.ingest.ingest``), never a file path relative to the
    working directory."""
    from prefect.types.entrypoint import EntrypointType

    from newsflow.flows.backfill import backfill
    from newsflow.flows.ingest import ingest
    from newsflow.flows.maintenance import maintenance

    db = str(settings.db.absolute())
    module = EntrypointType.MODULE_PATH
    return [
        ingest.to_deployment(
            name="ingest",
            entrypoint_type=module,
            interval=timedelta(seconds=settings.ingest_interval),
            parameters={"db": db, "due_only": True},
            concurrency_limit=1,
            description="Poll the feeds that are due, fetch, extract and store new articles.",
        ),
        backfill.to_deployment(
            name="backfill",
            entrypoint_type=module,
            parameters={"db": db},
            concurrency_limit=1,
            description="Fill a past period: run with since/until (and feed, site, sources) parameters.",
        ),
        maintenance.to_deployment(
            name="maintenance",
            entrypoint_type=module,
            cron=settings.maintenance_cron,
            parameters={"db": db},
            concurrency_limit=1,
            description="Prune old raw pages, compact the lake, expire old snapshots.",
        ),
    ]


def require_server() -> str:
    """The configured PREFECT_API_URL, or a ConfigError explaining how to start a server."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        raise ConfigError(SERVER_HINT)
    return str(url)


def server_telemetry_note() -> str | None:
    """What to tell the user when the Prefect server they serve on reports usage to Prefect: that is the
    server's own setting (``PREFECT_SERVER_ANALYTICS_ENABLED``, on by default), which newsflow cannot change
    from here. None when it is off, or when the server does not say."""
    from prefect.client.orchestration import get_client

    try:
        with get_client(sync_client=True) as client:
            response = client.request("GET", "/admin/settings")
            response.raise_for_status()
            enabled = response.json().get("server", {}).get("analytics_enabled", False)
    except Exception:  # noqa: BLE001 - only a note: a server that will not say is left alone
        return None
    if enabled is not True:
        return None
    return (
        "note: the Prefect server at PREFECT_API_URL sends anonymous usage data to Prefect; newsflow's own "
        "processes send none. To turn it off, restart the server with PREFECT_SERVER_ANALYTICS_ENABLED=false"
    )


def serve(settings: Settings) -> None:
    """Register the deployments with the server and run their flows until interrupted.

    Flow runs start in an empty working directory of their own: Prefect puts the working directory first on
    ``sys.path`` of every flow run, and a folder there named ``newsflow`` (the clone, when serving from the
    folder that holds it) would shadow the installed package. Relative paths in ``NEWSFLOW_*`` settings
    are made absolute first, so they mean what they meant where ``serve`` was started."""
    from prefect import serve as prefect_serve

    require_server()
    served = deployments(settings)
    _absolute_path_settings()
    with tempfile.TemporaryDirectory(prefix="newsflow-serve-") as workdir:
        started_in = Path.cwd()
        os.chdir(workdir)
        try:
            prefect_serve(*served, print_starting_message=True)
        finally:
            os.chdir(started_in)


_PATH_SETTINGS = {"NEWSFLOW_DB": "", "NEWSFLOW_DATA_PATH": "", "NEWSFLOW_WAREHOUSE": "ducklake:sqlite:"}


def _absolute_path_settings() -> None:
    """Rewrite relative local paths in the path settings of this process's environment (flow runs read
    them) as absolute ones; URLs such as ``s3://...`` and Postgres catalogs are left alone."""
    for name, prefix in _PATH_SETTINGS.items():
        value = os.environ.get(name, "")
        if not value.startswith(prefix):
            continue
        path = value.removeprefix(prefix)
        if path and "://" not in path and not Path(path).expanduser().is_absolute():
            os.environ[name] = prefix + str(Path(path).expanduser().absolute())
