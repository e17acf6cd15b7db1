"""The fake TWS's usage text: the package's docstring, printed by ``python -m tests.faketws --help``
too. A module of its own so that ``control`` needs nothing from the package's ``__init__``."""

USAGE = """A fake TWS / IB Gateway that speaks the TWS API wire protocol, for tests.

The real client libraries (ib_async, ib_insync) connect to it over loopback TCP and use it
end to end: handshake and startup sync, contract details, historical bars (``formatDate=2``),
5-second realtime bars pushed on demand, error injection, dropped connections and restarts
on the same port. Field orders follow ``/work/shared/reference/TWS-PROTOCOL.md``.

In-process use (same event loop as the client under test)::

    gw = FakeTWS()
    gw.add_symbol("AAPL", con_id=265598, history={5: [(t, o, h, l, c, v), ...]})
    await gw.start()                       # gw.port is now a free port on 127.0.0.1
    ...                                    # connect a client to gw.port
    await gw.wait_subscribed("AAPL")       # a realtime-bar subscription is active
    await gw.push_bar("AAPL", t, o, h, l, c, v)   # to every subscription of AAPL
    gw.inject_error(-1, 1100, "Connectivity between IB and TWS has been lost.")
    await gw.drop_connections()            # close sockets, keep listening
    await gw.stop(); await gw.start()      # refuse connections, then listen on the SAME port

Instruments: a symbol is a US stock on SMART unless its details say otherwise; futures
months, FX pairs, indices, crypto and stocks listed elsewhere are symbols too, named by the
gateway's own key (``ESZ6``, ``EUR.USD``) with IB's symbol in ``ib_symbol``::

    gw.add_symbol("ESZ6", sec_type="FUT", ib_symbol="ES", exchange="CME",
                  last_trade_date="20261218", multiplier="50", min_tick=0.25, hours="cme")
    gw.add_symbol("EUR.USD", sec_type="CASH", ib_symbol="EUR", exchange="IDEALPRO",
                  min_tick=0.00005, hours="fx", has_volume=False)

A contract lookup answers every contract that matches (a future's months, an ambiguous
stock's listings), as TWS does; ``minTick`` goes out as Java writes a double (``5.0E-5``).
Trading hours (``tradingHours``/``liquidHours``/``timeZoneId``) are the strings given, or a
preset of ``HOURS_PRESETS`` (``us_stock``, ``cme``: 17:00-16:00 Chicago crossing midnight,
``fx``, ``xetra``, ``cboe_index``, ``crypto``, and ``always``: open around the clock every
day, RTH too, in UTC, for tests that must not depend on the time of day) for the days around
the gateway's clock, in IB's format with ``CLOSED`` days. History and realtime bars refuse a
data type the security type doesn't have (TRADES for FX: error 162 / 321; AGGTRADES is
crypto's history); quote bars (MIDPOINT) and ``has_volume=False`` instruments carry volume
-1, as IB sends them.

Scripting: ``deny_realtime(symbol, code)`` (354/420/10089 on subscribe),
``deny_history(symbol, code)`` (162), ``reject_client_id(id)`` (326 at connect; a client
id already connected is refused the same way, like TWS), ``history_delay`` (seconds before a
history reply goes out, to open race windows). Pushed bars are also stored as
5-second history (even while the gateway is stopped), so a client can backfill them; a bar
size not configured (1 min, 1 hour) is aggregated from the longest configured size that
divides it. ``now`` (a callable) is the gateway clock used when a history request has no end
time.

Faults of a trading day (each also a control command and a script action, same arguments)::

    gw.connectivity_lost()                 # 1100 to every connection; no realtime bars
    gw.connectivity_restored(data_kept=True)   # 1102: the subscriptions deliver again
    gw.connectivity_restored(data_kept=False)  # 1101: the old subscriptions stay silent
                                           #   forever, as in real TWS; new ones deliver
    gw.farm_broken("usfarm")               # 2103 "Market data farm connection is broken:usfarm"
    gw.farm_ok("usfarm", mute=["AAPL"])    # 2104 "...is OK:usfarm"; AAPL's subscription
                                           #   silently never delivers again
    gw.mute("AAPL")                        # AAPL's subscriptions silently stop
    gw.trade_bust("AAPL")                  # 10225 on AAPL's subscriptions, which stop
    gw.competing_session(True, ["AAPL"])   # 10197 on AAPL's subscriptions (symbols None:
                                           #   all), no bars, history refused with 162
                                           #   "...competing live session"; False: bars flow
                                           #   again to the existing subscriptions
    gw.refuse_history(3)                   # the next 3 history requests: 162 pacing violation
    gw.refuse_history(1, 162, "...")       #   (or any code and text)
    await gw.daily_restart(120)            # close every connection, refuse connections for
                                           #   120 s, then listen again (returns at once)
    gw.take_client_id(17)                  # another program holds client id 17: 326 at
    gw.release_client_id(17)               #   connect; released: 17 connects again

While TWS has lost IB (1100 until 1101/1102), a farm is broken (2103 until 2104) or a symbol
is in a competing session, pushed bars reach no subscription but still become history, as
IB records them. A muted subscription (1101, ``farm_ok(mute=...)``, ``mute``, 10225) is
listed with ``"muted": true`` in ``state``; it delivers nothing until the client cancels it
and subscribes again. ``state`` also lists ``client_ids`` (every client id a connection
asked for, refused ones too), ``ib_connected``, ``broken_farms``, ``competing`` /
``competing_symbols``, ``history_refusals`` (left) and ``restarts``. ``push_bar`` takes any
time: a bar twice, out of order or far in the future goes out as given.

History requests honour ``endDateTime``: the bars of the ``duration`` before it that end at
or before it (without one: up to now, the bar still forming included). Every request is kept
in ``history_log`` with its arrival time ``at`` (monotonic); ``pacing_violations()`` lists
those that break IB's pacing rules (an identical request within 15 s, a sixth request for a
contract within 2 s, more than 60 within ten minutes), and with ``enforce_pacing = True`` the
gateway answers them as TWS does, with error 162 "Historical data request pacing violation".

Separate process::

    python -m tests.faketws --port 0 --control-port 0 --script FILE.json

prints one JSON line ``{"port": N, "control_port": M}`` on stdout once listening. With
``SCALP_TEST_CLOCK="T0,EPOCH,SPEED"`` in its environment the gateway's clock is the engine
worker's test clock (``engine.worker.clock.market_clock``): give both the same value and
they agree on "now". The script
file holds ``{"accounts": [...], "symbols": [{"symbol": "AAPL", "con_id": 1, ..., "history":
{"5": [[t, o, h, l, c, v], ...]}}], "deny_realtime": {"MSFT": 354}, "deny_history": {...},
"reject_client_ids": [...], "enforce_pacing": true, "actions": [{"after": 1.5, "cmd":
"push_bar", ...}]}``; every key is optional. ``actions`` run in order, each ``after`` seconds
after the previous one.

The control port takes one JSON object per line and answers one JSON line
(``{"ok": true, ...}`` or ``{"ok": false, "error": "..."}``). Commands, with the same
arguments as the Python methods: ``push_bar``, ``inject_error``, ``drop``, ``stop``,
``start``, ``add_symbol``, ``deny_realtime``, ``deny_history``, ``reject_client_id``,
``enforce_pacing`` (``on``), the faults above (``connectivity_lost``,
``connectivity_restored`` (``data_kept``), ``farm_broken`` / ``farm_ok`` (``farm``,
``mute``), ``mute``, ``trade_bust``, ``competing_session`` (``on``, ``symbols``),
``refuse_history`` (``count``, ``code``, ``message``), ``daily_restart`` (``seconds``),
``take_client_id`` / ``release_client_id``; those that send errors answer how many in
``sent``), ``wait_subscribed``, ``wait_cancelled``, ``logs`` (the history, subscribe and
contract-lookup logs), ``state`` (which also counts ``history_requests`` and lists
``pacing_violations``) and ``shutdown``.
:class:`ControlClient` is a small async client for it.

Modules: ``gateway`` (:class:`FakeTWS`), ``protocol`` (the requests it answers), ``wire``
(framing and field parsing), ``model`` (symbols, bars, subscriptions), ``control`` (the
separate process, its control socket and :class:`ControlClient`).
"""
