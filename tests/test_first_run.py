"""What a new user sees: the first `newsflow ingest` on a fresh Prefect home, with Prefect's telemetry
variables unset, prints the summary and nothing else (no traceback, no telemetry line)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LoopbackSite
from tests.feedbuild import Item, benchmark_pages, write_feed

TELEMETRY_VARIABLES = ("PREFECT_SERVER_ANALYTICS_ENABLED", "DO_NOT_TRACK")


def user_environment(**chosen: str) -> dict[str, str]:
    """This environment as a new user's: no Prefect or newsflow settings, no telemetry choice, plus
    ``chosen``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PREFECT_", "NEWSFLOW_")) and k not in TELEMETRY_VARIABLES
    }
    return env | chosen


def test_a_cold_first_ingest_prints_the_summary_and_nothing_else(site: LoopbackSite, tmp_path: Path) -> None:
    ids = sorted(benchmark_pages())[:3]
    items = [Item(f"First {i}", site.url(f"/pages/{i}.html"), guid=f"first-{i}") for i in ids]
    write_feed(site.root / "first" / "feed.xml", "First", items)
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feeds]]\nurl = "{site.url("/site/first/feed.xml")}"\n')
    env = user_environment(PREFECT_HOME=str(tmp_path / "new-prefect-home"))
    command = [str(Path(sys.executable).parent / "newsflow"), "ingest", "--feeds", str(feeds),
               "--db", str(tmp_path / "first.ducklake"), "--allow-private-networks"]  # fmt: skip
    # The first run creates Prefect's database; the second reuses it.
    for attempt, stored in (("first", 3), ("second", 0)):
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"articles stored {stored} " in done.stdout, done.stdout
        for stream in (done.stdout, done.stderr):
            assert "Traceback" not in stream and "telemetry" not in stream.lower(), stream[-3000:]
        assert done.stderr == "", f"the {attempt} run printed on stderr:\n{done.stderr[-3000:]}"


@pytest.mark.parametrize(
    ("chosen", "seen"),
    [
        ({}, {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}),
        # A user who turns the server's reports on has chosen telemetry: the client's stay on too.
        (
            {"PREFECT_SERVER_ANALYTICS_ENABLED": "true"},
            {"PREFECT_SERVER_ANALYTICS_ENABLED": "true", "DO_NOT_TRACK": None},
        ),
        ({"DO_NOT_TRACK": "0"}, {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "0"}),
    ],
)
def test_processes_a_command_starts_have_telemetry_off_unless_the_user_chose(
    chosen: dict[str, str], seen: dict[str, str | None]
) -> None:
    """What the temporary API server, the extraction workers and served flow runs inherit."""
    child = (
        "import os; print([os.environ.get(n) for n in ('PREFECT_SERVER_ANALYTICS_ENABLED', 'DO_NOT_TRACK')])"
    )
    command = (
        "import subprocess, sys\n"
        "from newsflow.cli.prefect_api import prefect_telemetry_off\n"
        "prefect_telemetry_off()\n"
        f"print(subprocess.run([sys.executable, '-c', {child!r}], capture_output=True, text=True).stdout)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", command], capture_output=True, text=True, env=user_environment(**chosen),
        check=True,
    )  # fmt: skip
    assert done.stdout.strip() == str([seen["PREFECT_SERVER_ANALYTICS_ENABLED"], seen["DO_NOT_TRACK"]])


@pytest.mark.parametrize(
    ("chosen", "configured", "waited"), [(None, 20.0, 90.0), ("5", 5.0, 5.0), (None, 120.0, 120.0)]
)
def test_the_first_start_of_the_temporary_api_gets_time_unless_the_user_set_the_wait(
    monkeypatch: pytest.MonkeyPatch, chosen: str | None, configured: float, waited: float
) -> None:
    """Prefect's 20 s were too short for a first run on a busy machine (the server creates its database)."""
    from types import SimpleNamespace

    from newsflow.cli.prefect_api import STARTUP_TIMEOUT_VARIABLE, _startup_timeout

    monkeypatch.delenv(STARTUP_TIMEOUT_VARIABLE, raising=False)
    if chosen is not None:
        monkeypatch.setenv(STARTUP_TIMEOUT_VARIABLE, chosen)
    assert _startup_timeout(SimpleNamespace(startup_timeout_seconds=configured)) == waited
