"""Commands that run a flow: ingest, backfill, maintenance, load and regroup."""

from __future__ import annotations

import sys
from datetime import datetime
from pathlib import Path
from typing import cast

import click

from newsflow.cli.options import (
    EXIT_ERROR,
    batch_size_option,
    db_option,
    json_option,
    orphan_grace_option,
    period_options,
    private_networks_option,
    quiet_prefect,
    verbose_option,
    warehouse_name,
)
from newsflow.settings import load_settings


@click.command()
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
@batch_size_option
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
    quiet_prefect(verbose)
    from newsflow.feedlist import load_feed_file

    # Bad input fails here, in one line, before any flow run starts.
    settings = load_settings(
        db=db, batch_size=batch_size, extraction_workers=workers, extraction_runner=runner_spec
    )
    if feeds_file:
        load_feed_file(Path(feeds_file))
    from newsflow.cli.prefect_api import prefect_api

    with prefect_api() as api_ready:  # Prefect's API boots while the rest loads
        from newsflow.cli.display import progress_bars, render_json, summary_table
        from newsflow.flows.ingest import ingest as ingest_flow
        from newsflow.progress import reporting_to

        api_ready()
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


@click.command()
@period_options
@click.option("--feed", default=None, help="Only this feed's archive (and its site's sitemaps).")
@click.option(
    "--site",
    "sites",
    multiple=True,
    help="Only this site (repeatable): a domain (https; with the web archives its subdomains too) or an "
    "origin URL. Required by cc-news, wayback and cc-index.",
)
@click.option(
    "--source",
    "sources",
    multiple=True,
    type=click.Choice(["feeds", "sitemaps", "warehouse", "cc-news", "wayback", "cc-index"]),
    help="Where to look (repeatable) [feeds and sitemaps]: warehouse re-extracts stored pages offline; "
    "cc-news, wayback and cc-index read the web archives.",
)
@click.option(
    "--warc",
    "warc_files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A WARC file you have (repeatable), read as CC-NEWS would be (implies --source cc-news).",
)
@click.option(
    "--chunk-days", type=click.IntRange(min=1), default=1, show_default=True,
    help="Days per resumable chunk (feeds, sitemaps, warehouse).",
)  # fmt: skip
@db_option
@private_networks_option
@json_option
@verbose_option
def backfill(
    since: datetime,
    until: datetime,
    feed: str | None,
    sites: tuple[str, ...],
    sources: tuple[str, ...],
    warc_files: tuple[str, ...],
    chunk_days: int,
    db: Path | None,
    allow_private_networks: bool | None,
    as_json: bool,
    verbose: bool,
) -> None:
    """Fill a past period from archived feeds, sitemaps, the web archives (CC-NEWS, the Wayback Machine,
    Common Crawl's index) or the warehouse's raw pages (one flow run).

    The work is done in resumable units (days; with the web archives, files and sites): run the same command
    again after an interruption and it goes on where it stopped. Examples:
    newsflow backfill --since 2023-09-01 --until 2023-09-30 --site example.com;
    newsflow backfill --since 2023-09-25 --until 2023-09-30 --source cc-news --site reuters.com
    """
    quiet_prefect(verbose)
    settings = load_settings(db=db)
    from newsflow.cli.display import backfill_summary, progress_bars, render_json
    from newsflow.cli.prefect_api import prefect_api
    from newsflow.flows.backfill import Source, validate_request
    from newsflow.flows.backfill import backfill as backfill_flow
    from newsflow.progress import reporting_to
    from newsflow.tasks.archives import validate_warc_files

    chosen = cast("list[Source]", list(sources)) or None
    validate_request(since.date(), until.date(), chosen, chunk_days, sites=list(sites), warc=list(warc_files))
    validate_warc_files(warc_files)
    with prefect_api() as api_ready:
        api_ready()
        with progress_bars(enabled=not as_json and sys.stderr.isatty()) as reporter, reporting_to(reporter):
            summary = backfill_flow(
                since=since.date(),
                until=until.date(),
                feed=feed,
                site=list(sites) or None,
                sources=chosen,
                db=str(db) if db else None,
                allow_private_networks=allow_private_networks,
                chunk_days=chunk_days,
                warc=list(warc_files) or None,
            )
    click.echo(render_json(summary) if as_json else backfill_summary(summary, warehouse_name(settings)))


