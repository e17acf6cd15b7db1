"""The rule builder's Side field and timeframe pickers (DESIGN §7.2), through Django's client:
what is stored, the round trip back into the page, the text box with ``MA20@1m``, and the
sentences for a timeframe that doesn't fit the Settings page's bar size."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from engine.services import settings_update
from rules.models import Rule
from tests.factories import DEFAULT_DEFINITION, make_rule
from tests.rules.test_views import HX, builder_data, slot

pytestmark = pytest.mark.django_db

SHORT_ON_1M = (
    "MA20@5s is on a timeframe shorter than the run's 1m bars; use @1m or longer, or a "
    "shorter bar size (the bar size is set on the Settings page)."
)


def with_tf(data: dict, left=None, right=None) -> dict:
    """Add the timeframe pickers' values (one per row) to a builder POST."""
    rows = len(data["row"])
    data["left_tf"] = list(left or [""] * rows)
    data["right_tf"] = list(right or [""] * rows)
    return data


def selected(page: str, select_id: str) -> str:
    """The value of the selected option of ``<select id=select_id>``."""
    match = re.search(rf'<select[^>]*id="{re.escape(select_id)}"[^>]*>(.*?)</select>', page, re.S)
    assert match, f"no select {select_id}"
    chosen = re.findall(r'<option value="([^"]*)"[^>]*\sselected', match[1])
    assert len(chosen) <= 1
    return chosen[0] if chosen else ""


def test_the_new_rule_page_has_a_side_field_and_a_timeframe_picker_per_operand(client):
    page = client.get("/rules/new/").content.decode()
    side = re.search(r'<select name="side"[^>]*id="id_side"[^>]*>(.*?)</select>', page, re.S)
    assert side, "no side field"
    options = re.findall(r'<option value="([^"]*)"(?: selected)?>([^<]*)</option>', side[1])
    assert options == [("", "none"), ("buy", "BUY ▲"), ("sell", "SELL ▼")]
    assert 'value="" selected' in side[1]
    # The default rule's two rows: each operand has a picker on the current bar.
    for part in ("left", "right"):
        pickers = re.findall(rf'<select name="{part}_tf" id="{part}-tf-(\w+)"', page)
        assert len(pickers) == 2
        assert selected(page, f"{part}-tf-{pickers[0]}") == ""
    picker = re.search(r'<select name="right_tf"[^>]*>(.*?)</select>', page, re.S)
    assert re.findall(r'<option value="([^"]*)"', picker[1]) == ["", "5s", "1m", "5m", "15m", "1h"]
    assert "— current bar" in picker[1] and ">@1m<" in picker[1]


def test_save_stores_the_side_and_the_picked_timeframe(client):
    data = with_tf(
        builder_data(rows=(("PRICE", ">", "MA20"), ("RSI14", "<", "30")), name="Dip", side="buy"),
        left=["", "5m"],
        right=["1m", ""],
    )
    resp = client.post("/rules/new/", data)
    assert resp.status_code == 302, slot(resp.content.decode(), "err-conditions")
    rule = Rule.objects.get(name="Dip")
    assert rule.definition == {
        "logic": "AND",
        "conditions": [
            {"left": "PRICE", "op": ">", "right": "MA20@1m"},
            {"left": "RSI14@5m", "op": "<", "right": 30},
        ],
        "cooldown_sec": 60,
        "trigger": "level",
        "side": "buy",
    }
    assert rule.text == "PRICE > MA20@1m AND RSI14@5m < 30"


def test_no_side_leaves_the_key_out(client):
    client.post("/rules/new/", with_tf(builder_data(name="Plain", side="")))
    assert "side" not in Rule.objects.get(name="Plain").definition


