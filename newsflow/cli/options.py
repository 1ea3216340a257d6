"""What the commands share, declared once: options, and how a command finds the warehouse.

Heavy imports (Prefect, DuckDB) stay inside the commands, so ``newsflow --help`` and a mistyped option
answer at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from newsflow.settings import Settings, load_settings

EXIT_ERROR = 1

F = TypeVar("F", bound=Callable[..., Any])

db_option = click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The lake's SQLite catalog file "
    "[default: $NEWSFLOW_DB or ~/.local/share/newsflow/newsflow.ducklake].",
)
private_networks_option = click.option(
    "--allow-private-networks",
    is_flag=True,
    default=None,
    help="Fetch from loopback/private addresses (also NEWSFLOW_ALLOW_PRIVATE_NETWORKS=1).",
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
verbose_option = click.option(
    "-v", "--verbose", is_flag=True, help="Show Prefect's log lines on the console."
)
batch_size_option = click.option(
    "--batch-size", type=click.IntRange(min=1), default=None, help="Articles per batch [100]."
)
orphan_grace_option = click.option(
    "--orphan-grace-hours",
    type=click.FloatRange(min=0),
    default=None,
    help="Files nothing references count as orphans once older than this; younger ones may be a write "
    "in progress on another machine [1].",
)
format_option = click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)

#: What ``--since`` accepts wherever it takes a window back from now (parsed by ``clock.parse_since``).
SINCE_FORMS = "a duration (30m, 24h, 7d, 2w), a day (YYYY-MM-DD, UTC) or 'all'"


def since_option(default: str | None, what: str) -> Callable[[F], F]:
    """``--since`` as a window back from now: ``what`` says what it selects, e.g. "Only articles
    published since"."""
    return click.option("--since", default=default, show_default=default is not None,
                        help=f"{what}: {SINCE_FORMS}.")  # fmt: skip


def output_option(required: bool, description: str) -> Callable[[F], F]:
    """``-o/--output``, the file a command writes."""
    return click.option(
        "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, required=required,
        help=description,
    )  # fmt: skip


def period_options(command: F) -> F:
    """``--since`` and ``--until``: a period of whole days (UTC), both included."""
    until = click.option(
        "--until", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last day, included."
    )
    since = click.option(
        "--since", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day (YYYY-MM-DD, UTC)."
    )
    return since(until(command))


def warehouse_name(settings: Settings) -> str:
    """Where the warehouse is, as summaries end with it (the catalog file, or the Postgres catalog)."""
    from newsflow.warehouse.lakehouse import Warehouse

    return Warehouse.open(settings).spec.describe()


def quiet_prefect(verbose: bool) -> None:
    """Keep Prefect's INFO lines off the console (they still reach its API and UI) unless asked for."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


def existing_warehouse(db: Path | None) -> Settings:
    """Settings of a warehouse that exists: commands that only show data do not create one."""
    from newsflow.errors import WarehouseError
    from newsflow.warehouse.lakehouse import Warehouse

    settings = load_settings(db=db)
    warehouse = Warehouse.open(settings)
    if not warehouse.exists():
        raise WarehouseError(
            f"no warehouse at {warehouse.spec.describe()}: run `newsflow ingest` first or pass --db"
        )
    return settings
