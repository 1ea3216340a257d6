"""Commands that show what is stored: stories, a story, an article, search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from newsflow.cli.options import db_option, existing_warehouse, format_option, since_option
from newsflow.clock import parse_since
from newsflow.errors import NotFoundError


@click.command()
@since_option(
    "24h",
    "Stories with an article published since (a story of undated articles only counts at the time newsflow "
    "first saw them)",
)
@click.option(
    "--min-outlets", type=click.IntRange(min=1), default=1, show_default=True, help="Fewest outlets."
)
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Most stories.")
@db_option
@format_option
def stories(since: str, min_outlets: int, limit: int, db: Path | None, fmt: str) -> None:
    """List stories, biggest first, with their outlets and headline.

    The window is on publication time, so a backfill or `load` of older articles shows with `--since all`
    (or a longer window). The table shows when each story's latest article appeared; -f csv/json also give
    first_at. Ids print whole; `newsflow story` also takes a unique prefix.

    Example: newsflow stories --since 7d --min-outlets 3
    """
    from newsflow.cli.display import render_rows
    from newsflow.clock import utcnow
    from newsflow.warehouse import stories as stories_table
    from newsflow.warehouse.lakehouse import Warehouse

    settings = existing_warehouse(db)
    since_at = parse_since(since, utcnow())
    with Warehouse.open(settings).read() as con:
        rows = stories_table.list_stories(con, since=since_at, min_outlets=min_outlets, limit=limit)
        total, newest = stories_table.newest_story(con) if not rows else (0, None)
    columns = ["story_id", "articles", "outlets", "first_at", "last_at", "headline", "sites"]
    if fmt == "table":
        columns.remove("first_at")
    click.echo(render_rows(columns, [tuple(r[c] for c in columns) for r in rows], fmt))
    if not rows and total:
        click.echo(
            f"no story has an article published {'since' if '-' in since else 'in the last'} {since} "
            f"({total} stories in all, the latest article "
            f"at {newest:%Y-%m-%d %H:%M:%S}): try --since all",
            err=True,
        )


@click.command()
@click.argument("story_id")
@click.option(
    "--why", is_flag=True, help="Explain each member: its decision's score parts and shared names, and for "
    "a near-duplicate the shingles it shares with its original once shared boilerplate lines are set aside.",
)  # fmt: skip
@db_option
@format_option
def story(story_id: str, why: bool, db: Path | None, fmt: str) -> None:
    """Show one story: its articles with outlet, time, title, URL, copy marks and grouping decision.

    STORY_ID is a story id or a unique prefix of one (at least 4 characters).
    Example: newsflow story s_0123456789abcdef --why
    """
    from newsflow.cli.display import render_json, render_rows
    from newsflow.warehouse import stories as stories_table
    from newsflow.warehouse.articles import article_texts
    from newsflow.warehouse.lakehouse import Warehouse
    from newsflow.warehouse.query import unique_id

    settings = existing_warehouse(db)
    texts: dict[str, str] = {}
    with Warehouse.open(settings).read() as con:
        story_id = unique_id(con, "stories", story_id)
        overview = stories_table.story_overview(con, story_id)
        members = stories_table.story_members(con, story_id)
        if why:
            wanted = {m[k] for m in members for k in ("article_id", "duplicate_of") if m["duplicate_of"]}
            texts = article_texts(con, wanted)
    if overview is None:  # a story row without articles: released by a regroup in progress
        raise NotFoundError(f"story {story_id} has no articles (see `newsflow stories`)")
    if why:
        for member in members:
            member["why"] = explain(member, texts)
    if fmt == "json":
        click.echo(render_json({"story": overview, "articles": members}))
        return
    columns = ["article_id", "site", "published", "title", "copy_of", "copy", "decision", "url"]
    rows = [
        (m["article_id"], m["site"], _published(m, fmt), m["title"], m["duplicate_of"], _copy_mark(m),
         _decision(m), m["url"])
        for m in members
    ]  # fmt: skip
    if fmt == "table":
        undated = overview["undated"]
        span = "first seen, no member is dated" if undated == overview["articles"] else "published"
        click.echo(
            f"{overview['headline'] or '(no headline)'}\n{story_id}: {overview['articles']} articles "
            f"({overview['originals']} originals) from {overview['outlets']} outlets"
            + (
                f", {undated} undated (shown as 'seen' times; they do not stretch the span)"
                if undated
                else ""
            )
            + f"\n{overview['first_at']:%Y-%m-%d %H:%M:%S} .. {overview['last_at']:%Y-%m-%d %H:%M:%S} UTC"
            f" ({span})\n"
        )
    if why and fmt == "table":
        click.echo("\n\n".join(_why_lines(m) for m in members))
        return
    click.echo(render_rows(columns, rows, fmt))


def explain(member: dict[str, Any], texts: dict[str, str]) -> dict[str, Any]:
    """Why a member is in its story: the decision's score parts, and for a near-duplicate what it shares
    with its original once shared boilerplate lines are set aside."""
    from newsflow import stories
    from newsflow.stories import neardup

    out: dict[str, Any] = {"decision": member["reason"], "score": member["score"]}
    if member["reason"] in (stories.REASON_JOINED, stories.REASON_FOLLOW_UP, stories.REASON_NEW):
        days = member["days_apart"] or 0.0
        out |= {
            "term_similarity": member["term_similarity"],
            "entity_similarity": member["entity_similarity"],
            "member_similarity": member["member_similarity"],
            "days_apart": days,
            "time_factor": round(stories.time_factor(days), 3),
            "shared_names": list(member["shared_terms"] or []),
            "compared_with": member["best_other"],
        }
    original = member["duplicate_of"]
    if original:
        out["copy_of"] = {
            "article_id": original,
            "reason": member["dup_reason"],
            "score": member["dup_score"],
        }
        if member["dup_reason"] == neardup.DUP_REASON and original in texts and member["article_id"] in texts:
            evidence = neardup.copy_evidence(texts[member["article_id"]], texts[original])
            out["copy_of"] |= {
                "shared_lines_set_aside": evidence.set_aside_lines,
                "shingles_shared": evidence.shared,
                "shingles": evidence.total,
                "jaccard": round(evidence.jaccard, 3),
                "examples": list(evidence.examples),
            }
    return out


def _why_lines(member: dict[str, Any]) -> str:
    from newsflow.stories import DEFAULT_CONFIG, REASON_FOLLOW_UP, REASON_JOINED

    why = member["why"]
    head = f"{member['article_id']}  {member['site'] or '?'}  {(member['title'] or '(no title)')[:70]}"
    lines = [head]
    if "term_similarity" in why:
        config = DEFAULT_CONFIG
        verb = {
            REASON_JOINED: "joined",
            REASON_FOLLOW_UP: "joined as a follow-up",
        }.get(why["decision"], "started its own story; best other")
        lines.append(
            f"  {verb} {why['compared_with']}: score {why['score']:.3f} = ({config.term_weight} x terms "
            f"{why['term_similarity']:.2f} + {config.entity_weight} x names {why['entity_similarity']:.2f})"
            f" x time "
            f"{why['time_factor']:.2f} ({why['days_apart']:.1f} days apart)"
        )
        if why["member_similarity"] is not None:  # decisions before version 10 did not record it
            lines.append(
                f"  mean score against its members {why['member_similarity']:.3f}"
                f" (joining also needs {config.member_link} or more)"
            )
        if why["decision"] == REASON_FOLLOW_UP:
            lines.append(
                f"  rare names shared: {', '.join(why['shared_names'])} (more than {config.window_days:g}"
                f" days from the story, joining needs {config.follow_up_names} or more)"
            )
        else:
            lines.append(f"  shared names: {', '.join(why['shared_names']) or '(none)'}")
    elif why["decision"]:
        lines.append(f"  {why['decision']}" + (f" {why['score']:.3f}" if why["score"] is not None else ""))
    copy = why.get("copy_of")
    if copy:
        lines.append(f"  copy of {copy['article_id']} ({copy['reason']} {copy['score'] or 1.0:.2f})")
        if "shingles" in copy:
            lines.append(
                f"  {copy['shingles_shared']} of its {copy['shingles']} word 3-shingles are in the original "
                f"(Jaccard {copy['jaccard']:.2f}; {copy['shared_lines_set_aside']} shared lines set aside)"
            )
            if copy["examples"]:
                lines.append("  e.g. " + " | ".join(f'"{g}"' for g in copy["examples"]))
    return "\n".join(lines)


def _published(member: dict[str, Any], fmt: str) -> Any:
    """A member's time: its publication time, or for an undated one (in a table) when it was first seen."""
    if member["dated"] or fmt != "table":
        return member["published"]
    return f"seen {member['published']:%Y-%m-%d %H:%M:%S}"


