"""Rules as lines a person reads (``newsflow rules list``, the web page)."""

from __future__ import annotations

from newsflow.rules.model import Delivery, FilterRule, RuleSet


def describe_rules(rules: RuleSet) -> list[tuple[str, str, str, str]]:
    """(kind, name, what it does, when) per rule, filters in the order they apply (blocks, then keeps)."""
    rows = [("filter", rule.name, rule.action, conditions(rule)) for rule in (*rules.blocks, *rules.keeps)]
    for watch in rules.watches:
        when = (
            f"a matching story reaches {watch.min_outlets} outlets"
            if watch.min_outlets
            else "every new match"
        )
        if watch.follow_ups and watch.min_outlets:
            when += ", then each outlet more"
        rows.append(("watch", watch.name, f"alert: {watch.query}", f"{when}; {delivery(watch.delivery)}"))
    for alert in rules.alerts:
        when = f"a feed fails {alert.feed_failures} polls in a row or is paused"
        rows.append(("alert", alert.name, "feed health", f"{when}; {delivery(alert.delivery)}"))
    return rows


def conditions(rule: FilterRule) -> str:
    """``title ~ /(?i)deal/ and language in de`` (every condition must hold)."""
    parts = [f"{field} ~ /{pattern.pattern}/" for field, pattern in rule.patterns]
    if rule.languages:
        parts.append(f"language in {', '.join(rule.languages)}")
    if rule.feeds:
        parts.append(f"feed like {', '.join(rule.feeds)}")
    if rule.min_words is not None:
        parts.append(f"at least {rule.min_words} words")
    if rule.max_age is not None:
        parts.append(f"published within {_duration(rule.max_age.total_seconds())}")
    return " and ".join(parts)


def delivery(target: Delivery) -> str:
    """Where alerts go, without secrets: the webhook's URL and the Apprise services' schemes."""
    places = []
    if target.webhook:
        places.append(f"webhook {target.webhook}" + (" (signed)" if target.secret_env else ""))
    places += [url.split("://", 1)[0] + "://..." for url in target.notify]
    return ", ".join(places) or "recorded only (newsflow alerts)"


def _duration(seconds: float) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds)}s"
