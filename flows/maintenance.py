"""The maintenance flow a long-running warehouse needs: prune old raw pages, then checkpoint DuckDB."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from newsflow.settings import Settings, load_settings
from newsflow.tasks.http import utcnow
from newsflow.warehouse import maintenance as maintenance_sql
from newsflow.warehouse.connection import writer


@task(name="prune-raw-pages", cache_policy=NO_CACHE)
def prune_raw_pages(settings: Settings, keep_days: int) -> int:
    """Prefect task: delete raw pages fetched more than ``keep_days`` days ago (articles stay)."""
    with writer(settings.db, settings.lock_timeout) as con:
        return maintenance_sql.prune_raw_pages(con, utcnow() - timedelta(days=keep_days))


@task(name="checkpoint", cache_policy=NO_CACHE)
def checkpoint(settings: Settings) -> dict[str, int]:
    """Prefect task: fold the write-ahead log into the file and report table sizes."""
    return maintenance_sql.checkpoint(settings.db, settings.lock_timeout)


@flow(name="maintenance", validate_parameters=True)
def maintenance(db: str | None = None, raw_page_retention_days: int | None = None) -> dict[str, Any]:
    """Prune raw pages older than the retention (``NEWSFLOW_RAW_PAGE_RETENTION_DAYS``; 0 keeps them all)
    and checkpoint the warehouse. Safe to run at any time: it takes the same short write transactions."""
    settings = load_settings(db=Path(db) if db else None, raw_page_retention_days=raw_page_retention_days)
    pruned = 0
    if settings.raw_page_retention_days:
        pruned = prune_raw_pages(settings, settings.raw_page_retention_days)
    sizes = checkpoint(settings)
    summary = {"raw_pages_pruned": pruned, "rows": sizes}
    get_run_logger().info("maintenance done: %s", summary)
    return summary
