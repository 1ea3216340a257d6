"""The lake's data on a real S3-compatible server (SeaweedFS on loopback), with the SQLite catalog: every
command reads and writes it through the standard AWS variables, and the secret key never shows."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from newsflow.errors import WarehouseError
from newsflow.warehouse.lakehouse import extension_file
from newsflow.warehouse.objectstore import s3_secret_sql
from tests import test_lakehouse
from tests.conftest import ArchiveSite, LoopbackSite
from tests.object_store import ACCESS_KEY, BUCKET, SECRET_KEY, ObjectStore, StoreLink
from tests.postgres import PostgresServer
from tests.test_archives import WINDOW, expected
from tests.test_crash_safety import environment
from tests.test_load import _amazon_jsonl
from tests.test_web import running_web


def _newsflow(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [str(Path(sys.executable).parent / "newsflow"), *args]
    return subprocess.run(command, env=os.environ | env, capture_output=True, text=True, timeout=300)


def _s3_connection(store: ObjectStore) -> duckdb.DuckDBPyConnection:
    """A plain DuckDB connection that reaches the store (httpfs and a secret from the AWS variables)."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    con.execute(f"LOAD '{extension_file('httpfs')}'")
    sql = s3_secret_sql(store.env())
    assert sql is not None
    con.execute(sql)
    return con


def _objects(store: ObjectStore, prefix: str) -> list[str]:
    """The object keys under ``s3://lake/PREFIX``, listed through DuckDB's httpfs as a user would."""
    con = _s3_connection(store)
    return [row[0] for row in con.execute(f"SELECT file FROM glob('s3://{BUCKET}/{prefix}**')").fetchall()]


def test_a_lake_with_its_data_on_s3_loads_lists_and_queries_and_never_shows_the_secret(
    store: ObjectStore, tmp_path: Path
) -> None:
    db = tmp_path / "news.ducklake"
    env = store.env() | {"NEWSFLOW_DATA_PATH": f"s3://{BUCKET}/news/", "NEWSFLOW_DB": str(db)}
    records = _amazon_jsonl(tmp_path / "amazon.jsonl")
    outputs = []
    loaded = _newsflow(["load", str(records)], env)
    outputs.append(loaded)
    assert loaded.returncode == 0, loaded.stderr
    assert "stored 12" in loaded.stdout and "joined an existing story 4" in loaded.stdout
    listed = _newsflow(["stories", "--since", "all", "--min-outlets", "5", "-f", "csv"], env)
    outputs.append(listed)
    assert listed.returncode == 0, listed.stderr
    assert "CNET, ReadWrite, Reuters, Slashdot.org, Time" in listed.stdout
    queried = _newsflow(["sql", "SELECT count(*) AS n, count(DISTINCT story_id) AS s FROM articles", "-f",
                         "csv"], env)  # fmt: skip
    outputs.append(queried)
    assert queried.returncode == 0, queried.stderr
    assert queried.stdout.splitlines()[1:] == ["12,8"]
    runs = _newsflow(["sql", "SELECT * FROM runs", "-f", "json"], env)
    outputs.append(runs)
    assert runs.returncode == 0 and '"flow": "load"' in runs.stdout.replace('":"', '": "')
    # The data is in the bucket, nothing beside the catalog; the catalog is the only local file.
    objects = _objects(store, "news/")
    assert any(key.endswith(".parquet") and "/articles/" in key for key in objects), objects
    assert not (tmp_path / "news.ducklake.files").exists()
    for done in outputs:
        assert SECRET_KEY not in done.stdout + done.stderr


