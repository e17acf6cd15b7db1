"""The rule pages through Django's test client: list, builder (htmx endpoints), preview, delete."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from engine.core.bars import format_time
from rules.models import Rule
from tests.factories import DEFAULT_DEFINITION, make_rule, make_running_engine

pytestmark = pytest.mark.django_db

HX = {"HX-Request": "true"}


def builder_data(rows=(("PRICE", ">", "MA5"), ("MA5", ">", "MA10")), **fields) -> dict:
    """A builder POST: the rule's fields plus parallel row/left/op/right lists."""
    data = {"name": "", "logic": "AND", "cooldown_sec": "60", "trigger": "level", "text": ""}
    data.update(fields)
    data["row"] = [f"r{i}" for i in range(len(rows))]
    data["left"] = [row[0] for row in rows]
    data["op"] = [row[1] for row in rows]
    data["right"] = [row[2] for row in rows]
    return data


def html(resp) -> str:
    return resp.content.decode()


def slot(page: str, slot_id: str) -> str:
    """The text of the inline error slot ``<p id=slot_id>`` (unescaped enough for asserts)."""
    match = re.search(rf'<p id="{re.escape(slot_id)}"[^>]*>(.*?)</p>', page, re.S)
    assert match, f"no error slot {slot_id}"
    return match[1].replace("&#x27;", "'").replace("&lt;", "<").replace("&gt;", ">")


def rule_row(page: str, rule: Rule) -> str:
    match = re.search(rf'<tr data-rule="{rule.pk}".*?</tr>', page, re.S)
    assert match, f"no row for {rule.name}"
    return match[0]


# The list


def test_list_marks_the_system_rule_read_only_and_custom_rules_editable(client):
    system = Rule.objects.get(is_system=True)
    assert "No rules of your own yet" in html(client.get("/rules/"))
    custom = make_rule(name="Scalp fast")
    page = html(client.get("/rules/"))
    assert "No rules of your own yet" not in page
    system_row = rule_row(page, system)
    assert "System · read-only" in system_row
    assert f'action="/rules/{system.pk}/clone/"' in system_row
    assert "/edit/" not in system_row and "/delete/" not in system_row
    custom_row = rule_row(page, custom)
    assert "read-only" not in custom_row
    for action in ("edit", "clone", "delete"):
        assert f"/rules/{custom.pk}/{action}/" in custom_row
    assert "PRICE &gt; MA5 AND MA5 &gt; MA10" in custom_row


def test_logged_out_pages_and_endpoints_redirect_to_login():
    anonymous = Client(HTTP_HOST="localhost")
    for url in ("/rules/", "/rules/new/"):
        resp = anonymous.get(url)
        assert resp.status_code == 302
        assert resp["Location"] == f"/accounts/login/?next={url}"
    resp = anonymous.post("/rules/builder/text/", builder_data())
    assert resp.status_code == 302 and resp["Location"].startswith("/accounts/login/")
    resp = anonymous.post("/rules/new/", builder_data(name="Sneaky"))
    assert resp.status_code == 302
    assert not Rule.objects.filter(name="Sneaky").exists()


def test_csrf_is_enforced_on_every_post():
    user = get_user_model().objects.create_user("trader", "", "s3cret-pass-123")
    strict = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
    strict.force_login(user)
    custom = make_rule(name="Keep me")
    assert strict.post("/rules/new/", builder_data(name="No token")).status_code == 403
    assert strict.post("/rules/builder/text/", builder_data(), headers=HX).status_code == 403
    assert strict.post(f"/rules/{custom.pk}/delete/").status_code == 403
    assert not Rule.objects.filter(name="No token").exists()
    assert Rule.objects.filter(pk=custom.pk).exists()
    # With the token from the page (as base.html's hx-headers sends it) the same post works.
    strict.get("/rules/new/")
    token = strict.cookies["csrftoken"].value
    resp = strict.post("/rules/builder/text/", builder_data(), headers={**HX, "X-CSRFToken": token})
    assert resp.status_code == 200


# Delete


