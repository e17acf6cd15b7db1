"""The IB feed: TWS / IB Gateway realtime bars through ib_async (ib_insync as fallback).

``library`` is the only module of the project that imports the IB client library: its
``IBClient`` wraps the library's ``IB`` object in the project's own types (an instrument IB
found is an ``IBContract``). ``contracts`` picks the contract an item streams (a future's
front month by the roll window; one sentence for no front month, several candidates or an
unknown item), ``errors`` turns IB's error codes into sentences, ``connection`` connects an
``IBClient`` read-only and disconnects it, ``bars`` takes realtime and history bars in (a
long warm-up walks back over several history requests), ``pacing`` keeps those requests
within IB's pacing rules, ``inbox`` is what IB's callbacks hand to the feed's loop, ``feed``
runs it all as :class:`IBFeed` (with each item's hours from its contract details), and
``probe`` is the Settings page's connection test.

    IBFeed ──> IBConnection ──> IBClient ──> ib_async / ib_insync
      ├──────> contracts (front month, ambiguity)      engine.feeds.hours (each item's hours)
      └──────> IBBars (one per run) ──> IBConnection's current IBClient
                 └──> HistoryPacer (one per IBFeed)
    test_connection ──> IBConnection ──> IBClient
"""

from engine.feeds.ib.errors import IB_ERROR_MESSAGES, describe_ib_error, unreachable_message
from engine.feeds.ib.feed import IBFeed
from engine.feeds.ib.probe import test_connection

__all__ = [
    "IB_ERROR_MESSAGES",
    "IBFeed",
    "describe_ib_error",
    "test_connection",
    "unreachable_message",
]