def test_refused_credentials_and_a_store_that_is_down_are_one_clear_error_and_store_nothing(
    store: ObjectStore, tmp_path: Path
) -> None:
    records = _amazon_jsonl(tmp_path / "amazon.jsonl")
    wrong = "not-the-secret-0d1e"
    cases = {
        "refused": store.env(secret=wrong),
        "down": store.env() | {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"},
        "no scheme": store.env() | {"AWS_ENDPOINT_URL": store.endpoint.removeprefix("http://")},
    }
    for name, env in cases.items():
        db = tmp_path / f"{name.replace(' ', '-')}.ducklake"
        env |= {"NEWSFLOW_DATA_PATH": f"s3://{BUCKET}/{db.stem}/", "NEWSFLOW_DB": str(db)}
        done = _newsflow(["load", str(records)], env)
        assert done.returncode == 1, (name, done.stdout, done.stderr)
        assert done.stderr.startswith("Error: ") and len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert "Traceback" not in done.stderr and wrong not in done.stderr and SECRET_KEY not in done.stderr
        if name == "no scheme":
            assert "AWS_ENDPOINT_URL must be an http:// or https:// URL" in done.stderr
        else:
            assert f"cannot write the lake's data at s3://{BUCKET}/{db.stem}/" in done.stderr
            assert "AWS_* variables" in done.stderr
        assert not any(key.endswith(".parquet") for key in _objects(store, f"{db.stem}/")), name


def test_a_postgres_catalog_with_its_data_on_s3_takes_the_same_load_from_two_processes_once(
    store: ObjectStore, postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The several-machines layout: a PostgreSQL catalog, the data in a bucket; two writers at once still
    store each record once and every story whole (the same check as on a shared folder)."""
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)  # this process reads the lake back too
    prefix = f"pg-{postgres.create_database()}"
    lake_env = {
        "NEWSFLOW_WAREHOUSE": f"ducklake:postgres:{postgres.conninfo(prefix.removeprefix('pg-'))}",
        "NEWSFLOW_DATA_PATH": f"s3://{BUCKET}/{prefix}/",
    }
    test_lakehouse.test_the_same_load_from_two_processes_stores_each_record_once(tmp_path, lake_env)
    assert any(key.endswith(".parquet") for key in _objects(store, f"{prefix}/"))
    assert not list(tmp_path.rglob("*.parquet")), "no data file outside the bucket"


def test_maintenance_deletes_the_files_no_snapshot_needs_from_the_bucket(
    store: ObjectStore, tmp_path: Path, prefect_harness: str
) -> None:
    """A load committed record by record leaves many small files in the bucket; maintenance merges them,
    expires old snapshots and deletes the objects nothing needs, and every row stays."""
    db = tmp_path / "small.ducklake"
    env = store.env() | {"NEWSFLOW_DATA_PATH": f"s3://{BUCKET}/small/", "NEWSFLOW_DB": str(db)}
    loaded = _newsflow(["load", str(_amazon_jsonl(tmp_path / "amazon.jsonl")), "--batch-size", "1"], env)
    assert loaded.returncode == 0, loaded.stderr
    before = [key for key in _objects(store, "small/") if key.endswith(".parquet")]
    rows = _newsflow(["sql", "SELECT article_id, story_id FROM articles ORDER BY 1", "-f", "csv"], env)
    prefect = environment(prefect_harness) | {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}
    done = _newsflow(["maintenance", "--snapshot-retention-days", "0"], {**prefect, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    after = [key for key in _objects(store, "small/") if key.endswith(".parquet")]
    assert len(after) < len(before), (len(before), len(after))
    again = _newsflow(["sql", "SELECT article_id, story_id FROM articles ORDER BY 1", "-f", "csv"], env)
    assert again.stdout == rows.stdout and len(rows.stdout.splitlines()) == 13
    assert SECRET_KEY not in done.stdout + done.stderr


def test_an_export_to_s3_appears_whole_in_the_bucket_and_a_refused_one_is_one_error(
    store: ObjectStore, tmp_path: Path
) -> None:
    db = tmp_path / "news.ducklake"
    env = store.env() | {"NEWSFLOW_DB": str(db)}  # a local lake; only the export goes to the bucket
    assert _newsflow(["load", str(_amazon_jsonl(tmp_path / "amazon.jsonl"))], env).returncode == 0
    done = _newsflow(["export", "story_overview", "-o", f"s3://{BUCKET}/exports/stories.parquet"], env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"exported 8 rows to s3://{BUCKET}/exports/stories.parquet (parquet, ")
    rows = (
        _s3_connection(store)
        .execute(f"SELECT max(articles), count(*) FROM 's3://{BUCKET}/exports/stories.parquet'")
        .fetchall()
    )
    assert rows == [(5, 8)]
    wrong = "not-the-secret-5b2c"
    refused = _newsflow(["export", "articles", "-o", f"s3://{BUCKET}/exports/refused.csv"],
                        env | store.env(secret=wrong))  # fmt: skip
    assert refused.returncode == 1 and refused.stderr.startswith("Error: cannot upload the export to s3://")
    assert len(refused.stderr.strip().splitlines()) == 1 and wrong not in refused.stderr
    assert "exports/refused.csv" not in " ".join(_objects(store, "exports/"))


def test_two_ingests_at_once_into_a_postgres_catalog_with_its_data_on_s3(
    store: ObjectStore,
    postgres: PostgresServer,
    site: LoopbackSite,
    prefect_harness: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Real ingest runs (polls, fetches, extraction workers, stories) writing to the bucket: two ingests
    of overlapping feed lists at once store every article once (the shared-folder test, on S3)."""
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    database = postgres.create_database()
    lake_env = {
        "NEWSFLOW_WAREHOUSE": f"ducklake:postgres:{postgres.conninfo(database)}",
        "NEWSFLOW_DATA_PATH": f"s3://{BUCKET}/ingest-{database}/",
    }
    test_lakehouse.test_two_ingests_of_overlapping_feed_lists_at_once(
        site, prefect_harness, tmp_path, lake_env
    )
    # (small inserts of articles may sit inlined in the catalog until maintenance flushes them)
    assert any(key.endswith(".parquet") for key in _objects(store, f"ingest-{database}/"))
    assert not list(tmp_path.rglob("*.parquet")), "no data file outside the bucket"


def _many_jsonl(path: Path, count: int) -> Path:
    """``count`` distinct made-up articles (each a story of its own), enough for a load of many batches."""
    rng = random.Random(7)
    words = [
        f"{rng.choice('bcdfgklmnprst')}{rng.choice('aeiou')}{rng.choice('lmnrst')}{n}" for n in range(3000)
    ]
    lines = []
    for n in range(count):
        text = " ".join(rng.choice(words) for _ in range(250))
        when = f"2026-11-{1 + n % 28:02d}T10:00:00+00:00"
        record = {"id": f"many-{n}", "title": f"Report {n}", "site": f"outlet{n % 9}.example", "text": text}
        lines.append(json.dumps(record | {"published_at": when}))
    path.write_text("\n".join(lines) + "\n")
    return path


def _stored(db: Path, prefix: str, store: ObjectStore) -> int:
    """Articles committed so far, read straight from the store (not through the link the load uses)."""
    from newsflow.settings import Settings
    from newsflow.warehouse.lakehouse import Warehouse

    settings = Settings(db=db, data_path=f"s3://{BUCKET}/{prefix}/")
    if not db.exists():
        return 0
    try:
        con = Warehouse.open(settings).connect()
    except WarehouseError:
        return 0  # not created yet
    try:
        return int(con.execute("SELECT count(*) FROM articles").fetchall()[0][0])
    finally:
        con.close()


def test_the_store_gone_mid_load_fails_it_cleanly_and_a_rerun_completes_with_every_file_present(
    store: ObjectStore, tmp_path: Path, prefect_harness: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)  # this process reads the lake straight from the store
    records, db, total = _many_jsonl(tmp_path / "many.jsonl", 160), tmp_path / "gone.ducklake", 160
    with StoreLink(store.endpoint) as link:
        env = store.env() | {"AWS_ENDPOINT_URL": link.endpoint, "NEWSFLOW_DATA_PATH": f"s3://{BUCKET}/gone/",
                             "NEWSFLOW_DB": str(db)}  # fmt: skip
        command = [str(Path(sys.executable).parent / "newsflow"), "load", str(records), "--batch-size", "4"]
        load = subprocess.Popen(command, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        deadline = time.monotonic() + 120
        while (stored := _stored(db, "gone", store)) < 12 and load.poll() is None:
            assert time.monotonic() < deadline, "the load stored nothing in 120 s"
            time.sleep(0.2)
        link.cut()  # the store goes away mid-run
        out, err = load.communicate(timeout=300)
        committed = _stored(db, "gone", store)
        assert load.returncode == 1, (out, err)
        assert err.startswith("Error: ") and f"the lake's data at s3://{BUCKET}/gone/" in err, err
        assert "Traceback" not in err and SECRET_KEY not in out + err
        print(f"\nthe cut run said: {err.strip()}")
        assert stored <= committed < total, "killed mid-run: what committed stays, the rest was not stored"
        link.restore()
        rerun = _newsflow(["load", str(records), "--json"], env)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["articles_stored"] == total - committed
    env = store.env() | {"NEWSFLOW_DATA_PATH": f"s3://{BUCKET}/gone/", "NEWSFLOW_DB": str(db)}
    ids = _newsflow(["sql", "SELECT count(*), count(DISTINCT external_id) FROM articles", "-f", "csv"], env)
    assert ids.stdout.splitlines()[1] == f"{total},{total}"
    # A writer killed between its upload and its commit leaves a file nothing references: an orphan.
    orphan = f"s3://{BUCKET}/gone/main/articles/ducklake-left-by-a-killed-writer.parquet"
    _s3_connection(store).execute(f"COPY (SELECT 1 AS n) TO '{orphan}' (FORMAT parquet)")
    checked = _newsflow(["check", "--orphan-grace-hours", "0", "--json"], env)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["rules_broken"] == [] and report["missing"] == [] and report["data_files"] > 0
    assert orphan in report["orphans"]
    # What the cut run uploaded but never committed is an orphan; maintenance deletes it from the bucket.
    prefect = environment(prefect_harness) | {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"}
    done = _newsflow(["maintenance", "--orphan-grace-hours", "0"], {**prefect, **env})
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout)["orphans_deleted"] == len(report["orphans"])
    again = json.loads(_newsflow(["check", "--orphan-grace-hours", "0", "--json"], env).stdout)
    assert again["orphans"] == [] and again["missing"] == []
    assert orphan.removeprefix(f"s3://{BUCKET}/") not in " ".join(_objects(store, "gone/"))
    left = len(report["orphans"]) - 1
    print(f"\ncut after {committed} of {total} committed; orphans the cut run left: {left}")


def test_a_persistent_duckdb_secret_the_user_names_reaches_the_store_without_aws_variables(
    store: ObjectStore, tmp_path: Path
) -> None:
    home = tmp_path / "home"  # DuckDB keeps persistent secrets in ~/.duckdb/stored_secrets
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False,
                                 "secret_directory": str(home / ".duckdb" / "stored_secrets")})  # fmt: skip
    con.execute(f"LOAD '{extension_file('httpfs')}'")
    con.execute(
        f"CREATE PERSISTENT SECRET team_lake (TYPE s3, KEY_ID '{ACCESS_KEY}', SECRET '{SECRET_KEY}', "
        f"ENDPOINT '{store.endpoint.removeprefix('http://')}', USE_SSL false, URL_STYLE 'path', "
        "REGION 'us-east-1')"
    )
    con.close()
    db = tmp_path / "named.ducklake"
    env = {name: value for name, value in os.environ.items() if not name.startswith("AWS_")}
    env |= {"HOME": str(home), "NEWSFLOW_DB": str(db), "NEWSFLOW_DATA_PATH": f"s3://{BUCKET}/named/"}
    newsflow = str(Path(sys.executable).parent / "newsflow")
    records = _amazon_jsonl(tmp_path / "amazon.jsonl")

    def run(*args: str, secret: str) -> subprocess.CompletedProcess[str]:
        named = env | {"NEWSFLOW_S3_SECRET": secret}
        return subprocess.run([newsflow, *args], env=named, capture_output=True, text=True, timeout=300)

    loaded = run("load", str(records), secret="team_lake")
    assert loaded.returncode == 0, loaded.stderr
    counted = run("sql", "SELECT count(*) FROM articles", "-f", "csv", secret="team_lake")
    assert counted.stdout.splitlines()[1:] == ["12"]
    assert any(key.endswith(".parquet") for key in _objects(store, "named/"))
    unknown = run("sql", "SELECT count(*) FROM articles", secret="their_lake")
    assert unknown.returncode == 1 and len(unknown.stderr.strip().splitlines()) == 1
    assert unknown.stderr.startswith("Error: NEWSFLOW_S3_SECRET names the DuckDB secret 'their_lake'")
    for done in (loaded, counted, unknown):
        assert SECRET_KEY not in done.stdout + done.stderr


def test_a_backfill_regroup_search_and_the_web_page_on_a_lake_in_a_bucket(
    store: ObjectStore, archive_env: ArchiveSite, prefect_harness: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    from newsflow.flows.backfill import backfill

    db = tmp_path / "archive.ducklake"
    lake = store.env() | {"NEWSFLOW_DATA_PATH": f"s3://{BUCKET}/archive/", "NEWSFLOW_DB": str(db)}
    for name, value in lake.items():
        monkeypatch.setenv(name, value)
    summary = backfill(**WINDOW, sources=["cc-news"], db=str(db), allow_private_networks=True)
    assert summary["articles_stored"] == len(expected(archive_env.archive)) == 11
    env = environment(prefect_harness) | {"PREFECT_LOGGING_HANDLERS_CONSOLE_LEVEL": "WARNING"} | lake
    regrouped = _newsflow(["regroup", "--since", "2021-12-01", "--until", "2022-02-28"], env)
    assert regrouped.returncode == 0, regrouped.stderr[-3000:]
    urls = _newsflow(["sql", "SELECT url FROM articles ORDER BY url", "-f", "csv"], env)
    assert set(urls.stdout.splitlines()[1:]) == expected(archive_env.archive)
    title = _newsflow(["sql", "SELECT title FROM articles ORDER BY url LIMIT 1", "-f", "csv"], env)
    word = max(title.stdout.splitlines()[1].split(), key=len).strip('",.:')
    found = _newsflow(["search", word, "-f", "csv"], env)
    assert found.returncode == 0 and len(found.stdout.splitlines()) >= 2, found.stdout + found.stderr
    base = next(web := running_web(db, os.environ | lake))
    try:
        with urllib.request.urlopen(base + "/?since=all", timeout=30) as page:
            assert page.status == 200 and word in page.read().decode()
        with urllib.request.urlopen(base + "/metrics", timeout=30) as metrics:
            assert "newsflow_articles" in metrics.read().decode()
    finally:
        web.close()
    assert _objects(store, "archive/"), "the data is in the bucket"
    for done in (regrouped, urls, found):
        assert SECRET_KEY not in done.stdout + done.stderr