def test_an_edited_rule_shows_its_side_and_timeframes_in_the_pickers(client):
    rule = make_rule(
        name="Short",
        definition={
            **DEFAULT_DEFINITION,
            "conditions": [{"left": "PRICE", "op": "crosses_below", "right": "MA20@1m"}],
            "side": "sell",
        },
    )
    page = client.get(f"/rules/{rule.pk}/edit/").content.decode()
    assert selected(page, "id_side") == "sell"
    key = re.search(r'<select name="right_tf" id="right-tf-(\w+)"', page)[1]
    assert re.search(rf'<input name="right" value="MA20"[^>]*id="right-{key}"', page)
    assert selected(page, f"right-tf-{key}") == "1m"
    assert selected(page, f"left-tf-{key}") == ""
    assert 'value="PRICE crosses_below MA20@1m"' in page  # the text box

    # Saving the page as shown changes nothing.
    data = with_tf(
        builder_data(rows=(("PRICE", "crosses_below", "MA20"),), name="Short", side="sell"),
        right=["1m"],
    )
    data["row"] = [key]
    assert client.post(f"/rules/{rule.pk}/edit/", data).status_code == 302
    rule.refresh_from_db()
    assert rule.definition["conditions"][0]["right"] == "MA20@1m"
    assert rule.definition["side"] == "sell"


def test_an_operand_typed_with_its_timeframe_is_taken_as_typed(client):
    data = with_tf(builder_data(rows=(("price", ">", "ma20@1M"),), name="Typed"))
    assert client.post("/rules/new/", data).status_code == 302
    assert Rule.objects.get(name="Typed").definition["conditions"][0] == {
        "left": "PRICE",
        "op": ">",
        "right": "MA20@1m",
    }


def test_the_text_box_accepts_timeframes_and_fills_the_pickers(client):
    data = with_tf(
        builder_data(rows=(("PRICE", ">", "MA5"),), text="EMA9@5m crosses_above MA20@15m")
    )
    page = client.post("/rules/builder/parse/", data, headers=HX).content.decode()
    keys = re.findall(r'<select name="left_tf" id="left-tf-(\w+)"', page)
    assert len(keys) == 1
    assert re.search(rf'<input name="left" value="EMA9"[^>]*id="left-{keys[0]}"', page)
    assert selected(page, f"left-tf-{keys[0]}") == "5m"
    assert selected(page, f"right-tf-{keys[0]}") == "15m"

    # Save with only the text box typed in: the text's rule, timeframes included.
    shown = "PRICE > MA5"
    data = with_tf(
        builder_data(
            rows=(("PRICE", ">", "MA5"),), name="From text", side="sell",
            text="EMA9@5m crosses_above MA20@15m", shown_text=shown, shown_rows=shown,
        )
    )  # fmt: skip
    assert client.post("/rules/new/", data).status_code == 302
    rule = Rule.objects.get(name="From text")
    assert rule.text == "EMA9@5m crosses_above MA20@15m"
    assert rule.definition["side"] == "sell"


def test_as_you_type_feedback_shows_the_text_form_with_timeframes(client):
    data = with_tf(builder_data(rows=(("PRICE", ">", "MA20"),)), right=["1h"])
    page = client.post("/rules/builder/text/", data, headers=HX).content.decode()
    assert re.search(r'<span class="text-emerald-300">PRICE &gt; MA20@1h</span>', page)


def test_a_timeframe_shorter_than_the_bar_size_is_refused_in_its_row(client):
    settings_update(bar_seconds=60)
    data = with_tf(builder_data(rows=(("PRICE", ">", "MA20"),), name="Too fine"), right=["5s"])
    data["row"] = ["r0"]
    resp = client.post("/rules/new/", data)
    assert resp.status_code == 200
    page = resp.content.decode()
    assert unescape(slot(page, "err-r0-right")) == SHORT_ON_1M
    assert "The rule was not saved" in page
    assert not Rule.objects.filter(name="Too fine").exists()
    # As-you-type feedback says it too, and the same rule fits 5-second bars.
    feedback = client.post("/rules/builder/text/", data, headers=HX).content.decode()
    assert unescape(slot(feedback, "err-r0-right")) == SHORT_ON_1M
    settings_update(bar_seconds=5)
    assert client.post("/rules/new/", data).status_code == 302


def test_a_timeframe_that_does_not_fit_is_refused_in_the_text_box_too(client):
    settings_update(bar_seconds=60)
    shown = "PRICE > MA5"
    data = with_tf(
        builder_data(
            rows=(("PRICE", ">", "MA5"),), name="Typed too fine",
            text="PRICE > MA20@5s", shown_text=shown, shown_rows=shown,
        )
    )  # fmt: skip
    page = client.post("/rules/new/", data).content.decode()
    assert unescape(slot(page, "err-text")) == SHORT_ON_1M
    assert not Rule.objects.filter(name="Typed too fine").exists()