def _copy_mark(member: dict[str, Any]) -> str | None:
    if not member["duplicate_of"]:
        return None
    return f"{member['dup_reason']} {member['dup_score'] or 1.0:.2f}"


def _decision(member: dict[str, Any]) -> str | None:
    if not member["reason"]:
        return None
    return f"{member['reason']} {member['score']:.3f}"


@click.command()
@click.argument("article_id")
@db_option
@format_option
def article(article_id: str, db: Path | None, fmt: str) -> None:
    """Show one article: metadata, copy mark, story and the extracted text.

    ARTICLE_ID is an article id (as `newsflow story` lists them) or a unique prefix of one.
    Example: newsflow article 0f3c9a
    """
    from newsflow.cli.display import render_json, render_record, render_rows
    from newsflow.warehouse.articles import article_detail
    from newsflow.warehouse.lakehouse import Warehouse
    from newsflow.warehouse.query import unique_id

    settings = existing_warehouse(db)
    with Warehouse.open(settings).read() as con:
        article = article_detail(con, unique_id(con, "articles", article_id))
    assert article is not None  # unique_id found it in the same snapshot
    if fmt == "json":
        click.echo(render_json(article))
        return
    if fmt == "csv":
        click.echo(render_rows(list(article), [tuple(article.values())], "csv"))
        return
    text = article.pop("text")
    click.echo(article.pop("title") or "(no title)")
    click.echo(render_record([(name, value) for name, value in article.items() if value not in (None, [])]))
    click.echo("")
    click.echo(text)


