"""The Starlette application of ``newsflow web``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from newsflow.clock import parse_since
from newsflow.errors import NewsflowError, NotFoundError
from newsflow.settings import Settings
from newsflow.tasks.filtering import rules_in_force
from newsflow.web.atom import FEED_STORIES, stories_feed
from newsflow.web.metrics import metrics_response

#: Stories on the river, and the member articles shown under each.
RIVER_STORIES = 30
RIVER_MEMBERS = 8
#: Latest matching stories listed under each watch on /watches.
WATCH_STORIES = 5
ATOM = "application/atom+xml; charset=utf-8"


def watched(
    con: Any, query_text: str, limit: int
) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]]]:
    """The stories with an article matching a watch's query, the latest changed first, and their members."""
    from newsflow.query import parse_query
    from newsflow.warehouse import stories as stories_table
    from newsflow.warehouse.search import matching_articles

    matches = matching_articles(con, parse_query(query_text))
    stories = stories_table.recent_stories(con, limit=limit, article_ids=matches) if matches else []
    return stories, stories_table.members_of(con, [s["story_id"] for s in stories])


def safe_href(url: str | None) -> str | None:
    """``url`` when it is an http(s) link, else None: a feed's ``javascript:`` or ``data:`` link is shown
    as text, never as a link."""
    if not url:
        return None
    try:
        scheme = urlsplit(url.strip()).scheme.lower()
    except ValueError:
        return None
    return url if scheme in {"http", "https"} else None


def when(moment: datetime | None) -> str:
    return f"{moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if moment else "undated"


def counted(number: int, word: str) -> str:
    """``1 article``, ``5 articles``."""
    return f"{number} {word}{'' if number == 1 else 's'}"


def create_app(settings: Settings) -> Starlette:
    """The web app over the warehouse of ``settings``."""
    from newsflow.warehouse.lakehouse import Warehouse

    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,  # every string from a feed is escaped
        undefined=jinja2.StrictUndefined,
    )
    environment.filters.update(href=safe_href, when=when, counted=counted)
    templates = Jinja2Templates(env=environment)
    warehouse = Warehouse.open(settings)

    def page(request: Request, name: str, status: int = 200, **context: Any) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def river(request: Request) -> Response:
        from newsflow.clock import utcnow
        from newsflow.warehouse import stories as stories_table

        since = request.query_params.get("since", "7d")
        try:
            since_at = parse_since(since, utcnow())
        except NewsflowError as exc:
            return page(request, "error.html", 400, message=str(exc))
        with warehouse.read() as con:
            stories = stories_table.list_stories(con, since=since_at, min_outlets=1, limit=RIVER_STORIES)
            members = stories_table.members_of(con, [s["story_id"] for s in stories])
        return page(request, "river.html", stories=stories, members=members, shown=RIVER_MEMBERS, since=since)

    def story(request: Request) -> Response:
        from newsflow.warehouse import stories as stories_table
        from newsflow.warehouse.query import unique_id

        with warehouse.read() as con:
            try:
                story_id = unique_id(con, "stories", request.path_params["story_id"])
            except NotFoundError as exc:
                return page(request, "error.html", 404, message=str(exc))
            overview = stories_table.story_overview(con, story_id)
            members = stories_table.story_members(con, story_id)
        if overview is None:
            return page(request, "error.html", 404, message=f"story {story_id} has no articles")
        return page(request, "story.html", story=overview, members=members)

    def search(request: Request) -> Response:
        from newsflow.query import parse_query
        from newsflow.warehouse.search import search as run_search

        text = request.query_params.get("q", "").strip()
        if not text:
            return page(request, "search.html", q="", hits=None, error=None)
        try:
            query = parse_query(text)
        except NewsflowError as exc:
            return page(request, "search.html", 400, q=text, hits=None, error=str(exc))
        with warehouse.read() as con:
            hits = run_search(con, query, limit=50)
        return page(request, "search.html", q=text, hits=hits, error=None)

    def feeds(request: Request) -> Response:
        from newsflow.warehouse.feeds import feed_state, list_feeds

        with warehouse.read() as con:
            rows = list_feeds(con)
        return page(request, "feeds.html", feeds=[{**f, "state": feed_state(f)} for f in rows])

    def metrics(request: Request) -> Response:
        return metrics_response(warehouse)

    def base_of(request: Request) -> str:
        return (settings.web_base_url or str(request.base_url)).rstrip("/")

    def river_feed(request: Request) -> Response:
        from newsflow.warehouse import stories as stories_table

        with warehouse.read() as con:
            stories = stories_table.recent_stories(con, limit=FEED_STORIES)
            members = stories_table.members_of(con, [s["story_id"] for s in stories])
        document = stories_feed(
            base_of(request), "/feeds/stories.atom", "newsflow: stories", stories, members
        )
        return Response(document, media_type=ATOM)

    def watch_feed(request: Request) -> Response:
        name = request.path_params["name"].removesuffix(".atom")
        with warehouse.read() as con:
            watch = next((w for w in rules_in_force(con).watches if w.name == name), None)
            if watch is None:
                return page(request, "error.html", 404, message=f"no watch named {name!r}")
            stories, members = watched(con, watch.query, FEED_STORIES)
        title = f"newsflow: {name} ({watch.query})"
        document = stories_feed(base_of(request), f"/watch/{name}.atom", title, stories, members)
        return Response(document, media_type=ATOM)

    def watches(request: Request) -> Response:
        from newsflow.rules.describe import delivery

        with warehouse.read() as con:
            found = [(w, *watched(con, w.query, WATCH_STORIES)) for w in rules_in_force(con).watches]
        listed = [
            {"watch": w, "delivery": delivery(w.delivery), "stories": stories} for w, stories, _ in found
        ]
        return page(request, "watches.html", watches=listed)

    async def unavailable(request: Request, exc: Exception) -> Response:
        return page(request, "error.html", 503, message=str(exc))  # e.g. no warehouse yet

    return Starlette(
        routes=[
            Route("/", river),
            Route("/story/{story_id}", story),
            Route("/search", search),
            Route("/feeds", feeds),
            Route("/metrics", metrics),
            Route("/watches", watches),
            Route("/feeds/stories.atom", river_feed),
            Route("/watch/{name}", watch_feed),
        ],
        exception_handlers={NewsflowError: unavailable},
    )
