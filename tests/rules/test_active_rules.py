"""The active rule set (DESIGN §7.2): up to 10 rules, all locked while the engine runs."""

import pytest
from django.core.exceptions import ValidationError

from engine.models import AppSettings
from engine.services import (
    engine_start,
    engine_start_problems,
    engine_state_get,
    settings_get,
)
from rules import services
from rules.models import Rule
from tests.factories import make_rule, make_running_engine

pytestmark = pytest.mark.django_db


def system_rule() -> Rule:
    return Rule.objects.get(is_system=True)


def active_ids() -> list[int]:
    return [rule.pk for rule in services.rules_active()]


def test_a_fresh_install_has_the_system_rule_active_alone():
    assert active_ids() == [system_rule().pk]


def test_activate_adds_to_the_set_in_id_order_and_deactivate_takes_out():
    a, b, c = make_rule(name="A"), make_rule(name="B"), make_rule(name="C")
    assert [r.pk for r in services.rules_activate(ids=[c.pk, a.pk])] == [
        system_rule().pk,
        a.pk,
        c.pk,
    ]
    services.rules_activate(ids=[a.pk])  # already active: no change, no error
    assert active_ids() == [system_rule().pk, a.pk, c.pk]
    assert [r.pk for r in services.rules_deactivate(ids=[system_rule().pk, c.pk])] == [a.pk]
    assert services.rule_set_active(rule=b, active=True).is_active
    assert active_ids() == [a.pk, b.pk]
    assert not services.rule_set_active(rule=b, active=False).is_active
    assert active_ids() == [a.pk]


def test_deactivate_without_ids_empties_the_set_and_start_says_so():
    assert services.rules_deactivate() == []
    assert services.rules_active() == []
    with pytest.raises(ValidationError) as info:
        engine_start()
    assert info.value.messages == ["Activate at least one rule first."]
    assert engine_state_get().desired == "stopped"
    # settings_get() on an existing settings row never re-activates anything.
    settings_get()
    assert services.rules_active() == []


def test_start_problems_take_the_active_set():
    state = engine_state_get()
    assert engine_start_problems(state=state, active_rules=[], watchlist=None) == [
        "Activate at least one rule first.",
        "Choose an active watchlist first.",
    ]
    assert engine_start_problems(state=state, active_rules=[system_rule()], watchlist=None) == [
        "Choose an active watchlist first."
    ]


def test_at_most_ten_rules_are_active_and_activation_is_all_or_nothing():
    rules = [make_rule(name=f"R{n}") for n in range(10)]
    services.rules_activate(ids=[r.pk for r in rules[:9]])
    assert len(active_ids()) == 10  # the system rule and nine
    with pytest.raises(ValidationError) as info:
        services.rules_activate(ids=[rules[9].pk])
    assert info.value.messages == [
        "At most 10 rules can be active at once; this would make 11: deactivate one first."
    ]
    services.rules_deactivate(ids=[system_rule().pk, rules[0].pk])
    with pytest.raises(ValidationError, match="this would make 11"):
        services.rules_activate(ids=[system_rule().pk, rules[0].pk, rules[9].pk])
    assert len(active_ids()) == 8, "nothing of the refused call was applied"


def test_unknown_ids_are_refused_and_nothing_changes():
    rule = make_rule()
    with pytest.raises(ValidationError) as info:
        services.rules_activate(ids=[rule.pk, 9999])
    assert info.value.messages == ["There is no rule with id 9999."]
    assert active_ids() == [system_rule().pk]
    with pytest.raises(ValidationError) as info:
        services.rules_deactivate(ids=[system_rule().pk, 9998, 9999])
    assert info.value.messages == ["There are no rules with ids 9998, 9999."]
    assert active_ids() == [system_rule().pk]
    with pytest.raises(ValidationError, match="Name at least one rule"):
        services.rules_activate(ids=[])


def test_every_active_rule_is_locked_while_the_engine_runs():
    first, second, idle = make_rule(name="First"), make_rule(name="Second"), make_rule("Idle")
    services.rules_activate(ids=[first.pk, second.pk])
    make_running_engine(rules=[system_rule(), first, second])
    for rule in (first, second):
        with pytest.raises(ValidationError) as info:
            services.rule_update(rule=rule, name="Renamed")
        assert info.value.messages == [
            f"The engine is running with the rule “{rule.name}”: stop the engine before editing it."
        ]
        with pytest.raises(ValidationError, match="stop the engine before deleting it"):
            services.rule_delete(rule=rule)
    for call in (
        lambda: services.rules_activate(ids=[idle.pk]),
        lambda: services.rules_deactivate(ids=[first.pk]),
        lambda: services.rules_deactivate(),
        lambda: services.rule_set_active(rule=second, active=False),
    ):
        with pytest.raises(ValidationError) as info:
            call()
        assert info.value.messages == [
            "The engine is running: stop it before changing the active rules."
        ]
    assert active_ids() == [system_rule().pk, first.pk, second.pk]
    services.rule_update(rule=idle, name="Idle renamed")  # not active, not held: free
    assert Rule.objects.filter(name="Idle renamed").exists()


def test_an_active_rule_is_locked_even_if_the_run_did_not_record_it():
    """The lock covers the active set itself, not only the ids the run wrote down."""
    late = make_rule(name="Late")
    services.rules_activate(ids=[late.pk])
    make_running_engine(rules=[system_rule()])
    with pytest.raises(ValidationError, match="stop the engine before editing it"):
        services.rule_update(rule=late, name="Edited")


def test_the_settings_row_has_no_active_rule_field_any_more():
    assert "active_rule" not in {f.name for f in AppSettings._meta.get_fields()}


def test_a_rule_whose_timeframe_does_not_fit_the_settings_bar_size_is_not_activated():
    short = make_rule(
        name="Five-second MA",
        definition={
            "logic": "AND",
            "conditions": [{"left": "PRICE", "op": ">", "right": "MA5@5s"}],
            "cooldown_sec": 0,
        },
    )
    minute = make_rule(
        name="Minute MA",
        definition={
            "logic": "AND",
            "conditions": [{"left": "PRICE", "op": ">", "right": "MA5@1m"}],
            "cooldown_sec": 0,
        },
    )
    AppSettings.objects.filter(pk=settings_get().pk).update(bar_seconds=60)
    with pytest.raises(ValidationError) as info:
        services.rules_activate(ids=[minute.pk, short.pk])
    assert info.value.messages == [
        "The rule “Five-second MA” doesn't fit the bar size set on the Settings page: MA5@5s "
        "is on a timeframe shorter than the run's 1m bars; use @1m or longer, or a shorter "
        "bar size."
    ]
    assert active_ids() == [system_rule().pk], "all or nothing"
    services.rules_activate(ids=[minute.pk])
    AppSettings.objects.filter(pk=1).update(bar_seconds=5)
    services.rules_activate(ids=[short.pk])
    assert active_ids() == [system_rule().pk, short.pk, minute.pk]