@click.command()
@click.argument("query")
@since_option("all", "Only articles published since")
@click.option("--site", help="Only articles of this site (or its subdomains), e.g. reuters.com.")
@click.option("--story", "story_id", help="Only articles of this story (an id or a unique prefix).")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="Most hits.")
@db_option
@format_option
def search(
    query: str, since: str, site: str | None, story_id: str | None, limit: int, db: Path | None, fmt: str
) -> None:
    """Find articles by words in their title and text, best first (BM25), with a snippet.

    Every word must occur (in any form: "investing" finds "invest"); "a quoted phrase" must occur as
    written; -word excludes. Each hit shows its story and how many outlets cover it; -f csv/json give the
    snippet with matched words between ** and the story's outlets.

    Example: newsflow search 'anthropic amazon "4 billion"' --since 30d
    """
    from newsflow.cli.display import render_hits, render_rows
    from newsflow.clock import utcnow
    from newsflow.query import parse_query
    from newsflow.warehouse.lakehouse import Warehouse
    from newsflow.warehouse.query import unique_id
    from newsflow.warehouse.search import marked, search

    parsed = parse_query(query)
    settings = existing_warehouse(db)
    with Warehouse.open(settings).read() as con:
        story = unique_id(con, "stories", story_id) if story_id else None
        hits = search(con, parsed, since=parse_since(since, utcnow()), site=site, story_id=story, limit=limit)
    if fmt == "table":
        click.echo(render_hits(hits))
        return
    columns = ["score", "article_id", "published_at", "site", "title", "url", "story_id", "story_outlets",
               "duplicate_of", "snippet"]  # fmt: skip
    rows = [(round(h.score, 4), h.article_id, h.published_at, h.site, h.title, h.url, h.story_id,
             h.story_outlets, h.duplicate_of, marked(h.snippet)) for h in hits]  # fmt: skip
    click.echo(render_rows(columns, rows, fmt))
