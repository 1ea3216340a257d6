"""Story grouping and duplicate detection as pure functions: no Prefect, no warehouse.

- :mod:`.model`: configuration, articles, stories and document frequencies as grouping sees them
- :mod:`.tokens`: words, entities and weighted vectors of a text
- :mod:`.scoring`: how well an article fits a story
- :mod:`.state`: a story as members join, to and from the warehouse's records
- :mod:`.assign`: a batch of articles joins stories or starts new ones (online grouping)
- :mod:`.neardup`: MinHash/LSH near-duplicates; :mod:`.dedupe`: ids and exact duplicates;
  :mod:`.features`: the text features extraction workers compute once

The names most callers need are importable from here (``from newsflow import stories``).
"""

from newsflow.stories.assign import (
    StoryGrouper,
    article_vectors,
    assign_batch,
    batch_terms,
    count_batch,
)
from newsflow.stories.model import (
    DEFAULT_CONFIG,
    DOCS_KEY,
    REASON_FOLLOW_UP,
    REASON_JOINED,
    REASON_NEW,
    REASON_NO_CANDIDATE,
    ArticleVectors,
    BatchResult,
    DocumentFrequencies,
    Story,
    StoryArticle,
    StoryConfig,
)
from newsflow.stories.scoring import (
    cosine,
    days_apart,
    is_active,
    is_follow_up,
    required_score,
    score,
    time_factor,
    time_weight,
)
from newsflow.stories.state import add_to_story, new_story, story_from_stored, story_id_for, story_rows
from newsflow.stories.tokens import article_counts, tokens, weigh

__all__ = [
    "DEFAULT_CONFIG",
    "DOCS_KEY",
    "REASON_FOLLOW_UP",
    "REASON_JOINED",
    "REASON_NEW",
    "REASON_NO_CANDIDATE",
    "ArticleVectors",
    "BatchResult",
    "DocumentFrequencies",
    "Story",
    "StoryArticle",
    "StoryConfig",
    "StoryGrouper",
    "add_to_story",
    "article_counts",
    "article_vectors",
    "assign_batch",
    "batch_terms",
    "cosine",
    "count_batch",
    "days_apart",
    "is_active",
    "is_follow_up",
    "new_story",
    "required_score",
    "score",
    "story_from_stored",
    "story_id_for",
    "story_rows",
    "time_factor",
    "time_weight",
    "tokens",
    "weigh",
]
