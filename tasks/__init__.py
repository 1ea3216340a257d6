"""Pipeline stages: polling feeds, fetching pages, extraction and exact dedupe. Tasks return records."""
