"""`newsflow export`: tables and queries to Parquet, CSV and JSON Lines, read back; clean errors; a large
export in constant memory."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from newsflow.cli import main
from tests.lake import reader, writer
from tests.test_load import loaded_amazon_lake

NEWSFLOW = str(Path(sys.executable).parent / "newsflow")


@pytest.fixture(scope="module")
def amazon_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return loaded_amazon_lake(tmp_path_factory.mktemp("export"))


def export(db: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["export", *args, "--db", str(db)])
    return result.exit_code, result.stdout, result.stderr or repr(result.exception)


def test_parquet_export_reads_back_as_the_table(amazon_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "articles.parquet"
    code, said, err = export(amazon_db, "articles", "-o", str(out))
    assert code == 0, err
    assert said.startswith(f"exported 12 rows to {out} (parquet")
    with reader(amazon_db) as con:
        expected = con.execute("SELECT * FROM articles").to_arrow_table()
    assert pq.read_table(out).sort_by("article_id").equals(expected.sort_by("article_id"))


def test_csv_and_jsonl_write_lists_and_times_as_people_read_them(amazon_db: Path, tmp_path: Path) -> None:
    code, _, err = export(amazon_db, "stories", "-o", str(tmp_path / "stories.csv"))
    assert code == 0, err
    stories = list(csv.DictReader((tmp_path / "stories.csv").open(encoding="utf-8")))
    assert len(stories) == 8
    sites = [sorted(story["sites"].split(", ")) for story in stories]  # a list, joined as `sql -f csv` does
    assert ["CNET", "ReadWrite", "Reuters", "Slashdot.org", "Time"] in sites
    code, _, err = export(amazon_db, "articles", "-o", str(tmp_path / "a.jsonl"))
    assert code == 0, err
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 12 and {tuple(r["tags"]) for r in rows} == {("tech", "ai")}
    assert all(r["published_at"].endswith("Z") and len(r["published_at"]) == 20 for r in rows)


def test_since_filters_a_table_by_its_time(amazon_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "recent.csv"
    code, said, err = export(amazon_db, "articles", "--since", "2023-09-25", "-o", str(out))
    assert code == 0, err
    with reader(amazon_db) as con:
        [(expected,)] = con.execute(
            "SELECT count(*) FROM articles WHERE coalesce(published_at, first_seen_at) >= '2023-09-25'"
        ).fetchall()
    assert 0 < expected < 12 and said.startswith(f"exported {expected} rows")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["raw_pages", "-o", "x.csv"], "the public tables are articles, stories"),
        (["articles", "--query", "SELECT 1", "-o", "x.csv"], "not both or neither"),
        (["-o", "x.csv"], "not both or neither"),
        (["feeds", "--since", "7d", "-o", "x.csv"], "--since does not apply to feeds"),
        (["articles", "-o", "x.txt"], "name it .parquet, .csv or .jsonl"),
        (["--query", "SELECT * FROM read_csv('/etc/passwd')", "-o", "x.csv"], "refused"),
        (["--query", "SELEC 1", "-o", "x.csv"], "syntax error"),
    ],
)
def test_bad_requests_are_one_clean_line_and_write_nothing(
    amazon_db: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    code, _, err = export(amazon_db, *args)
    assert code == 1 and err.startswith("Error: ") and message in err, err
    assert list(tmp_path.iterdir()) == []


def test_a_query_failing_mid_stream_leaves_the_previous_file(amazon_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "numbers.jsonl"
    out.write_text("previous\n")
    failing = "SELECT CASE WHEN i = 60000 THEN error('boom') ELSE i END AS n FROM range(100000) t(i)"
    code, _, err = export(amazon_db, "--query", failing, "-o", str(out))
    assert code == 1 and "boom" in err
    assert out.read_text() == "previous\n" and list(tmp_path.iterdir()) == [out]


PEAK_RSS = textwrap.dedent("""
    import resource, subprocess, sys
    done = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
    print(done.returncode, peak_mb, done.stderr[-2000:])
""")


def test_a_million_row_export_streams_in_bounded_memory(tmp_path: Path) -> None:
    """1M articles of 2 KB text (2 GB as values): the export's whole process stays far below that (it
    holds a few batches at a time, not the table)."""
    db = tmp_path / "big.ducklake"
    with writer(db) as con:
        con.execute(
            "INSERT INTO articles (article_id, text, word_count, content_source, first_seen_at, tags)"
            " SELECT md5(i::VARCHAR), repeat('words ', 340) || i, 341, 'loaded',"
            " TIMESTAMPTZ '2024-01-01' + to_seconds(i), ['a'] FROM range(1000000) t(i)"
        )
    out = tmp_path / "big.parquet"
    measured = subprocess.run([sys.executable, "-c", PEAK_RSS, NEWSFLOW, "export", "articles", "-o", str(out),
                               "--db", str(db)], capture_output=True, text=True, timeout=600)  # fmt: skip
    code, peak_mb, err = measured.stdout.split(" ", 2)
    assert code == "0", err
    assert pq.ParquetFile(out).metadata.num_rows == 1_000_000
    print(f"\n1M-row export: peak RSS {peak_mb} MB, {out.stat().st_size / 1e6:.0f} MB of Parquet")
    assert int(peak_mb) < 1000
