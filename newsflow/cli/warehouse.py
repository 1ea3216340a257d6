"""Commands on the warehouse as a whole: migrate, check, ad-hoc SQL and exports."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from newsflow.cli.options import (
    db_option,
    existing_warehouse,
    format_option,
    json_option,
    orphan_grace_option,
    since_option,
)
from newsflow.clock import parse_since
from newsflow.errors import NewsflowError
from newsflow.settings import load_settings


@click.command()
@db_option
@click.option(
    "--from",
    "old_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A pre-lake DuckDB warehouse file: copy every row of it into the lake.",
)
def migrate(db: Path | None, old_file: Path | None) -> None:
    """Create the lake or apply pending schema migrations; with --from, upgrade an old warehouse file.

    The old file is not changed. Row counts of every table and the integrity check are printed for both
    sides; a mismatch exits with status 1.
    Example: newsflow migrate --from ~/.local/share/newsflow/newsflow.duckdb
    """
    from newsflow.warehouse.lakehouse import Warehouse
    from newsflow.warehouse.schema import applied_versions
    from newsflow.warehouse.upgrade import upgrade_file

    warehouse = Warehouse.open(load_settings(db=db))
    if old_file is None:
        with warehouse.write() as con:
            version = max(applied_versions(con))
        click.echo(f"warehouse {warehouse.spec.describe()} is at schema version {version}")
        return
    report = upgrade_file(old_file, warehouse)
    click.echo(f"{'table':<20}{'file rows':>12}{'lake rows':>12}")
    for table, count in report.file_counts.items():
        click.echo(f"{table:<20}{count:>12}{report.lake_counts[table]:>12}")
    click.echo(f"integrity: file {report.file_problems or 'clean'}, lake {report.lake_problems or 'clean'}")
    if not report.ok:
        raise NewsflowError(f"upgrade of {old_file} did not copy every row intact: see the table above")
    click.echo(f"upgraded {old_file} into {warehouse.spec.describe()}")


@click.command()
@db_option
@orphan_grace_option
@json_option
def check(db: Path | None, orphan_grace_hours: float | None, as_json: bool) -> None:
    """Check the lake: the integrity rules every run keeps (no duplicate ids, no dangling story or copy),
    every data file the catalog references present in the data path (a folder or s3:// prefix), and the
    orphans (files nothing references; `newsflow maintenance` deletes them).

    Exits with status 1 when a rule is broken or a referenced file is missing; orphans alone do not fail.
    Example: newsflow check
    """
    from datetime import timedelta

    from newsflow.cli.display import render_json
    from newsflow.clock import utcnow
    from newsflow.warehouse.integrity import CHECKS, integrity_check, lake_files
    from newsflow.warehouse.lakehouse import Warehouse

    settings = existing_warehouse(db).merged(orphan_grace_hours=orphan_grace_hours)
    warehouse = Warehouse.open(settings)
    with warehouse.read() as con:
        files = lake_files(con, utcnow() - timedelta(hours=settings.orphan_grace_hours))
        # The rules read every table in full, which a missing file would stop at its first table.
        problems = [] if files.missing else integrity_check(con)
    if as_json:
        click.echo(render_json({"rules_checked": not files.missing, "rules_broken": problems,
                                "data_files": files.referenced, "missing": files.missing,
                                "orphans": files.orphans}))  # fmt: skip
    else:
        if files.missing:
            click.echo("rules: not read (a table with a missing file cannot be read whole)")
        else:
            click.echo(f"rules: {len(CHECKS)} checked, " + ("; ".join(problems) or "clean"))
        click.echo(f"data files: {files.referenced} referenced, {len(files.missing)} missing")
        for path in files.missing:
            click.echo(f"  missing: {path}")
        click.echo(
            f"orphans: {len(files.orphans)} (files under {warehouse.spec.data_path} that nothing references, "
            f"older than {settings.orphan_grace_hours:g} h; `newsflow maintenance` deletes them)"
        )
        for path in files.orphans:
            click.echo(f"  orphan: {path}")
    if problems or files.missing:
        raise NewsflowError(
            f"the lake at {warehouse.spec.describe()} has {len(problems)} broken rules and "
            f"{len(files.missing)} missing data files"
        )


@click.command()
@click.argument("query")
@db_option
@click.option(
    "-p",
    "--param",
    "params",
    nargs=2,
    multiple=True,
    metavar="NAME VALUE",
    help="Bind $NAME to VALUE (numbers, true/false and null are typed; the rest are strings).",
)
@format_option
@click.option(
    "--unsafe",
    is_flag=True,
    help="Trusted users only: open read-write, with file access, ATTACH and extensions.",
)
def sql(query: str, db: Path | None, params: tuple[tuple[str, str], ...], fmt: str, unsafe: bool) -> None:
    """Run a SQL query against the warehouse (read-only and sandboxed by default).

    Example: newsflow sql "SELECT site, count(*) FROM articles GROUP BY 1 ORDER BY 2 DESC"
    """
    from newsflow.cli.display import render_rows
    from newsflow.warehouse.query import parse_parameter, run_query

    settings = load_settings(db=db)
    from newsflow.warehouse.lakehouse import Warehouse

    parameters = {name: parse_parameter(value) for name, value in params}
    result = run_query(Warehouse.open(settings), query, parameters, unsafe=unsafe)
    click.echo(render_rows(result.columns, result.rows, fmt))


@click.command()
@click.argument("table", required=False)
@click.option(
    "--query", default=None, help="A SELECT to export instead of a table (sandboxed, as `newsflow sql`)."
)
@click.option(
    "-o",
    "--output",
    required=True,
    help="The file to write, or s3://bucket/key (uploaded once complete, with the AWS_* variables).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv", "jsonl"]),
    default=None,
    help="Output format [default: from the output's extension: .parquet, .csv, .jsonl].",
)
@since_option(
    None,
    "Only rows since (articles by publication time, else first seen; stories by their latest "
    "article; polls and runs by start)",
)
@db_option
def export(
    table: str | None, query: str | None, output: str, fmt: str | None, since: str | None, db: Path | None
) -> None:
    """Export a table (articles, stories, story_overview, feeds, polls, runs) or a query's result to
    Parquet, CSV or JSON Lines, streamed in batches (constant memory, any size).

    The file appears only when complete. Example: newsflow export articles --since 30d -o articles.parquet
    """
    import os
    import tempfile

    from newsflow.cli.export import export_format, upload_export, write_export
    from newsflow.errors import ConfigError
    from newsflow.warehouse.exports import record_batches, table_query
    from newsflow.warehouse.lakehouse import Warehouse

    if (table is None) == (query is None):
        raise ConfigError("give a TABLE or --query, not both or neither")
    if query is not None and since is not None:
        raise ConfigError("--since applies to a TABLE; put the condition in the --query instead")
    remote = output.startswith("s3://")
    fmt = export_format(Path(output.removeprefix("s3://")), fmt)
    settings = existing_warehouse(db)
    sql, parameters = (query, []) if query is not None else table_query(str(table), _since(since))
    with tempfile.TemporaryDirectory(prefix="newsflow-export-") as staging:
        target = Path(staging) / Path(output).name if remote else Path(output)
        con = Warehouse.open(settings).connect(sandbox=True, streaming=True)
        try:
            rows = write_export(record_batches(con, sql, parameters), target, fmt)
        finally:
            con.close()
        size = target.stat().st_size
        if remote:
            upload_export(target, output, os.environ)
    click.echo(f"exported {rows} rows to {output} ({fmt}, {size / 1e6:.1f} MB)")


def _since(value: str | None) -> datetime | None:
    from newsflow.clock import utcnow

    return parse_since(value, utcnow()) if value else None
