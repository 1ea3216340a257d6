"""``newsflow export``: a stream of record batches written to Parquet, CSV or JSON Lines.

Batches are written as they come (memory stays at a batch or two, whatever the table's size), into a
partial file beside the target that replaces it only when complete: an export that fails leaves no
half-written file and the previous one untouched.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from newsflow.cli.display import json_value, plain_text
from newsflow.errors import ConfigError, ExportError
from newsflow.warehouse.query import query_errors

FORMATS = ("parquet", "csv", "jsonl")
_EXTENSIONS = {".parquet": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def export_format(path: Path, fmt: str | None) -> str:
    """``fmt``, or the format ``path``'s extension names.

    Raises:
        ConfigError: no format given and the extension names none.
    """
    if fmt:
        return fmt
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise ConfigError(
            f"cannot tell the format of {path}: name it .parquet, .csv or .jsonl, or pass --format"
        )
    return found


def write_export(
    batches: pa.RecordBatchReader, path: Path, fmt: str, on_batch: Callable[[int], None] = lambda rows: None
) -> int:
    """Write every batch to ``path`` in ``fmt``; returns the rows written. ``on_batch`` gets the running
    row count after each batch.

    Raises:
        QueryError: the query failed while it streamed (nothing is left at ``path``).
    """
    partial = path.with_name(f".{path.name}.partial")
    writers = {"parquet": _write_parquet, "csv": _write_csv, "jsonl": _write_jsonl}
    try:
        with query_errors():
            rows = writers[fmt](batches, partial, on_batch)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return rows


def upload_export(local: Path, url: str, env: Mapping[str, str]) -> None:
    """Copy a finished export to ``s3://bucket/key`` with the AWS variables of ``env``; the object
    appears only once whole (an S3 upload is atomic).

    Raises:
        ExportError: the store refused the upload or could not be reached (no credential in the message).
    """
    from newsflow.warehouse.objectstore import s3_filesystem

    try:
        with (
            local.open("rb") as source,
            s3_filesystem(env).open_output_stream(url.removeprefix("s3://")) as out,
        ):
            shutil.copyfileobj(source, out, 1 << 20)
    except OSError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"cannot upload the export to {url}: {first} (check the AWS_* variables)") from None


def _write_parquet(batches: pa.RecordBatchReader, path: Path, on_batch: Callable[[int], None]) -> int:
    rows = 0
    with pq.ParquetWriter(path, batches.schema, compression="zstd") as writer:
        for batch in batches:
            writer.write_batch(batch)
            rows += batch.num_rows
            on_batch(rows)
    return rows


def _write_csv(batches: pa.RecordBatchReader, path: Path, on_batch: Callable[[int], None]) -> int:
    """CSV as ``newsflow sql -f csv`` writes it: lists as ``a, b``, times in UTC to the second."""
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(batches.schema.names)
        for batch in batches:
            columns = batch.to_pydict().values()
            writer.writerows([[plain_text(value) for value in row] for row in zip(*columns, strict=True)])
            rows += batch.num_rows
            on_batch(rows)
    return rows


def _write_jsonl(batches: pa.RecordBatchReader, path: Path, on_batch: Callable[[int], None]) -> int:
    """One JSON object per line, UTF-8, times as ISO 8601 UTC, lists as arrays."""
    rows = 0
    with path.open("w", encoding="utf-8") as out:
        for batch in batches:
            out.writelines(
                json.dumps(json_value(row), ensure_ascii=False) + "\n" for row in batch.to_pylist()
            )
            rows += batch.num_rows
            on_batch(rows)
    return rows