def test_delete_asks_first_then_deletes_through_the_service(client):
    custom = make_rule(name="Short lived")
    page = client.get(f"/rules/{custom.pk}/delete/")
    assert page.status_code == 200
    assert "Delete the rule “Short lived”?" in html(page)
    assert Rule.objects.filter(pk=custom.pk).exists()
    resp = client.post(f"/rules/{custom.pk}/delete/", follow=True)
    assert resp.redirect_chain == [("/rules/", 302)]
    assert "Deleted the rule “Short lived”." in html(resp)
    assert not Rule.objects.filter(pk=custom.pk).exists()


def test_delete_is_refused_while_the_engine_runs_with_the_rule(client):
    running = make_rule(name="Running now")
    other = make_rule(name="Idle one")
    make_running_engine(rule=running)
    confirm = html(client.get(f"/rules/{running.pk}/delete/"))
    assert "stop the engine before deleting it" in confirm
    assert "Delete rule</button>" not in confirm
    resp = client.post(f"/rules/{running.pk}/delete/")
    assert resp.status_code == 409
    assert "The engine is running with the rule “Running now”" in html(resp)
    assert Rule.objects.filter(pk=running.pk).exists()
    # The list says which rule is held; a rule the run doesn't use can still go.
    assert "Running</span>" in rule_row(html(client.get("/rules/")), running)
    assert client.post(f"/rules/{other.pk}/delete/").status_code == 302
    assert not Rule.objects.filter(pk=other.pk).exists()


def test_the_system_rule_cannot_be_deleted_or_edited_from_the_pages(client):
    system = Rule.objects.get(is_system=True)
    resp = client.post(f"/rules/{system.pk}/delete/", follow=True)
    assert resp.redirect_chain == [("/rules/", 302)]
    assert "The system rule can&#x27;t be deleted" in html(resp)
    resp = client.get(f"/rules/{system.pk}/edit/", follow=True)
    assert resp.redirect_chain == [("/rules/", 302)]
    assert "The system rule is read-only: clone it" in html(resp)
    resp = client.post(f"/rules/{system.pk}/edit/", builder_data(name="Hijacked"))
    assert resp.status_code == 302
    system.refresh_from_db()
    assert system.name == "MA Momentum"
    assert Rule.objects.filter(pk=system.pk).exists()


def test_clone_of_the_system_rule_opens_the_copy_in_the_builder(client):
    system = Rule.objects.get(is_system=True)
    resp = client.post(f"/rules/{system.pk}/clone/")
    clone = Rule.objects.get(name="MA Momentum copy")
    assert resp.status_code == 302 and resp["Location"] == f"/rules/{clone.pk}/edit/"
    assert not clone.is_system and clone.definition == system.definition
    page = html(client.get(resp["Location"]))
    assert 'value="MA Momentum copy"' in page
    assert "PRICE &gt; MA5 AND MA5 &gt; MA10" in page


# The builder page and its htmx endpoints


def test_builder_page_starts_from_the_default_rule(client):
    page = html(client.get("/rules/new/"))
    assert page.count('name="row"') == 2
    assert 'value="PRICE"' in page and 'value="MA10"' in page
    assert 'data-testid="rule-text"' in page and "PRICE &gt; MA5 AND MA5 &gt; MA10" in page


def test_add_row_endpoint_returns_the_rows_with_one_more(client):
    resp = client.post("/rules/builder/row/", builder_data(action="add"), headers=HX)
    page = html(resp)
    assert resp.status_code == 200
    # Only the rows section (htmx swaps it), not the whole page.
    assert '<section id="conditions"' in page and "<html" not in page and "<nav" not in page
    keys = re.findall(r'name="row" value="([a-z0-9]+)"', page)
    assert keys[:2] == ["r0", "r1"] and len(keys) == 3
    assert re.search(rf'id="left-{keys[2]}"[^>]*autofocus', page)  # the keyboard moves there
    assert page.count("autofocus") == 1
    # The new, empty row is flagged right away (out of band), and the text form is withheld.
    assert slot(page, f"err-{keys[2]}-right") == "Pick the right operand or type a number."
    assert "Fix the highlighted fields" in page


