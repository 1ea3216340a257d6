"""The command line, through click's runner and as real processes, against tmp warehouses."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from newsflow.cli import main
from tests.conftest import LoopbackSite, shared
from tests.feedbuild import Item, write_feed

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture
def filled_db(db: Path) -> Path:
    """A warehouse with three articles, written through the real migration path."""
    from newsflow.settings import load_settings
    from tests.lake import writer

    with writer(load_settings(db=db).db) as con:
        for number, site in enumerate(["a.example", "a.example", "b.example"]):
            con.execute(
                "INSERT INTO articles (article_id, site, text, word_count, content_source, first_seen_at)"
                " VALUES (?, ?, 'some text', ?, 'page', now())",
                [f"id{number}", site, 100 * (number + 1)],
            )
    return db


def run(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_sql_formats(runner: CliRunner, filled_db: Path) -> None:
    query = "SELECT site, count(*) AS n FROM articles GROUP BY 1 ORDER BY 2 DESC"
    code, out, _ = run(runner, "sql", query, "--db", str(filled_db), "--format", "json")
    assert code == 0
    assert json.loads(out) == [{"site": "a.example", "n": 2}, {"site": "b.example", "n": 1}]
    code, out, _ = run(runner, "sql", query, "--db", str(filled_db), "-f", "csv")
    assert out.splitlines() == ["site,n", "a.example,2", "b.example,1"]
    code, out, _ = run(runner, "sql", query, "--db", str(filled_db))
    assert "a.example" in out and out.rstrip().endswith("(2 rows)")


def test_sql_binds_typed_parameters(runner: CliRunner, filled_db: Path) -> None:
    code, out, _ = run(
        runner,
        "sql",
        "SELECT article_id FROM articles WHERE word_count > $n AND site = $s",
        "-p",
        "n",
        "150",
        "-p",
        "s",
        "a.example",
        "--db",
        str(filled_db),
        "-f",
        "csv",
    )
    assert code == 0
    assert out.splitlines() == ["article_id", "id1"]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("SELEC 1", "syntax error"),
        ("SELECT nope FROM articles", "nope"),
        ("DELETE FROM articles", "refused: queries are read-only"),
        ("SELECT * FROM read_csv('/etc/passwd')", "refused"),
        ("ATTACH '/tmp/other.duckdb' AS other", "refused"),
        ("SELECT $missing", "missing"),
    ],
)
def test_sql_errors_are_one_clean_line(runner: CliRunner, filled_db: Path, query: str, message: str) -> None:
    code, out, err = run(runner, "sql", query, "--db", str(filled_db))
    assert code == 1
    assert err.startswith("Error: ") and message in err
    assert "Traceback" not in err + out
    code, out, _ = run(
        runner, "sql", "SELECT count(*) AS n FROM articles", "--db", str(filled_db), "-f", "csv"
    )
    assert out.splitlines() == ["n", "3"]  # nothing was changed by the refused statements


def test_sql_without_warehouse_says_what_to_do(runner: CliRunner, tmp_path: Path) -> None:
    code, _, err = run(runner, "sql", "SELECT 1", "--db", str(tmp_path / "none.ducklake"))
    assert code == 1
    assert "no warehouse at" in err and "newsflow ingest" in err


@pytest.fixture
def lock_holder(filled_db: Path) -> Iterator[callable]:  # type: ignore[valid-type]
    """Starts a separate process that holds a write session (the lake's write lock and an uncommitted
    insert) for some seconds."""
    processes: list[subprocess.Popen[str]] = []

    def hold(seconds: float) -> subprocess.Popen[str]:
        code = textwrap.dedent(f"""
            import time
            from pathlib import Path
            from tests.lake import writer
            with writer(Path({str(filled_db)!r})) as con:
                con.execute("DELETE FROM articles")
                print("locked", flush=True)
                time.sleep({seconds})
        """)
        process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert process.stdout is not None and process.stdout.readline().strip() == "locked"
        processes.append(process)
        return process

    yield hold
    for process in processes:
        process.kill()
        process.wait()


def test_sql_answers_at_once_while_a_writer_holds_the_lake(
    runner: CliRunner, filled_db: Path, lock_holder, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEWSFLOW_LOCK_TIMEOUT", "20")
    lock_holder(30)
    started = time.monotonic()
    code, out, err = run(
        runner, "sql", "SELECT count(*) AS n FROM articles", "--db", str(filled_db), "-f", "csv"
    )
    assert code == 0, err
    assert out.splitlines() == ["n", "3"]  # the last committed snapshot, not the writer's pending delete
    assert time.monotonic() - started < 15  # it did not wait for the writer


def test_a_writer_gives_up_naming_the_lock_holder(
    runner: CliRunner, filled_db: Path, lock_holder, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NEWSFLOW_LOCK_TIMEOUT", "0.5")
    holder = lock_holder(30)
    code, _, err = run(runner, "feeds", "add", "https://example.com/f.xml", "--db", str(filled_db))
    assert code == 1
    assert f"held by PID {holder.pid}" in err and "NEWSFLOW_LOCK_TIMEOUT" in err


def test_feeds_add_list_remove_and_opml_round_trip(runner: CliRunner, db: Path, tmp_path: Path) -> None:
    code, out, _ = run(
        runner,
        "feeds",
        "add",
        "https://example.com/feed.xml",
        "--name",
        "Example",
        "--tag",
        "tech",
        "--db",
        str(db),
    )
    assert (code, out.strip()) == (0, "added https://example.com/feed.xml")
    code, _, _ = run(runner, "feeds", "add", "https://example.com/feed.xml", "--db", str(db))
    assert code == 0
    code, _, err = run(runner, "feeds", "add", "ftp://example.com/x", "--db", str(db))
    assert code == 1 and "not an http(s) URL" in err

    opml = tmp_path / "reader.opml"
    opml.write_text(
        '<?xml version="1.0"?><opml version="2.0"><body><outline text="News">'
        '<outline text="One" xmlUrl="https://one.example/rss"/>'
        '<outline text="Two" xmlUrl="https://two.example/atom"/></outline></body></opml>'
    )
    code, out, _ = run(runner, "feeds", "import-opml", str(opml), "--db", str(db))
    assert out.strip() == f"2 feeds in {opml}: 2 new, 0 already registered"
    code, out, _ = run(runner, "feeds", "list", "--db", str(db), "-f", "json")
    listed = {row["url"]: row for row in json.loads(out)}
    assert set(listed) == {
        "https://example.com/feed.xml",
        "https://one.example/rss",
        "https://two.example/atom",
    }
    assert listed["https://one.example/rss"]["tags"] == ["News"]

    code, out, _ = run(runner, "feeds", "export-opml", "--db", str(db))
    assert out.count("xmlUrl=") == 3 and 'title="Example"' in out

    code, out, _ = run(runner, "feeds", "remove", "https://one.example/rss", "--db", str(db))
    assert code == 0
    code, _, err = run(runner, "feeds", "remove", "https://one.example/rss", "--db", str(db))
    assert code == 1 and "not registered" in err


def test_bad_feed_file_is_a_clean_error(runner: CliRunner, db: Path, tmp_path: Path) -> None:
    bad = tmp_path / "feeds.toml"
    bad.write_text('[[feeds]]\nname = "no url"\n')
    code, _, err = run(runner, "ingest", "--feeds", str(bad), "--db", str(db))
    assert code == 1
    assert err.strip() == f"Error: {bad}: feeds entry 1 has no url"


def test_bad_setting_is_a_clean_error(runner: CliRunner, db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEWSFLOW_BATCH_SIZE", "lots")
    code, _, err = run(runner, "sql", "SELECT 1", "--db", str(db))
    assert code == 1 and "NEWSFLOW_BATCH_SIZE" in err


def test_ingest_command_prints_summary(
    runner: CliRunner, db: Path, site: LoopbackSite, tmp_path: Path, prefect_harness: None
) -> None:
    shared("scrapinghub-article-extraction-benchmark")
    from tests.feedbuild import benchmark_pages

    ids = sorted(benchmark_pages())[-3:]
    write_feed(
        site.root / "cli" / "feed.xml",
        "CLI",
        [Item(f"T {i}", site.url(f"/pages/{i}.html"), guid=i) for i in ids],
    )
    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feeds]]\nurl = "{site.url("/site/cli/feed.xml")}"\n')
    code, out, err = run(runner, "ingest", "--feeds", str(feeds), "--db", str(db), "--allow-private-networks")
    assert code == 0, err
    assert "feeds    polled 1, new content 1, not modified 0, failed 0" in out
    assert "articles stored 3 (of which duplicates 0): extracted 3" in out
    assert out.splitlines()[-1].startswith(f"warehouse {db} ")  # where to look, last
    code, out, _ = run(
        runner, "ingest", "--feeds", str(feeds), "--db", str(db), "--allow-private-networks", "--json"
    )
    summary = json.loads(out)
    assert (summary["feeds_not_modified"], summary["articles_stored"]) == (1, 0)


def test_every_command_has_help_and_is_in_the_readme(runner: CliRunner) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    commands = list(all_commands(main))
    assert {"ingest", "sql", "backfill", "serve", "feeds list", "feeds resume"} <= set(commands)
    assert {"stories", "story", "load", "regroup"} <= set(commands)
    for command in commands:
        code, out, _ = run(runner, *command.split(), "--help")
        assert code == 0 and "Usage:" in out and len(out.splitlines()) > 4, command
        assert f"newsflow {command}" in readme, f"README does not show `newsflow {command}`"


def all_commands(group: click.Group, prefix: str = "") -> Iterator[str]:
    """Every leaf command of the CLI, as typed after `newsflow`."""
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from all_commands(command, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}"


@pytest.mark.parametrize("command", [["stories"], ["story", "s_missing"]])
def test_showing_commands_do_not_create_a_warehouse(
    runner: CliRunner, tmp_path: Path, command: list[str]
) -> None:
    missing = tmp_path / "missing.ducklake"
    code, _, err = run(runner, *command, "--db", str(missing))
    assert code == 1 and "no warehouse at" in err
    assert not missing.exists()
