"""The signal uniqueness, keyset pages and the outbox work the same on SQLite and PostgreSQL.

These run on both databases: in the main pytest run (SQLite) and again in scripts/test's
"pytest on PostgreSQL" stage (``python -m tests.pg -- …``). Every expected answer is computed
here in Python from the data, so one test passing on both is the same answer on both. The
``postgres``-marked tests prove the stage really is on PostgreSQL (on SQLite they are
skipped with the command that runs them).
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import close_old_connections, connection, transaction

from alerts import services as alerts
from alerts.models import Delivery
from alerts.services import Outcome
from engine.core.machine import Signal as Fired
from engine.worker.config import RunRule
from engine.worker.engine import record_signal
from signals.models import Signal
from signals.services import signal_record, signals_after
from tests.factories import logged_in_client
from tests.signals.helpers import feed_token

T0 = datetime(2026, 3, 6, 14, 30, 0, 250000, tzinfo=UTC)  # with microseconds, kept exactly
BAR0 = T0.replace(microsecond=0)  # the worker's bar close times are whole seconds
RUN_RULE = RunRule(id=1, name="Default", rule=None)  # type: ignore[arg-type]


def fired(second: int, symbol: str = "AAPL") -> Fired:
    return Fired(symbol=symbol, close_time=int(BAR0.timestamp()) + second, price=189.25,
                 values={"PRICE": 189.25, "MA5": 189.0}, rule_id=1, side="buy")  # fmt: skip


@pytest.mark.postgres
@pytest.mark.django_db
def test_this_stage_runs_on_postgresql_with_the_migrated_constraints():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass",
                       [Signal._meta.db_table])  # fmt: skip
        names = {row[0] for row in cursor.fetchall()}
    assert "one_signal_per_rule_symbol_bar" in names


# --- the signal uniqueness --------------------------------------------------------------------


@pytest.mark.django_db
def test_the_same_bar_twice_is_one_signal_and_the_transaction_goes_on():
    """The second store of a (rule, symbol, bar) returns None inside the worker's transaction
    with its outbox: on PostgreSQL a failed INSERT aborts the whole transaction unless it
    was in a savepoint, so the statements after it prove the savepoint is there."""
    destination = alerts.destination_create(kind="webhook", url="http://desk.example/hook")
    with transaction.atomic():  # an outer transaction, as a caller batching bars would hold
        first = record_signal(fired(5), RUN_RULE, 5)
        assert first is not None
        assert record_signal(fired(5), RUN_RULE, 5) is None
        assert signal_record(time=first.time, symbol="AAPL", price=1.0, rule_id=1,
                             rule_name="Default", bar_seconds=5, values={}) is None  # fmt: skip
        # Still usable: the next bar is stored with its outbox row in the same transaction.
        second = record_signal(fired(10), RUN_RULE, 5)
        assert second is not None
    assert list(Signal.objects.order_by("id").values_list("id", "time")) == [
        (first.id, BAR0 + timedelta(seconds=5)),
        (second.id, BAR0 + timedelta(seconds=10)),
    ]
    assert list(Delivery.objects.order_by("id").values_list("destination_id", "signal_id")) == [
        (destination.id, first.id),
        (destination.id, second.id),
    ]
    stored = Signal.objects.get(id=first.id)
    assert (stored.price, stored.values, stored.side) == (189.25, {"PRICE": 189.25, "MA5": 189.0},
                                                          "buy")  # fmt: skip


@pytest.mark.django_db(transaction=True)
def test_two_writers_racing_the_same_bar_store_one_signal_and_one_outbox_row():
    """Two connections store the same bar at once (two workers on one database, which the
    lock forbids but the database must survive): one row, one outbox row, the loser gets
    None and no error."""
    alerts.destination_create(kind="webhook", url="http://desk.example/hook")
    barrier = threading.Barrier(2)
    results: list[object] = []
    errors: list[BaseException] = []

    def store() -> None:
        try:
            barrier.wait(timeout=30)
            results.append(record_signal(fired(5), RUN_RULE, 5))
        except BaseException as err:  # reported by the assertion below
            errors.append(err)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=store) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    stored = [row for row in results if row is not None]
    assert len(results) == 2 and len(stored) == 1
    assert list(Signal.objects.values_list("id", flat=True)) == [stored[0].id]
    assert list(Delivery.objects.values_list("signal_id", flat=True)) == [stored[0].id]


# --- keyset pages -----------------------------------------------------------------------------


def store_shuffled() -> list[Signal]:
    """130 signals of 3 symbols and 2 rules, stored out of time order (a backfilled bar gets a
    newer id than later bars), several per bar close time, so (time, id) order and id order
    differ and ties on time are broken by id."""
    keys = [(second, symbol, rule_id)
            for second in range(0, 5 * 30, 5)
            for symbol in ("AAPL", "MSFT", "BRK B")
            for rule_id in (1, 2)][:130]  # fmt: skip
    random.Random(15).shuffle(keys)
    rows = []
    for second, symbol, rule_id in keys:
        row = signal_record(time=T0 + timedelta(seconds=second), symbol=symbol, price=100.5,
                            rule_id=rule_id, rule_name=f"Rule {rule_id}", bar_seconds=5,
                            values={"PRICE": 100.5})  # fmt: skip
        assert row is not None
        rows.append(row)
    return rows


@pytest.mark.django_db
def test_signals_after_and_rest_since_pages_give_every_id_once_in_id_order():
    rows = store_shuffled()
    all_ids = sorted(row.id for row in rows)
    msft_ids = sorted(row.id for row in rows if row.symbol == "MSFT")

    def walk(symbols=None) -> list[int]:
        got, after = [], 0
        while page := signals_after(after, symbols=symbols, limit=17):
            got += [row.id for row in page]
            after = page[-1].id
        return got

    assert walk() == all_ids
    assert walk(["MSFT"]) == msft_ids
    middle = all_ids[60]
    assert [r.id for r in signals_after(all_ids[10], upto=middle, limit=1000)] == all_ids[11:61]

    headers = {"Authorization": f"Bearer {feed_token()}"}
    client = logged_in_client()
    for symbol, expected in (("", all_ids), ("msft", msft_ids)):
        got, since = [], 0
        while True:
            body = client.get("/api/signals/", {"since": since, "limit": 23, "symbol": symbol},
                              headers=headers).json()  # fmt: skip
            if not body["signals"]:
                assert body["last_id"] == since
                break
            got += [event["id"] for event in body["signals"]]
            since = body["last_id"]
        assert got == expected


@pytest.mark.django_db
def test_history_pages_walk_by_time_then_id_the_same_on_both_databases():
    import re

    rows = store_shuffled()
    newest_first = [r.id for r in sorted(rows, key=lambda r: (r.time, r.id), reverse=True)]
    aapl_newest_first = [
        r.id for r in sorted(rows, key=lambda r: (r.time, r.id), reverse=True) if r.symbol == "AAPL"
    ]
    row_id = re.compile(r'data-signal-id="(\d+)"')

    def link(response, testid: str) -> str | None:
        match = re.search(rf'<a href="([^"]+)"[^>]*data-testid="{testid}"',
                          response.content.decode())  # fmt: skip
        return match.group(1).replace("&amp;", "&") if match else None

    client = logged_in_client()
    for params, expected in (({}, newest_first), ({"symbol": "AAPL"}, aapl_newest_first)):
        pages, response = [], client.get("/signals/", params)
        while True:
            assert response.status_code == 200
            pages.append([int(pk) for pk in row_id.findall(response.content.decode())])
            older = link(response, "older")
            if older is None:
                break
            response = client.get(older)
        assert [pk for page in pages for pk in page] == expected
        assert len(pages) == -(-len(expected) // 50)
        # Back with the newer links: the same pages, newest last.
        back, newer = [], link(response, "newer")
        while newer:
            response = client.get(newer)
            back.append([int(pk) for pk in row_id.findall(response.content.decode())])
            newer = link(response, "newer")
        assert back == pages[-2::-1]


# --- the outbox -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_outbox_rows_heads_and_settling_are_the_same_on_both_databases():
    every = alerts.destination_create(kind="webhook", url="http://a.example/1")
    msft = alerts.destination_create(kind="webhook", url="http://b.example/2", symbols="MSFT")
    sells = alerts.destination_create(kind="webhook", url="http://c.example/3", side="sell")
    off = alerts.destination_create(kind="webhook", url="http://d.example/4")
    alerts.destination_set_enabled(off, False)
    alerts.destination_filters_refresh()

    def store(second: int, symbol: str, side: str | None) -> Signal:
        row = signal_record(time=T0 + timedelta(seconds=second), symbol=symbol, price=10.0,
                            rule_id=1, rule_name="Default", bar_seconds=5, values={},
                            side=side)  # fmt: skip
        assert row is not None
        return row

    a1, m1, m2 = store(5, "AAPL", "buy"), store(5, "MSFT", "sell"), store(10, "MSFT", "buy")
    assert [alerts.outbox_add(row) for row in (a1, m1, m2)] == [1, 3, 2]
    rows = list(Delivery.objects.order_by("id").values_list("destination_id", "signal_id",
                                                            "status", "tries"))  # fmt: skip
    pending = Delivery.Status.PENDING
    assert rows == [(every.id, a1.id, pending, 0),
                    (every.id, m1.id, pending, 0), (msft.id, m1.id, pending, 0),
                    (sells.id, m1.id, pending, 0),
                    (every.id, m2.id, pending, 0), (msft.id, m2.id, pending, 0)]  # fmt: skip
    first = Delivery.objects.get(destination=every, signal=a1)
    assert first.created_at == first.next_try_at and first.created_at.tzinfo is not None

    def heads() -> dict[int, int]:
        return {h.destination_id: h.delivery_id for h in alerts.outbox_heads()}

    def delivery(destination, signal) -> int:
        return Delivery.objects.get(destination=destination, signal=signal).id

    assert heads() == {every.id: delivery(every, a1), msft.id: delivery(msft, m1),
                       sells.id: delivery(sells, m1)}  # fmt: skip
    assert alerts.outbox_head(every.id).signal_id == a1.id

    ok = alerts.delivery_settle(delivery(every, a1), Outcome(True, False, 200, 4.0),
                                now=T0 + timedelta(seconds=6))  # fmt: skip
    assert (ok.status, ok.tries, ok.done_at) == (Delivery.Status.DELIVERED, 1,
                                                 T0 + timedelta(seconds=6))  # fmt: skip
    again = alerts.delivery_settle(delivery(msft, m1), Outcome(False, True, 503, 4.0, "busy"),
                                   now=T0 + timedelta(seconds=7))  # fmt: skip
    assert (again.status, again.next_try_at) == (pending, T0 + timedelta(seconds=8))
    gone = alerts.delivery_settle(delivery(sells, m1), Outcome(False, False, 404, 4.0, "no"),
                                  now=T0 + timedelta(seconds=7))  # fmt: skip
    assert gone.status == Delivery.Status.FAILED
    # The next head of each destination: its oldest pending row; sells has none left.
    assert heads() == {every.id: delivery(every, m1), msft.id: delivery(msft, m1)}
    assert [h.next_try_at for h in alerts.outbox_heads() if h.destination_id == msft.id] == [
        T0 + timedelta(seconds=8)
    ]
    log = alerts.deliveries_log(limit=10)
    assert [d.id for d in log] == sorted((d.id for d in log), reverse=True)


# --- one worker per database, across machines -----------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_second_worker_from_another_machine_is_refused_by_the_database(tmp_path):
    """Another machine has its own var directory, so the file lock can't see the first
    worker: PostgreSQL's advisory lock refuses the second with the same sentence, naming the
    holder's pid and machine. When the holder dies (kill -9) the lock goes with its session."""
    import os
    import signal
    import socket

    from tests.engine.helpers import engine_state, start_worker, stop_worker, wait_until

    first = start_worker("--feed", "demo", "--start", log_path=tmp_path / "first.log")
    try:
        wait_until(lambda: (s := engine_state()) and s.state == "running" and s.pid == first.pid,
                   what="the first worker running")  # fmt: skip
        second = start_worker("--feed", "demo", log_path=tmp_path / "second.log",
                              SCALP_VAR_DIR=str(tmp_path / "machine-b"))  # fmt: skip
        try:
            code = second.wait(timeout=60)
        finally:
            if second.poll() is None:
                second.kill()
        output = (tmp_path / "second.log").read_text()
        assert code == 2, output
        assert (
            f"Another engine worker (pid {first.pid} on {socket.gethostname()}) is already "
            "running on this database (PostgreSQL advisory lock on database "
        ) in output
        assert "Traceback" not in output
        state = engine_state()
        assert state.pid == first.pid and state.state == "running"
        assert first.poll() is None
    finally:
        if first.poll() is None:
            os.kill(first.pid, signal.SIGKILL)
        first.wait(timeout=10)

    third = start_worker("--feed", "demo", log_path=tmp_path / "third.log",
                         SCALP_VAR_DIR=str(tmp_path / "machine-c"))  # fmt: skip
    try:
        wait_until(lambda: (s := engine_state()) and s.is_alive and s.pid == third.pid,
                   what="the third worker taking over")  # fmt: skip
    finally:
        assert stop_worker(third) == 0, (tmp_path / "third.log").read_text()


def test_the_launcher_says_how_to_install_postgresql_when_it_is_missing(monkeypatch, capsys):
    from tests import pg

    monkeypatch.setattr(pg.shutil, "which", lambda name: None)
    monkeypatch.setattr(pg.glob, "glob", lambda pattern: [])
    with pytest.raises(pg.PostgresMissing, match="apt-get install postgresql"):
        pg.find_bin("initdb")
    assert pg.main(["--", "true"]) == 1
    assert "install Debian's postgresql: apt-get install postgresql" in capsys.readouterr().err