@click.command()
@db_option
@click.option("--raw-page-retention-days", type=click.IntRange(min=0), default=None,
              help="Prune raw pages fetched more than this many days ago (0 keeps all).")  # fmt: skip
@click.option(
    "--snapshot-retention-days",
    type=click.FloatRange(min=0),
    default=None,
    help="Expire lake snapshots older than this (how far back time travel reaches) [7].",
)
@orphan_grace_option
@verbose_option
def maintenance(
    db: Path | None,
    raw_page_retention_days: int | None,
    snapshot_retention_days: float | None,
    orphan_grace_hours: float | None,
    verbose: bool,
) -> None:
    """Prune old raw pages, then compact the lake: merge small files, expire old snapshots, delete
    unreferenced files and orphans (one flow run)."""
    quiet_prefect(verbose)
    load_settings(
        db=db,
        raw_page_retention_days=raw_page_retention_days,
        snapshot_retention_days=snapshot_retention_days,
        orphan_grace_hours=orphan_grace_hours,
    )
    from newsflow.cli.prefect_api import prefect_api

    with prefect_api() as api_ready:
        from newsflow.cli.display import render_json
        from newsflow.flows.maintenance import maintenance as maintenance_flow

        api_ready()
        summary = maintenance_flow(
            db=str(db) if db else None,
            raw_page_retention_days=raw_page_retention_days,
            snapshot_retention_days=snapshot_retention_days,
            orphan_grace_hours=orphan_grace_hours,
        )
    click.echo(render_json(summary))


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@db_option
@batch_size_option
@json_option
def load(file: Path, db: Path | None, batch_size: int | None, as_json: bool) -> None:
    """Load already-extracted articles from a JSON Lines file, through dedupe and story grouping.

    One JSON object per line: "text" and/or "summary" (or "description"), and optionally "id" (kept as
    external_id), "url", "title", "published_at" (ISO 8601), "site", "author", "language". A text cut
    short ("... [+268 chars]") is stored with its summary before it. Each bad line is reported on stderr
    with its line number and skipped; the others are loaded; the exit status is 1 if any line was bad.
    Loading the same records again adds nothing. Example: newsflow load archive.jsonl
    """
    from newsflow.flows.load import BadLine, load_file

    settings = load_settings(db=db, batch_size=batch_size)

    def report_bad(bad: BadLine) -> None:
        click.echo(f"{file}:{bad.line}: {bad.reason}", err=True)

    summary = load_file(file, settings, on_bad_line=report_bad)
    from newsflow.cli.display import alert_lines, render_json

    if as_json:
        click.echo(render_json(summary))
    else:
        duplicates = summary["duplicates"]
        near = duplicates.get("near_duplicate", 0)
        filtered = summary["filtered"]
        click.echo(
            f"lines    {summary['lines']}: stored {summary['articles_stored']}, already stored "
            f"{summary['already_stored']}, bad {summary['bad_lines']}"
            + (f", filtered {sum(filtered.values())}" if filtered else "")
            + f"\ncopies   exact duplicates {sum(duplicates.values()) - near}, near-duplicates {near}\n"
            f"stories  new {summary['new_stories']}, joined an existing story {summary['joined_stories']}"
        )
        for line in alert_lines(summary):
            click.echo(line)
    if summary["bad_lines"]:
        click.echo(
            f"Error: {summary['bad_lines']} of {summary['lines']} lines were not loaded (see above)", err=True
        )
        sys.exit(EXIT_ERROR)


@click.command()
@period_options
@db_option
def regroup(since: datetime, until: datetime, db: Path | None) -> None:
    """Group the articles of a period into stories again (after tuning, or after a backfill).

    Takes apart every story with an article published (else first seen) in the period and groups those
    stories' articles and the period's other articles again, in time order, each against what came before
    it (as ingest grouped it), in one transaction (recorded in `runs` as flow regroup).
    Example: newsflow regroup --since 2023-09-01 --until 2023-09-30
    """
    from newsflow.flows.regroup import regroup_period

    outcome = regroup_period(load_settings(db=db), since.date(), until.date())
    click.echo(
        f"regrouped {outcome.articles} articles: {outcome.stories_before} stories taken apart, "
        f"{outcome.stories_after} stories now ({outcome.joined} articles joined a story)"
    )