def test_remove_row_endpoint_drops_that_row_and_keeps_one_at_least(client):
    rows = (("PRICE", ">", "MA5"), ("MA5", ">", "MA10"), ("RSI14", "<", "30"))
    page = html(client.post("/rules/builder/row/", builder_data(rows, remove="r1"), headers=HX))
    assert re.findall(r'name="row" value="([a-z0-9]+)"', page) == ["r0", "r2"]
    assert "PRICE &gt; MA5 AND RSI14 &lt; 30" in page
    one = builder_data((("PRICE", ">", "MA5"),), remove="r0")
    page = html(client.post("/rules/builder/row/", one, headers=HX))
    assert re.findall(r'name="row" value="([a-z0-9]+)"', page) == ["r0"]
    assert slot(page, "err-conditions") == "A rule needs at least one condition."


def test_add_row_refuses_an_eleventh_condition(client):
    rows = [("PRICE", ">", f"MA{n}") for n in range(2, 12)]
    page = html(client.post("/rules/builder/row/", builder_data(rows, action="add"), headers=HX))
    assert len(re.findall(r'name="row"', page)) == 10
    assert slot(page, "err-conditions") == "A rule has at most 10 conditions."


def test_live_text_form_follows_the_rows(client):
    data = builder_data((("ma5", "crosses_above", "ma20"), ("RSI14", "<", "30")), logic="OR")
    page = html(client.post("/rules/builder/text/", data, headers=HX))
    assert '<div id="rule-text"' in page and 'hx-swap-oob="true"' in page
    assert "MA5 crosses_above MA20 OR RSI14 &lt; 30" in page
    assert slot(page, "err-r0-left") == "" and slot(page, "err-r1-right") == ""


@pytest.mark.parametrize(
    ("row", "slot_id", "message"),
    [
        (("FOO", ">", "MA5"), "err-r1-left", "Unknown operand 'FOO'; use PRICE, MA5"),
        (("MA5", ">", ""), "err-r1-right", "Pick the right operand or type a number."),
        (("MA5", ">", "MA500"), "err-r1-right", "MA500"),
        (("30", "<", "RSI14"), "err-r1-left", "The left side must be an indicator or price"),
        (("MA5", "=>", "MA10"), "err-r1-op", "Choose an operator"),
    ],
)
def test_an_invalid_row_gets_a_sentence_next_to_the_field_at_fault(client, row, slot_id, message):
    data = builder_data((("PRICE", ">", "MA5"), row))
    page = html(client.post("/rules/builder/text/", data, headers=HX))
    assert message in slot(page, slot_id)
    assert slot(page, slot_id).endswith(".")
    others = {"err-r0-left", "err-r0-op", "err-r0-right", "err-r1-left", "err-r1-op",
              "err-r1-right"} - {slot_id}  # fmt: skip
    assert all(slot(page, other) == "" for other in others)
    assert "Fix the highlighted fields" in page


def test_live_form_checks_cooldown_but_not_the_missing_name(client):
    page = html(client.post("/rules/builder/text/", builder_data(cooldown_sec="-1"), headers=HX))
    assert slot(page, "err-cooldown_sec") == "The cooldown can't be negative."
    assert slot(page, "err-name") == ""


def test_text_box_fills_the_rows_and_the_logic(client):
    data = builder_data((("PRICE", ">", "MA5"),), text="ma5 crosses_above ma20 or rsi14 < 30")
    page = html(client.post("/rules/builder/parse/", data, headers=HX))
    lefts = re.findall(r'name="left" value="([^"]*)"', page)
    rights = re.findall(r'name="right" value="([^"]*)"', page)
    assert lefts == ["MA5", "RSI14"] and rights == ["MA20", "30"]
    assert re.search(r'value="crosses_above" selected', page)
    assert re.search(r'value="OR"[^>]*checked', page)
    assert "MA5 crosses_above MA20 OR RSI14 &lt; 30" in page


