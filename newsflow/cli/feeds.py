"""`newsflow feeds`: list and edit the registered feeds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from newsflow.cli.options import db_option, format_option, output_option
from newsflow.errors import NewsflowError
from newsflow.settings import load_settings


@click.group()
def feeds() -> None:
    """List and edit the registered feeds."""


@feeds.command("list")
@db_option
@format_option
def feeds_list(db: Path | None, fmt: str) -> None:
    """Show every registered feed with its polling state."""
    from newsflow.cli.display import render_rows
    from newsflow.warehouse import feeds as feeds_table
    from newsflow.warehouse.lakehouse import Warehouse

    settings = load_settings(db=db)
    with Warehouse.open(settings).read() as con:
        rows = feeds_table.list_feeds(con)
    columns = ["url", "name", "tags", "state", "last_success_at", "error_streak", "poll_interval_s",
               "next_poll_at", "last_error"]  # fmt: skip
    table = [tuple(feeds_table.feed_state(r) if c == "state" else r[c] for c in columns) for r in rows]
    click.echo(render_rows(columns, table, fmt))


@feeds.command("add")
@click.argument("url")
@click.option("--name", default=None, help="Display name.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@db_option
def feeds_add(url: str, name: str | None, tags: tuple[str, ...], db: Path | None) -> None:
    """Register a feed URL."""
    from newsflow.feedlist import checked_url
    from newsflow.records import FeedSpec

    spec = FeedSpec(checked_url(url, "feed URL"), name, tags)
    added = _register([spec], db)
    click.echo(f"added {spec.url}" if added else f"already registered: {spec.url} (name/tags updated)")


@feeds.command("remove")
@click.argument("url")
@db_option
def feeds_remove(url: str, db: Path | None) -> None:
    """Unregister a feed (its stored articles stay)."""
    from newsflow.warehouse import feeds as feeds_table

    _change_registered_feed(url, db, feeds_table.remove_feed)
    click.echo(f"removed {url}")


@feeds.command("resume")
@click.argument("url")
@db_option
def feeds_resume(url: str, db: Path | None) -> None:
    """Unpause a feed (paused after repeated failures) and make it due now."""
    from newsflow.warehouse import feeds as feeds_table

    _change_registered_feed(url, db, feeds_table.resume_feed)
    click.echo(f"resumed {url}: it is polled on the next run")


def _change_registered_feed(url: str, db: Path | None, change: Any) -> None:
    """Apply ``change(con, url)`` in one transaction; a URL that is not registered is an error."""
    from newsflow.warehouse.lakehouse import Warehouse

    settings = load_settings(db=db)
    with Warehouse.open(settings).write() as con:
        if not change(con, url.strip()):
            raise NewsflowError(f"not registered: {url} (see `newsflow feeds list`)")


@feeds.command("import-opml")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
def feeds_import_opml(file: Path, db: Path | None) -> None:
    """Register every feed of an OPML file (what feed readers export); folders become tags."""
    from newsflow.feedlist import parse_opml

    specs = parse_opml(file.read_bytes(), str(file))
    added = _register(specs, db)
    click.echo(f"{len(specs)} feeds in {file}: {added} new, {len(specs) - added} already registered")


@feeds.command("export-opml")
@output_option(required=False, description="Write to this file [default: stdout].")
@db_option
def feeds_export_opml(output: Path | None, db: Path | None) -> None:
    """Write the registered feeds as OPML, for any feed reader."""
    from newsflow.feedlist import to_opml
    from newsflow.records import FeedSpec
    from newsflow.warehouse import feeds as feeds_table
    from newsflow.warehouse.lakehouse import Warehouse

    settings = load_settings(db=db)
    with Warehouse.open(settings).read() as con:
        rows = feeds_table.list_feeds(con)
    document = to_opml(FeedSpec(r["url"], r["name"], tuple(r["tags"] or ())) for r in rows)
    if output is None:
        click.echo(document, nl=False)
    else:
        output.write_text(document)
        click.echo(f"wrote {len(rows)} feeds to {output}", err=True)


def _register(specs: list[Any], db: Path | None) -> int:
    from newsflow.clock import utcnow
    from newsflow.warehouse import feeds as feeds_table
    from newsflow.warehouse.lakehouse import Warehouse

    settings = load_settings(db=db)
    with Warehouse.open(settings).write() as con:
        return feeds_table.add_feeds(con, specs, utcnow())
