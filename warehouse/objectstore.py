"""Credentials for lake data on S3-compatible storage, from the standard AWS variables.

DuckDB's httpfs reads S3 settings from a secret, not from the environment, so each connection of a lake
whose data path is ``s3://...`` gets a temporary secret made from ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` (else ``AWS_DEFAULT_REGION``) and
``AWS_ENDPOINT_URL`` (an ``http://`` endpoint means no TLS; an endpoint that is not AWS's means path-style
URLs, as MinIO, SeaweedFS and most other servers want). The secret lives in the connection only; it is never
logged or put in a message.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

import duckdb

from newsflow.errors import ConfigError

OBJECT_STORE_PREFIXES = ("s3://", "s3a://", "s3n://", "r2://", "gcs://", "gs://")
_SECRET = "newsflow_s3"


def on_object_store(data_path: str) -> bool:
    """Whether lake data at ``data_path`` lives on object storage (httpfs reads and writes it)."""
    return data_path.startswith(OBJECT_STORE_PREFIXES)


def s3_secret_sql(env: Mapping[str, str]) -> str | None:
    """The CREATE SECRET statement for the AWS variables in ``env`` (None when none is set: DuckDB's
    defaults apply).

    Raises:
        ConfigError: ``AWS_ENDPOINT_URL`` is not an http(s) URL, or only one of the key pair is set.
    """
    key, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
    endpoint = env.get("AWS_ENDPOINT_URL", "")
    if not (key or secret or endpoint):
        return None
    if bool(key) != bool(secret):
        raise ConfigError("set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or neither)")
    options = {"REGION": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"}
    if key:
        options |= {"KEY_ID": key, "SECRET": secret}
    if env.get("AWS_SESSION_TOKEN"):
        options["SESSION_TOKEN"] = env["AWS_SESSION_TOKEN"]
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"AWS_ENDPOINT_URL must be an http:// or https:// URL, not {endpoint!r}")
        options |= {"ENDPOINT": parts.netloc + parts.path.rstrip("/")}
        use_ssl = "true" if parts.scheme == "https" else "false"
        url_style = "vhost" if parts.netloc.endswith(".amazonaws.com") else "path"
    else:
        use_ssl, url_style = "true", "vhost"
    quoted = ", ".join(f"{name} {_quote(value)}" for name, value in options.items())
    return (
        f"CREATE OR REPLACE TEMPORARY SECRET {_SECRET} (TYPE s3, {quoted}, USE_SSL {use_ssl},"
        f" URL_STYLE {_quote(url_style)})"
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


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
