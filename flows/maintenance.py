"""The maintenance flow a long-running lake needs: prune old raw pages, then compact (merge small files,
expire old snapshots, delete files nothing references)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from newsflow.clock import utcnow
from newsflow.settings import Settings, load_settings
from newsflow.warehouse import maintenance as maintenance_sql
from newsflow.warehouse.lakehouse import Warehouse


@task(name="prune-raw-pages", cache_policy=NO_CACHE)
def prune_raw_pages(settings: Settings, keep_days: int) -> int:
    """Prefect task: delete raw pages fetched more than ``keep_days`` days ago (articles stay)."""
    with Warehouse.open(settings).write() as con:
        return maintenance_sql.prune_raw_pages(con, utcnow() - timedelta(days=keep_days))


@task(name="compact", cache_policy=NO_CACHE)
def compact(settings: Settings) -> dict[str, Any]:
    """Prefect task: DuckLake upkeep under the write lock; snapshots older than the retention expire."""
    warehouse = Warehouse.open(settings)
    with warehouse.write() as con:  # applies pending migrations, so a fresh lake can be compacted too
        forgotten = maintenance_sql.prune_site_lines(con, utcnow())
    with warehouse.maintenance() as con:
        now = utcnow()
        report = maintenance_sql.compact(
            con,
            expire_before=now - timedelta(days=settings.snapshot_retention_days),
            orphan_before=now - timedelta(hours=settings.orphan_grace_hours),
        )
        return {
            **asdict(report),
            "site_lines_forgotten": forgotten,
            "rows": maintenance_sql.table_counts(con),
        }


@flow(name="maintenance", validate_parameters=True)
def maintenance(
    db: str | None = None,
    raw_page_retention_days: int | None = None,
    snapshot_retention_days: float | None = None,
    orphan_grace_hours: float | None = None,
) -> dict[str, Any]:
    """Prune raw pages older than the retention (``NEWSFLOW_RAW_PAGE_RETENTION_DAYS``; 0 keeps them all)
    and compact the lake, expiring snapshots older than ``NEWSFLOW_SNAPSHOT_RETENTION_DAYS`` and deleting
    orphan files older than ``NEWSFLOW_ORPHAN_GRACE_HOURS``. Safe at any time: it takes the same write
    lock as every writer, and readers keep their snapshots."""
    settings = load_settings(
        db=Path(db) if db else None,
        raw_page_retention_days=raw_page_retention_days,
        snapshot_retention_days=snapshot_retention_days,
        orphan_grace_hours=orphan_grace_hours,
    )
    pruned = 0
    if settings.raw_page_retention_days:
        pruned = prune_raw_pages(settings, settings.raw_page_retention_days)
    summary = {"raw_pages_pruned": pruned, **compact(settings)}
    get_run_logger().info("maintenance done: %s", summary)
    return summary
