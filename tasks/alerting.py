"""Alerts: decided in the transaction that stores what sets them off, delivered after the commit.

- Watches: when a batch's articles join (or start) stories, each watch looks at those stories; a story
  with an article matching the watch's query that has reached ``min_outlets`` outlets is alerted once per
  (watch, story); with ``follow_ups`` again each time it gains outlets; ``min_outlets = 0`` alerts each
  new matching article.
- Feed health: when polls are recorded, a feed that failed ``feed_failures`` polls in a row, or is paused,
  is alerted once per failing spell (until it succeeds again).

Each alert also goes out as a Prefect event right after its commit (``newsflow.story.threshold``, ...), for
automations in Prefect's UI. Deliveries (the signed webhook, Apprise URLs) are sent by
:func:`deliver_alerts` at the end of a run, or by ``newsflow alerts --retry``; a failed one is retried with
backoff by later runs and is never sent again once the receiver acknowledged it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb

from newsflow.clock import utcnow
from newsflow.net.delivery import DeliveryTarget, send_apprise, send_webhook
from newsflow.query import parse_query
from newsflow.rules.model import Delivery, FeedHealthAlert, RuleSet, Watch
from newsflow.settings import Settings
from newsflow.tasks.filtering import rules_in_force
from newsflow.warehouse import alerts as alerts_table
from newsflow.warehouse import grouping as grouping_table
from newsflow.warehouse.alerts import NewAlert, WatchedStory
from newsflow.warehouse.lakehouse import Warehouse

logger = logging.getLogger(__name__)

#: How long a sender holds the deliveries it took before another may take them (a sender that died).
CLAIM_HOLD = timedelta(minutes=5)
#: Longest wait between two tries of one delivery.
MAX_RETRY_WAIT = timedelta(hours=6)
#: Articles listed in a story alert's body, newest first.
ARTICLES_PER_ALERT = 20

THRESHOLD = "newsflow.story.threshold"
FOLLOW_UP = "newsflow.story.follow_up"
ARTICLE_MATCH = "newsflow.article.match"
FEED_FAILING = "newsflow.feed.failing"


@dataclass(frozen=True)
class DeliveryReport:
    """What one delivery pass did."""

    delivered: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"delivered": self.delivered, "failed": self.failed}


def alert_id(*parts: str) -> str:
    """A stable id for what an alert is about: the same parts always give the same id."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


# ---- deciding (inside the store transaction) ------------------------------------------------------------


def decide_watch_alerts(
    con: duckdb.DuckDBPyConnection,
    rules: RuleSet,
    new_article_ids: Collection[str],
    settings: Settings,
    run_id: str | None,
    now: datetime,
) -> list[NewAlert]:
    """Alerts of every watch for the stories the batch's new articles are in; stored (once each by id) in
    the caller's transaction. Returns those that are new."""
    if not rules.watches or not new_article_ids:
        return []
    touched = set(grouping_table.stories_of(con, new_article_ids).values())
    decided: list[NewAlert] = []
    for watch in rules.watches:
        stories = alerts_table.watched_stories(con, touched, parse_query(watch.query))
        alerted = alerts_table.alerted_outlets(con, watch.name, [s.story_id for s in stories])
        for story in stories:
            decided += _story_alerts(
                watch, story, alerted.get(story.story_id), set(new_article_ids), settings, now
            )
    return alerts_table.add_alerts(con, decided, run_id, now)


def _story_alerts(
    watch: Watch,
    story: WatchedStory,
    alerted: int | None,
    new_ids: set[str],
    settings: Settings,
    now: datetime,
) -> list[NewAlert]:
    outlets = len(story.sites)
    targets = _targets(watch.delivery)
    if watch.min_outlets == 0:
        alerts = []
        for article in sorted(story.matching & new_ids):
            key = alert_id("article", watch.name, article)
            payload = _story_payload(key, ARTICLE_MATCH, watch, story, settings, now, only=article)
            alerts.append(NewAlert(key, ARTICLE_MATCH, watch.name, payload, targets, story.story_id, article,
                                   outlets=outlets))  # fmt: skip
        return alerts
    if outlets < watch.min_outlets:
        return []
    if alerted is None:
        key, event = alert_id("story", watch.name, story.story_id), THRESHOLD
    elif watch.follow_ups and outlets > alerted:
        key, event = alert_id("story", watch.name, story.story_id, str(outlets)), FOLLOW_UP
    else:
        return []
    payload = _story_payload(key, event, watch, story, settings, now)
    return [NewAlert(key, event, watch.name, payload, targets, story.story_id, outlets=outlets)]


def _story_payload(
    key: str,
    event: str,
    watch: Watch,
    story: WatchedStory,
    settings: Settings,
    now: datetime,
    only: str | None = None,
) -> dict[str, Any]:
    articles = [a for a in story.articles if only is None or a["article_id"] == only][:ARTICLES_PER_ALERT]
    payload: dict[str, Any] = {
        "alert_id": key,
        "event": event,
        "watch": watch.name,
        "query": watch.query,
        "story_id": story.story_id,
        "headline": story.headline,
        "outlets": story.sites,
        "outlet_count": len(story.sites),
        "articles": [
            {
                "site": a["site"],
                "title": a["title"],
                "url": a["url"],
                "published_at": a["published_at"].isoformat() if a["published_at"] else None,
            }
            for a in articles
        ],
        "decided_at": now.isoformat(),
    }
    if settings.web_base_url:
        payload["story_url"] = f"{settings.web_base_url.rstrip('/')}/story/{story.story_id}"
    return payload


