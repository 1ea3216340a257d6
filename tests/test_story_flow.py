"""Stories through the ingest flow: a second ingest brings new coverage of a stored story, and it joins."""

from __future__ import annotations

from html import escape
from pathlib import Path

from tests.conftest import LoopbackSite
from tests.feedbuild import Item, write_feed
from tests.lake import reader
from tests.test_stories import STORY, _amazon


def _page(title: str, text: str) -> str:
    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in text.split("\n") if p.strip())
    return (
        f"<html><head><title>{escape(title)}</title></head><body><article><h1>{escape(title)}</h1>"
        f"{paragraphs}</article></body></html>"
    )


def test_new_coverage_in_a_second_ingest_joins_the_stored_story(
    site: LoopbackSite, prefect_harness: str, db: Path, tmp_path: Path
) -> None:
    from newsflow.flows.ingest import ingest

    items = _amazon()
    by_id = {a.article_id.split("-")[0]: a for a, g in items if g == STORY}
    # (Reuters' page is left out: trafilatura reads a 2019 date off it, out of any window.)
    story = [by_id["cnet"], by_id["time"], by_id["slashdot"]]  # the last comes in the second run
    others = [a for a, g in items if g != STORY][:3]
    folder = site.root / "stories"
    folder.mkdir()
    for article in story + others:
        (folder / f"{article.article_id}.html").write_text(_page(article.title or "", article.text))

    def feed(articles: list[object]) -> None:
        write_feed(
            folder / "feed.xml",
            "Tech",
            [
                Item(a.title, site.url(f"/site/stories/{a.article_id}.html"), guid=a.article_id)
                for a in articles
            ],  # type: ignore[attr-defined]
        )

    feeds = tmp_path / "feeds.toml"
    feeds.write_text(f'[[feeds]]\nurl = "{site.url("/site/stories/feed.xml")}"\n')
    feed([*story[:2], *others])
    first = ingest(feeds_file=str(feeds), db=str(db), allow_private_networks=True, extraction_workers=1)
    assert first["articles_stored"] == 5
    feed([*story, *others])
    second = ingest(feeds_file=str(feeds), db=str(db), allow_private_networks=True, extraction_workers=1)
    assert second["articles_stored"] == 1
    with reader(db) as con:
        rows = con.execute("SELECT guid, story_id, run_id FROM articles").fetchall()
        decisions = dict(
            con.execute(
                "SELECT a.guid, d.reason FROM story_decisions d JOIN articles a USING (article_id)"
            ).fetchall()
        )
    story_of = {guid: sid for guid, sid, _ in rows}
    first_story = story_of[story[0].article_id]
    assert story_of[story[1].article_id] == first_story
    assert story_of[story[2].article_id] == first_story
    assert decisions[story[2].article_id] == "joined"
    assert len({story_of[a.article_id] for a in others} | {first_story}) == 4
    assert len({run for _, _, run in rows}) == 2
