"""Bar feeds: ib (TWS / IB Gateway), demo (synthetic market) and csv (file replay)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config import RunConfig
    from engine.feeds.base import Feed

FEEDS = ("ib", "demo", "csv")


def make_feed(config: RunConfig) -> Feed:
    """The feed a run asked for. The IB library is imported only when the ib feed is used."""
    if config.feed == "demo":
        from engine.feeds.demo import DemoFeed

        return DemoFeed(speed=config.speed)
    if config.feed == "csv":
        from engine.feeds.csvfile import CsvFeed

        return CsvFeed(config.csv_path, speed=config.speed)
    if config.feed == "ib":
        from engine.feeds.ib import IBFeed

        return IBFeed(**config.ib)
    raise ValueError(f"unknown feed {config.feed!r}; use one of {', '.join(FEEDS)}")
