"""The terminal as people read it, at fixed widths (80 and 120 columns): ids that paste back, no column
dropped without notice, lists and times as people write them, and the commands that read one thing."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from newsflow.cli import main
from tests.lake import reader, writer
from tests.test_load import loaded_amazon_lake

WIDTHS = (80, 120)
STORY_ID = re.compile(r"\bs_[0-9a-f]{16}\b")


@pytest.fixture(scope="module")
def amazon_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Amazon-Anthropic set loaded through `newsflow load` (a story of five, distractors alone), with
    tags on every article and a non-ASCII title, as feeds give them."""
    db = loaded_amazon_lake(tmp_path_factory.mktemp("terminal"))
    with writer(db) as con:
        first = "(SELECT min(article_id) FROM articles)"
        con.execute(f"UPDATE articles SET title = title || ' — café' WHERE article_id = {first}")
    return db


def cli(db: Path, width: int, *args: str) -> tuple[int, str, str]:
    result = CliRunner(env={"COLUMNS": str(width)}).invoke(main, [*args, "--db", str(db)])
    return result.exit_code, result.stdout, result.stderr


def csv_header(db: Path, *args: str) -> list[str]:
    code, out, err = cli(db, 80, *args, "-f", "csv")
    assert code == 0, err
    return next(csv.reader(io.StringIO(out)))


def assert_fits(output: str, width: int) -> None:
    too_wide = [line for line in output.splitlines() if len(line) > width]
    assert not too_wide, f"lines wider than {width}: {too_wide}"


def shown_columns(output: str, columns: list[str]) -> set[str]:
    """The columns a table or record output shows: as a header word or as a record's label."""
    words = {word for line in output.splitlines() for word in line.split()}
    return {c for c in columns if c in words}


@pytest.mark.parametrize("width", WIDTHS)
def test_story_ids_print_whole_and_paste_back_into_story(amazon_db: Path, width: int) -> None:
    code, out, _ = cli(amazon_db, width, "stories", "--since", "all")
    assert code == 0
    with reader(amazon_db) as con:
        stored = {row[0] for row in con.execute("SELECT DISTINCT story_id FROM articles").fetchall()}
    assert set(STORY_ID.findall(out)) == stored  # every story listed, every id whole
    assert_fits(out, width)
    biggest = STORY_ID.findall(out)[0]
    code, whole, err = cli(amazon_db, width, "story", biggest)
    assert code == 0, err
    assert "5 articles" in whole
    code, by_prefix, err = cli(amazon_db, width, "story", biggest[:8])  # as git takes a short hash
    assert code == 0, err
    assert by_prefix == whole


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(
    "command",
    [
        ["sql", "SELECT * FROM articles"],
        ["stories", "--since", "all"],
        ["story", "BIGGEST"],
        ["feeds", "list"],
    ],
)
def test_no_column_is_dropped_at_any_width(amazon_db: Path, width: int, command: list[str]) -> None:
    if command == ["story", "BIGGEST"]:
        code, out, _ = cli(amazon_db, 200, "stories", "--since", "all", "--limit", "1")
        command = ["story", STORY_ID.findall(out)[0]]
    if command[0] == "feeds":
        CliRunner().invoke(main, ["feeds", "add", "https://example.com/feed.xml", "--db", str(amazon_db)])
    columns = csv_header(amazon_db, *command)
    if command[0] == "stories":
        columns.remove("first_at")  # documented: the table shows the span's end; csv/json have both
    code, out, err = cli(amazon_db, width, *command)
    assert code == 0, err
    assert shown_columns(out, columns) == set(columns)
    assert_fits(out, width)
    if command[:2] == ["sql", "SELECT * FROM articles"]:
        assert "as records: 36 columns do not fit" in out  # the footer says why


def test_lists_times_and_text_print_as_people_write_them(amazon_db: Path) -> None:
    query = "SELECT title, tags, first_seen_at FROM articles WHERE title LIKE '%café' LIMIT 1"
    code, out, _ = cli(amazon_db, 120, "sql", query, "-f", "csv")
    assert code == 0
    [row] = list(csv.DictReader(io.StringIO(out)))
    assert row["tags"] == "tech, ai"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", row["first_seen_at"])  # to the second
    code, out, _ = cli(amazon_db, 120, "sql", query, "-f", "json")
    assert "café" in out and "\\u00e9" not in out  # UTF-8, not escapes
    [record] = json.loads(out)
    assert record["tags"] == ["tech", "ai"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", record["first_seen_at"])
    code, out, _ = cli(amazon_db, 120, "sql", query)
    assert "tech, ai" in out and "['tech'" not in out
    assert re.search(r"\d\d:\d\d:\d\d(?!\.)", out) and not re.search(r"\d\d:\d\d:\d\d\.\d", out)


def test_stories_in_an_empty_window_say_why_and_what_to_try(amazon_db: Path) -> None:
    """The set was published in 2023: the default window (24 h of publication time) is empty, and the
    command says so instead of a bare (0 rows)."""
    code, out, err = cli(amazon_db, 120, "stories")
    assert code == 0
    assert out.splitlines()[-1] == "(0 rows)"
    assert "in the last 24h" in err and "--since all" in err
    assert "8 stories in all, the latest article at 2023-10-03 15:10:37" in err


def test_article_shows_metadata_story_and_text_and_takes_a_prefix(amazon_db: Path) -> None:
    with reader(amazon_db) as con:
        article_id, story_id, text = con.execute(
            "SELECT article_id, story_id, text FROM articles WHERE title LIKE '%café'"
        ).fetchall()[0]
    code, out, err = cli(amazon_db, 80, "article", article_id[:6])
    assert code == 0, err
    assert out.splitlines()[0].endswith("café")
    assert story_id in out and article_id in out
    assert text.split()[0] in out and text.split()[-1] in out  # the whole text, not a cut cell
    code, out, _ = cli(amazon_db, 80, "article", article_id, "-f", "json")
    assert json.loads(out)["text"] == text


def test_unknown_and_ambiguous_prefixes_are_clean_errors(db: Path) -> None:
    with writer(db) as con:
        for article_id in ("abcd1111", "abcd2222"):
            con.execute(
                "INSERT INTO articles (article_id, text, word_count, content_source, first_seen_at)"
                " VALUES (?, 'some text', 2, 'loaded', now())",
                [article_id],
            )
    code, _, err = cli(db, 80, "article", "abcd")
    assert code == 1
    assert "ambiguous" in err and "abcd1111" in err and "abcd2222" in err
    assert cli(db, 80, "article", "abcd2")[0] == 0
    code, _, err = cli(db, 80, "article", "ffff")
    assert (code, err.strip()) == (1, "Error: no article 'ffff'")
    code, _, err = cli(db, 80, "story", "s_")
    assert code == 1 and "at least 4 characters" in err
