-- Articles without a publication date have an unknown time for grouping (issue: undated coverage).
-- A story whose members are all undated has only stand-in times (when newsflow first saw them) for its
-- span: `undated` says so (NULL on rows written before this version: false).
ALTER TABLE stories ADD COLUMN undated BOOLEAN;

-- The overview's span comes from the dated members (an undated member never stretches it), and from the
-- first-seen times only when no member is dated; `undated` counts the members without a date.
DROP VIEW story_overview;
CREATE VIEW story_overview AS
SELECT
    s.story_id,
    s.headline,
    coalesce(min(a.published_at), min(a.first_seen_at)) AS first_at,
    coalesce(max(a.published_at), max(a.first_seen_at)) AS last_at,
    count(*) AS articles,
    count(*) FILTER (WHERE a.duplicate_of IS NULL) AS originals,
    count(DISTINCT a.site) AS outlets,
    list_sort(list(DISTINCT a.site) FILTER (WHERE a.site IS NOT NULL)) AS sites,
    count(*) FILTER (WHERE a.published_at IS NULL) AS undated
FROM stories s
JOIN articles a ON a.story_id = s.story_id
GROUP BY s.story_id, s.headline;
