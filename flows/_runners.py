"""The swappable task runner for CPU-heavy stages (extraction): a local process pool or a Dask cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect.context import FlowRunContext
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner

from newsflow.errors import ConfigError
from newsflow.settings import Settings


def warm_up_worker() -> None:
    """Import the extraction stack once per worker process, before its first batch."""
    import py3langid
    import trafilatura  # noqa: F401

    py3langid.classify("warm up the language model")


def extraction_runner(settings: Settings) -> TaskRunner[Any]:
    """The task runner named by ``settings.extraction_runner``.

    ``process``: a pool of ``extraction_workers`` local processes (the default; threads are slower than
    sequential for trafilatura and crash in it). ``dask``: a local Dask cluster of the same size.
    ``dask://HOST:PORT``: an existing Dask scheduler, for extraction on several machines.
    """
    spec = settings.extraction_runner
    if spec == "process":
        return ProcessPoolTaskRunner(max_workers=settings.extraction_workers, initializer=warm_up_worker)
    if spec == "dask" or spec.startswith("dask://"):
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError as exc:
            raise ConfigError(
                f"extraction runner {spec!r} needs prefect-dask: pip install 'newsflow[dask]'"
            ) from exc
        runner: TaskRunner[Any]
        if spec == "dask":
            runner = DaskTaskRunner(
                cluster_kwargs={"n_workers": settings.extraction_workers, "threads_per_worker": 1}
            )
        else:
            runner = DaskTaskRunner(address="tcp://" + spec.removeprefix("dask://"))
        return runner
    raise ConfigError(f"unknown extraction runner {spec!r}: use 'process', 'dask' or 'dask://HOST:PORT'")


@contextmanager
def api_shared_with_workers() -> Iterator[None]:
    """Point task-runner workers at this process's Prefect API.

    Without a configured ``PREFECT_API_URL`` Prefect runs a temporary local server, and each worker
    process would start one of its own (seconds each). Inside this context the settings that runners
    hand to their workers name the parent's server instead.
    """
    context = FlowRunContext.get()
    if context is None or context.client is None or get_current_settings().api.url:
        yield
        return
    with temporary_settings(updates={PREFECT_API_URL: str(context.client.api_url)}):
        yield