def test_bad_text_gives_a_sentence_and_keeps_the_rows(client):
    data = builder_data(text="PRICE > AND MA5")
    page = html(client.post("/rules/builder/parse/", data, headers=HX))
    problem = slot(page, "err-text")
    assert problem and problem[0].isupper() and problem.endswith(".")
    assert re.findall(r'name="right" value="([^"]*)"', page) == ["MA5", "MA10"]


def test_save_creates_the_rule_through_the_service(client):
    data = builder_data((("PRICE", ">=", "ema9"), ("RSI14", "<", "70")), name="  Dip buyer ",
                        cooldown_sec="30", trigger="edge")  # fmt: skip
    resp = client.post("/rules/new/", data, follow=True)
    assert resp.redirect_chain == [("/rules/", 302)]
    rule = Rule.objects.get(name="Dip buyer")
    assert rule.definition == {
        "logic": "AND",
        "conditions": [{"left": "PRICE", "op": ">=", "right": "EMA9"},
                       {"left": "RSI14", "op": "<", "right": 70}],
        "cooldown_sec": 30,
        "trigger": "edge",
    }  # fmt: skip
    assert "Created the rule “Dip buyer”: PRICE &gt;= EMA9 AND RSI14 &lt; 70." in html(resp)


def test_save_with_a_bad_row_or_a_taken_name_stores_nothing_and_says_why(client):
    before = Rule.objects.count()
    page = html(client.post("/rules/new/", builder_data((("PRICE", ">", "MA0"),), name="Bad")))
    assert "The rule was not saved" in page
    assert "MA0" in slot(page, "err-r0-right")
    page = html(client.post("/rules/new/", builder_data(name="MA Momentum")))
    assert "A rule named “MA Momentum” already exists" in slot(page, "err-name")
    page = html(client.post("/rules/new/", builder_data(name="")))
    assert slot(page, "err-name") == "Give the rule a name."
    assert Rule.objects.count() == before


def test_edit_saves_through_the_service_and_is_refused_while_running(client):
    rule = make_rule(name="Tweak me")
    data = builder_data((("PRICE", ">", "MA20"),), name="Tweaked", cooldown_sec="5")
    assert client.post(f"/rules/{rule.pk}/edit/", data).status_code == 302
    rule.refresh_from_db()
    assert rule.name == "Tweaked" and rule.text == "PRICE > MA20" and rule.cooldown_sec == 5
    make_running_engine(rule=rule)
    assert "stop the engine before editing it" in html(client.get(f"/rules/{rule.pk}/edit/"))
    resp = client.post(f"/rules/{rule.pk}/edit/", builder_data(name="Tweaked again"))
    assert resp.status_code == 200
    assert "stop the engine before editing it" in html(resp)
    rule.refresh_from_db()
    assert rule.name == "Tweaked" and rule.text == "PRICE > MA20"


def test_builder_works_without_javascript(client):
    """The same buttons post the whole page when htmx is not there."""
    page = html(client.post("/rules/new/", builder_data(action="add")))
    assert len(re.findall(r'name="row"', page)) == 3 and "Give the rule a name" not in page
    page = html(client.post("/rules/new/", builder_data(text="MA5 > MA10", action="parse")))
    assert re.findall(r'name="left" value="([^"]*)"', page) == ["MA5"]
    page = html(client.post("/rules/new/", builder_data(remove="r0")))
    assert re.findall(r'name="left" value="([^"]*)"', page) == ["MA5"]
    page = html(client.post("/rules/new/", preview_data(action="preview")))
    assert re.search(r"\d+ signals?</strong>\s*over 720 bars", page)
    assert not Rule.objects.filter(type="custom").exists()


# Preview


def preview_data(rows=(("PRICE", ">", "MA5"),), **fields) -> dict:
    return builder_data(rows, cooldown_sec="0", **{"source": "demo", "bars": "720", **fields})


def test_preview_over_the_demo_history_counts_and_charts_the_signals(client):
    resp = client.post("/rules/builder/preview/", preview_data(), headers=HX)
    page = html(resp)
    assert resp.status_code == 200
    count = int(re.search(r"(\d+) signals?</strong>\s*over 720 bars", page)[1])
    assert count > 0
    assert "(demo market)" in page and 'data-preview-chart="preview-chart-data"' in page
    assert len(listed_signals(page)) == min(count, 25)
    # A rule that never holds fires nothing, over the same history.
    never = preview_data((("PRICE", ">", "HIGH"),))
    assert "0 signals</strong>" in html(client.post("/rules/builder/preview/", never, headers=HX))


