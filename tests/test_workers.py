"""Several machines, simulated for real: a PostgreSQL catalog, a `prefect server start`, and two Prefect
process workers, each in its own PID namespace, home and working directory (a "machine"), running the
repo's `ingest` deployment for different feed groups into one lake (its data in a SeaweedFS bucket) while a
notebook-style reader queries.

One machine is killed with SIGKILL mid-run (its worker, flow run and extraction processes all go at once):
the other finishes, a rerun on the survivor completes the killed machine's feeds, nothing is lost or
duplicated, the dead run's row is closed as 'crashed', and `integrity_check` is clean."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from tests.conftest import REPO, LoopbackSite
from tests.object_store import BUCKET, weed_binary
from tests.postgres import PostgresServer
from tests.prefect_server import BIN, prefect_server, stop, wait_until
from tests.test_crash_safety import FEEDS, PAGES_PER_FEED, served_feeds
from tests.test_lakehouse import READER, lake_connection, stored_exactly_once

GROUP = FEEDS * PAGES_PER_FEED  # entries per feed group
NO_FILE = Path("unused-with-a-postgres-catalog")


def _pid_namespaces_work() -> bool:
    try:
        done = subprocess.run(["unshare", "--pid", "--fork", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


@dataclass
class Machine:
    """A Prefect worker in its own PID namespace: SIGKILL to it takes every process of the machine."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, folder: Path, env: dict[str, str]) -> Machine:
        home = folder / name
        (home / "prefect").mkdir(parents=True)
        log = home / "worker.log"
        command = ["unshare", "--pid", "--fork", "--kill-child=SIGKILL",
                   str(BIN / "prefect"), "worker", "start", "--pool", "newsflow", "--work-queue", name,
                   "--name", name, "--type", "process", "--limit", "1"]  # fmt: skip
        machine_env = {**env, "PREFECT_HOME": str(home / "prefect"), "PREFECT_WORKER_QUERY_SECONDS": "1"}
        with log.open("wb") as out:
            process = subprocess.Popen(command, env=machine_env, cwd=home, stdout=out,
                                       stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        return cls(name, process, log)

    def kill(self) -> None:
        """The machine dies: unshare is killed, its child (the namespace's PID 1) gets SIGKILL with it,
        and the kernel kills everything else in the namespace."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def processes(self) -> list[int]:
        """PIDs of processes still running with this machine's Prefect home (worker, flow run, workers)."""
        marker = f"PREFECT_HOME={self.log.parent / 'prefect'}\0".encode()
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if marker in (proc / "environ").read_bytes():
                    found.append(int(proc.name))
            except OSError:  # gone meanwhile, or not ours to read
                continue
        return found


class Api:
    """The Prefect calls the test makes (what `prefect deployment run` does, plus a queue), through Prefect's
    own client, which retries the 503s a busy server answers."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def run(self, deployment: str, queue: str, parameters: dict[str, Any]) -> str:
        found = self.client.read_deployment_by_name(deployment)
        created = self.client.create_flow_run_from_deployment(
            found.id, parameters=parameters, work_queue_name=queue
        )
        return str(created.id)

    def state(self, flow_run_id: str) -> str:
        state = self.client.read_flow_run(UUID(flow_run_id)).state
        return state.type.value if state else "NONE"


def prefect(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([str(BIN / "prefect"), "--no-prompt", *args], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.fixture
def lake_data(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """Where the machines keep the lake's data: a bucket of a real S3-compatible server, the production
    layout (then the AWS variables too, which this process also needs to read the lake back); a folder
    they share where SeaweedFS is not installed. (A shared folder with a Postgres catalog is tested in
    tests/test_lakehouse.py; running this test on both doubled its two minutes.)"""
    if weed_binary() is None:
        return {"NEWSFLOW_DATA_PATH": str(tmp_path / "shared-lake")}
    store = request.getfixturevalue("store")
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    return store.env() | {"NEWSFLOW_DATA_PATH": f"s3://{BUCKET}/machines-{tmp_path.name}/"}


@pytest.fixture
def cluster(postgres: PostgresServer, tmp_path: Path, lake_data: dict[str, str]) -> Iterator[dict[str, str]]:
    """A Prefect server (scheduler off: only the runs the test makes exist), the repo's deployments on a
    process pool with one queue per machine, and a lake on a Postgres catalog; yields the environment."""
    home = tmp_path / "prefect-server"
    home.mkdir()
    with prefect_server(home, PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED="false") as env:
        env = {
            **env,
            "NEWSFLOW_WAREHOUSE": f"ducklake:postgres:{postgres.conninfo(postgres.create_database())}",
            **lake_data,
            "NEWSFLOW_ALLOW_PRIVATE_NETWORKS": "1",
            "NEWSFLOW_RETRY_BACKOFF": "0.05",
            "NEWSFLOW_POOL_MIN_PAGES": "0",  # extraction in worker processes, which die with their machine
        }
        prefect(env, "work-pool", "create", "newsflow", "--type", "process")
        for queue in ("machine-a", "machine-b"):
            prefect(env, "work-queue", "create", queue, "--pool", "newsflow")
        deployed = prefect(env, "deploy", "--all")  # the repo's prefect.yaml, as a user deploys it
        assert "ingest/ingest" in deployed
        subprocess.run([str(BIN / "newsflow"), "migrate"], env=env, check=True, capture_output=True)
        yield env


@pytest.fixture
def api(cluster: dict[str, str]) -> Iterator[Api]:
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(cluster["PREFECT_API_URL"]) as client:
        yield Api(client)


def ingest_parameters(feeds_file: Path) -> dict[str, Any]:
    return {"feeds_file": str(feeds_file), "due_only": False, "batch_size": 4, "extraction_workers": 1}


def stored_of(env: dict[str, str], group: str) -> int:
    with lake_connection(NO_FILE, env) as con:
        rows = con.execute(
            "SELECT count(*) FROM articles WHERE starts_with(guid, ?)", [group + "-"]
        ).fetchall()
    return int(rows[0][0])


@pytest.mark.alone
def test_two_workers_one_killed_mid_run(
    site: LoopbackSite, tmp_path: Path, cluster: dict[str, str], api: Api
) -> None:
    if not _pid_namespaces_work():
        pytest.skip("needs `unshare --pid` (root or user namespaces) to kill a simulated machine whole")
    env = cluster
    groups = {}
    for name, offset in (("machine-a", 0), ("machine-b", GROUP)):
        folder = tmp_path / f"feeds-{name}"
        folder.mkdir()
        groups[name] = served_feeds(site, name, offset, folder)
    stop_file, reader_log = tmp_path / "stop", tmp_path / "reader.jsonl"
    reader = subprocess.Popen([sys.executable, "-c", READER, "", str(stop_file), str(reader_log)],
                              env=env, cwd=tmp_path, stdout=subprocess.PIPE, text=True)  # fmt: skip
    machines = {name: Machine.start(name, tmp_path, env) for name in groups}
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "open"
        first = {name: api.run("ingest/ingest", name, ingest_parameters(groups[name][0])) for name in groups}
        stored_when_killed = wait_until(
            lambda: 0 < (n := stored_of(env, "machine-a")) < GROUP and n,
            180,
            "machine-a's run to store its first batches",
            interval=0.2,
        )
        assert api.state(first["machine-b"]) in {"PENDING", "RUNNING", "COMPLETED"}
        assert len(machines["machine-a"].processes()) >= 3  # worker, flow run, extraction worker
        machines["machine-a"].kill()
        wait_until(lambda: not machines["machine-a"].processes(), 10, "every process of machine-a to die")
        wait_until(lambda: api.state(first["machine-b"]) == "COMPLETED", 240, "machine-b's run to complete")
        stored_before_rerun = stored_of(env, "machine-a")
        assert stored_before_rerun < GROUP, "machine-a was killed before its run finished"
        # The killed machine's feeds, rerun on the survivor.
        rerun = api.run("ingest/ingest", "machine-b", ingest_parameters(groups["machine-a"][0]))
        wait_until(lambda: api.state(rerun) == "COMPLETED", 240, "the rerun to complete")
        stop_file.touch()
        reader.wait(timeout=60)
    finally:
        reader.kill()
        for machine in machines.values():
            stop(machine.process)
    answers = [json.loads(line) for line in reader_log.read_text().splitlines()]
    assert [a for a in answers if "error" in a] == []
    counts = [a["count"] for a in answers]
    assert len(counts) >= 10 and counts == sorted(counts) and counts[-1] == 2 * GROUP
    stored = stored_exactly_once(NO_FILE, env)
    assert sorted(stored) == sorted(groups["machine-a"][1] | groups["machine-b"][1])
    with lake_connection(NO_FILE, env) as con:
        rows = con.execute("SELECT flow_run_id, status, counts FROM runs WHERE flow = 'ingest'").fetchall()
    runs = {flow_run: (status, json.loads(counts) if counts else None) for flow_run, status, counts in rows}
    assert runs[first["machine-a"]][0] == "crashed"  # closed by the rerun, which took its run lock
    assert (
        runs[first["machine-b"]][0] == "completed" and runs[first["machine-b"]][1]["articles_stored"] == GROUP
    )
    rerun_status, rerun_counts = runs[rerun]
    assert rerun_status == "completed" and rerun_counts["articles_stored"] == GROUP - stored_before_rerun
    checked = subprocess.run([str(BIN / "newsflow"), "check", "--json"], env=env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert json.loads(checked.stdout)["missing"] == []  # every file the catalog references is in the store
    # The store's secret key is in no log, run row, Prefect parameter or flow run name.
    if "AWS_SECRET_ACCESS_KEY" in env:
        secret = env["AWS_SECRET_ACCESS_KEY"]
        for machine in machines.values():
            assert secret not in machine.log.read_text(errors="replace")
        assert secret not in json.dumps([list(row) for row in rows])
        for flow_run in (*first.values(), rerun):
            found = api.client.read_flow_run(UUID(flow_run))
            assert secret not in json.dumps(found.parameters) + found.name
    print(
        f"\nmachine-a killed after {stored_when_killed} of {GROUP} stored ({stored_before_rerun} committed);"
        f" rerun stored {rerun_counts['articles_stored']}; reader answered {len(counts)} queries"
    )
