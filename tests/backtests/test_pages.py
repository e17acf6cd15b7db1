"""The Backtest page and its services: every bad input a sentence, the run's life (queued,
cancelled, deleted), progress, results, CSV export, the chart data and the comparison."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile

from backtests import services
from backtests.models import BacktestRun
from backtests.views import CHART_BARS
from bars.services import bars_store
from engine.core.bars import Bar
from rules.models import Rule
from tests.factories import logged_in_client, make_rule

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 11, 30, tzinfo=UTC)
CSV = b"symbol,time,open,high,low,close,volume\nAAPL,2026-11-30T14:30:00Z,1,1,1,1,1\n"


def the_rule():
    return Rule.objects.filter(name="My rule").first() or make_rule()


def create(**overrides):
    args = {
        "rule_ids": [the_rule().pk],
        "symbols": ["AAPL"],
        "start": T0,
        "end": T0 + timedelta(days=1),
        "source": "stored",
        "horizons": "1m,5m",
        "bar_seconds": 5,
    }
    args.update(overrides)
    return services.backtest_create(**args)


def sentences(**overrides) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        create(**overrides)
    return {k: " ".join(v) for k, v in info.value.message_dict.items()}


def test_create_snapshots_rules_and_normalises():
    run = create(symbols=["brk.b", "aapl"], horizons="5m, 1m")
    assert run.state == "queued" and run.horizons == "1m,5m"
    assert run.symbols == ["BRK B", "AAPL"]
    assert run.rules[0]["name"] == "My rule" and run.rules[0]["definition"]["cooldown_sec"] == 60


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"rule_ids": []}, "rules", "at least one rule"),
        ({"rule_ids": ["99999"]}, "rules", "no rule with id 99999"),
        ({"rule_ids": ["²"]}, "rules", "not a rule id"),
        ({"rule_ids": ["9" * 5000]}, "rules", "not a rule id"),
        ({"symbols": []}, "symbols", "at least one symbol"),
        ({"symbols": ["AA\x00PL"]}, "symbols", "is not a valid symbol"),
        ({"symbols": ["A", "B", "C", "D", "E", "F"]}, "symbols", "at most 5"),
        ({"horizons": "²m"}, "horizons", "Horizons:"),
        ({"horizons": "25h"}, "horizons", "Horizons:"),
        ({"horizons": "9" * 5000 + "m"}, "horizons", "Horizons:"),
        ({"end": T0}, "period", "ends before it starts"),
        ({"end": T0 + timedelta(days=400)}, "period", "longer than 366 days"),
        ({"start": datetime(1960, 1, 1, tzinfo=UTC)}, "period", "out of range"),
        ({"start": datetime(2026, 1, 1)}, "period", "time zone"),  # noqa: DTZ001 - on purpose
        ({"source": "ftp"}, "source", "Choose stored bars"),
        ({"bar_seconds": 7}, "bar_seconds", "5 seconds or 1 minute"),
        ({"source": "csv"}, "upload", "Choose a CSV file"),
        ({"source": "csv", "upload": b""}, "upload", "empty"),
        ({"source": "csv", "upload": b"a,b\x00"}, "upload", "NUL"),
        ({"source": "csv", "upload": b"\xff\xfe"}, "upload", "UTF-8"),
    ],
)
def test_each_bad_input_is_one_sentence(overrides, field, words):
    got = sentences(**overrides)
    assert field in got and words in got[field]
    assert "Traceback" not in got[field] and got[field].endswith(".")


def test_a_rule_whose_timeframe_is_shorter_than_the_bar_is_refused():
    rule = make_rule(
        "Fast", {"logic": "AND", "conditions": [{"left": "PRICE", "op": ">", "right": "MA5@5s"}],
                 "cooldown_sec": 0, "trigger": "level"},
    )  # fmt: skip
    assert "Fast" in sentences(rule_ids=[rule.pk], bar_seconds=60)["rules"]


def test_cancel_delete_and_orphans(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    queued = create()
    assert services.backtest_cancel(run=queued).state == "cancelled"
    running = create(source="csv", upload=CSV, upload_name="../../etc/x.csv")
    assert (
        running.upload_name == "x.csv"
        and services.upload_path(running).parent == tmp_path / "uploads"
    )
    assert services.backtest_claim_next().pk == running.pk
    assert services.backtest_cancel(run=running).cancel_requested
    with pytest.raises(ValidationError, match="cancel it first"):
        services.backtest_delete(run=running)
    assert services.backtests_fail_orphans() == 1
    running.refresh_from_db()
    assert running.state == "failed" and "worker stopped" in running.error
    path = services.upload_path(running)
    services.backtest_delete(run=running)
    assert not path.exists() and not BacktestRun.objects.filter(pk=running.pk).exists()


def finished_run() -> BacktestRun:
    run = create(symbols=["AAPL", "MSFT"])
    services.backtest_claim_next()
    event = {
        "event": "signal", "id": 1, "symbol": "AAPL", "price": 10.0, "rule_id": run.rules[0]["id"],
        "rule_name": "My rule", "timestamp": "2026-11-30T14:30:05Z", "side": "buy",
        "outcomes": {"1m": {"return_pct": 1.5, "mfe_pct": 2.0, "mae_pct": -0.5}, "5m": None},
    }  # fmt: skip
    services.backtest_signals_add(run_id=run.pk, events=[event])
    stats = {"event": "stats", "rule_id": run.rules[0]["id"], "rule_name": "My rule",
             "signals": 1, "horizons": {"1m": {"count": 1, "hit_rate": 1.0,
             "mean_return_pct": 1.5}, "5m": {"count": 0}}, "symbols": {}}  # fmt: skip
    services.backtest_finish(run_id=run.pk, state="done", result={"stats": [stats]}, bars=10)
    run.refresh_from_db()
    return run


def test_page_form_errors_and_start():
    client = logged_in_client()
    rule = the_rule()
    page = client.get("/backtest/")
    assert page.status_code == 200 and b"Run backtest" in page.content
    form = {"rules": [rule.pk], "symbols": "AAPL", "start": "2026-²1-01", "end": "2026-12-01",
            "source": "stored", "horizons": "1m", "bar_seconds": "5"}  # fmt: skip
    bad = client.post("/backtest/start/", form)
    assert bad.status_code == 400 and b"not a date such as" in bad.content
    upload = SimpleUploadedFile("bars.csv", CSV, content_type="text/csv")
    form.update(symbols="", start="2026-11-01", end="2026-11-30", source="csv", upload=upload)
    good = client.post("/backtest/start/", form)
    run = BacktestRun.objects.get()
    assert good.status_code == 302 and good["Location"] == f"/backtest/{run.pk}/"
    assert run.source == "csv" and run.end == datetime(2026, 12, 1, tzinfo=UTC)
    progress = client.get(f"/backtest/{run.pk}/progress/", HTTP_HX_REQUEST="true")
    assert b'hx-trigger="every 1s"' in progress.content and "HX-Refresh" not in progress
    BacktestRun.objects.filter(pk=run.pk).update(state="running", progress=0.25, eta_seconds=750)
    assert b"about 12 min left" in client.get(f"/backtest/{run.pk}/progress/").content
    cancel = client.post(f"/backtest/{run.pk}/cancel/", HTTP_HX_REQUEST="true")
    assert "Cancelling…" in cancel.content.decode()
    services.backtest_finish(run_id=run.pk, state="cancelled")  # the worker saw the flag
    assert (
        client.get(f"/backtest/{run.pk}/progress/", HTTP_HX_REQUEST="true")["HX-Refresh"] == "true"
    )


def test_results_csv_chart_compare_and_delete():
    client = logged_in_client()
    run = finished_run()
    other = finished_run()
    page = client.get(f"/backtest/{run.pk}/")
    assert b'data-testid="stats-row"' in page.content and b"100 %" in page.content
    assert b'data-testid="signal-row"' in page.content
    csv_text = b"".join(client.get(f"/backtest/{run.pk}/signals.csv").streaming_content).decode()
    assert csv_text.splitlines() == [
        "id,timestamp,symbol,rule_id,rule_name,side,price,return_1m_pct,mfe_1m_pct,mae_1m_pct,"
        "return_5m_pct,mfe_5m_pct,mae_5m_pct",
        f"1,2026-11-30T14:30:05Z,AAPL,{run.rules[0]['id']},My rule,buy,10.0,1.5,2.0,-0.5,,,",
    ]
    chart = client.get(f"/backtest/{run.pk}/chart/", {"symbol": "AAPL"}).json()
    assert chart["signals"][0]["time"] == int(
        datetime(2026, 11, 30, 14, 30, 5, tzinfo=UTC).timestamp()
    )
    assert client.get(f"/backtest/{run.pk}/chart/", {"symbol": "../x"}).status_code == 400
    compared = client.get("/backtest/compare/", {"ids": [run.pk, other.pk]})
    assert compared.content.count(b'data-testid="compare-run"') == 2
    assert client.get("/backtest/compare/", {"ids": ["²", str(run.pk)]}).status_code == 302
    listed = client.get("/backtest/").content.decode()
    assert f'form="delete-{run.pk}"' in listed and f'id="delete-{run.pk}"' in listed
    assert client.post(f"/backtest/{run.pk}/delete/").status_code == 302
    assert not BacktestRun.objects.filter(pk=run.pk).exists()
    assert client.get(f"/backtest/{run.pk}/").status_code == 404


def test_the_chart_uses_stored_minutes_when_the_period_has_too_many_bars():
    client = logged_in_client()
    run = finished_run()
    t0 = int(T0.timestamp())
    five = [Bar("AAPL", t0 + 5 * i, 5, 10, 11, 9, 10, 1) for i in range(CHART_BARS + 1)]
    bars_store(five[:100])
    few = client.get(f"/backtest/{run.pk}/chart/", {"symbol": "AAPL"}).json()
    assert few["seconds"] == few["bar_seconds"] == 5 and len(few["bars"]) == 100
    bars_store(five)
    bars_store([Bar("AAPL", t0 + 60 * i, 60, 10, 11, 9, 10, 12) for i in range(500)])
    many = client.get(f"/backtest/{run.pk}/chart/", {"symbol": "AAPL"}).json()
    assert many["seconds"] == 60 and many["bar_seconds"] == 5 and len(many["bars"]) == 500
    assert many["bars"][0] == [t0, 10, 11, 9, 10, 12]
