"""How well an article fits a story: cosine of terms and of entities, scaled by time apart."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta

from newsflow.records import StoryAssignment
from newsflow.stories.model import (
    DEFAULT_CONFIG,
    REASON_FOLLOW_UP,
    REASON_JOINED,
    ArticleVectors,
    DocumentFrequencies,
    Story,
    StoryConfig,
)


def norm(vector: Mapping[str, float]) -> float:
    """L2 norm of a sparse vector."""
    return math.sqrt(sum(w * w for w in vector.values()))


def dot(vector: Mapping[str, float], other: Mapping[str, float]) -> float:
    """Dot product of two sparse vectors."""
    small, big = (vector, other) if len(vector) <= len(other) else (other, vector)
    return sum(w * big.get(t, 0.0) for t, w in small.items())


def cosine(unit: Mapping[str, float], other: Mapping[str, float]) -> float:
    """Cosine of a unit vector with any vector (0 when either is empty)."""
    length = norm(other)
    if not unit or length == 0.0:
        return 0.0
    return dot(unit, other) / length


def member_mean(
    term_dot: float, entity_dot: float, story: Story, config: StoryConfig = DEFAULT_CONFIG
) -> float:
    """Average linkage: an article's mean score against the story's members, time aside. A story's vectors
    are the sums of its members' unit vectors, so the mean of the dot products is the dot product with
    the sums over the member count; no member is read again (the sums are pruned to the heaviest terms,
    so it is a close lower estimate)."""
    return (config.term_weight * term_dot + config.entity_weight * entity_dot) / max(story.article_count, 1)


def days_apart(when: datetime | None, story: Story) -> float:
    """Days from ``when`` to the story's time span (0 inside it, and 0 when either time is unknown: an
    undated article, or a story of undated articles only)."""
    if when is None or story.undated or story.first_at <= when <= story.last_at:
        return 0.0
    edge = story.first_at if when < story.first_at else story.last_at
    return abs((when - edge).total_seconds()) / 86400.0


def time_factor(days: float, config: StoryConfig = DEFAULT_CONFIG) -> float:
    """1 within ``same_time_days``, falling linearly to ``min_time_factor`` at the window's edge."""
    if days <= config.same_time_days:
        return 1.0
    span = max(config.window_days - config.same_time_days, 1e-9)
    return 1.0 - (1.0 - config.min_time_factor) * min(1.0, (days - config.same_time_days) / span)


def time_weight(when: datetime | None, story: Story, config: StoryConfig = DEFAULT_CONFIG) -> float:
    """The time factor of an article and a story; ``undated_time_factor`` when either time is unknown."""
    if when is None or story.undated:
        return config.undated_time_factor
    return time_factor(days_apart(when, story), config)


def score(
    vectors: ArticleVectors,
    when: datetime | None,
    story: Story,
    config: StoryConfig = DEFAULT_CONFIG,
    rare_names: Collection[str] = (),
) -> StoryAssignment:
    """How well an article fits a story (the assignment it would get if it joined). ``rare_names`` are the
    article's rare names: a follow-up's shared names are those of them the story holds."""
    term_dot, entity_dot = dot(vectors.terms, story.terms), dot(vectors.entities, story.entities)
    term_norm, entity_norm = norm(story.terms), norm(story.entities)
    term_sim = term_dot / term_norm if term_norm and vectors.terms else 0.0
    entity_sim = entity_dot / entity_norm if entity_norm and vectors.entities else 0.0
    days = days_apart(when, story)
    total = (config.term_weight * term_sim + config.entity_weight * entity_sim) * time_weight(
        when, story, config
    )
    follow_up = is_follow_up(story, when, config)
    shared = sorted(
        (t for t in vectors.entities if t in story.entities and (not follow_up or t in rare_names)),
        key=lambda t: -vectors.entities[t] * story.entities[t],
    )[:5]
    return StoryAssignment(
        article_id="",
        story_id=story.story_id,
        reason=REASON_FOLLOW_UP if follow_up else REASON_JOINED,
        score=round(total, 4),
        term_similarity=round(term_sim, 4),
        entity_similarity=round(entity_sim, 4),
        days_apart=round(days, 2),
        best_other=story.story_id,
        shared_terms=tuple(shared),
        member_similarity=round(member_mean(term_dot, entity_dot, story, config), 4),
    )


def required_score(story: Story, config: StoryConfig = DEFAULT_CONFIG) -> float:
    """The score an article needs to join: the threshold, or more for a cohesive story."""
    if story.article_count < 2:
        return config.threshold
    mean = story.join_score_sum / (story.article_count - 1)
    return max(config.threshold, config.cohesion * mean)


def is_active(story: Story, when: datetime | None, config: StoryConfig = DEFAULT_CONFIG) -> bool:
    """The story's span, widened by ``follow_up_days``, contains ``when`` (beyond ``window_days`` only a
    follow-up may join: :func:`is_follow_up`). An undated article may join any story it is offered (the
    warehouse offers those near its batch's dated articles). A story of undated articles takes articles
    published up to the window after its first member was first seen (it was published before that, at an
    unknown time)."""
    if story.undated:
        return when is None or when <= story.last_at + timedelta(days=config.window_days)
    return when is None or days_apart(when, story) <= config.follow_up_days


def rare_names(
    entities: Mapping[str, float], doc_freqs: DocumentFrequencies, config: StoryConfig = DEFAULT_CONFIG
) -> set[str]:
    """The entities that are rare names: not numbers (an age or a count names nobody), and in few
    documents (``rare_name_idf``)."""
    return doc_freqs.rare((e for e in entities if not e[:1].isdigit()), config.rare_name_idf)


def is_follow_up(story: Story, when: datetime | None, config: StoryConfig = DEFAULT_CONFIG) -> bool:
    """The article and the story are dated and more than the window apart: the article joins only as a
    follow-up, sharing ``follow_up_names`` of the story's rare names."""
    return when is not None and not story.undated and days_apart(when, story) > config.window_days