def listed_signals(page: str) -> list[str]:
    """The rows of the preview's signal table."""
    table = re.search(r'data-testid="preview-signals">.*?<tbody[^>]*>(.*?)</tbody>', page, re.S)
    return re.findall(r"<tr>.*?</tr>", table[1], re.S) if table else []


def write_bars(closes, start=1_700_000_000, step=5) -> bytes:
    lines = ["time,open,high,low,close,volume"]
    for i, close in enumerate(closes):
        lines.append(f"{start + i * step},{close},{close},{close},{close},100")
    return ("\n".join(lines) + "\n").encode()


def test_preview_over_an_uploaded_csv_lists_when_the_rule_fired(client):
    start = 1_700_000_000
    # Flat at 100 (PRICE == MA5: false); 101 fires; 100 is below MA5; 102 fires; 100.5 < MA5.
    closes = [100, 100, 100, 100, 100, 101, 100, 100, 102, 100.5]
    upload = SimpleUploadedFile("aapl_5s.csv", write_bars(closes, start), "text/csv")
    data = preview_data(source="csv", csv_file=upload)
    page = html(client.post("/rules/builder/preview/", data, headers=HX))
    assert re.search(r"2 signals</strong>\s*over 10 bars", page), page
    assert "5 s bars of AAPL" in page
    # Stamped with the bar's close time (start + 5 s).
    for index in (5, 8):
        stamp = format_time(start + index * 5 + 5).replace("T", " ").removesuffix("Z")
        # The side cell (the rule has none) sits between the time and the symbol.
        assert re.search(
            rf'<td class="font-mono">{stamp}</td><td><span [^>]*data-side=""[^>]*>none</span></td>'
            r"<td>AAPL</td>",
            page,
        )
    assert '"markers": [[1700000030, 101.0, ""], [1700000045, 102.0, ""]]' in page


def test_preview_of_a_bad_csv_names_the_line_and_the_problem(client):
    body = write_bars([100, 100, 100]).replace(
        b",100,100,100,100,100\n", b",100,100,abc,100,100\n", 1
    )
    upload = SimpleUploadedFile("bars.csv", body, "text/csv")
    page = html(client.post("/rules/builder/preview/", preview_data(source="csv", csv_file=upload),
                            headers=HX))  # fmt: skip
    assert "In bars.csv, line 2: column low: &#x27;abc&#x27; is not a number." in page
    assert "signals</strong>" not in page
    missing = SimpleUploadedFile("bars.csv", b"time,close\n1,2\n", "text/csv")
    page = html(client.post("/rules/builder/preview/", preview_data(source="csv", csv_file=missing),
                            headers=HX))  # fmt: skip
    assert "In bars.csv, line 1: missing columns open, high, low, volume" in page


def test_preview_refuses_a_file_over_5_mb_with_a_clear_message(client):
    big = write_bars([100] * 10) + b"#" * (5 * 1024 * 1024)
    upload = SimpleUploadedFile("big.csv", big, "text/csv")
    resp = client.post("/rules/builder/preview/", preview_data(source="csv", csv_file=upload),
                       headers=HX)  # fmt: skip
    assert resp.status_code == 200
    assert "The file is 5.1 MB, over the preview&#x27;s 5 MB limit; cut it to the bars" in html(
        resp
    )
    assert "signals</strong>" not in html(resp)


def test_preview_needs_a_file_for_the_csv_source_and_a_valid_draft(client):
    page = html(client.post("/rules/builder/preview/", preview_data(source="csv"), headers=HX))
    assert "Choose a CSV file to preview over, or use the demo." in page
    bad = preview_data((("PRICE", ">", "NOPE"),))
    page = html(client.post("/rules/builder/preview/", bad, headers=HX))
    assert "Fix the rule&#x27;s highlighted fields first" in page
    assert "Unknown operand 'NOPE'" in slot(page, "err-r0-right")


