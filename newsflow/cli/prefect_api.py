"""Prefect's temporary API server for one CLI command, started by the command itself, first thing.

Without a configured ``PREFECT_API_URL``, Prefect starts a temporary local server at the first flow call:
it imports its whole server package into the calling process (2.2 s of CPU here, spent only to spawn a
subprocess), then waits for the server to boot (4-8 s) with nothing else to do. The commands that run
flows start that same server (the same uvicorn command, environment and health check as Prefect's
``SubprocessASGIServer``) before their own imports, so it boots while they load, and the server package
is never imported here. It is started even before Prefect's settings are loaded (0.6 s of imports), on the
environment alone: where the settings then name an API after all (a profile's ``PREFECT_API_URL``) or turn
ephemeral mode off, it is stopped again unused.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from importlib import util
from pathlib import Path
from typing import Any

from newsflow.errors import PrefectApiError
from newsflow.system import libc

#: Pause between health checks while the server boots.
HEALTH_POLL_S = 0.1
#: Exit status with which uvicorn reports that its port was taken (Prefect retries on it too).
PORT_TAKEN = 3
#: Seconds the server gets to stop before it is killed.
STOP_GRACE_S = 5
#: prctl option: the signal the kernel sends a process when its parent dies (linux/prctl.h).
PR_SET_PDEATHSIG = 1
#: Longest wait for the temporary server to answer unless the user set STARTUP_TIMEOUT_VARIABLE.
FIRST_START_TIMEOUT_S = 90.0
STARTUP_TIMEOUT_VARIABLE = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
#: Prefect's two telemetry switches: the server's usage reports (and its heartbeat service), and the
#: client's (``DO_NOT_TRACK``, the common opt-out, which also silences Prefect's first-import notice).
SERVER_ANALYTICS = "PREFECT_SERVER_ANALYTICS_ENABLED"
DO_NOT_TRACK = "DO_NOT_TRACK"


def prefect_telemetry_off() -> None:
    """Turn Prefect's usage telemetry off for this command and every process it starts (the temporary API
    server, extraction workers, served flow runs), unless the user chose: a set ``PREFECT_SERVER_ANALYTICS_
    ENABLED`` or ``DO_NOT_TRACK`` is left as it is, and a server switch the user turned on leaves the client's
    on too. Meant for first thing in the command, before Prefect is imported.

    A self-hosted warehouse should not report to a third party unasked, and on a machine without internet
    the server's telemetry service printed a traceback (``database is locked``, racing the migrations of a
    new ``PREFECT_HOME``) on the first run and ``Failed to send telemetry`` on every later one."""
    user_chose_server = SERVER_ANALYTICS in os.environ
    os.environ.setdefault(SERVER_ANALYTICS, "false")
    if not user_chose_server or os.environ[SERVER_ANALYTICS].strip().lower() in ("0", "false", "no", "off"):
        os.environ.setdefault(DO_NOT_TRACK, "1")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_command(port: int) -> list[str]:
    prefect = util.find_spec("prefect")  # found, not imported
    if prefect is None or prefect.origin is None:
        raise PrefectApiError("the prefect package is not installed")
    return [
        sys.executable, "-m", "uvicorn",
        "--app-dir", str(Path(prefect.origin).parent.parent),
        "--factory", "prefect.server.api.server:create_app",
        "--host", "127.0.0.1", "--port", str(port),
        "--log-level", "error", "--lifespan", "on",
    ]  # fmt: skip


def _start_server(port: int) -> subprocess.Popen[bytes]:
    """Start the server process. Before it runs, Linux is asked to end it when the command that started it
    dies, so a killed command leaves no server behind (nothing is asked where prctl is missing). The
    command's main thread starts it and lives as long as the command, so the parent-death signal (sent
    when the starting *thread* ends) fires only when the command itself is gone."""
    c_library = libc()  # loaded here: the child only calls into it
    prctl = getattr(c_library, "prctl", None) if c_library is not None else None

    def die_with_parent() -> None:
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return subprocess.Popen(_server_command(port), env=_server_environment(), preexec_fn=die_with_parent)


def _server_environment() -> dict[str, str]:
    """This process's environment plus what Prefect sets for its own temporary server: no UI, ephemeral
    mode (services off). Settings from a profile or a settings file the server reads itself, from the same
    ``PREFECT_HOME`` and working directory.

    Unless the environment says otherwise, the server also skips registering Prefect's block types at
    start: that imports every block module to hash them even when the database has them all (0.65 s of the
    server's 3.6 s of CPU to its first answer), and newsflow's flows use no blocks. A ``prefect server
    start`` on the same database registers them as usual."""
    env = dict(os.environ)
    env.update(PREFECT_UI_ENABLED="0", PREFECT__SERVER_EPHEMERAL="1", PREFECT__SERVER_FINAL="1")
    env.setdefault("PREFECT_API_BLOCKS_REGISTER_ON_START", "false")
    return env


class _Server:
    """One temporary server process and its URL."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process = _start_server(self.port)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() == PORT_TAKEN:  # another process took the port meanwhile
                self.port = _free_port()
                self.process = _start_server(self.port)
            elif self.process.poll() is not None:
                raise PrefectApiError(
                    f"Prefect's temporary API server exited with status {self.process.returncode} while "
                    "starting (its errors are above); or start one: prefect server start, then export "
                    "PREFECT_API_URL=http://127.0.0.1:4200/api"
                )
            try:
                with urllib.request.urlopen(self.api_url + "/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(HEALTH_POLL_S)
        self.stop()
        raise PrefectApiError(
            f"Prefect's temporary API server did not answer within {timeout_s:.0f} s "
            f"({STARTUP_TIMEOUT_VARIABLE})"
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _send_pending_logs_and_events() -> None:
    """Flush Prefect's log and event workers while the server still answers (Prefect's own test harness
    does the same before it stops its server; afterwards they retry for over a minute)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=STOP_GRACE_S)
    EventsWorker.drain_all(timeout=STOP_GRACE_S)


def _needs_temporary_server() -> bool:
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    return not settings.api.url and settings.server.ephemeral.enabled


@contextmanager
def prefect_api() -> Iterator[Callable[[], None]]:
    """Start Prefect's temporary API server now if no API is configured, and point this process (every
    thread, and the worker processes it starts) at it; yields ``ready``, to call before the first flow
    run: it waits until the server answers. The server stops when the block ends. With a configured
    API, nothing is started."""
    if os.environ.get("PREFECT_API_URL"):
        yield lambda: None
        return
    server = _Server()
    try:
        needed = _needs_temporary_server()
    except BaseException:
        server.stop()
        raise
    if not needed:
        server.stop()
        yield lambda: None
        return
    from prefect.context import refresh_global_settings_context
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings

    with ExitStack() as stack:
        stack.callback(server.stop)
        stack.callback(refresh_global_settings_context)  # once the variable is restored
        stack.enter_context(_environment_variable("PREFECT_API_URL", server.api_url))
        # Prefect reads the environment once; threads that start later (the process pool's message
        # forwarder among them) see only its global settings, which this refresh updates.
        refresh_global_settings_context()
        stack.callback(_send_pending_logs_and_events)
        # No flow-run heartbeats: nothing reads them from a server that ends with the command, and Prefect's
        # heartbeat thread (on by default, every 180 s) sleeps in 1 s steps that the end of every flow run
        # waits out (0.9 s of a cold ingest).
        stack.enter_context(temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
        yield lambda: server.wait_healthy(_startup_timeout(get_current_settings().server.ephemeral))


def _startup_timeout(ephemeral: Any) -> float:
    """How long to wait for the temporary server: Prefect's ``startup_timeout_seconds`` when the user set it,
    else at least FIRST_START_TIMEOUT_S. Prefect's default, 20 s, was too short for a first run on a busy
    2-core machine (the server creates its database under a new ``PREFECT_HOME`` first): the command then
    failed with nothing wrong. A server that dies is noticed at once whatever the wait."""
    configured = float(ephemeral.startup_timeout_seconds)
    if STARTUP_TIMEOUT_VARIABLE in os.environ:
        return configured
    return max(configured, FIRST_START_TIMEOUT_S)


@contextmanager
def _environment_variable(name: str, value: str) -> Iterator[None]:
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
