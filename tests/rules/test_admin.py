"""The admin goes through the same validation and locks as the services."""

import json

import pytest

from rules import services
from rules.models import Rule
from tests.factories import DEFAULT_DEFINITION, make_rule, make_running_engine

pytestmark = pytest.mark.django_db


def post_rule(client, url, name, definition):
    text = definition if isinstance(definition, str) else json.dumps(definition)
    return client.post(url, {"name": name, "definition": text})


def test_admin_adds_a_valid_rule(admin_client):
    resp = post_rule(admin_client, "/admin/rules/rule/add/", "Via admin", DEFAULT_DEFINITION)
    assert resp.status_code == 302
    assert Rule.objects.get(name="Via admin").text == "PRICE > MA5 AND MA5 > MA10"


def test_admin_shows_an_unknown_operand_as_a_form_error(admin_client):
    bad = {**DEFAULT_DEFINITION, "conditions": [{"left": "PRICE", "op": ">", "right": "MA999"}]}
    resp = post_rule(admin_client, "/admin/rules/rule/add/", "Bad", bad)
    assert resp.status_code == 200
    assert "conditions[0].right" in resp.content.decode()
    assert not Rule.objects.filter(name="Bad").exists()


def test_admin_shows_invalid_json_as_a_form_error(admin_client):
    resp = post_rule(admin_client, "/admin/rules/rule/add/", "Bad", '{"logic": "AND",')
    assert resp.status_code == 200
    assert "Enter a valid JSON" in resp.content.decode()


def test_admin_system_rule_is_read_only_with_no_delete(admin_client):
    system = Rule.objects.get(is_system=True)
    page = admin_client.get(f"/admin/rules/rule/{system.pk}/change/").content.decode()
    assert 'name="_save"' not in page
    assert "/delete/" not in page
    resp = post_rule(admin_client, f"/admin/rules/rule/{system.pk}/change/", "X",
                     DEFAULT_DEFINITION)  # fmt: skip
    assert resp.status_code == 403
    assert admin_client.post(f"/admin/rules/rule/{system.pk}/delete/",
                             {"post": "yes"}).status_code == 403  # fmt: skip
    assert Rule.objects.get(pk=system.pk).name == "MA Momentum"


def test_admin_bulk_delete_skips_the_system_rule(admin_client):
    custom = make_rule()
    system = Rule.objects.get(is_system=True)
    resp = admin_client.post(
        "/admin/rules/rule/",
        {"action": "delete_custom_rules", "_selected_action": [system.pk, custom.pk]},
        follow=True,
    )
    assert "can&#x27;t be deleted" in resp.content.decode()
    assert list(Rule.objects.values_list("pk", flat=True)) == [system.pk]


def test_admin_refuses_editing_the_running_rule(admin_client):
    rule = make_rule(name="Running")
    make_running_engine(rule=rule)
    resp = post_rule(admin_client, f"/admin/rules/rule/{rule.pk}/change/", "Renamed",
                     DEFAULT_DEFINITION)  # fmt: skip
    assert resp.status_code == 200
    assert "stop the engine before editing it" in resp.content.decode()
    resp = admin_client.post(f"/admin/rules/rule/{rule.pk}/delete/", {"post": "yes"}, follow=True)
    assert "stop the engine before deleting it" in resp.content.decode()
    assert Rule.objects.filter(name="Running").exists()


def test_admin_clone_action(admin_client):
    system = Rule.objects.get(is_system=True)
    admin_client.post("/admin/rules/rule/",
                      {"action": "clone_rules", "_selected_action": [system.pk]})  # fmt: skip
    assert Rule.objects.filter(name="MA Momentum copy", is_system=False).exists()


def test_admin_refuses_a_deeply_nested_definition_with_a_sentence(admin_client):
    resp = post_rule(admin_client, "/admin/rules/rule/add/", "Deep", "[" * 5000 + "]" * 5000)
    assert resp.status_code == 200
    assert "nested too deeply" in resp.content.decode()
    assert not Rule.objects.filter(name="Deep").exists()


def test_admin_refuses_a_5000_digit_cooldown_with_a_sentence(admin_client):
    text = json.dumps(DEFAULT_DEFINITION).replace(
        '"cooldown_sec": 60', '"cooldown_sec": ' + "9" * 5000
    )
    resp = post_rule(admin_client, "/admin/rules/rule/add/", "Huge", text)
    assert resp.status_code == 200
    assert "is too long" in resp.content.decode()
    assert not Rule.objects.filter(name="Huge").exists()


def test_admin_refuses_a_name_with_a_line_break(admin_client):
    resp = post_rule(admin_client, "/admin/rules/rule/add/", "Two\nlines", DEFAULT_DEFINITION)
    assert resp.status_code == 200
    assert "control character" in resp.content.decode()
    assert Rule.objects.count() == 1


def test_admin_edit_shows_the_stored_definition_as_json(admin_client):
    rule = make_rule(name="Shown")
    page = admin_client.get(f"/admin/rules/rule/{rule.pk}/change/").content.decode()
    assert "&quot;cooldown_sec&quot;: 60" in page
    resp = post_rule(admin_client, f"/admin/rules/rule/{rule.pk}/change/", "Shown",
                     {**DEFAULT_DEFINITION, "cooldown_sec": 5})  # fmt: skip
    assert resp.status_code == 302
    rule.refresh_from_db()
    assert rule.cooldown_sec == 5


def active_names() -> list[str]:
    return [rule.name for rule in services.rules_active()]


def test_admin_actions_activate_and_deactivate_through_the_services(admin_client):
    first, second = make_rule(name="First"), make_rule(name="Second")
    resp = admin_client.post(
        "/admin/rules/rule/",
        {"action": "activate_rules", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )
    assert active_names() == ["MA Momentum", "First", "Second"]
    assert "Active rules (3 of at most 10)" in resp.content.decode()
    admin_client.post(
        "/admin/rules/rule/", {"action": "deactivate_rules", "_selected_action": [first.pk]}
    )
    assert active_names() == ["MA Momentum", "Second"]
    listing = admin_client.get("/admin/rules/rule/?is_active__exact=1").content.decode()
    assert "Second" in listing and "First" not in listing


def test_admin_refuses_an_eleventh_active_rule_and_changes_while_running(admin_client):
    rules = [make_rule(name=f"R{n}") for n in range(10)]
    services.rules_activate(ids=[r.pk for r in rules[:9]])
    resp = admin_client.post(
        "/admin/rules/rule/",
        {"action": "activate_rules", "_selected_action": [rules[9].pk]},
        follow=True,
    )
    assert "At most 10 rules can be active at once" in resp.content.decode()
    assert len(active_names()) == 10
    make_running_engine(rules=services.rules_active())
    resp = admin_client.post(
        "/admin/rules/rule/",
        {"action": "deactivate_rules", "_selected_action": [rules[0].pk]},
        follow=True,
    )
    assert "stop it before changing the active rules" in resp.content.decode()
    assert len(active_names()) == 10
    # Every active rule is locked, not only the first.
    resp = post_rule(admin_client, f"/admin/rules/rule/{rules[8].pk}/change/", "Renamed",
                     DEFAULT_DEFINITION)  # fmt: skip
    assert resp.status_code == 200
    assert "stop the engine before editing it" in resp.content.decode()
    assert Rule.objects.get(pk=rules[8].pk).name == "R8"