def decide_feed_alerts(
    con: duckdb.DuckDBPyConnection,
    rules: RuleSet,
    feed_urls: Collection[str],
    run_id: str | None,
    now: datetime,
) -> list[NewAlert]:
    """Alerts of every feed-health rule for the polled feeds that are failing or paused, once per failing
    spell (a spell ends with a successful poll)."""
    decided = []
    for rule in rules.alerts:
        for feed in alerts_table.failing_feeds(con, rule.feed_failures, feed_urls):
            spell = feed["last_success_at"].isoformat() if feed["last_success_at"] else "never"
            key = alert_id("feed", rule.name, feed["url"], spell)
            decided.append(
                NewAlert(key, FEED_FAILING, rule.name, _feed_payload(rule, feed, key, now),
                         _targets(rule.delivery), feed_url=feed["url"])
            )  # fmt: skip
    return alerts_table.add_alerts(con, decided, run_id, now)


def _feed_payload(rule: FeedHealthAlert, feed: dict[str, Any], key: str, now: datetime) -> dict[str, Any]:
    last = feed["last_success_at"]
    return {
        "event": FEED_FAILING, "alert": rule.name, "alert_id": key, "feed_url": feed["url"],
        "feed_name": feed["name"] or feed["title"], "failed_polls_in_a_row": feed["error_streak"],
        "paused": bool(feed["paused"]), "paused_reason": feed["paused_reason"],
        "last_success_at": last.isoformat() if last else None, "last_error": feed["last_error"],
        "decided_at": now.isoformat(),
    }  # fmt: skip


def _targets(delivery: Delivery) -> tuple[str, ...]:
    webhook = ("webhook",) if delivery.webhook else ()
    return webhook + tuple(f"notify:{n}" for n in range(len(delivery.notify)))


# ---- after the commit --------------------------------------------------------------------------------------


def emit_events(alerts: Sequence[NewAlert]) -> None:
    """Each alert as a Prefect event (for automations), with the story or feed as its resource and the
    watch or alert as a related resource, sent to the Prefect API of ``PREFECT_API_URL`` (a flow run's;
    without one, nothing is sent)."""
    if not alerts:
        return
    from prefect.events import emit_event
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return  # no Prefect server to tell (`newsflow load` on its own): Prefect would start a temporary one

    for alert in alerts:
        kind, subject, name, role = (
            ("feed", alert.feed_url, alert.payload.get("feed_name"), "alert")
            if alert.feed_url is not None
            else ("story", alert.story_id, alert.payload.get("headline"), "watch")
        )
        resource = {
            "prefect.resource.id": f"newsflow.{kind}.{subject}",
            "prefect.resource.name": str(name or subject),
        }
        related = [{"prefect.resource.id": f"newsflow.{role}.{alert.rule}", "prefect.resource.role": role,
                    "prefect.resource.name": alert.rule}]  # fmt: skip
        try:
            emit_event(alert.event, resource=resource, related=related, payload=alert.payload, id=None)
        except Exception as exc:  # noqa: BLE001 - an event is a courtesy; the alert itself is stored
            logger.warning(
                "could not emit Prefect event %s for alert %s: %s", alert.event, alert.alert_id, exc
            )


def deliver_alerts(settings: Settings, *, retry_now: bool = False) -> DeliveryReport:
    """Send the deliveries that are due (every pending one with ``retry_now``); each one taken by this
    sender alone, its outcome recorded: delivered, or due again after a backoff."""
    warehouse = Warehouse.open(settings)
    now = utcnow()
    with warehouse.write() as con:
        due = alerts_table.claim_due(con, now, CLAIM_HOLD, retry_now=retry_now)
        rules = rules_in_force(con) if due else RuleSet()
    if not due:
        return DeliveryReport()
    outcomes = [(delivery, _send(delivery, rules, settings)) for delivery in due]
    finished = utcnow()
    with warehouse.write() as con:
        for delivery, error in outcomes:
            wait = min(MAX_RETRY_WAIT, timedelta(seconds=settings.alert_retry_backoff * 2**delivery.attempts))
            alerts_table.finish_delivery(con, delivery, error, finished, finished + wait)
    failed = [(d, e) for d, e in outcomes if e is not None]
    for delivery, error in failed:
        logger.warning("alert %s to %s of %s not delivered (try %d): %s", delivery.alert_id, delivery.target,
                       delivery.rule, delivery.attempts + 1, error)  # fmt: skip
    return DeliveryReport(len(outcomes) - len(failed), len(failed))


def _send(delivery: alerts_table.DueDelivery, rules: RuleSet, settings: Settings) -> str | None:
    """Send one delivery; None when the receiver acknowledged it, else why not."""
    places = {watch.name: watch.delivery for watch in rules.watches}
    places |= {alert.name: alert.delivery for alert in rules.alerts}
    place = places.get(delivery.rule)
    if place is None:
        return f"{delivery.rule!r} is no longer in the rules (set it again to deliver this alert)"
    target = DeliveryTarget(delivery.alert_id, delivery.event, delivery.payload, settings.connect_timeout,
                            settings.total_timeout)  # fmt: skip
    if delivery.target == "webhook":
        if place.webhook is None:
            return f"{delivery.rule!r} has no webhook any more"
        return send_webhook(target, place.webhook, place.secret_env)
    index = int(delivery.target.removeprefix("notify:"))
    if index >= len(place.notify):
        return f"{delivery.rule!r} has no notify URL number {index + 1} any more"
    return send_apprise(target, place.notify[index])
