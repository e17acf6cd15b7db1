"""Upgrading keeps what was active: rules 0003 / engine 0002 turn the single
``AppSettings.active_rule`` into ``Rule.is_active`` and ``run_rule`` into ``run_rules``."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("rules", "0002_seed_system_rule"), ("engine", "0001_initial")]
DEFINITION = {
    "logic": "AND",
    "conditions": [{"left": "PRICE", "op": ">", "right": "MA5"}],
    "cooldown_sec": 0,
    "trigger": "level",
}


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.mark.django_db(transaction=True)
def test_the_chosen_active_rule_stays_active_and_a_held_run_keeps_its_rule():
    old = migrate(BEFORE)
    Rule = old.get_model("rules", "Rule")
    custom = Rule.objects.create(name="Chosen", type="custom", definition=DEFINITION)
    Rule.objects.create(name="Not chosen", type="custom", definition=DEFINITION)
    old.get_model("engine", "AppSettings").objects.update_or_create(
        pk=1, defaults={"active_rule_id": custom.pk}
    )
    old.get_model("engine", "EngineState").objects.update_or_create(
        pk=1, defaults={"run_rule_id": custom.pk}
    )
    new = migrate(latest())
    active = new.get_model("rules", "Rule").objects.filter(is_active=True)
    assert list(active.values_list("name", flat=True)) == ["Chosen"]
    assert new.get_model("engine", "EngineState").objects.get(pk=1).run_rules == [custom.pk]
    assert not hasattr(new.get_model("engine", "AppSettings").objects.get(pk=1), "active_rule")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("settings_row", [False, True])
def test_without_a_chosen_rule_the_system_rule_is_the_active_one(settings_row):
    old = migrate(BEFORE)
    old.get_model("rules", "Rule").objects.create(
        name="Custom", type="custom", definition=DEFINITION
    )
    AppSettings = old.get_model("engine", "AppSettings")
    AppSettings.objects.all().delete()
    if settings_row:
        AppSettings.objects.create(pk=1, active_rule=None)
    new = migrate(latest())
    active = new.get_model("rules", "Rule").objects.filter(is_active=True)
    assert list(active.values_list("is_system", flat=True)) == [True]
