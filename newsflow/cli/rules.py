"""`newsflow rules`: set, show, export and try out the rules (filters, watches, feed-health alerts); and
`newsflow alerts`: what they set off."""

from __future__ import annotations

from pathlib import Path

import click

from newsflow.cli.options import db_option, existing_warehouse, format_option, since_option
from newsflow.settings import load_settings


@click.group()
def rules() -> None:
    """Filters, watches and alerts, kept in the warehouse for every worker (see README: Rules and alerts)."""


@rules.command("set")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
def rules_set(file: Path, db: Path | None) -> None:
    """Replace all rules with those of a TOML FILE, checked whole first: a bad file is refused with
    FILE:LINE and the reason, and the rules in force stay. Every version is kept.

    Example: newsflow rules set rules.toml
    """
    from newsflow.clock import utcnow
    from newsflow.rules.model import parse_rules
    from newsflow.warehouse import rules as rules_table
    from newsflow.warehouse.lakehouse import Warehouse

    text = _read(file)
    parsed = parse_rules(text, str(file))
    with Warehouse.open(load_settings(db=db)).write() as con:
        version = rules_table.save_rules(con, text, str(file.resolve()), utcnow())
    click.echo(
        f"rules version {version} set from {file}: {_counted(len(parsed.filters), 'filter')}, "
        f"{_counted(len(parsed.watches), 'watch')}, {_counted(len(parsed.alerts), 'alert')}"
    )


@rules.command("list")
@db_option
@format_option
def rules_list(db: Path | None, fmt: str) -> None:
    """Show the rules in force, one line each, in the order they apply."""
    from newsflow.cli.display import render_rows
    from newsflow.rules.describe import describe_rules
    from newsflow.tasks.filtering import rules_in_force
    from newsflow.warehouse.lakehouse import Warehouse

    with Warehouse.open(existing_warehouse(db)).read() as con:
        ruleset = rules_in_force(con)
    if not ruleset.version:
        click.echo("no rules set (newsflow rules set FILE)")
        return
    columns = ["kind", "name", "does", "when"]
    click.echo(f"rules version {ruleset.version}")
    click.echo(render_rows(columns, describe_rules(ruleset), fmt))


@rules.command("export")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")  # fmt: skip
@db_option
def rules_export(output: Path | None, db: Path | None) -> None:
    """Print the rules in force exactly as they were set (comments and order kept)."""
    from newsflow.errors import NewsflowError
    from newsflow.warehouse import rules as rules_table
    from newsflow.warehouse.lakehouse import Warehouse

    with Warehouse.open(existing_warehouse(db)).read() as con:
        stored = rules_table.current_rules(con)
    if stored is None:
        raise NewsflowError("no rules set yet: newsflow rules set FILE")
    if output is None:
        click.echo(stored.text, nl=False)
    else:
        output.write_text(stored.text, encoding="utf-8")
        click.echo(f"wrote rules version {stored.version} to {output}")


@rules.command("test")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@since_option("all", "Only articles since (publication time, else first seen)")
@click.option("--examples", type=click.IntRange(min=0), default=3, show_default=True,
              help="Titles shown per filter of what it would drop.")  # fmt: skip
@db_option
@format_option
def rules_test(file: Path, since: str, examples: int, db: Path | None, fmt: str) -> None:
    """What each filter of FILE would keep or drop among the stored articles, changing nothing.

    Example: newsflow rules test rules.toml --since 30d
    """
    from newsflow.cli.display import render_rows
    from newsflow.clock import parse_since, utcnow
    from newsflow.rules.model import parse_rules
    from newsflow.rules.tryout import try_filters
    from newsflow.warehouse import rules as rules_table
    from newsflow.warehouse.lakehouse import Warehouse

    ruleset = parse_rules(_read(file), str(file))
    now = utcnow()
    with Warehouse.open(existing_warehouse(db)).read() as con:
        report = try_filters(
            ruleset, rules_table.stored_subjects(con, parse_since(since, now)), now, examples
        )
    columns = ["filter", "action", "matches", "would drop", "examples"]
    rows = [(r.name, r.action, r.matches, r.drops, r.examples) for r in report.rules]
    click.echo(render_rows(columns, rows, fmt))
    if fmt == "table":
        click.echo(f"{report.total} articles: {report.kept} kept, {report.total - report.kept} dropped")


def _read(file: Path) -> str:
    from newsflow.errors import RulesError

    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError(f"{file}: cannot read it: {exc}") from None


def _counted(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('ch') else 's'}"


@click.command()
@click.option("--retry", is_flag=True, help="Send every pending delivery now (a failed one too), then list.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Alerts to list.")
@db_option
@format_option
def alerts(retry: bool, limit: int, db: Path | None, fmt: str) -> None:
    """The latest alerts of watches and feed-health rules, newest first, each with its deliveries' state
    (pending with the next try and the last error, or delivered).

    Example: newsflow alerts --retry
    """
    from newsflow.cli.display import render_rows
    from newsflow.tasks.alerting import deliver_alerts
    from newsflow.warehouse import alerts as alerts_table
    from newsflow.warehouse.lakehouse import Warehouse

    settings = existing_warehouse(db)
    if retry:
        report = deliver_alerts(settings, retry_now=True)
        click.echo(f"delivered {report.delivered}, failed {report.failed}", err=fmt != "table")
    with Warehouse.open(settings).read() as con:
        rows = alerts_table.list_alerts(con, limit)
    columns = ["created_at", "alert_id", "event", "rule", "subject", "outlets", "target", "state", "attempts",
               "next_attempt_at", "last_error"]  # fmt: skip
    click.echo(render_rows(columns, [tuple(row[c] for c in columns) for row in rows], fmt))
