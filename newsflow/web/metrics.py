"""``/metrics`` in Prometheus's text format: the warehouse's figures, read at scrape time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from starlette.responses import Response


class WarehouseCollector(Collector):
    """Collects :func:`newsflow.warehouse.metrics.warehouse_figures` from one read session per scrape."""

    def __init__(self, warehouse: Any) -> None:
        self.warehouse = warehouse

    def collect(self) -> Iterator[Metric]:
        from newsflow.warehouse.metrics import warehouse_figures

        with self.warehouse.read() as con:
            figures = warehouse_figures(con)
        feeds = GaugeMetricFamily("newsflow_feeds", "Registered feeds by state.", labels=["state"])
        for state in ("new", "ok", "failing", "paused"):
            feeds.add_metric([state], figures.feeds_by_state.get(state, 0))
        yield feeds
        polls = CounterMetricFamily("newsflow_polls", "Feed polls by outcome.", labels=["status"])
        for status, count in sorted(figures.polls_by_status.items()):
            polls.add_metric([status], count)
        yield polls
        failures = CounterMetricFamily("newsflow_poll_failures", "Failed polls by reason.", labels=["reason"])
        for reason, count in sorted(figures.poll_failures_by_reason.items()):
            failures.add_metric([reason], count)
        yield failures
        yield GaugeMetricFamily("newsflow_articles", "Articles stored.", value=figures.articles)
        yield GaugeMetricFamily("newsflow_copies", "Stored articles marked as copies.", value=figures.copies)
        yield GaugeMetricFamily("newsflow_stories", "Stories.", value=figures.stories)
        filtered = CounterMetricFamily(
            "newsflow_filtered",
            "Entries and articles a filter dropped, by rule and stage.",
            labels=["rule", "stage"],
        )
        for (rule, stage), count in sorted(figures.filtered.items()):
            filtered.add_metric([rule, stage], count)
        yield filtered
        yield from _run_metrics(figures.runs)


def _run_metrics(runs: dict[tuple[str, str], Any]) -> Iterator[Metric]:
    total = CounterMetricFamily("newsflow_runs", "Flow runs by flow and status.", labels=["flow", "status"])
    seconds = CounterMetricFamily(
        "newsflow_run_duration_seconds", "Summed duration of finished runs.", labels=["flow", "status"]
    )
    age = GaugeMetricFamily(
        "newsflow_last_success_age_seconds", "Seconds since the last completed run.", labels=["flow"]
    )
    now = time.time()
    for (flow, status), figures in sorted(runs.items()):
        total.add_metric([flow, status], figures.count)
        seconds.add_metric([flow, status], figures.seconds)
        if status == "completed" and figures.last_finished_at is not None:
            age.add_metric([flow], max(0.0, now - figures.last_finished_at.timestamp()))
    yield from (total, seconds, age)


def metrics_response(warehouse: Any) -> Response:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(WarehouseCollector(warehouse))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
