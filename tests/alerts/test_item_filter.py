"""A destination's symbol filter takes watchlist items (DESIGN §7.1): any spelling the
watchlists take, stored as the item text signals carry, so a future's or an FX pair's
signal is delivered; a bad item gets the parser's sentence."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from alerts import services
from alerts.models import Delivery
from signals.services import signal_record
from tests.watchlists.test_items import BAD_CASES, BAD_IDS, FIVE

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)


def test_the_filter_stores_item_texts():
    data = services.destination_clean(
        {"kind": "webhook", "url": "http://a", "symbols": "es:fut:cme, EUR.USD:CASH aapl"}
    )
    assert data["symbols"] == ["AAPL", "ES:FUT:CME", "EURUSD:CASH"]
    data = services.destination_clean(
        {"kind": "webhook", "url": "http://a", "symbols": ["sap:stk:ibis:eur", "SPX:IND:CBOE"]}
    )
    assert data["symbols"] == ["SAP:STK:IBIS:EUR", "SPX:IND:CBOE"]


@pytest.mark.parametrize(("raw", "sentence"), BAD_CASES, ids=BAD_IDS)
def test_the_filter_refuses_a_bad_item_with_its_sentence(raw, sentence):
    for symbols in (f"AAPL, {raw}", ["AAPL", raw]):
        with pytest.raises(ValidationError) as caught:
            services.destination_clean({"kind": "webhook", "url": "http://a", "symbols": symbols})
        assert caught.value.message_dict["symbols"] == [sentence]


def test_signals_of_the_filtered_items_are_delivered():
    futures = services.destination_create(
        kind="webhook", url="http://a/1", symbols="es:fut:cme, eurusd:cash"
    )
    for second, symbol in enumerate(FIVE):
        signal = signal_record(
            time=T0.replace(second=second), symbol=symbol, price=1.0, rule_id=1,
            rule_name="Default", bar_seconds=5, values={},
        )  # fmt: skip
        services.outbox_add(signal)
    delivered = Delivery.objects.filter(destination=futures).select_related("signal")
    assert sorted(d.signal.symbol for d in delivered) == ["ES:FUT:CME", "EURUSD:CASH"]
