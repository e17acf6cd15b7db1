"""The signal history page and its CSV export, through Django's test Client."""

from __future__ import annotations

import csv
import io
import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import AsyncClient, Client
from django.test.utils import CaptureQueriesContext

from signals import views
from signals.forms import HistoryFilterForm
from signals.models import Signal
from signals.services import signal_record

pytestmark = pytest.mark.django_db

T0 = datetime(2025, 12, 16, 14, 30, tzinfo=UTC)
ROW_ID = re.compile(r'data-signal-id="(\d+)"')


def make_signal(at: datetime, *, symbol="AAPL", rule_id=1, rule_name="MA Momentum", price=100.0):
    return signal_record(
        time=at, symbol=symbol, price=price, rule_id=rule_id, rule_name=rule_name,
        bar_seconds=5, values={"PRICE": price},
    )  # fmt: skip


@pytest.fixture
def client():
    user = get_user_model().objects.create_user("trader", password="s3cret-pass-123")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client


def page_ids(response) -> list[int]:
    return [int(pk) for pk in ROW_ID.findall(response.content.decode())]


def link(response, testid: str) -> str | None:
    match = re.search(rf'<a href="([^"]+)"[^>]*data-testid="{testid}"', response.content.decode())
    return match.group(1).replace("&amp;", "&") if match else None


