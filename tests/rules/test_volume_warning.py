"""The builder warns when the active watchlist holds an item with no volume (an FX pair, an
index) and the rule reads VOLUME or VWAP on any timeframe (DESIGN §7.1): a warning beside
the rule's text form, on the rules list in the rule's row, never an error (the rule saves)."""

from __future__ import annotations

import re
from html import unescape

import pytest

from engine.core.instruments import parse_item
from engine.core.rules import validate_definition
from rules.forms.builder import no_volume_warning, reads_volume, volume_operands
from rules.models import Rule
from tests.factories import DEFAULT_DEFINITION, make_rule, make_watchlist
from tests.rules.test_views import HX, builder_data
from watchlists.services import watchlist_activate

pytestmark = pytest.mark.django_db

BOTH = (
    "EURUSD:CASH and SPX:IND:CBOE have no volume: VOLUME and VWAP are undefined there, "
    "so conditions on them are false."
)
ONE = (
    "EURUSD:CASH has no volume: VOLUME and VWAP are undefined there, so conditions on them "
    "are false."
)
VWAP_RULE = {**DEFAULT_DEFINITION, "conditions": [{"left": "PRICE", "op": ">", "right": "VWAP"}]}


def warning(page: str) -> str:
    match = re.search(r'<p id="volume-warning"[^>]*>(.*?)</p>', page, re.S)
    assert match, "no volume-warning slot"
    return unescape(match[1]).strip()


def rule_def(*conditions):
    return validate_definition(
        {
            **DEFAULT_DEFINITION,
            "conditions": [dict(zip(("left", "op", "right"), c, strict=True)) for c in conditions],
        }  # fmt: skip
    )


@pytest.fixture
def mixed():
    wl = make_watchlist(name="Mixed", symbols=["ES:FUT:CME", "EURUSD:CASH", "SPX:IND:CBOE", "AAPL"])
    watchlist_activate(watchlist=wl)
    return wl


# The sentence


def test_which_operands_need_volume():
    assert volume_operands(rule_def(("PRICE", ">", "MA5"))) == []
    assert volume_operands(rule_def(("PRICE", ">", "VWAP"))) == ["VWAP"]
    assert volume_operands(rule_def(("VOLUME@1m", ">", 1000), ("PRICE", ">", "VWAP@5m"))) == [
        "VOLUME",
        "VWAP",
    ]


def test_rows_as_typed_read_volume():
    assert reads_volume(["PRICE", "vwap@1M"]) and reads_volume([" volume "])
    assert not reads_volume(["PRICE", "1000", "", "VWAP@2m", "MA$"])


def test_the_sentence_names_the_items_with_no_volume():
    five = [parse_item(t) for t in ["ES:FUT:CME", "EURUSD:CASH", "SPX:IND:CBOE", "AAPL"]]
    uses = rule_def(("VOLUME", ">", 1000))
    assert no_volume_warning(uses, five) == BOTH
    assert no_volume_warning(uses, five[:2]) == ONE
    three = [*five, parse_item("USDJPY:CASH")]
    assert no_volume_warning(uses, three).startswith(
        "EURUSD:CASH, SPX:IND:CBOE and USDJPY:CASH have no volume: "
    )
    assert no_volume_warning(uses, [five[0], five[3]]) == ""
    assert no_volume_warning(rule_def(("PRICE", ">", "MA5")), five) == ""
    assert no_volume_warning(None, five) == ""


# The builder


def test_the_builder_warns_as_you_type_and_the_rule_still_saves(client, mixed):
    page = client.get("/rules/new/").content.decode()
    assert warning(page) == ""  # the default rule reads no volume
    data = builder_data(rows=(("PRICE", ">", "VWAP@1m"),))
    fragment = client.post("/rules/builder/text/", data, headers=HX).content.decode()
    assert warning(fragment) == BOTH
    assert 'id="volume-warning"' in fragment and 'hx-swap-oob="true"' in fragment
    fragment = client.post(
        "/rules/builder/text/", builder_data(rows=(("PRICE", ">", "MA5"),)), headers=HX
    ).content.decode()
    assert warning(fragment) == ""  # cleared when the condition goes
    resp = client.post("/rules/new/", builder_data(rows=(("VOLUME", ">", "1000"),), name="Vol"))
    assert resp.status_code == 302
    saved = Rule.objects.get(name="Vol")
    page = client.get(f"/rules/{saved.pk}/edit/").content.decode()
    assert warning(page) == BOTH


def test_the_builder_warns_on_the_rows_endpoints_and_a_refused_save(client, mixed):
    data = builder_data(rows=(("VOLUME", ">", "1000"),), action="add")
    fragment = client.post("/rules/builder/row/", data, headers=HX).content.decode()
    assert warning(fragment) == BOTH
    # A save refused for another reason still shows it.
    page = client.post("/rules/new/", builder_data(rows=(("VWAP", ">", "PRICE"),))).content
    assert warning(page.decode()) == BOTH


def test_no_warning_without_such_an_item(client):
    wl = make_watchlist(name="Stocks and a future", symbols=["AAPL", "ES:FUT:CME"])
    watchlist_activate(watchlist=wl)
    data = builder_data(rows=(("VOLUME", ">", "1000"),))
    assert warning(client.post("/rules/builder/text/", data, headers=HX).content.decode()) == ""


# The rules list


def test_the_rules_list_warns_in_the_rule_row(client, mixed):
    vwap = make_rule(name="Above VWAP", definition=VWAP_RULE)
    plain = make_rule(name="Plain")
    page = client.get("/rules/").content.decode()
    row = re.search(rf'<tr data-rule="{vwap.pk}".*?</tr>', page, re.S)[0]
    assert BOTH in unescape(row)
    row = re.search(rf'<tr data-rule="{plain.pk}".*?</tr>', page, re.S)[0]
    assert "no volume" not in row