# Save uses what the trader sees: the text box or the rows


def shown(page: str) -> dict:
    """The text box and its two hidden companions, as the page rendered them."""
    fields = {}
    for name in ("text", "shown_text", "shown_rows"):
        tag = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
        assert tag, f"no {name} field"
        value = re.search(r'value="([^"]*)"', tag[0])
        fields[name] = unescape(value[1]) if value else ""
    return fields


def test_the_builder_shows_the_rows_in_the_text_box_from_the_start(client):
    assert shown(html(client.get("/rules/new/"))) == dict.fromkeys(
        ("text", "shown_text", "shown_rows"), "PRICE > MA5 AND MA5 > MA10"
    )


def test_save_uses_a_text_typed_in_the_box_without_fill_rows(client):
    page = shown(html(client.get("/rules/new/")))
    data = builder_data(name="Crosser", **{**page, "text": "ma5 crosses above ma20 or rsi14 ≤ 30"})
    resp = client.post("/rules/new/", data)
    assert resp.status_code == 302
    assert Rule.objects.get(name="Crosser").definition["conditions"] == [
        {"left": "MA5", "op": "crosses_above", "right": "MA20"},
        {"left": "RSI14", "op": "<=", "right": 30},
    ]
    assert Rule.objects.get(name="Crosser").definition["logic"] == "OR"


def test_save_uses_the_rows_when_only_they_changed(client):
    page = shown(html(client.get("/rules/new/")))
    data = builder_data((("PRICE", ">=", "MA20"),), name="Rows win", **page)
    assert client.post("/rules/new/", data).status_code == 302
    assert Rule.objects.get(name="Rows win").text == "PRICE >= MA20"


def test_a_typed_text_is_never_dropped_silently(client):
    page = shown(html(client.get("/rules/new/")))
    before = Rule.objects.count()
    # The box doesn't parse: nothing is saved, the sentence sits under the box.
    bad = builder_data(name="Half", **{**page, "text": "PRICE > MA5 AND MA5 >"})
    answer = html(client.post("/rules/new/", bad))
    assert slot(answer, "err-text") == (
        "Expected an operand or a number after '>', found the end of the text."
    )
    assert shown(answer)["text"] == "PRICE > MA5 AND MA5 >"
    # Both the box and the rows changed and disagree: refused, the typed text kept.
    both = builder_data((("PRICE", ">", "MA20"),), name="Both", **{**page, "text": "MA5 > MA10"})
    answer = html(client.post("/rules/new/", both))
    assert "both changed: press Fill rows to use the text" in slot(answer, "err-text")
    assert shown(answer)["text"] == "MA5 > MA10"
    assert "The rule was not saved" in answer
    assert Rule.objects.count() == before
    # Fill rows makes them agree: then Save saves it.
    filled = html(client.post("/rules/new/", {**both, "action": "parse"}))
    again = builder_data((("MA5", ">", "MA10"),), name="Both", **shown(filled))
    assert client.post("/rules/new/", again).status_code == 302
    assert Rule.objects.get(name="Both").text == "MA5 > MA10"


def test_live_feedback_shows_the_rule_save_would_store(client):
    page = shown(html(client.get("/rules/new/")))
    data = builder_data(**{**page, "text": "MA5 crosses above MA20"})
    answer = html(client.post("/rules/builder/text/", data, headers=HX))
    assert "MA5 crosses_above MA20" in answer
    assert 'data-rows-text="PRICE &gt; MA5 AND MA5 &gt; MA10"' in answer
    data = builder_data(**{**page, "text": "MA5 crosses MA20"})
    answer = html(client.post("/rules/builder/text/", data, headers=HX))
    assert "'crosses' at position 5 followed by 'MA20'" in slot(answer, "err-text")
    assert "Fix the highlighted fields" in answer


# A running rule is locked on the pages


