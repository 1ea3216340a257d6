"""Deployable Prefect flows, one module per flow."""

import os

# newsflow runs offline-first: without these Prefect's telemetry fills the logs with connection errors.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