def csv_rows(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def expected_newest_first(signals) -> list[int]:
    return [s.id for s in sorted(signals, key=lambda s: (s.time, s.id), reverse=True)]


def test_login_required():
    anonymous = Client(HTTP_HOST="localhost")
    for url in ("/signals/", "/signals/export.csv"):
        response = anonymous.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")


def test_newest_first_by_bar_time_with_local_time_markup(client):
    first = make_signal(T0, price=189.2)
    later = make_signal(T0 + timedelta(minutes=1), symbol="MSFT", rule_id=7, rule_name="Fast")
    # A backfilled bar stored after the others is still shown at its own (older) time.
    backfilled = make_signal(T0 - timedelta(minutes=5), symbol="NVDA")
    response = client.get("/signals/")
    assert response.status_code == 200
    assert page_ids(response) == [later.id, first.id, backfilled.id]
    html = response.content.decode()
    assert (
        '<time datetime="2025-12-16T14:30:00Z" title="2025-12-16 14:30:00 UTC" data-local>' in html
    )
    assert "189.20" in html  # at least two decimals
    assert "Fast <span" in html and "#7" in html  # rule name and id
    assert "5 s" in html
    assert "/signals/export.csv" in html


def test_symbol_filter_is_case_insensitive(client):
    aapl = make_signal(T0, symbol="AAPL")
    make_signal(T0, symbol="MSFT")
    response = client.get("/signals/", {"symbol": " aapl "})
    assert page_ids(response) == [aapl.id]
    assert 'value="AAPL"' in response.content.decode()


def test_rule_filter(client):
    make_signal(T0, rule_id=1)
    mine = make_signal(T0, rule_id=42, rule_name="Deleted since")
    response = client.get("/signals/", {"rule": str(42)})
    assert page_ids(response) == [mine.id]
    # A rule that no longer exists stays selectable by its id.
    assert "#42 (no longer defined)" in response.content.decode()


def test_date_range_is_inclusive_utc_days(client):
    day = datetime(2025, 12, 16, tzinfo=UTC)
    before = make_signal(day - timedelta(seconds=1))
    start = make_signal(day)
    end = make_signal(day + timedelta(days=1, seconds=-1))
    after = make_signal(day + timedelta(days=1))
    one_day = client.get("/signals/", {"date_from": "2025-12-16", "date_to": "2025-12-16"})
    assert page_ids(one_day) == [end.id, start.id]
    from_only = client.get("/signals/", {"date_from": "2025-12-16"})
    assert page_ids(from_only) == [after.id, end.id, start.id]
    to_only = client.get("/signals/", {"date_to": "2025-12-15"})
    assert page_ids(to_only) == [before.id]


def test_filters_combine(client):
    wanted = make_signal(T0, symbol="AAPL", rule_id=5)
    make_signal(T0, symbol="AAPL", rule_id=6)
    make_signal(T0, symbol="MSFT", rule_id=5)
    make_signal(T0 + timedelta(days=1), symbol="AAPL", rule_id=5)
    response = client.get(
        "/signals/",
        {"symbol": "AAPL", "rule": "5", "date_from": "2025-12-16", "date_to": "2025-12-16"},
    )
    assert page_ids(response) == [wanted.id]


@pytest.mark.parametrize("params", [{}, {"symbol": "AAPL"}])
def test_keyset_pages_walk_everything_without_overlap_or_gap(client, params):
    signals = []
    for n in range(2 * views.PAGE_SIZE + 17):
        # Pairs of signals share a bar time (two symbols), so ties in time are on page edges.
        at = T0 + timedelta(seconds=5 * (n // 2))
        signals.append(make_signal(at, symbol="AAPL" if n % 2 else "MSFT"))
        if params and n % 2 == 0:
            signals.append(make_signal(at, symbol="AAPL", rule_id=99))
    kept = [s for s in signals if not params or s.symbol == params["symbol"]]
    expected = expected_newest_first(kept)

    pages, url, newer_links = [], "/signals/", []
    response = client.get(url, params)
    while True:
        assert response.status_code == 200
        pages.append(page_ids(response))
        newer_links.append(link(response, "newer"))
        older = link(response, "older")
        if older is None:
            break
        assert "before=" in older and ("symbol=AAPL" in older) == bool(params)
        response = client.get(older)
    assert [len(p) for p in pages[:-1]] == [views.PAGE_SIZE] * (len(pages) - 1)
    assert list(itertools.chain(*pages)) == expected
    assert newer_links[0] is None and all(newer_links[1:])

    # Walking back with the newer links gives the same pages in reverse.
    back = [pages[-1]]
    newer = newer_links[-1]
    while newer:
        response = client.get(newer)
        back.append(page_ids(response))
        newer = link(response, "newer")
    assert back[::-1] == pages


def test_past_either_end(client):
    oldest = make_signal(T0)
    newest = make_signal(T0 + timedelta(seconds=5))
    past_oldest = client.get("/signals/", {"before": str(oldest.id)})
    assert page_ids(past_oldest) == []
    assert "No more signals this way." in past_oldest.content.decode()
    assert link(past_oldest, "newer") == "/signals/"
    # Nothing newer than the newest: the newest page itself is the useful answer.
    past_newest = client.get("/signals/", {"after": str(newest.id)})
    assert page_ids(past_newest) == [newest.id, oldest.id]
    assert link(past_newest, "newer") is None


def test_page_queries_never_count_or_offset(client):
    for n in range(views.PAGE_SIZE + 5):
        make_signal(T0 + timedelta(seconds=5 * n))
    response = client.get("/signals/")
    with CaptureQueriesContext(connection) as queries:
        client.get(link(response, "older"), {"symbol": "AAPL"})
        client.get("/signals/", {"rule": "1", "date_from": "2025-12-16"})
    sql = " ".join(q["sql"].upper() for q in queries.captured_queries)
    assert "SIGNALS_SIGNAL" in sql
    assert "COUNT(" not in sql and "OFFSET" not in sql


def test_every_filter_combination_uses_an_index():
    """EXPLAIN QUERY PLAN: an index search, never a table scan or a sort, for every query."""
    if connection.vendor != "sqlite":
        pytest.skip(
            "SQLite's EXPLAIN QUERY PLAN wording; PostgreSQL's planner picks by table "
            "statistics (a table this small is read whole), so there is nothing to check here"
        )
    anchor = (T0, 10)
    values = {"symbol": "AAPL", "rule": "2", "date_from": "2025-12-01", "date_to": "2025-12-16"}
    for size in range(len(values) + 1):
        for names in itertools.combinations(values, size):
            form = HistoryFilterForm({name: values[name] for name in names})
            assert form.is_valid(), form.errors
            rows = views._filtered(form)
            queries = {
                "first page": rows.order_by(*views.NEWEST_FIRST)[:51],
                "older page": views._older_than(rows, anchor).order_by(*views.NEWEST_FIRST)[:51],
                "newer page": views._newer_than(rows, anchor).order_by(*views.OLDEST_FIRST)[:51],
                "has newer": views._newer_than(rows, anchor).order_by()[:1],
                "has older": views._older_than(rows, anchor).order_by()[:1],
            }
            for what, query in queries.items():
                plan = query.explain()
                assert "USING INDEX" in plan or "USING INTEGER PRIMARY KEY" in plan, (
                    names,
                    what,
                    plan,
                )
                assert "TEMP B-TREE" not in plan, (names, what, plan)


@pytest.mark.parametrize(
    ("params", "sentence"),
    [
        ({"symbol": "$$$"}, "“$$$” is not a valid symbol: use letters, digits, '.' or a space."),
        ({"symbol": "A" * 13}, "“AAAAAAAAAAAAA” is too long: a symbol has 1–12 characters."),
        ({"symbol": "ES:FUT"}, "“ES:FUT”: a future needs its exchange, such as ES:FUT:CME."),
        ({"rule": "momentum"}, "Pick a rule from the list"),
        ({"date_from": "2025-13-40"}, "Enter the ‘from’ date as YYYY-MM-DD"),
        ({"date_to": "yesterday"}, "Enter the ‘to’ date as YYYY-MM-DD"),
        (
            {"date_from": "2025-12-17", "date_to": "2025-12-16"},
            "The ‘to’ date (2025-12-16) is before the ‘from’ date (2025-12-17)",
        ),
        ({"before": "abc"}, "“abc” is not a signal id"),
        ({"after": "-4"}, "“-4” is not a signal id"),
        ({"before": "99999999999999999999"}, "is not a signal id"),
    ],
)
def test_bad_filter_input_is_a_sentence(client, params, sentence):
    make_signal(T0)
    response = client.get("/signals/", params)
    assert response.status_code == 200
    html = response.content.decode().replace("&#x27;", "'")
    assert sentence in html
    if not {"before", "after"} & set(params):  # cursors are links, not inputs
        assert 'aria-invalid="true"' in html
    assert "Fix the highlighted filter above" in html
    assert page_ids(response) == []
    export = client.get("/signals/export.csv", params)
    assert export.status_code == 400
    assert sentence in export.content.decode()


@pytest.mark.parametrize("name", ["rule", "before", "after"])
@pytest.mark.parametrize("value", ["²", "٣", "#²", "9" * 5000, "-3", "0", "1.5"])
def test_ids_outside_ascii_whole_numbers_are_a_form_error_never_a_500(client, name, value):
    make_signal(T0)
    response = client.get("/signals/", {name: value})
    assert response.status_code == 200
    html = response.content.decode()
    assert "Fix the highlighted filter above" in html and page_ids(response) == []
    assert f'id="err-{name}"' in html
    export = client.get("/signals/export.csv", {name: value})
    assert export.status_code == 400
    sentence = export.content.decode()
    assert sentence.endswith(".") and len(sentence) < 200 and "\n" not in sentence


@pytest.mark.parametrize("name", ["rule", "before", "after"])
def test_empty_ids_mean_no_filter(client, name):
    made = make_signal(T0)
    assert page_ids(client.get("/signals/", {name: ""})) == [made.id]
    assert [int(r["id"]) for r in csv_rows(client.get("/signals/export.csv", {name: ""}))] == [
        made.id
    ]


def test_vanished_cursor_falls_back_to_newest_page(client):
    kept = make_signal(T0)
    gone = make_signal(T0 + timedelta(seconds=5))
    gone_id = gone.id
    gone.delete()
    response = client.get("/signals/", {"before": str(gone_id)})
    assert page_ids(response) == [kept.id]
    assert f"Signal #{gone_id} no longer exists" in response.content.decode()


def test_empty_states(client):
    nothing = client.get("/signals/")
    assert "No signals yet." in nothing.content.decode()
    make_signal(T0, symbol="AAPL")
    no_match = client.get("/signals/", {"symbol": "ZZZZ"}).content.decode()
    assert "No signals match these filters" in no_match and "No signals yet." not in no_match


def test_htmx_request_gets_only_the_history_section(client):
    signal = make_signal(T0)
    response = client.get(
        "/signals/", {"symbol": "AAPL"}, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="signal-history"
    )
    html = response.content.decode()
    assert '<section id="signal-history"' in html and "<html" not in html
    assert page_ids(response) == [signal.id]


def test_csv_export_of_the_current_filter(client, monkeypatch):
    # Small chunks so the export crosses several keyset chunks, with ties in time at the edges.
    monkeypatch.setattr(views, "EXPORT_CHUNK", 4)
    made = []
    for n in range(11):
        at = T0 + timedelta(seconds=5 * (n // 2))
        made.append(make_signal(at, symbol="AAPL", rule_id=1 + n % 2, price=189.2 + n))
        if n % 2 == 0:
            made.append(make_signal(at, symbol="MSFT"))
    make_signal(T0 + timedelta(days=3), symbol="AAPL")  # outside the date range

    response = client.get(
        "/signals/export.csv",
        {"symbol": "aapl", "date_from": "2025-12-16", "date_to": "2025-12-16"},
    )
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in response["Content-Disposition"]
    rows = csv_rows(response)
    aapl = sorted((s for s in made if s.symbol == "AAPL"), key=lambda s: (s.time, s.id))
    assert [int(row["id"]) for row in rows] == [s.id for s in aapl]
    assert list(rows[0])[: len(views.CSV_HEADER)] == list(views.CSV_HEADER)
    assert rows[0]["time_utc"] == "2025-12-16T14:30:00Z"
    assert rows[0]["symbol"] == "AAPL" and float(rows[0]["price"]) == 189.2
    assert rows[0]["rule_name"] == "MA Momentum" and rows[0]["bar_seconds"] == "5"
    assert rows[0]["values"] == '{"PRICE":189.2}'


@pytest.mark.django_db(transaction=True)
async def test_csv_export_streams_asynchronously_under_asgi(monkeypatch):
    """Under Daphne a sync iterator would be read whole into memory before the first byte."""
    monkeypatch.setattr(views, "EXPORT_CHUNK", 3)
    made = [
        await sync_to_async(make_signal)(T0 + timedelta(seconds=5 * n), symbol="AAPL")
        for n in range(8)
    ]
    user = await sync_to_async(get_user_model().objects.create_user)(
        "async-trader", password="s3cret-pass-123"
    )
    client = AsyncClient(HTTP_HOST="localhost")
    await client.aforce_login(user)
    response = await client.get("/signals/export.csv", {"symbol": "AAPL"})
    assert response.status_code == 200
    assert response.streaming and response.is_async
    parts = [part async for part in response.streaming_content]
    assert len(parts) == 3  # header + 3 rows, 3 rows, 2 rows: one keyset query each
    rows = list(csv.DictReader(io.StringIO(b"".join(parts).decode())))
    assert [int(row["id"]) for row in rows] == [s.id for s in made]


def test_csv_export_without_filters_has_every_signal(client):
    made = [make_signal(T0 + timedelta(seconds=5 * n), symbol=f"S{n}") for n in range(5)]
    rows = csv_rows(client.get("/signals/export.csv"))
    assert [int(row["id"]) for row in rows] == [s.id for s in made]


def test_export_link_carries_the_filter(client):
    make_signal(T0)
    html = client.get("/signals/", {"symbol": "AAPL", "date_to": "2025-12-16"}).content.decode()
    assert 'href="/signals/export.csv?symbol=AAPL&amp;date_to=2025-12-16"' in html


def test_csv_export_defuses_rule_names_that_a_spreadsheet_would_run(client):
    made = [
        make_signal(T0, rule_name="=HYPERLINK(1)"),
        make_signal(T0 + timedelta(seconds=5), rule_name="MA Momentum"),
    ]
    rows = csv_rows(client.get("/signals/export.csv"))
    by_id = {int(row["id"]): row["rule_name"] for row in rows}
    assert by_id[made[0].id] == "'=HYPERLINK(1)"
    assert by_id[made[1].id] == "MA Momentum"


def test_csv_export_defuses_every_text_cell_a_spreadsheet_would_run(client):
    # Stored straight through the ORM: the export must not rely on what the services allow.
    cells = ["=1+2", "+SUM(A1)", "-2+3", "@cmd", "\tx=1", "\rx=1"]
    made = [
        Signal.objects.create(
            time=T0 + timedelta(seconds=5 * n),
            symbol=text,
            price=-1.5,
            rule_id=1,
            rule_name=text,
            bar_seconds=5,
            values={"PRICE": -1.5},
        )  # fmt: skip
        for n, text in enumerate(cells)
    ]
    plain = make_signal(T0 + timedelta(minutes=5), symbol="BRK.B", rule_name="MA Momentum")
    rows = {int(row["id"]): row for row in csv_rows(client.get("/signals/export.csv"))}
    for signal, text in zip(made, cells, strict=True):
        row = rows[signal.id]
        assert row["symbol"] == row["rule_name"] == f"'{text}"
        assert row["price"] == "-1.5"  # a number, not text: left as it is
    assert rows[plain.id]["symbol"] == "BRK.B" and rows[plain.id]["rule_name"] == "MA Momentum"


def test_each_row_and_the_export_show_the_side(client):
    """DESIGN §7.2: BUY ▲ in green, SELL ▼ in red, none for a rule without a side; the CSV's
    side column (empty for none)."""
    made = {
        side: signal_record(
            time=T0 + timedelta(seconds=5 * n), symbol="AAPL", price=100.0, rule_id=n + 1,
            rule_name=f"Rule {n}", bar_seconds=5, values={}, side=side,
        )
        for n, side in enumerate(("buy", "sell", None))
    }  # fmt: skip
    page = client.get("/signals/").content.decode()
    found = re.findall(r'<tr data-testid="signal-row" data-signal-id="(\d+)"(.*?)</tr>', page, re.S)
    rows = {int(pk): row for pk, row in found}
    buy, sell, none = (rows[made[side].id] for side in ("buy", "sell", None))
    assert re.search(
        r'text-emerald-300[^"]*" data-side="buy"[^>]*>BUY <span aria-hidden="true">▲', buy
    )
    assert re.search(
        r'text-rose-300[^"]*" data-side="sell"[^>]*>SELL <span aria-hidden="true">▼', sell
    )
    assert re.search(r'data-side=""[^>]*>none<', none)
    assert 'font-semibold text-rose-300">AAPL' in sell
    exported = {int(row["id"]): row["side"] for row in csv_rows(client.get("/signals/export.csv"))}
    assert exported == {made["buy"].id: "buy", made["sell"].id: "sell", made[None].id: ""}
