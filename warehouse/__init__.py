"""The DuckDB warehouse: connections, numbered migrations and every SQL statement newsflow runs."""
