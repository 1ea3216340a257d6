"""Long-running commands: the deployments (`serve`) and the web page (`web`)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from newsflow.cli.options import db_option, existing_warehouse, private_networks_option
from newsflow.settings import load_settings


@click.command()
@click.option(
    "--ingest-every", default=None, metavar="DURATION",
    help="Schedule of the ingest deployment: 90, 30s, 15m, 2h [$NEWSFLOW_INGEST_INTERVAL or 15m].",
)  # fmt: skip
@click.option(
    "--maintenance-cron", default=None, metavar="CRON",
    help='Schedule of the maintenance deployment [$NEWSFLOW_MAINTENANCE_CRON or "30 3 * * *"].',
)  # fmt: skip
@click.option(
    "--web", "web_address", default=None, metavar="HOST:PORT",
    help="Also serve the web page (as `newsflow web`) at this address, e.g. 127.0.0.1:8000.",
)  # fmt: skip
@db_option
@private_networks_option
def serve(
    ingest_every: str | None,
    maintenance_cron: str | None,
    web_address: str | None,
    db: Path | None,
    allow_private_networks: bool | None,
) -> None:
    """Serve the ingest, backfill and maintenance deployments on a Prefect server until Ctrl-C.

    Needs PREFECT_API_URL pointing at `prefect server start` (the temporary API cannot fire schedules).
    Scheduled ingests poll only the feeds that are due.
    """
    from newsflow.cli.serving import parse_duration, require_server, server_telemetry_note
    from newsflow.cli.serving import serve as serve_deployments

    interval = parse_duration(ingest_every) if ingest_every else None
    settings = load_settings(
        db=db, ingest_interval=interval, maintenance_cron=maintenance_cron,
        allow_private_networks=allow_private_networks,
    )  # fmt: skip
    if allow_private_networks:
        os.environ["NEWSFLOW_ALLOW_PRIVATE_NETWORKS"] = "1"  # flow runs inherit the environment
    require_server()
    if note := server_telemetry_note():
        click.echo(note, err=True)
    if web_address:
        from newsflow.web.server import parse_address, start_web_thread

        start_web_thread(settings, *parse_address(web_address))
    serve_deployments(settings)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port.")
@db_option
def web(host: str, port: int, db: Path | None) -> None:
    """Serve the read-only web page until Ctrl-C: stories (/), a story (/story/ID), search (/search),
    feeds (/feeds) and Prometheus metrics (/metrics).

    It reads snapshots and never blocks a run. Example: newsflow web --port 8000
    """
    from newsflow.web.server import run_web

    run_web(existing_warehouse(db), host, port)