@pytest.mark.parametrize(
    ("row", "left_tf", "right_tf", "part", "sentence"),
    [
        (("PRICE", ">", "100"), "", "1m", "right",
         "A number has no timeframe: set the timeframe to — current bar."),
        (("PRICE", ">", "MA20"), "2m", "", "left",
         "Choose the timeframe from the list: 5s, 1m, 5m, 15m, 1h."),
        (("PRICE", ">", "MA20@5m"), "", "1m", "right",
         "MA20@5m says @5m but the timeframe picker says 1m: say it in one place."),
        (("PRICE", ">", "MA20@2m"), "", "", "right",
         "Unknown timeframe in 'MA20@2m'; add @5s, @1m, @5m, @15m or @1h to an operand for a "
         "higher timeframe, e.g. MA20@1m."),
    ],
)  # fmt: skip
def test_timeframe_mistakes_get_a_sentence_in_their_slot(
    client, row, left_tf, right_tf, part, sentence
):
    data = with_tf(builder_data(rows=(row,), name="Bad"), left=[left_tf], right=[right_tf])
    page = client.post("/rules/new/", data).content.decode()
    assert unescape(slot(page, f"err-r0-{part}")) == sentence
    assert not Rule.objects.filter(name="Bad").exists()


def test_a_bad_side_is_a_sentence(client):
    page = client.post("/rules/new/", with_tf(builder_data(name="X", side="long"))).content.decode()
    assert unescape(slot(page, "err-side")) == "Choose the side: none, buy or sell."
    assert not Rule.objects.filter(name="X").exists()


def test_the_help_explains_timeframes_with_the_worked_example(client):
    page = unescape(client.get("/rules/new/").content.decode())
    help_box = re.search(r'<details id="timeframe-help".*?</details>', page, re.S)[0]
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", help_box))
    assert "last closed timeframe bar whose close time is at or before the run bar's close" in text
    assert (
        "the 5-s bar 09:31:55–09:32:00 completes the 1-minute bar 09:31:00–09:32:00 and sees it"
    ) in text
    assert (
        "09:32:00–09:32:05, still sees that same 1-minute bar, because 09:32–09:33 is still forming"
        in text
    )
    assert "(now 5 seconds, on the Settings page)" in text


def test_preview_runs_a_rule_with_a_timeframe_over_the_demo_market(client):
    data = with_tf(builder_data(rows=(("PRICE", ">", "MA5"),), side="sell"), right=["1m"])
    data.update(source="demo", symbol="SPY", bars="720")
    page = client.post("/rules/builder/preview/", data, headers=HX).content.decode()
    summary = re.search(r'data-testid="preview-summary"[^>]*>(.*?)</p>', page, re.S)
    assert summary and "over 720 bars" in summary[1]
    count = int(re.search(r">(\d+) signals?</strong>", summary[1])[1])
    assert count > 0  # 720 five-second bars hold a dozen 1-minute bars: MA5@1m is defined
    assert page.count('data-side="sell"') >= min(count, 25)
    assert '"sell"]' in page  # the chart's markers carry the side


def test_preview_refuses_a_csv_whose_bars_are_longer_than_a_timeframe(client):
    rows = "\n".join(f"{1_700_000_000 + 60 * i},1,1,1,{100 + i % 3},10" for i in range(30))
    upload = SimpleUploadedFile("spy.csv", f"time,open,high,low,close,volume\n{rows}\n".encode())
    data = with_tf(builder_data(rows=(("PRICE", ">", "MA5"),)), right=["5s"])
    data.update(source="csv", bars="720", csv_file=upload)
    page = unescape(client.post("/rules/builder/preview/", data, headers=HX).content.decode())
    assert (
        "spy.csv holds 60 s bars: MA5@5s is on a timeframe shorter than the run's 1m bars; "
        "use @1m or longer, or a shorter bar size."
    ) in page
