"""Running the web app: in the foreground (``newsflow web``) or in a thread beside ``newsflow serve``."""

from __future__ import annotations

import threading

from newsflow.errors import ConfigError
from newsflow.settings import Settings


def run_web(settings: Settings, host: str, port: int) -> None:
    """Serve until Ctrl-C."""
    import uvicorn

    from newsflow.web.app import create_app

    print(f"newsflow web on http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def start_web_thread(settings: Settings, host: str, port: int) -> threading.Thread:
    """Serve in a daemon thread (it ends with the process)."""
    thread = threading.Thread(target=run_web, args=(settings, host, port), name="newsflow-web", daemon=True)
    thread.start()
    return thread


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (or a bare port, on 127.0.0.1).

    Raises:
        ConfigError: not a host and port.
    """
    host, _, port = address.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--web {address!r}: expected HOST:PORT, e.g. 127.0.0.1:8000")
    return host or "127.0.0.1", int(port)
