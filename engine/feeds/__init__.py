"""Bar feeds: ib (TWS / IB Gateway), demo (synthetic market) and csv (file replay).

Each is a :class:`engine.feeds.base.Feed`; the worker picks one (``engine.worker.engine``).
``engine.feeds.ib`` needs no Django: it also runs in the ib_insync test environment.
"""

FEEDS = ("ib", "demo", "csv")
