"""The ``newsflow`` command line, the top floor: one module per command group, options in :mod:`.options`.

- :mod:`.runs`: ingest, backfill, maintenance, load, regroup (each runs a flow)
- :mod:`.serve`: serve (the deployments), web (the web page)
- :mod:`.browse`: stories, story, article, search
- :mod:`.warehouse`: migrate, check, sql, export
- :mod:`.feeds`: the feeds group
- :mod:`.rules`: the rules group (filters, watches, alerts) and alerts
"""

from __future__ import annotations

import sys
from typing import Any

import click

from newsflow.cli import browse, feeds, rules, runs, serve, warehouse
from newsflow.cli.options import EXIT_ERROR
from newsflow.cli.prefect_api import prefect_telemetry_off
from newsflow.errors import NewsflowError
from newsflow.system import limit_malloc_arenas


class CleanErrors(click.Group):
    """Turns newsflow's own errors into one line on stderr and exit status 1, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsflowError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_ERROR)


@click.group(cls=CleanErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="newsflow")
def main() -> None:
    """newsflow: poll news feeds, extract clean articles, keep them in a DuckDB warehouse."""
    limit_malloc_arenas()
    prefect_telemetry_off()


for command in (
    runs.ingest,
    runs.backfill,
    serve.serve,
    serve.web,
    runs.maintenance,
    warehouse.migrate,
    warehouse.check,
    warehouse.sql,
    browse.stories,
    browse.story,
    browse.article,
    browse.search,
    warehouse.export,
    runs.load,
    runs.regroup,
    feeds.feeds,
    rules.rules,
    rules.alerts,
):
    main.add_command(command)
