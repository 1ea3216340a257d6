"""Credentials for lake data (and exports) on S3-compatible storage, from the standard AWS variables.

DuckDB's httpfs reads S3 settings from a secret, not from the environment, so each connection of a lake
whose data path is ``s3://...`` either uses a persistent DuckDB secret the user names
(``NEWSFLOW_S3_SECRET``) or gets a temporary secret made from ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` (else ``AWS_DEFAULT_REGION``) and
``AWS_ENDPOINT_URL`` (an ``http://`` endpoint means no TLS; an endpoint that is not AWS's means path-style
URLs, as MinIO, SeaweedFS and most other servers want). An export to ``s3://`` uploads through pyarrow's S3
filesystem with the same settings. The secret lives in the process only; it is never logged or put in a
message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import duckdb

from newsflow.errors import ConfigError

if TYPE_CHECKING:
    from pyarrow.fs import S3FileSystem

OBJECT_STORE_PREFIXES = ("s3://", "s3a://", "s3n://", "r2://", "gcs://", "gs://")
_SECRET = "newsflow_s3"


def on_object_store(data_path: str) -> bool:
    """Whether lake data at ``data_path`` lives on object storage (httpfs reads and writes it)."""
    return data_path.startswith(OBJECT_STORE_PREFIXES)


@dataclass(frozen=True)
class S3Settings:
    """What the AWS variables say about an S3-compatible store."""

    region: str
    key_id: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)
    session_token: str = field(default="", repr=False)
    endpoint: str = ""  # host[:port][/path], empty: AWS
    use_ssl: bool = True
    path_style: bool = False


def s3_settings(env: Mapping[str, str]) -> S3Settings | None:
    """The store the AWS variables in ``env`` describe (None when none is set: the libraries' defaults).

    Raises:
        ConfigError: ``AWS_ENDPOINT_URL`` is not an http(s) URL, or only one of the key pair is set.
    """
    key, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    endpoint = env.get("AWS_ENDPOINT_URL", "")
    if not (key or secret or endpoint):
        return None
    if bool(key) != bool(secret):
        raise ConfigError("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or neither)")
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
    settings = S3Settings(region, key, secret, env.get("AWS_SESSION_TOKEN", ""))
    if not endpoint:
        return settings
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"AWS_ENDPOINT_URL must be an http:// or https:// URL, not {endpoint!r}")
    return S3Settings(
        region, key, secret, settings.session_token, endpoint=parts.netloc + parts.path.rstrip("/"),
        use_ssl=parts.scheme == "https", path_style=not parts.netloc.endswith(".amazonaws.com"),
    )  # fmt: skip


def s3_secret_sql(env: Mapping[str, str]) -> str | None:
    """The CREATE SECRET statement for the AWS variables in ``env`` (None when none is set)."""
    store = s3_settings(env)
    if store is None:
        return None
    options = {"REGION": store.region}
    if store.key_id:
        options |= {"KEY_ID": store.key_id, "SECRET": store.secret}
    if store.session_token:
        options["SESSION_TOKEN"] = store.session_token
    if store.endpoint:
        options["ENDPOINT"] = store.endpoint
    quoted = ", ".join(f"{name} {_quote(value)}" for name, value in options.items())
    use_ssl = "true" if store.use_ssl else "false"
    url_style = _quote("path" if store.path_style else "vhost")
    return (
        f"CREATE OR REPLACE TEMPORARY SECRET {_SECRET} (TYPE s3, {quoted}, USE_SSL {use_ssl},"
        f" URL_STYLE {url_style})"
    )


def set_s3_secret(con: duckdb.DuckDBPyConnection, env: Mapping[str, str]) -> None:
    """Give ``con`` the S3 secret of ``env`` (see :func:`s3_secret_sql`).

    Raises:
        ConfigError: the variables are inconsistent, or DuckDB refuses the secret (the message names the
            variables, never their values).
    """
    sql = s3_secret_sql(env)
    if sql is None:
        return
    try:
        con.execute(sql)
    except duckdb.Error as exc:
        raise ConfigError(
            f"DuckDB refused the S3 credentials from the AWS_* variables ({type(exc).__name__})"
        ) from None


def use_s3_secret(con: duckdb.DuckDBPyConnection, name: str | None, env: Mapping[str, str]) -> None:
    """Reach the store with the user's own DuckDB secret ``name`` (a persistent one, which DuckDB loads
    from its secret directory), else with one made from the AWS variables in ``env``.

    Raises:
        ConfigError: no secret of that name exists, or the AWS variables are inconsistent or refused.
    """
    if name is None:
        set_s3_secret(con, env)
        return
    rows = con.execute("SELECT type FROM duckdb_secrets() WHERE name = ?", [name]).fetchall()
    if not rows:
        raise ConfigError(
            f"NEWSFLOW_S3_SECRET names the DuckDB secret {name!r}, which this process does not have: create "
            f"it once per machine with CREATE PERSISTENT SECRET {name} (TYPE s3, ...), or unset "
            "NEWSFLOW_S3_SECRET to use the AWS_* variables"
        )
    if rows[0][0] != "s3":
        raise ConfigError(f"NEWSFLOW_S3_SECRET names the DuckDB secret {name!r} of type {rows[0][0]}, not s3")


def s3_filesystem(env: Mapping[str, str]) -> S3FileSystem:
    """pyarrow's S3 filesystem for the AWS variables in ``env`` (its own defaults when none is set)."""
    from pyarrow.fs import S3FileSystem

    store = s3_settings(env)
    if store is None:
        return S3FileSystem()
    return S3FileSystem(
        access_key=store.key_id or None, secret_key=store.secret or None,
        session_token=store.session_token or None, region=store.region,
        endpoint_override=store.endpoint or None, scheme="https" if store.use_ssl else "http",
        force_virtual_addressing=not store.path_style and bool(store.endpoint),
    )  # fmt: skip


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
