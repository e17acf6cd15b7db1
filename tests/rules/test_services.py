"""Rules through the services: validation, the seeded system rule, clone, locks."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from rules import services
from rules.models import Rule
from tests.factories import DEFAULT_DEFINITION, make_rule, make_running_engine

pytestmark = pytest.mark.django_db


def test_migration_seeds_the_system_rule_in_the_seed_shape():
    rule = Rule.objects.get(is_system=True)
    assert rule.type == "system"
    assert rule.to_json() == {"id": rule.pk, "name": "MA Momentum", "type": "system",
                              **DEFAULT_DEFINITION}  # fmt: skip
    assert rule.text == "PRICE > MA5 AND MA5 > MA10"
    assert rule.is_active and services.rules_active() == [rule]


def test_create_stores_the_canonical_definition():
    rule = make_rule(definition={"logic": "OR", "cooldown_sec": 0,
                                 "conditions": [{"left": "MA5", "op": "crosses_above",
                                                 "right": "MA20"}]})  # fmt: skip
    rule.refresh_from_db()
    assert rule.definition["trigger"] == "level"
    assert rule.text == "MA5 crosses_above MA20"


@pytest.mark.parametrize(
    ("definition", "field_fragment"),
    [
        ({"logic": "XOR", "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"}],
          "cooldown_sec": 1}, "logic"),
        ({"logic": "AND", "conditions": [], "cooldown_sec": 1}, "conditions"),
        ({"logic": "AND", "conditions": [{"left": "PRICE", "op": ">", "right": "MA500"}],
          "cooldown_sec": 1}, "conditions[0].right"),
        ({"logic": "AND", "conditions": [{"left": "FOO", "op": ">", "right": "MA5"}],
          "cooldown_sec": 1}, "conditions[0].left"),
        ({"logic": "AND", "conditions": [{"left": "PRICE", "op": "=>", "right": "MA5"}],
          "cooldown_sec": 1}, "conditions[0].op"),
        ({"logic": "AND", "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"}],
          "cooldown_sec": -5}, "cooldown_sec"),
        ("PRICE > MA5", ""),
    ],
)  # fmt: skip
def test_invalid_definitions_are_refused_with_the_field_named(definition, field_fragment):
    with pytest.raises(ValidationError) as exc:
        make_rule(definition=definition)
    message = " ".join(exc.value.message_dict["definition"])
    assert field_fragment in message
    assert not Rule.objects.filter(name="My rule").exists()


def test_system_rule_cannot_be_edited_or_deleted_but_can_be_cloned():
    system = Rule.objects.get(is_system=True)
    with pytest.raises(ValidationError, match="read-only"):
        services.rule_update(rule=system, name="Mine now")
    with pytest.raises(ValidationError, match="can't be deleted"):
        services.rule_delete(rule=system)
    clone = services.rule_clone(rule=system)
    assert clone.name == "MA Momentum copy"
    assert clone.type == "custom" and not clone.is_system
    assert clone.definition == system.definition
    assert services.rule_clone(rule=system).name == "MA Momentum copy (2)"
    system.refresh_from_db()
    assert system.name == "MA Momentum"


def test_duplicate_names_are_refused():
    make_rule(name="Scalp")
    with pytest.raises(ValidationError) as exc:
        make_rule(name="Scalp")
    assert "name" in exc.value.message_dict


def test_running_rule_is_locked_and_other_rules_are_not():
    running = make_rule(name="Running")
    other = make_rule(name="Other")
    make_running_engine(rule=running)
    with pytest.raises(ValidationError, match="stop the engine before editing"):
        services.rule_update(rule=running, name="Renamed")
    with pytest.raises(ValidationError, match="stop the engine before deleting"):
        services.rule_delete(rule=running)
    with pytest.raises(ValidationError, match="changing the active rules"):
        services.rule_activate(rule=other)
    services.rule_update(rule=other, name="Other renamed")
    assert Rule.objects.filter(name="Other renamed").exists()


def test_stale_heartbeat_releases_the_lock():
    rule = make_rule(name="Was running")
    state = make_running_engine(rule=rule)
    state.heartbeat = timezone.now() - timedelta(seconds=11)
    state.save()
    assert state.effective_state == "offline"
    services.rule_update(rule=rule, name="Free again")


def test_deleting_an_active_rule_takes_it_out_of_the_active_set():
    rule = make_rule()
    services.rule_activate(rule=rule)
    system = Rule.objects.get(is_system=True)
    assert services.rules_active() == [system, rule]
    services.rule_delete(rule=rule)
    assert services.rules_active() == [system]


def test_import_creates_then_updates_by_name():
    data = {"id": 99, "name": "Imported", "type": "custom", **DEFAULT_DEFINITION}
    first = services.rule_import(data=data)
    second = services.rule_import(data={**data, "cooldown_sec": 5})
    assert first.pk == second.pk
    assert second.cooldown_sec == 5
    with pytest.raises(ValidationError):
        services.rule_import(data={"name": "MA Momentum", **DEFAULT_DEFINITION})


@pytest.mark.parametrize(
    ("name", "words"),
    [("a\x00b", "control character"), ("two\nlines", "control character"),
     ("x" * 81, "at most 80"), ("  ", "needs a name")],
)  # fmt: skip
def test_rule_names_are_one_trimmed_line_of_text(name, words):
    with pytest.raises(ValidationError) as info:
        services.rule_create(name=name, definition=DEFAULT_DEFINITION)
    assert words in " ".join(info.value.message_dict["name"])
    assert services.rule_create(name="  Trimmed ", definition=DEFAULT_DEFINITION).name == "Trimmed"


@pytest.mark.parametrize("name", [12345, True, ["x"], {"a": 1}, "a\x00b", "a\nb", ""])
def test_import_refuses_a_name_that_is_not_one_line_of_text(name):
    with pytest.raises(ValidationError) as info:
        services.rule_import(data={"name": name, **DEFAULT_DEFINITION})
    assert "name" in info.value.message_dict
    assert Rule.objects.count() == 1


def test_import_of_a_list_is_all_or_nothing():
    good = {"name": "First", **DEFAULT_DEFINITION}
    bad = {"name": "Second", **DEFAULT_DEFINITION, "logic": "NAND"}
    with pytest.raises(ValidationError) as info:
        services.rule_import_many(items=[good, bad])
    assert info.value.messages == ["Rule 2 of 2: logic: unknown logic 'NAND'; use AND or OR."]
    assert not Rule.objects.filter(name="First").exists()
    rules = services.rule_import_many(items=[good, {**bad, "logic": "OR"}])
    assert [r.name for r in rules] == ["First", "Second"]


def test_import_of_a_list_refuses_the_same_name_twice():
    item = {"name": "Twice", **DEFAULT_DEFINITION}
    with pytest.raises(ValidationError, match="Rule 2 of 2: .*also the name of rule 1"):
        services.rule_import_many(items=[item, {**item, "name": " Twice "}])
    assert not Rule.objects.filter(name="Twice").exists()


def test_import_of_a_list_is_refused_as_a_whole_when_one_rule_is_locked():
    held = make_rule(name="Held")
    make_running_engine(rule=held)
    items = [{"name": "New", **DEFAULT_DEFINITION}, {"name": "Held", **DEFAULT_DEFINITION}]
    with pytest.raises(ValidationError, match="Rule 2 of 2: .*stop the engine"):
        services.rule_import_many(items=items)
    assert not Rule.objects.filter(name="New").exists()
