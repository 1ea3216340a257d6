"""The ``newsflow`` command line: ingest, ad-hoc SQL, and the feed registry."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import click

from newsflow.durations import parse_since
from newsflow.errors import NewsflowError, NotFoundError
from newsflow.settings import Settings, load_settings

EXIT_ERROR = 1


class CleanErrors(click.Group):
    """Turns newsflow's own errors into one line on stderr and exit status 1, without a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except NewsflowError as exc:
            click.echo(f"Error: {exc}", err=True)
            sys.exit(EXIT_ERROR)


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


@click.group(cls=CleanErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="newsflow")
def main() -> None:
    """newsflow: poll news feeds, extract clean articles, keep them in a DuckDB warehouse."""


@main.command()
@click.option(
    "--feeds",
    "feeds_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="TOML or OPML feed list to register and poll [default: every registered feed; "
    "an empty registry starts with the built-in tech-news list].",
)
@db_option
@private_networks_option
@click.option(
    "--due-only", is_flag=True, help="Poll only feeds whose next poll time has come (as scheduled runs do)."
)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Articles per batch [100].")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Extraction processes [CPU count].")
@click.option(
    "--runner",
    "runner_spec",
    default=None,
    help="Extraction task runner: process (default), dask, or dask://HOST:PORT.",
)
@json_option
@verbose_option
def ingest(
    feeds_file: str | None,
    db: Path | None,
    allow_private_networks: bool | None,
    due_only: bool,
    batch_size: int | None,
    workers: int | None,
    runner_spec: str | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Poll feeds, fetch and extract new articles, store them (one Prefect flow run).

    If another ingest is running on the same warehouse, this one does nothing and says so.
    """
    _quiet_prefect(verbose)
    from newsflow.feedlist import load_feed_file

    # Bad input fails here, in one line, before any flow run starts.
    settings = load_settings(
        db=db, batch_size=batch_size, extraction_workers=workers, extraction_runner=runner_spec
    )
    if feeds_file:
        load_feed_file(Path(feeds_file))
    from newsflow.display import progress_bars, render_json, summary_table
    from newsflow.flows.ingest import ingest as ingest_flow
    from newsflow.progress import reporting_to

    with progress_bars(enabled=not as_json and sys.stderr.isatty()) as reporter, reporting_to(reporter):
        summary = ingest_flow(
            feeds_file=feeds_file,
            db=str(db) if db else None,
            allow_private_networks=allow_private_networks,
            due_only=due_only,
            batch_size=batch_size,
            extraction_workers=workers,
            extraction_runner_spec=runner_spec,
        )
    click.echo(render_json(summary) if as_json else summary_table(summary, warehouse_name(settings)))


@main.command()
@click.option(
    "--since", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day (YYYY-MM-DD, UTC)."
)
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last day, included.")
@click.option("--feed", default=None, help="Only this feed's archive (and its site's sitemaps).")
@click.option("--site", default=None, help="Only this site: a domain (https) or an origin URL.")
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Choice(["feeds", "sitemaps", "warehouse"]),
    help="Where to look (repeatable) [feeds and sitemaps]; warehouse re-extracts stored pages offline.",
)
@click.option(
    "--chunk-days", type=click.IntRange(min=1), default=1, show_default=True, help="Days per chunk."
)
@db_option
@private_networks_option
@json_option
@verbose_option
def backfill(
    since: datetime,
    until: datetime,
    feed: str | None,
    site: str | None,
    sources: tuple[str, ...],
    chunk_days: int,
    db: Path | None,
    allow_private_networks: bool | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Fill a past period from archived feeds, sitemaps, or the warehouse's raw pages (one flow run).

    The window is done in chunks; run the same command again after an interruption and it redoes only
    the unfinished chunks. Example: newsflow backfill --since 2023-09-01 --until 2023-09-30 --site example.com
    """
    _quiet_prefect(verbose)
    settings = load_settings(db=db)
    from newsflow.display import backfill_summary, progress_bars, render_json
    from newsflow.flows.backfill import Source, validate_request
    from newsflow.flows.backfill import backfill as backfill_flow
    from newsflow.progress import reporting_to

    chosen = cast("list[Source]", list(sources)) or None
    validate_request(since.date(), until.date(), chosen, chunk_days)
    with progress_bars(enabled=not as_json and sys.stderr.isatty()) as reporter, reporting_to(reporter):
        summary = backfill_flow(
            since=since.date(),
            until=until.date(),
            feed=feed,
            site=site,
            sources=chosen,
            db=str(db) if db else None,
            allow_private_networks=allow_private_networks,
            chunk_days=chunk_days,
        )
    click.echo(render_json(summary) if as_json else backfill_summary(summary, warehouse_name(settings)))


@main.command()
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
    from newsflow.serving import parse_duration, require_server
    from newsflow.serving import serve as serve_deployments

    interval = parse_duration(ingest_every) if ingest_every else None
    settings = load_settings(
        db=db, ingest_interval=interval, maintenance_cron=maintenance_cron,
        allow_private_networks=allow_private_networks,
    )  # fmt: skip
    if allow_private_networks:
        os.environ["NEWSFLOW_ALLOW_PRIVATE_NETWORKS"] = "1"  # flow runs inherit the environment
    require_server()
    if web_address:
        from newsflow.web.server import parse_address, start_web_thread

        start_web_thread(settings, *parse_address(web_address))
    serve_deployments(settings)


@main.command("web")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True, help="Port.")
@db_option
def web_command(host: str, port: int, db: Path | None) -> None:
    """Serve the read-only web page until Ctrl-C: stories (/), a story (/story/ID), search (/search),
    feeds (/feeds) and Prometheus metrics (/metrics).

    It reads snapshots and never blocks a run. Example: newsflow web --port 8000
    """
    from newsflow.web.server import run_web

    run_web(existing_warehouse(db), host, port)


