"""Typed defaults for every knob, overridable by ``NEWSFLOW_*`` environment variables and CLI flags."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from newsflow.errors import ConfigError


def default_db_path() -> Path:
    """``$XDG_DATA_HOME/newsflow/newsflow.ducklake`` (``~/.local/share/...`` when unset): the embedded
    lake's SQLite catalog; its Parquet files go to ``newsflow.ducklake.files/`` beside it."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "newsflow" / "newsflow.ducklake"


class Settings(BaseSettings):
    """Every setting newsflow reads. Environment: ``NEWSFLOW_<FIELD>`` (e.g. ``NEWSFLOW_DB``)."""

    model_config = SettingsConfigDict(env_prefix="NEWSFLOW_", frozen=True, extra="forbid")

    db: Path = Field(
        default_factory=default_db_path,
        description="the embedded lake's SQLite catalog file (data beside it)",
    )
    warehouse: str | None = Field(
        None, description="'ducklake:postgres:<libpq conninfo>' for a catalog several machines share"
    )
    data_path: str | None = Field(
        None, description="the lake's Parquet folder or s3:// prefix [default: <db>.files/]"
    )
    s3_secret: str | None = Field(
        None,
        description="a DuckDB secret's name (CREATE PERSISTENT SECRET) for s3:// lake data, instead of "
        "the AWS_* variables",
    )
    orphan_grace_hours: float = Field(
        1.0,
        ge=0,
        description="lake files nothing references and older than this are orphans: `newsflow check` "
        "reports them, maintenance deletes them (a younger one may be a write in progress)",
    )
    snapshot_retention_days: float = Field(
        7.0, ge=0, description="maintenance expires lake snapshots older than this (time travel reach)"
    )
    allow_private_networks: bool = Field(
        False, description="fetch URLs whose host resolves to loopback/private/reserved addresses"
    )
    user_agent: str = f"newsflow/{version('newsflow')} (self-hosted news ingestion; +httpx)"
    connect_timeout: float = Field(10.0, gt=0, description="seconds to open a connection")
    read_timeout: float = Field(20.0, gt=0, description="seconds of silence allowed while reading")
    total_timeout: float = Field(60.0, gt=0, description="seconds one request may take in all")
    max_feed_bytes: int = Field(10_000_000, gt=0, description="size cap of a feed body")
    max_page_bytes: int = Field(5_000_000, gt=0, description="size cap of an article page body")
    max_redirects: int = Field(5, ge=0)
    max_connections: int = Field(16, gt=0, description="concurrent requests in all")
    per_host_connections: int = Field(2, gt=0, description="concurrent requests to one host")
    retries: int = Field(2, ge=0, description="extra attempts for transient failures")
    retry_backoff: float = Field(0.5, ge=0, description="first backoff in seconds, doubled each try")
    max_retry_after: float = Field(30.0, ge=0, description="longest Retry-After waited for in a run")
    respect_robots: bool = Field(True, description="obey robots.txt for article pages")
    batch_size: int = Field(100, gt=0, description="articles per fetch/extract/store batch")
    extraction_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1, gt=0, description="extraction processes"
    )
    extraction_runner: str = Field(
        "process", description="'process' or 'dask' or 'dask://HOST:PORT' (needs prefect-dask)"
    )
    pool_min_pages: int = Field(
        50,
        ge=0,
        description="fewest pages a run extracts in the local process pool; fewer are extracted in "
        "the flow process (0: always the pool)",
    )
    lock_timeout: float = Field(30.0, ge=0, description="seconds to wait for the warehouse's write lock")
    run_lock_wait: float = Field(
        0.0, ge=0, description="seconds an ingest waits for another ingest on the same warehouse, then skips"
    )
    poll_interval: int = Field(900, gt=0, description="seconds between polls before a feed has a rhythm")
    min_poll_interval: int = Field(300, gt=0, description="shortest adaptive polling interval, seconds")
    max_poll_interval: int = Field(86_400, gt=0, description="longest adaptive polling interval, seconds")
    pause_after_errors: int = Field(10, gt=0, description="consecutive failed polls that pause a feed")
    ingest_interval: int = Field(900, gt=0, description="seconds between scheduled ingest runs (serve)")
    maintenance_cron: str = Field("30 3 * * *", description="when scheduled maintenance runs (serve)")
    raw_page_retention_days: int = Field(
        0, ge=0, description="raw pages older than this many days are pruned by maintenance; 0 keeps all"
    )
    web_base_url: str | None = Field(
        None,
        description="the web page's public address, for links to stories in alerts (e.g. https://news.example)",
    )
    alert_retry_backoff: float = Field(
        60.0,
        ge=0,
        description="seconds before an undelivered alert is tried again (doubled each try, at most 6 h)",
    )
    future_tolerance: float = Field(
        600.0, ge=0, description="seconds a published date may lie in the future before clamping"
    )
    cc_data_url: str = Field(
        "https://data.commoncrawl.org/",
        description="Common Crawl's data (CC-NEWS listings and WARC files): a mirror, or file:///a/local/copy/",
    )
    wayback_url: str = Field(
        "https://web.archive.org/", description="the Wayback Machine (CDX at cdx/search/cdx, replays at web/)"
    )
    cc_index_url: str = Field(
        "https://index.commoncrawl.org/",
        description="Common Crawl's URL index (collinfo.json, <crawl>-index)",
    )
    crawl_lag_days: float = Field(
        3.0, ge=0, description="captures are read until this many days after --until (crawls lag publication)"
    )
    index_requests_per_minute: float = Field(
        12.0, gt=0, description="archive index queries (Wayback CDX, Common Crawl index) per minute"
    )
    replay_requests_per_minute: float = Field(60.0, gt=0, description="Wayback Machine replays per minute")
    archive_retries: int = Field(
        4, ge=0, description="attempts after the first for an archive request or WARC file before giving up"
    )
    archive_backoff: float = Field(
        5.0, ge=0, description="first wait in seconds after an archive says 429/503 (doubled, with jitter)"
    )
    max_archive_wait: float = Field(
        900.0, ge=0, description="longest Retry-After of an archive waited for before giving up on a request"
    )

    def merged(self, **overrides: Any) -> Settings:
        """A copy with the non-None ``overrides`` applied (CLI flags, flow parameters)."""
        changes = {k: v for k, v in overrides.items() if v is not None}
        if not changes:
            return self
        try:
            return Settings.model_validate(self.model_dump() | changes)
        except ValidationError as exc:
            raise ConfigError(_describe(exc)) from exc


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, then ``overrides``; a bad value raises ConfigError."""
    try:
        base = Settings()
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from exc
    return base.merged(**overrides)


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"])
        parts.append(f"NEWSFLOW_{name.upper()} / {name}: {err['msg']}")
    return "invalid setting: " + "; ".join(parts)
