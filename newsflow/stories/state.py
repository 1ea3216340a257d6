"""A story's state as members join, and its conversion to and from the warehouse's records."""

from __future__ import annotations

import hashlib
from dataclasses import fields, replace

from newsflow.records import StoredStory, StoryRow
from newsflow.stories.model import DEFAULT_CONFIG, ArticleVectors, Story, StoryArticle, StoryConfig, Vector
from newsflow.stories.scoring import norm


def story_id_for(article_id: str) -> str:
    """Stable id of the story an article founds (re-running a range gives the same ids)."""
    return "s_" + hashlib.sha256(article_id.encode()).hexdigest()[:16]


def _prune(vector: Vector, keep: int) -> Vector:
    return dict(sorted(vector.items(), key=lambda kv: (-kv[1], kv[0]))[:keep])


def _add(total: Vector, unit: Vector, keep: int) -> Vector:
    out = dict(total)
    for term, weight in unit.items():
        out[term] = out.get(term, 0.0) + weight
    return _prune(out, keep)


def new_story(article: StoryArticle, vectors: ArticleVectors) -> Story:
    """A story of one article."""
    return Story(
        story_id=story_id_for(article.article_id),
        headline=article.title,
        headline_article_id=article.article_id if article.title else None,
        first_at=article.published_at,
        last_at=article.published_at,
        article_count=1,
        sites=(article.site,) if article.site else (),
        join_score_sum=0.0,
        terms=dict(vectors.terms),
        entities=dict(vectors.entities),
        undated=not article.dated,
    )


def add_to_story(
    story: Story,
    article: StoryArticle,
    vectors: ArticleVectors,
    join_score: float,
    config: StoryConfig = DEFAULT_CONFIG,
) -> Story:
    """The story with one more member; the headline is the first member's title that exists. An undated
    member leaves the span as it is; the first dated member of an undated story gives it its span."""
    sites = story.sites
    if article.site and article.site not in sites:
        sites = (*sites, article.site)
    headline_missing = story.headline is None and article.title
    first_at, last_at = story.first_at, story.last_at
    if article.dated:
        first_at, last_at = (
            (article.published_at, article.published_at)
            if story.undated
            else (min(first_at, article.published_at), max(last_at, article.published_at))
        )
    return replace(
        story,
        headline=article.title if headline_missing else story.headline,
        headline_article_id=article.article_id if headline_missing else story.headline_article_id,
        first_at=first_at,
        last_at=last_at,
        undated=story.undated and not article.dated,
        article_count=story.article_count + 1,
        sites=sites,
        join_score_sum=story.join_score_sum + join_score,
        terms=_add(story.terms, vectors.terms, config.max_story_terms),
        entities=_add(story.entities, vectors.entities, config.max_story_entities),
    )


#: The fields a story and its ``stories`` row share (the row adds the centroids' norms, the story the
#: centroids themselves).
_ROW_FIELDS = tuple(f.name for f in fields(StoryRow) if f.name not in ("term_norm", "entity_norm"))


def story_rows(story: Story) -> StoredStory:
    """A story as the warehouse stores it."""
    shared = {name: getattr(story, name) for name in _ROW_FIELDS}
    row = StoryRow(**shared, term_norm=norm(story.terms), entity_norm=norm(story.entities))
    return StoredStory(row, dict(story.terms), dict(story.entities))


def story_from_stored(stored: StoredStory) -> Story:
    """A story back from what the warehouse holds."""
    shared = {name: getattr(stored.row, name) for name in _ROW_FIELDS} | {"sites": tuple(stored.row.sites)}
    return Story(**shared, terms=stored.terms, entities=stored.entities)