@main.command("maintenance")
@db_option
@click.option("--raw-page-retention-days", type=click.IntRange(min=0), default=None,
              help="Prune raw pages fetched more than this many days ago (0 keeps all).")  # fmt: skip
@click.option(
    "--snapshot-retention-days",
    type=click.FloatRange(min=0),
    default=None,
    help="Expire lake snapshots older than this (how far back time travel reaches) [7].",
)
@verbose_option
def maintenance_command(
    db: Path | None, raw_page_retention_days: int | None, snapshot_retention_days: float | None, verbose: bool
) -> None:
    """Prune old raw pages, then compact the lake: merge small files, expire old snapshots, delete
    unreferenced files (one flow run)."""
    _quiet_prefect(verbose)
    load_settings(
        db=db,
        raw_page_retention_days=raw_page_retention_days,
        snapshot_retention_days=snapshot_retention_days,
    )
    from newsflow.display import render_json
    from newsflow.flows.maintenance import maintenance

    summary = maintenance(
        db=str(db) if db else None,
        raw_page_retention_days=raw_page_retention_days,
        snapshot_retention_days=snapshot_retention_days,
    )
    click.echo(render_json(summary))


@main.command("migrate")
@db_option
@click.option(
    "--from",
    "old_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="A pre-lake DuckDB warehouse file: copy every row of it into the lake.",
)
def migrate_command(db: Path | None, old_file: Path | None) -> None:
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


def warehouse_name(settings: Settings) -> str:
    """Where the warehouse is, as summaries end with it (the catalog file, or the Postgres catalog)."""
    from newsflow.warehouse.lakehouse import Warehouse

    return Warehouse.open(settings).spec.describe()


def _quiet_prefect(verbose: bool) -> None:
    """Keep Prefect's INFO lines off the console (they still reach its API and UI) unless asked for."""
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL", "WARNING")


@main.command()
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
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--unsafe",
    is_flag=True,
    help="Trusted users only: open read-write, with file access, ATTACH and extensions.",
)
def sql(query: str, db: Path | None, params: tuple[tuple[str, str], ...], fmt: str, unsafe: bool) -> None:
    """Run a SQL query against the warehouse (read-only and sandboxed by default).

    Example: newsflow sql "SELECT site, count(*) FROM articles GROUP BY 1 ORDER BY 2 DESC"
    """
    from newsflow.display import render_rows
    from newsflow.warehouse.query import parse_parameter, run_query

    settings = load_settings(db=db)
    from newsflow.warehouse.lakehouse import Warehouse

    parameters = {name: parse_parameter(value) for name, value in params}
    result = run_query(Warehouse.open(settings), query, parameters, unsafe=unsafe)
    click.echo(render_rows(result.columns, result.rows, fmt))


format_option = click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)


