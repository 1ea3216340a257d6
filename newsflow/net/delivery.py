"""Sending alerts: a signed JSON webhook, or any service Apprise knows (mail, Slack, ntfy, Matrix, ...).

The webhook is a ``POST`` of the alert's JSON body, byte for byte the same on every try, with headers
``X-Newsflow-Event`` (the event's name), ``X-Newsflow-Delivery`` (the alert's id: the same on a retry, so a
receiver can drop a repeat) and, when the rule names a secret's variable, ``X-Newsflow-Signature:
sha256=<hex HMAC-SHA256 of the body>``. Webhook and Apprise URLs come from the rules a user set, so they
may point at the user's own network (the fetch policy for feeds does not apply). A ``${NAME}`` in either is
replaced by that environment variable when sending, so tokens need not sit in the rules (which the
warehouse keeps).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
from dataclasses import dataclass
from typing import Any

import httpx

USER_AGENT = "newsflow-alerts"
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class MissingVariableError(LookupError):
    """A ``${NAME}`` of a URL names a variable that is not set."""


def expanded(url: str) -> str:
    """``url`` with each ``${NAME}`` replaced by the environment variable NAME.

    Raises:
        MissingVariableError: a named variable is not set (the message names it, never a value).
    """

    def value(match: re.Match[str]) -> str:
        found = os.environ.get(match.group(1))
        if found is None:
            raise MissingVariableError(f"{match.group(1)} is not set")
        return found

    return _VARIABLE.sub(value, url)


@dataclass(frozen=True)
class DeliveryTarget:
    """One alert to send: its id, event name, JSON body, and the timeouts to send it with."""

    alert_id: str
    event: str
    body: str
    connect_timeout: float = 10.0
    total_timeout: float = 30.0


def signature(secret: str, body: bytes) -> str:
    """The ``X-Newsflow-Signature`` value of ``body``: ``sha256=`` and the hex HMAC-SHA256 with ``secret``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(target: DeliveryTarget, url: str, secret_env: str | None) -> str | None:
    """POST the alert to ``url``; None when it answered 2xx, else why not (never the secret)."""
    body = target.body.encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Newsflow-Event": target.event,
        "X-Newsflow-Delivery": target.alert_id,
    }
    if secret_env is not None:
        secret = os.environ.get(secret_env)
        if not secret:
            return f"{secret_env} is not set: the webhook is not sent unsigned"
        headers["X-Newsflow-Signature"] = signature(secret, body)
    timeout = httpx.Timeout(target.total_timeout, connect=target.connect_timeout)
    try:
        response = httpx.post(
            expanded(url), content=body, headers=headers, timeout=timeout, follow_redirects=False
        )
    except MissingVariableError as exc:
        return f"{url}: {exc}"
    except httpx.HTTPError as exc:
        return f"{url}: {type(exc).__name__}"  # the URL as written: its ${...} stay unexpanded
    if 200 <= response.status_code < 300:
        return None
    return f"{url} answered HTTP {response.status_code}"


def send_apprise(target: DeliveryTarget, url: str) -> str | None:
    """Notify through Apprise (title: the headline and its outlets; body: the articles); None when Apprise
    reports it sent, else why not (the URL's scheme only: Apprise URLs hold tokens)."""
    import apprise

    scheme = url.split("://", 1)[0]
    notifier = apprise.Apprise()
    try:
        full = expanded(url)
    except MissingVariableError as exc:
        return f"{scheme}://...: {exc}"
    if not notifier.add(full):
        return f"Apprise does not understand the {scheme}:// URL"
    payload = json.loads(target.body)
    if not notifier.notify(title=_title(payload), body=_text(payload)):
        return f"Apprise could not deliver to {scheme}://..."
    return None


def _title(payload: dict[str, Any]) -> str:
    if payload.get("feed_url"):
        return f"newsflow: feed failing: {payload.get('feed_name') or payload['feed_url']}"
    outlets = payload.get("outlet_count")
    return f"newsflow [{payload.get('watch')}]: {payload.get('headline')} ({outlets} outlets)"


def _text(payload: dict[str, Any]) -> str:
    if payload.get("feed_url"):
        return (
            f"{payload['feed_url']} failed {payload.get('failed_polls_in_a_row')} polls in a row"
            + (f", paused: {payload['paused_reason']}" if payload.get("paused") else "")
            + (f"; last error: {payload['last_error']}" if payload.get("last_error") else "")
        )
    lines = [f"Outlets: {', '.join(payload.get('outlets') or [])}"]
    lines += [
        f"- {a.get('site')}: {a.get('title')} {a.get('url') or ''}".rstrip()
        for a in payload.get("articles", [])
    ]
    if payload.get("story_url"):
        lines.append(payload["story_url"])
    return "\n".join(lines)
