"""The swappable task runner for CPU-heavy stages (extraction): a local process pool or a Dask cluster.

The local pool is started once per process, when the first run has pages to extract, and kept: its workers
import trafilatura, Prefect's task engine and the language model once (about 1 s of CPU each) and start
while the run fetches its first batch; later runs in the same process (tests, notebooks, a long-lived
flow process) reuse them.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from prefect.context import FlowRunContext
from prefect.futures import PrefectFuture
from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings
from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner
from prefect.utilities.annotations import quote

from newsflow.errors import ConfigError
from newsflow.settings import Settings
from newsflow.system import freeze_start_up_objects

#: How long each warm-up job holds its worker, so that every worker of the pool gets one.
WARM_UP_HOLD_S = 0.3
#: How often a worker checks that the process that started it is still alive.
PARENT_CHECK_S = 1.0

T = TypeVar("T")


def unwalked(value: T) -> T:
    """``value`` passed to a task without Prefect walking it.

    Prefect visits every object inside a task's arguments twice (to find upstream futures and to resolve
    them): for batches of 100 articles, each with its term counts, that walk was a quarter of the flow
    process's profile samples in a 1,000-article ingest. Batches hold no futures, so they are quoted; the
    task receives the value itself.
    """
    return cast(T, quote(value))


def warm_up_worker(parent: int) -> None:
    """Import the extraction stack once per worker process, before its first batch; and have the
    worker exit when ``parent``, the process that started it, is gone (a killed run must not leave
    workers behind, even one killed before this ran)."""
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()
    import prefect.task_engine  # noqa: F401 - what runs each task in the worker

    from newsflow.tasks.extraction import detect_language  # trafilatura, lxml and the text features

    detect_language("warm up the language model: it is loaded on first use")
    freeze_start_up_objects()


def _exit_with_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(1)


def extraction_runner(
    settings: Settings, pages: int | None = None, *, on_first_use: bool = False
) -> TaskRunner[Any]:
    """The task runner named by ``settings.extraction_runner``, for a run that extracts up to ``pages``
    pages (None: unknown, many). With ``on_first_use`` the local pool starts when the first batch is
    submitted, not now (an archive backfill may scan a whole file before it finds a page to keep).

    ``process``: a pool of ``extraction_workers`` local processes (the default; threads are slower than
    sequential for trafilatura and crash in it). A run of fewer than ``settings.pool_min_pages`` pages,
    in a process that has not started the pool, extracts them in the flow process instead, on one thread:
    a scheduled poll that finds a few new articles should not start workers that import the extraction
    stack (about 1 s of CPU and 115 MB each) for a second of work. ``dask``: a local Dask cluster of the
    same size. ``dask://HOST:PORT``: an existing Dask scheduler, for extraction on several machines.
    """
    spec = settings.extraction_runner
    if spec == "process":
        if pages is not None and pages < settings.pool_min_pages and not _pool_started(settings):
            return ThreadPoolTaskRunner(max_workers=1)
        pool = SharedProcessPool(settings.extraction_workers)
        if not on_first_use:
            pool.start()
        return pool
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


_pools: dict[int, ProcessPoolTaskRunner] = {}
_pools_lock = threading.Lock()


def _process_pool(workers: int) -> ProcessPoolTaskRunner:
    """This process's started pool of ``workers`` processes, made on first use (its workers spawn at
    once), and made anew if a worker died and broke it."""
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is not None and _usable(pool):
            return pool
        if pool is not None:  # broken: release its queue and forwarding thread before replacing it
            atexit.unregister(pool.__exit__)
            pool.__exit__(None, None, None)
        pool = ProcessPoolTaskRunner(
            max_workers=workers, initializer=warm_up_worker, initargs=(os.getpid(),)
        ).__enter__()
        atexit.register(pool.__exit__, None, None, None)
        _spawn_workers(pool, workers)
        _pools[workers] = pool
        return pool


def _pool_started(settings: Settings) -> bool:
    with _pools_lock:
        pool = _pools.get(settings.extraction_workers)
        return pool is not None and _usable(pool)


def _spawn_workers(pool: ProcessPoolTaskRunner, workers: int) -> None:
    """Have every worker process start now (a process pool starts one per job while none is idle)."""
    executor = getattr(pool, "_executor", None)
    if executor is not None:
        for _ in range(workers):
            executor.submit(time.sleep, WARM_UP_HOLD_S)


def _usable(pool: ProcessPoolTaskRunner) -> bool:
    executor = getattr(pool, "_executor", None)
    return executor is not None and not getattr(executor, "_broken", False)


class SharedProcessPool(TaskRunner[PrefectFuture[Any]]):
    """A task runner over this process's long-lived extraction pool of ``workers`` processes: entering and
    leaving it starts and stops no process. Each run waits for its own futures; the workers stay for the
    next run. The pool is taken (started, if this process has none) by :meth:`start` or the first submit."""

    def __init__(self, workers: int) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._workers = workers
        self._pool: ProcessPoolTaskRunner | None = None

    def start(self) -> ProcessPoolTaskRunner:
        if self._pool is None:
            self._pool = _process_pool(self._workers)
        return self._pool

    def duplicate(self) -> SharedProcessPool:
        return type(self)(self._workers)

    def submit(
        self,
        task: Any,
        parameters: dict[str, Any],
        wait_for: Any = None,
        dependencies: Any = None,
    ) -> PrefectFuture[Any]:
        return self.start().submit(task, parameters, wait_for, dependencies)