@main.command("stories")
@click.option(
    "--since",
    default="24h",
    show_default=True,
    help="Stories with an article published since: a duration (30m, 24h, 7d, 2w), a day (YYYY-MM-DD, UTC) "
    "or 'all'. Undated articles count at the time newsflow first saw them.",
)
@click.option(
    "--min-outlets", type=click.IntRange(min=1), default=1, show_default=True, help="Fewest outlets."
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Most stories.")
@db_option
@format_option
def stories_command(since: str, min_outlets: int, limit: int, db: Path | None, fmt: str) -> None:
    """List stories, biggest first, with their outlets and headline.

    The window is on publication time, so a backfill or `load` of older articles shows with `--since all`
    (or a longer window). The table shows when each story's latest article appeared; -f csv/json also give
    first_at. Ids print whole; `newsflow story` also takes a unique prefix.

    Example: newsflow stories --since 7d --min-outlets 3
    """
    from newsflow.display import render_rows
    from newsflow.tasks.http import utcnow
    from newsflow.warehouse import stories as stories_table
    from newsflow.warehouse.lakehouse import Warehouse

    settings = existing_warehouse(db)
    since_at = parse_since(since, utcnow())
    with Warehouse.open(settings).read() as con:
        rows = stories_table.list_stories(con, since=since_at, min_outlets=min_outlets, limit=limit)
        total, newest = stories_table.newest_story(con) if not rows else (0, None)
    columns = ["story_id", "articles", "outlets", "first_at", "last_at", "headline", "sites"]
    if fmt == "table":
        columns.remove("first_at")
    click.echo(render_rows(columns, [tuple(r[c] for c in columns) for r in rows], fmt))
    if not rows and total:
        click.echo(
            f"no story has an article published {'since' if '-' in since else 'in the last'} {since} "
            f"({total} stories in all, the latest article "
            f"at {newest:%Y-%m-%d %H:%M:%S}): try --since all",
            err=True,
        )


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


@main.command("story")
@click.argument("story_id")
@db_option
@format_option
def story_command(story_id: str, db: Path | None, fmt: str) -> None:
    """Show one story: its articles with outlet, time, title, URL, copy marks and grouping decision.

    STORY_ID is a story id or a unique prefix of one (at least 4 characters).
    Example: newsflow story s_0123456789abcdef
    """
    from newsflow.display import render_json, render_rows
    from newsflow.warehouse import stories as stories_table
    from newsflow.warehouse.lakehouse import Warehouse
    from newsflow.warehouse.query import unique_id

    settings = existing_warehouse(db)
    with Warehouse.open(settings).read() as con:
        story_id = unique_id(con, "stories", story_id)
        overview = stories_table.story_overview(con, story_id)
        members = stories_table.story_members(con, story_id)
    if overview is None:  # a story row without articles: released by a regroup in progress
        raise NotFoundError(f"story {story_id} has no articles (see `newsflow stories`)")
    if fmt == "json":
        click.echo(render_json({"story": overview, "articles": members}))
        return
    columns = ["article_id", "site", "published", "title", "copy_of", "copy", "decision", "url"]
    rows = [
        (m["article_id"], m["site"], m["published"], m["title"], m["duplicate_of"], _copy_mark(m),
         _decision(m), m["url"])
        for m in members
    ]  # fmt: skip
    if fmt == "table":
        click.echo(
            f"{overview['headline'] or '(no headline)'}\n{story_id}: {overview['articles']} articles "
            f"({overview['originals']} originals) from {overview['outlets']} outlets\n"
            f"{overview['first_at']:%Y-%m-%d %H:%M:%S} .. {overview['last_at']:%Y-%m-%d %H:%M:%S} UTC\n"
        )
    click.echo(render_rows(columns, rows, fmt))


def _copy_mark(member: dict[str, Any]) -> str | None:
    if not member["duplicate_of"]:
        return None
    return f"{member['dup_reason']} {member['dup_score'] or 1.0:.2f}"


def _decision(member: dict[str, Any]) -> str | None:
    if not member["reason"]:
        return None
    return f"{member['reason']} {member['score']:.3f}"


@main.command("article")
@click.argument("article_id")
@db_option
@format_option
def article_command(article_id: str, db: Path | None, fmt: str) -> None:
    """Show one article: metadata, copy mark, story and the extracted text.

    ARTICLE_ID is an article id (as `newsflow story` lists them) or a unique prefix of one.
    Example: newsflow article 0f3c9a
    """
    from newsflow.display import render_json, render_record, render_rows
    from newsflow.warehouse.articles import article_detail
    from newsflow.warehouse.lakehouse import Warehouse
    from newsflow.warehouse.query import unique_id

    settings = existing_warehouse(db)
    with Warehouse.open(settings).read() as con:
        article = article_detail(con, unique_id(con, "articles", article_id))
    assert article is not None  # unique_id found it in the same snapshot
    if fmt == "json":
        click.echo(render_json(article))
        return
    if fmt == "csv":
        click.echo(render_rows(list(article), [tuple(article.values())], "csv"))
        return
    text = article.pop("text")
    click.echo(article.pop("title") or "(no title)")
    click.echo(render_record([(name, value) for name, value in article.items() if value not in (None, [])]))
    click.echo("")
    click.echo(text)


@main.command("search")
@click.argument("query")
@click.option(
    "--since",
    default="all",
    show_default=True,
    help="Only articles published since: a duration (30m, 24h, 7d), a day (YYYY-MM-DD, UTC) or 'all'.",
)
@click.option("--site", help="Only articles of this site (or its subdomains), e.g. reuters.com.")
@click.option("--story", "story_id", help="Only articles of this story (an id or a unique prefix).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Most hits.")
@db_option
@format_option
def search_command(
    query: str, since: str, site: str | None, story_id: str | None, limit: int, db: Path | None, fmt: str
) -> None:
    """Find articles by words in their title and text, best first (BM25), with a snippet.

    Every word must occur (in any form: "investing" finds "invest"); "a quoted phrase" must occur as
    written; -word excludes. Each hit shows its story and how many outlets cover it; -f csv/json give the
    snippet with matched words between ** and the story's outlets.

    Example: newsflow search 'anthropic amazon "4 billion"' --since 30d
    """
    from newsflow.display import render_hits, render_rows
    from newsflow.tasks.http import utcnow
    from newsflow.warehouse.lakehouse import Warehouse
    from newsflow.warehouse.query import unique_id
    from newsflow.warehouse.search import marked, parse_query, search

    parsed = parse_query(query)
    settings = existing_warehouse(db)
    with Warehouse.open(settings).read() as con:
        story = unique_id(con, "stories", story_id) if story_id else None
        hits = search(con, parsed, since=parse_since(since, utcnow()), site=site, story_id=story, limit=limit)
    if fmt == "table":
        click.echo(render_hits(hits))
        return
    columns = ["score", "article_id", "published_at", "site", "title", "url", "story_id", "story_outlets",
               "duplicate_of", "snippet"]  # fmt: skip
    rows = [(round(h.score, 4), h.article_id, h.published_at, h.site, h.title, h.url, h.story_id,
             h.story_outlets, h.duplicate_of, marked(h.snippet)) for h in hits]  # fmt: skip
    click.echo(render_rows(columns, rows, fmt))


@main.command("export")
@click.argument("table", required=False)
@click.option(
    "--query", default=None, help="A SELECT to export instead of a table (sandboxed, as `newsflow sql`)."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The file to write.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["parquet", "csv", "jsonl"]),
    default=None,
    help="Output format [default: from the output's extension: .parquet, .csv, .jsonl].",
)
@click.option(
    "--since",
    default=None,
    help="Only rows since: a duration (7d), a day (YYYY-MM-DD, UTC) or 'all'. Articles by publication time "
    "(else first seen), stories by their latest article, polls and runs by start.",
)
@db_option
def export_command(
    table: str | None, query: str | None, output: Path, fmt: str | None, since: str | None, db: Path | None
) -> None:
    """Export a table (articles, stories, story_overview, feeds, polls, runs) or a query's result to
    Parquet, CSV or JSON Lines, streamed in batches (constant memory, any size).

    The file appears only when complete. Example: newsflow export articles --since 30d -o articles.parquet
    """
    from newsflow.errors import ConfigError
    from newsflow.export import export_format, write_export
    from newsflow.warehouse.exports import record_batches, table_query
    from newsflow.warehouse.lakehouse import Warehouse

    if (table is None) == (query is None):
        raise ConfigError("give a TABLE or --query, not both or neither")
    if query is not None and since is not None:
        raise ConfigError("--since applies to a TABLE; put the condition in the --query instead")
    fmt = export_format(output, fmt)
    settings = existing_warehouse(db)
    sql, parameters = (query, []) if query is not None else table_query(str(table), _since(since))
    con = Warehouse.open(settings).connect(sandbox=True)
    try:
        rows = write_export(record_batches(con, sql, parameters), output, fmt)
    finally:
        con.close()
    click.echo(f"exported {rows} rows to {output} ({fmt}, {output.stat().st_size / 1e6:.1f} MB)")


