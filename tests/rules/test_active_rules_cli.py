"""`rules list`, `rules activate ID [ID...]`, `rules deactivate [ID...]`, `rules export
--active`: the active set from the command line (DESIGN §7.2)."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from rules.models import Rule
from rules.services import rules_activate, rules_active
from tests.engine.test_commands import manage, one_line_exit_2
from tests.factories import DEFAULT_DEFINITION, make_rule, make_running_engine


def run(*args: str) -> str:
    out = StringIO()
    call_command("rules", *args, stdout=out)
    return out.getvalue()


def system_rule() -> Rule:
    return Rule.objects.get(is_system=True)


@pytest.mark.django_db
def test_list_shows_every_rule_with_active_and_side():
    sell = make_rule(name="Dip", definition={**DEFAULT_DEFINITION, "side": "sell"})
    make_rule(name="Idle")
    rules_activate(ids=[sell.pk])
    lines = run("list").splitlines()
    assert lines[0].split() == ["ID", "ACTIVE", "SIDE", "NAME", "CONDITIONS"]
    rows = {line.split()[0]: line.split()[:4] for line in lines[1:]}
    system = system_rule()
    assert rows[str(system.pk)] == [str(system.pk), "yes", "-", "MA"]
    assert rows[str(sell.pk)] == [str(sell.pk), "yes", "sell", "Dip"]
    assert rows[str(Rule.objects.get(name="Idle").pk)][1:3] == ["-", "-"]
    assert lines[1].endswith("PRICE > MA5 AND MA5 > MA10")


@pytest.mark.django_db
def test_activate_adds_and_prints_the_set_and_deactivate_takes_out():
    buy = make_rule(name="Buy", definition={**DEFAULT_DEFINITION, "side": "buy"})
    other = make_rule(name="Other")
    system = system_rule()
    out = run("activate", str(other.pk), str(buy.pk))
    assert out.splitlines() == [
        "Active rules (3 of at most 10):",
        f"  {system.pk}  MA Momentum: PRICE > MA5 AND MA5 > MA10",
        f"  {buy.pk}  Buy [buy]: PRICE > MA5 AND MA5 > MA10",
        f"  {other.pk}  Other: PRICE > MA5 AND MA5 > MA10",
    ]
    run("deactivate", str(system.pk))
    assert [r.pk for r in rules_active()] == [buy.pk, other.pk]
    exported = json.loads(run("export", "--active"))
    assert [(r["id"], r.get("side")) for r in exported] == [(buy.pk, "buy"), (other.pk, None)]
    assert run("deactivate").strip() == (
        "No rule is active: the engine won't start until one is (rules activate ID)."
    )
    assert rules_active() == []


@pytest.mark.django_db(transaction=True)
def test_bad_input_exits_2_with_one_line_and_changes_nothing():
    rules = [make_rule(name=f"R{n}") for n in range(10)]
    assert "There is no rule with id 999999." in one_line_exit_2(
        manage("rules", "activate", str(rules[0].pk), "999999")
    )
    assert "id='x' is not a whole number" in one_line_exit_2(manage("rules", "activate", "x"))
    assert "id='-3'" in one_line_exit_2(manage("rules", "deactivate", "-3"))
    assert rules_active() == [system_rule()]
    line = one_line_exit_2(manage("rules", "activate", *(str(r.pk) for r in rules)))
    assert "At most 10 rules can be active at once; this would make 11" in line
    assert rules_active() == [system_rule()]
    assert "not both" in one_line_exit_2(manage("rules", "export", "1", "--active"))


@pytest.mark.django_db(transaction=True)
def test_activate_and_deactivate_are_refused_while_the_engine_runs():
    rule = make_rule()
    state = make_running_engine(rule=system_rule())
    # Alive for an hour, so the child process sees a live run however slowly it starts.
    state.heartbeat = timezone.now() + timedelta(hours=1)
    state.save()
    for args in (("activate", str(rule.pk)), ("deactivate",)):
        line = one_line_exit_2(manage("rules", *args))
        assert line.endswith("The engine is running: stop it before changing the active rules.")
    assert rules_active() == [system_rule()]