def test_the_running_rule_is_locked_in_the_list_and_the_builder(client):
    running = make_rule(name="Running now")
    other = make_rule(name="Idle one")
    make_running_engine(rule=running)
    page = html(client.get("/rules/"))
    reason = "The engine is running with the rule “Running now”: stop the engine before editing it."
    assert reason in page
    row = rule_row(page, running)
    assert f"/rules/{running.pk}/edit/" not in row and f"/rules/{running.pk}/delete/" not in row
    assert re.search(r"<button[^>]*disabled[^>]*>Edit</button>", row)
    assert re.search(r"<button[^>]*disabled[^>]*>Delete</button>", row)
    assert f"/rules/{other.pk}/edit/" in rule_row(page, other)

    builder = html(client.get(f"/rules/{running.pk}/edit/"))
    assert re.search(r"<fieldset[^>]*disabled", builder)
    assert builder.count(reason) == 1
    assert not re.search(r"<fieldset[^>]*disabled", html(client.get(f"/rules/{other.pk}/edit/")))


def test_a_save_that_still_reaches_a_locked_rule_says_so_once(client):
    running = make_rule(name="Running now")
    make_running_engine(rule=running)
    resp = client.post(f"/rules/{running.pk}/edit/", builder_data(name="Renamed"))
    answer = html(resp)
    assert answer.count("stop the engine before editing it") == 1
    assert 'role="alert" id="lock-message"' in answer
    running.refresh_from_db()
    assert running.name == "Running now"


def test_active_toggles_are_disabled_with_the_reason_while_the_engine_runs(client):
    """Replaces the seed's single "Make active" button: every rule has an Active toggle, and
    while a run holds the active rules every toggle is disabled with the reason."""
    idle = make_rule(name="Idle one")
    row = rule_row(html(client.get("/rules/")), idle)
    assert f'action="/rules/{idle.pk}/active/"' in row
    toggle = re.search(r'<button[^>]*data-testid="active-toggle"[^>]*>', row)
    assert toggle and not re.search(r"\sdisabled[\s>]", toggle[0])
    make_running_engine(rule=Rule.objects.get(is_system=True))
    page = html(client.get("/rules/"))
    reason = "The engine is running: stop it before changing the active rules."
    for rule in (idle, Rule.objects.get(is_system=True)):
        toggle = re.search(r'<button[^>]*data-testid="active-toggle"[^>]*>', rule_row(page, rule))
        assert toggle and re.search(r"\sdisabled[\s>]", toggle[0])
        assert f'title="{reason}"' in toggle[0]
    assert reason in page


# The Active toggle (several active rules, DESIGN §7.2)


def toggle(client, rule, active: bool, **headers):
    return client.post(f"/rules/{rule.pk}/active/", {"active": "1" if active else "0"}, **headers)


def active_ids() -> set[int]:
    return set(Rule.objects.filter(is_active=True).values_list("pk", flat=True))


def test_the_list_counts_the_active_rules_and_the_toggle_switches_one(client):
    system = Rule.objects.get(is_system=True)
    mine = make_rule(name="Scalp fast")
    page = html(client.get("/rules/"))
    assert re.search(r'data-testid="active-count"[^>]*><strong[^>]*>1</strong> of 10 active', page)
    assert 'aria-checked="true"' in rule_row(page, system)
    assert 'aria-checked="false"' in rule_row(page, mine)
    assert 'name="active" value="1"' in rule_row(page, mine)  # the toggle turns it on

    resp = toggle(client, mine, True, headers=HX)
    assert resp.status_code == 200
    fragment = html(resp)
    assert fragment.lstrip().startswith('<div id="rules-table"')  # only the table is redrawn
    assert "<html" not in fragment
    assert re.search(r"<strong[^>]*>2</strong> of 10 active", fragment)
    assert 'aria-checked="true"' in rule_row(fragment, mine)
    assert 'name="active" value="0"' in rule_row(fragment, mine)
    assert active_ids() == {system.pk, mine.pk}

    resp = toggle(client, system, False, headers=HX)
    assert re.search(r"<strong[^>]*>1</strong> of 10 active", html(resp))
    assert active_ids() == {mine.pk}