def _since(value: str | None) -> datetime | None:
    from newsflow.tasks.http import utcnow

    return parse_since(value, utcnow()) if value else None


@main.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Articles per batch [100].")
@json_option
def load_command(file: Path, db: Path | None, batch_size: int | None, as_json: bool) -> None:
    """Load already-extracted articles from a JSON Lines file, through dedupe and story grouping.

    One JSON object per line: "text" (required), and optionally "id" (kept as external_id), "url",
    "title", "published_at" (ISO 8601), "site", "author", "language". Each bad line is reported on
    stderr with its line number and skipped; the others are loaded; the exit status is 1 if any line was
    bad. Loading the same records again adds nothing. Example: newsflow load archive.jsonl
    """
    from newsflow.tasks.loading import BadLine, load_file

    settings = load_settings(db=db, batch_size=batch_size)

    def report_bad(bad: BadLine) -> None:
        click.echo(f"{file}:{bad.line}: {bad.reason}", err=True)

    summary = load_file(file, settings, on_bad_line=report_bad)
    from newsflow.display import render_json

    if as_json:
        click.echo(render_json(summary))
    else:
        duplicates = summary["duplicates"]
        near = duplicates.get("near_duplicate", 0)
        click.echo(
            f"lines    {summary['lines']}: stored {summary['articles_stored']}, already stored "
            f"{summary['already_stored']}, bad {summary['bad_lines']}\n"
            f"copies   exact duplicates {sum(duplicates.values()) - near}, near-duplicates {near}\n"
            f"stories  new {summary['new_stories']}, joined an existing story {summary['joined_stories']}"
        )
    if summary["bad_lines"]:
        click.echo(
            f"Error: {summary['bad_lines']} of {summary['lines']} lines were not loaded (see above)", err=True
        )
        sys.exit(EXIT_ERROR)


