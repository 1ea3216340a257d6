"""What `pip install newsflow` puts in site-packages: one `newsflow` package, nothing else at the top."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_installs_only_the_newsflow_package(tmp_path: Path) -> None:
    """flows/, tasks/ and warehouse/ live at the repo's top level but install as newsflow.flows, ...: a bare
    `tasks` or `flows` in site-packages would collide with other projects'."""
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q", "-w", str(tmp_path)],
                   check=True, capture_output=True, timeout=300)  # fmt: skip
    [wheel] = tmp_path.glob("newsflow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"newsflow", wheel.name.split("-py")[0] + ".dist-info"}
    needed = ["newsflow/cli/__init__.py", "newsflow/flows/ingest.py", "newsflow/tasks/polling.py",
              "newsflow/net/feeds.py", "newsflow/stories/assign.py", "newsflow/warehouse/lakehouse.py",
              "newsflow/warehouse/migrations/0005_lakehouse.sql", "newsflow/web/templates/base.html",
              "newsflow/default_feeds.toml"]  # fmt: skip
    assert [name for name in needed if name not in names] == []