def test_the_toggle_without_javascript_redirects_with_a_message(client):
    mine = make_rule(name="Scalp fast")
    resp = toggle(client, mine, True)
    assert resp.status_code == 302 and resp["Location"] == "/rules/"
    page = html(client.get("/rules/"))
    assert "“Scalp fast” is active: the engine runs it at its next start." in page
    toggle(client, mine, False)
    assert "“Scalp fast” is no longer active." in html(client.get("/rules/"))
    assert mine.pk not in active_ids()


def test_an_eleventh_active_rule_is_refused_inline_with_the_services_sentence(client):
    rules = [make_rule(name=f"Rule {n}") for n in range(10)]
    for rule in rules[:9]:  # with the system rule: 10 active
        toggle(client, rule, True)
    assert len(active_ids()) == 10
    resp = toggle(client, rules[9], True, headers=HX)
    assert resp.status_code == 200
    row = rule_row(html(resp), rules[9])
    error = re.search(r'<p id="toggle-error-(\d+)" role="alert"[^>]*>(.*?)</p>', row)
    assert error and int(error[1]) == rules[9].pk
    assert unescape(error[2]) == (
        "At most 10 rules can be active at once; this would make 11: deactivate one first."
    )
    assert f'aria-describedby="toggle-error-{rules[9].pk}"' in row
    assert rules[9].pk not in active_ids() and len(active_ids()) == 10
    # Without JavaScript the same sentence comes back as a message.
    toggle(client, rules[9], True)
    assert "this would make 11: deactivate one first." in unescape(html(client.get("/rules/")))


def test_a_toggle_while_the_engine_runs_is_refused_inline(client):
    """A page opened before Start still posts: the service refuses, the row says why."""
    mine = make_rule(name="Scalp fast")
    make_running_engine(rule=Rule.objects.get(is_system=True))
    resp = toggle(client, mine, True, headers=HX)
    assert resp.status_code == 200
    assert "The engine is running: stop it before changing the active rules." in (
        rule_row(html(resp), mine)
    )
    assert mine.pk not in active_ids()


def test_the_toggle_needs_post_login_csrf_and_a_rule(client):
    mine = make_rule(name="Scalp fast")
    assert client.get(f"/rules/{mine.pk}/active/").status_code == 405
    assert client.post("/rules/99999/active/", {"active": "1"}).status_code == 404
    anonymous = Client(HTTP_HOST="localhost")
    resp = anonymous.post(f"/rules/{mine.pk}/active/", {"active": "1"})
    assert resp.status_code == 302 and "/login/" in resp["Location"]
    strict = Client(HTTP_HOST="localhost", enforce_csrf_checks=True)
    strict.force_login(get_user_model().objects.get(username="trader"))
    assert strict.post(f"/rules/{mine.pk}/active/", {"active": "1"}).status_code == 403
    assert mine.pk not in active_ids()


def test_the_list_shows_each_rules_side(client):
    buy = make_rule(name="Long", definition={**DEFAULT_DEFINITION, "side": "buy"})
    sell = make_rule(name="Short", definition={**DEFAULT_DEFINITION, "side": "sell"})
    page = html(client.get("/rules/"))
    assert re.search(
        r'data-side="buy"[^>]*>BUY <span aria-hidden="true">▲</span>', rule_row(page, buy)
    )
    assert re.search(
        r'data-side="sell"[^>]*>SELL <span aria-hidden="true">▼</span>', rule_row(page, sell)
    )
    assert 'data-side=""' in rule_row(page, Rule.objects.get(is_system=True))


def test_deleting_an_active_rule_says_it_leaves_the_active_rules(client):
    mine = make_rule(name="Scalp fast")
    toggle(client, mine, True)
    confirm = html(client.get(f"/rules/{mine.pk}/delete/"))
    assert "It is one of the active rules: deleting it takes it out of them." in confirm
    assert client.post(f"/rules/{mine.pk}/delete/").status_code == 302
    assert active_ids() == {Rule.objects.get(is_system=True).pk}
    idle = make_rule(name="Idle")
    assert "It is one of the active rules" not in html(client.get(f"/rules/{idle.pk}/delete/"))
