"""newsflow on a real `prefect server start`: entrypoints, scheduled ingests, a backfill triggered through
Prefect, and clean shutdown of every process started."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.archive_fixture import PUBLISHED_SINCE, PUBLISHED_UNTIL
from tests.archive_fixture import SITES as ARCHIVE_SITES
from tests.backfill_site import SINCE, UNTIL, BackfillSite, register
from tests.conftest import REPO, ArchiveSite, LoopbackSite
from tests.feedbuild import Item, write_feed
from tests.prefect_server import BIN, stop, wait_until
from tests.prefect_server import prefect_server as started_prefect_server


def test_every_prefect_yaml_entrypoint_resolves_to_a_flow() -> None:
    from prefect.flows import Flow, load_flow_from_entrypoint

    deployments = yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    names = {d["name"] for d in deployments}
    assert names == {"ingest", "backfill", "maintenance"}
    for deployment in deployments:
        flow = load_flow_from_entrypoint(deployment["entrypoint"])  # a module path: no cwd needed
        assert isinstance(flow, Flow) and flow.name == deployment["name"]


def test_serve_without_a_server_says_how_to_start_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    result = subprocess.run([str(BIN / "newsflow"), "serve", "--db", str(tmp_path / "w.ducklake")],
                            env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 1
    assert "prefect server start" in result.stderr and "PREFECT_API_URL" in result.stderr


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    # Usage reports on, as a server is by default: `newsflow serve` must say how to turn them off.
    home = tmp_path_factory.mktemp("prefect-home")
    with started_prefect_server(home, PREFECT_SERVER_ANALYTICS_ENABLED="true") as env:
        yield env


def runs(db: Path, flow: str) -> list[dict[str, Any]]:
    """Finished runs of ``flow`` in the warehouse, oldest first (read between the writers' transactions)."""
    from newsflow.errors import WarehouseError
    from tests.lake import warehouse

    if not db.exists():
        return []
    try:
        con = warehouse(db).connect()
    except WarehouseError:
        return []
    try:
        rows = con.execute(
            "SELECT status, counts FROM runs WHERE flow = ? AND status <> 'running' ORDER BY started_at",
            [flow],
        ).fetchall()
    except Exception:  # noqa: BLE001 - schema not created yet
        return []
    finally:
        con.close()
    return [{"status": status, **json.loads(counts)} for status, counts in rows]


@pytest.mark.alone
def test_scheduled_ingests_and_triggered_backfills(
    prefect_server: dict[str, str],
    backfill_site: BackfillSite,
    archive_site: ArchiveSite,
    site: LoopbackSite,
    tmp_path: Path,
) -> None:
    db = tmp_path / "served.ducklake"
    write_feed(site.root / "served" / "feed.xml", "Served",
               [Item("Hello", site.url("/site/served/hello.html"), guid="served-1")])  # fmt: skip
    (site.root / "served" / "hello.html").write_text(
        "<html><head><title>Hello</title></head><body><article><p>"
        + "A scheduled ingest stored this article. " * 20
        + "</p></article></body></html>"
    )
    env = {**prefect_server, **archive_site.environment(), "NEWSFLOW_DB": str(db),
           "NEWSFLOW_ALLOW_PRIVATE_NETWORKS": "1"}  # fmt: skip
    added = subprocess.run([str(BIN / "newsflow"), "feeds", "add", site.url("/site/served/feed.xml")],
                           env=env, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert added.returncode == 0, added.stderr
    register(db, backfill_site.site)
    # Served from the folder that holds a clone named `newsflow` (with `shared/` beside it), as a user who
    # cloned into ~/src does: the clone folder must not shadow the installed package in flow runs, and a
    # relative NEWSFLOW_DB means the same file in every run.
    holder = tmp_path / "src"
    holder.mkdir()
    (holder / "newsflow").symlink_to(REPO, target_is_directory=True)
    serve_log = (tmp_path / "serve.log").open("w")
    serving = subprocess.Popen(
        [str(BIN / "newsflow"), "serve", "--ingest-every", "5s"],
        env={**env, "NEWSFLOW_DB": "../served.ducklake"}, cwd=holder,
        stdout=serve_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        ingests = wait_until(lambda: len(runs(db, "ingest")) >= 2 and runs(db, "ingest"), 120,
                             "two scheduled ingest runs")  # fmt: skip
        first, second = ingests[0], ingests[1]
        assert first["status"] == second["status"] == "completed"
        # The served feed's article, plus the current entries of the backfill site's two feeds (3 + 1).
        assert (first["feeds_polled"], first["articles_stored"]) == (3, 5)
        # Five seconds later no feed is due yet (adaptive intervals are minutes): nothing new.
        assert (second["feeds_polled"], second["new_entries"], second["articles_stored"]) == (0, 0, 0)

        triggered = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "backfill/backfill",
             "--param", f"since={SINCE}", "--param", f"until={UNTIL}",
             "--param", f"site={backfill_site.site.base}", "--watch", "--watch-timeout", "180"],
            env=env, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert triggered.returncode == 0, triggered.stdout[-3000:] + triggered.stderr[-3000:]
        [backfill_run] = wait_until(lambda: runs(db, "backfill"), 30, "the backfill run row")
        assert backfill_run["status"] == "completed"
        assert backfill_run["chunks_done"] == 3

        # The same deployment reads a web archive: the sources and sites as parameters.
        from_archive = subprocess.run(
            [str(BIN / "prefect"), "deployment", "run", "backfill/backfill",
             "--param", f"since={PUBLISHED_SINCE}", "--param", f"until={PUBLISHED_UNTIL}",
             "--param", 'sources=["cc-news"]', "--param", f"site={json.dumps(list(ARCHIVE_SITES))}",
             "--watch", "--watch-timeout", "180"],
            env=env, capture_output=True, text=True, timeout=240,
        )  # fmt: skip
        assert from_archive.returncode == 0, from_archive.stdout[-3000:] + from_archive.stderr[-3000:]
        archived = wait_until(lambda: len(runs(db, "backfill")) == 2 and runs(db, "backfill")[1], 30,
                              "the archive backfill's run row")  # fmt: skip
        assert archived["status"] == "completed"
        assert archived["archives"]["cc-news"]["articles_stored"] == len(archive_site.archive.expected)  # type: ignore[attr-defined]
    finally:
        stop(serving)
        serve_log.close()
    assert serving.returncode is not None
    assert (
        "restart the server with PREFECT_SERVER_ANALYTICS_ENABLED=false"
        in (tmp_path / "serve.log").read_text()
    )
    from tests.lake import warehouse

    con = warehouse(db).connect()
    try:
        urls = {row[0] for row in con.execute("SELECT url FROM articles").fetchall()}
    finally:
        con.close()
    assert backfill_site.in_window <= urls
    assert site.url("/site/served/hello.html") in urls
