"""newsflow: a self-hosted news ingestion warehouse (Prefect + feedparser + trafilatura + DuckDB)."""

__version__ = "0.1.0"
