"""The peer of bench/archive_bench.py: Fundus' CCNewsCrawler over a CC-NEWS-layout server, for the
publishers of the given hosts. Run with a Python that has fundus installed (not a newsflow dependency):

    python bench/peers/fundus_ccnews.py --server http://127.0.0.1:PORT/data/ --start 2023-09-25
        --end 2023-09-25 --hosts www.reuters.com techcrunch.com ...

Prints {"articles": N, "complete": N, "seconds": S, "publishers": [...]}: articles with every attribute
Fundus asks for by default (title, body, date) and with ``only_complete=False``; one process (``processes=0``:
the one file is one unit of Fundus' work, and its worker processes add random sleeps). Fundus lists a month
with ``rrule(MONTHLY, dtstart=start, until=end)``, which skips the last month when ``end.day < start.day``:
keep start and end in one month.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from fundus import CCNewsCrawler, PublisherCollection


def publishers_of(hosts: list[str]) -> list[object]:
    wanted = {host.lower() for host in hosts}
    return [
        publisher
        for publisher in PublisherCollection
        if {urlsplit(d).netloc.lower() for d in [publisher.domain, *publisher.deprecated_domains]} & wanted
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", required=True)
    parser.add_argument("--start", required=True)
    parser.add_argument("--end", required=True)
    parser.add_argument("--hosts", nargs="+", required=True)
    args = parser.parse_args()
    server = args.server if args.server.endswith("/") else args.server + "/"
    start = datetime.strptime(args.start, "%Y-%m-%d")
    end = datetime.strptime(args.end, "%Y-%m-%d") + timedelta(days=1, seconds=-1)
    publishers = publishers_of(args.hosts)
    counts = {}
    started = time.perf_counter()
    for label, complete in (("complete", True), ("articles", False)):
        crawler = CCNewsCrawler(
            *publishers,
            start=start,
            end=end,
            processes=0,
            retries=0,
            disable_tqdm=True,
            server_address=server,
        )
        counts[label] = sum(1 for _ in crawler.crawl(only_complete=complete))
        if label == "complete":
            seconds = time.perf_counter() - started
    print(json.dumps({**counts, "seconds": round(seconds, 2), "publishers": [p.name for p in publishers]}))


if __name__ == "__main__":
    main()
