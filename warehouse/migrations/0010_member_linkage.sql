-- Story grouping asks an article to be close to a story's members on average, not only to the sum of
-- them (average linkage; issue: twin events). Each decision records that mean score so `newsflow story
-- --why` can show it (NULL on decisions written before this version).
ALTER TABLE story_decisions ADD COLUMN member_similarity DOUBLE;