@main.command("regroup")
@click.option(
    "--since", type=click.DateTime(["%Y-%m-%d"]), required=True, help="First day (YYYY-MM-DD, UTC)."
)
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), required=True, help="Last day, included.")
@db_option
def regroup_command(since: datetime, until: datetime, db: Path | None) -> None:
    """Group the articles of a period into stories again (after tuning, or after a backfill).

    Takes apart every story with an article published (else first seen) in the period and groups those
    stories' articles and the period's other articles again, in time order, in one transaction.
    Example: newsflow regroup --since 2023-09-01 --until 2023-09-30
    """
    from datetime import UTC, timedelta

    from newsflow.tasks.grouping import regroup
    from newsflow.tasks.http import utcnow
    from newsflow.warehouse.lakehouse import Warehouse

    if until < since:
        raise click.BadParameter("--until is before --since", param_hint="--until")
    settings = load_settings(db=db)
    start = since.replace(tzinfo=UTC)
    end = until.replace(tzinfo=UTC) + timedelta(days=1)
    with Warehouse.open(settings).write() as con:
        outcome = regroup(con, start, end, utcnow(), settings.batch_size)
    click.echo(
        f"regrouped {outcome.articles} articles: {outcome.stories_before} stories taken apart, "
        f"{outcome.stories_after} stories now ({outcome.joined} articles joined a story)"
    )


@main.group()
def feeds() -> None:
    """List and edit the registered feeds."""


@feeds.command("list")
@db_option
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
    help="Output format.",
)
def feeds_list(db: Path | None, fmt: str) -> None:
    """Show every registered feed with its polling state."""
    from newsflow.display import render_rows
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
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file [default: stdout].",
)
@db_option
def feeds_export_opml(output: Path | None, db: Path | None) -> None:
    """Write the registered feeds as OPML, for any feed reader."""
    from newsflow.feedlist import to_opml
    from newsflow.records import FeedSpec
    from newsflow.warehouse import feeds as feeds_table
    from newsflow.warehouse.lakehouse import Warehouse

    settings = load_settings(db=db)
    with Warehouse.open(settings).write() as con:
        rows = feeds_table.list_feeds(con)
    document = to_opml(FeedSpec(r["url"], r["name"], tuple(r["tags"] or ())) for r in rows)
    if output is None:
        click.echo(document, nl=False)
    else:
        output.write_text(document)
        click.echo(f"wrote {len(rows)} feeds to {output}", err=True)


def _register(specs: list[Any], db: Path | None) -> int:
    from newsflow.tasks.http import utcnow
    from newsflow.warehouse import feeds as feeds_table
    from newsflow.warehouse.lakehouse import Warehouse

    settings = load_settings(db=db)
    with Warehouse.open(settings).write() as con:
        return feeds_table.add_feeds(con, specs, utcnow())
