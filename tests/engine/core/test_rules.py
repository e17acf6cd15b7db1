"""Rule model and validator."""

import copy

import pytest

from engine.core.rules import (
    DEFAULT_RULE_DEFINITION,
    Condition,
    RuleError,
    operand_period,
    validate_definition,
)


def make_definition(**overrides):
    data = copy.deepcopy(DEFAULT_RULE_DEFINITION)
    data.update(overrides)
    return data


def make_condition(left="PRICE", op=">", right="MA5"):
    return {"left": left, "op": op, "right": right}


def error_of(data) -> RuleError:
    with pytest.raises(RuleError) as info:
        validate_definition(data)
    return info.value


def test_default_rule_round_trips_to_canonical_json():
    rule = validate_definition(DEFAULT_RULE_DEFINITION)
    assert rule.logic == "AND"
    assert rule.conditions == (Condition("PRICE", ">", "MA5"), Condition("MA5", ">", "MA10"))
    assert rule.cooldown_sec == 60
    assert rule.trigger == "level"
    assert rule.to_json() == DEFAULT_RULE_DEFINITION


def test_seed_metadata_is_accepted_and_kept_out_of_the_definition():
    rule = validate_definition(make_definition(id=2, name="MA Momentum", type="custom"))
    assert (rule.rule_id, rule.name, rule.type) == (2, "MA Momentum", "custom")
    assert set(rule.to_json()) == {"logic", "conditions", "cooldown_sec", "trigger"}
    assert rule == validate_definition(DEFAULT_RULE_DEFINITION)


def test_trigger_defaults_to_level():
    data = make_definition()
    del data["trigger"]
    assert validate_definition(data).trigger == "level"
    assert validate_definition(make_definition(trigger="edge")).trigger == "edge"


@pytest.mark.parametrize(
    "operand",
    ["PRICE", "MA5", "MA10", "MA20", "MA2", "MA200", "EMA9", "RSI14", "VWAP", "VOLUME", "OPEN",
     "HIGH", "LOW", "BBUPPER20", "BBLOWER20"],
)  # fmt: skip
def test_every_operand_is_accepted_on_both_sides(operand):
    rule = validate_definition(
        make_definition(conditions=[make_condition(operand, ">", "PRICE"),
                                    make_condition("PRICE", "<", operand)])
    )  # fmt: skip
    assert rule.operands() == {operand, "PRICE"}


@pytest.mark.parametrize("op", [">", "<", ">=", "<=", "crosses_above", "crosses_below"])
def test_every_operator_is_accepted(op):
    assert (
        validate_definition(make_definition(conditions=[make_condition(op=op)])).conditions[0].op
        == op
    )


def test_names_are_case_insensitive_and_canonicalised():
    rule = validate_definition(
        make_definition(logic="or", trigger="EDGE",
                        conditions=[make_condition("price", "CROSSES_ABOVE", "ma05")])
    )  # fmt: skip
    assert rule.to_json() == {
        "logic": "OR",
        "conditions": [{"left": "PRICE", "op": "crosses_above", "right": "MA5"}],
        "cooldown_sec": 60,
        "trigger": "edge",
    }


def test_numbers_on_the_right_stay_json_numbers():
    rule = validate_definition(
        make_definition(conditions=[make_condition("RSI14", "<", 30),
                                    make_condition("PRICE", ">", 189.25),
                                    make_condition("VOLUME", ">", "1000")])
    )  # fmt: skip
    rights = [c["right"] for c in rule.to_json()["conditions"]]
    assert rights == [30, 189.25, 1000]
    assert isinstance(rights[0], int) and isinstance(rights[1], float)


@pytest.mark.parametrize(
    ("data", "field", "words"),
    [
        ([], "definition", "JSON object"),
        (make_definition(extra=1), "extra", "unknown field"),
        ({k: v for k, v in DEFAULT_RULE_DEFINITION.items() if k != "logic"}, "logic", "missing"),
        (make_definition(logic="XOR"), "logic", "AND or OR"),
        (make_definition(conditions=[]), "conditions", "1 to 10"),
        (make_definition(conditions=[make_condition()] * 11), "conditions", "has 11"),
        (make_definition(conditions="PRICE > MA5"), "conditions", "list"),
        (make_definition(conditions=[make_condition(), 3]), "conditions[1]", "object"),
        (make_definition(conditions=[make_condition(), {"left": "PRICE", "op": ">"}]),
         "conditions[1].right", "missing"),
        (make_definition(conditions=[{"left": "PRICE", "op": ">", "right": "MA5", "x": 1}]),
         "conditions[0].x", "unknown key"),
        (make_definition(conditions=[make_condition(left="MA500")]), "conditions[0].left",
         "unknown operand 'MA500'"),
        (make_definition(conditions=[make_condition(left=30)]), "conditions[0].left",
         "not a number"),
        (make_definition(conditions=[make_condition(left=None)]), "conditions[0].left", "operand"),
        (make_definition(conditions=[make_condition(op="==")]), "conditions[0].op",
         "unknown operator '=='"),
        (make_definition(conditions=[make_condition(), make_condition(),
                                     make_condition(right="MA1")]),
         "conditions[2].right", "unknown operand 'MA1'"),
        (make_definition(conditions=[make_condition(right="FOO")]), "conditions[0].right",
         "use PRICE, MA5, MA10, MA20"),
        (make_definition(conditions=[make_condition(right="RSI")]), "conditions[0].right",
         "needs a period"),
        (make_definition(conditions=[make_condition(right=True)]), "conditions[0].right", "number"),
        (make_definition(conditions=[make_condition(right=float("nan"))]), "conditions[0].right",
         "finite"),
        (make_definition(conditions=[make_condition(right=1e300)]), "conditions[0].right", "large"),
        (make_definition(cooldown_sec=-1), "cooldown_sec", "0 to 86400"),
        (make_definition(cooldown_sec=86401), "cooldown_sec", "0 to 86400"),
        (make_definition(cooldown_sec=1.5), "cooldown_sec", "whole number"),
        (make_definition(cooldown_sec="60"), "cooldown_sec", "whole number"),
        (make_definition(cooldown_sec=True), "cooldown_sec", "whole number"),
        ({k: v for k, v in DEFAULT_RULE_DEFINITION.items() if k != "cooldown_sec"},
         "cooldown_sec", "missing"),
        (make_definition(trigger="once"), "trigger", "'level'"),
        (make_definition(id="2"), "id", "whole number"),
        (make_definition(name=5), "name", "text"),
    ],
)  # fmt: skip
def test_invalid_definitions_name_the_field_and_the_reason(data, field, words):
    err = error_of(data)
    assert err.field == field
    assert words in err.message
    assert str(err) == f"{field}: {err.message}"
    assert isinstance(err, ValueError)


def test_cooldown_boundaries_are_valid():
    assert validate_definition(make_definition(cooldown_sec=0)).cooldown_sec == 0
    assert validate_definition(make_definition(cooldown_sec=86400)).cooldown_sec == 86400
    assert validate_definition(make_definition(cooldown_sec=60.0)).cooldown_sec == 60


def test_warmup_bars_cover_the_slowest_operand_plus_cross_memory():
    assert validate_definition(DEFAULT_RULE_DEFINITION).warmup_bars() == 11
    rule = validate_definition(
        make_definition(conditions=[make_condition("RSI14", "<", 30),
                                    make_condition("EMA9", ">", "PRICE")])
    )  # fmt: skip
    assert rule.warmup_bars() == 16
    assert operand_period("RSI14") == 15
    assert operand_period("BBUPPER20") == 20
    assert operand_period("VWAP") == operand_period("PRICE") == 1


HUGE = 10**5000  # past Python's 4300-digit int/str limit: str(HUGE) raises ValueError


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (make_definition(cooldown_sec=HUGE), "cooldown_sec"),
        (make_definition(cooldown_sec=-HUGE), "cooldown_sec"),
        (make_definition(conditions=[make_condition(right=HUGE)]), "conditions[0].right"),
        (make_definition(conditions=[make_condition(op=HUGE)]), "conditions[0].op"),
        (make_definition(logic=HUGE), "logic"),
        (make_definition(trigger=HUGE), "trigger"),
        (make_definition(id=HUGE), "id"),
        ({HUGE: 1, **make_definition()}, None),
    ],
)
def test_a_5000_digit_int_gives_a_short_sentence(data, field):
    err = error_of(data)
    if field is not None:
        assert err.field == field
    assert len(str(err)) < 300


def test_a_deeply_nested_python_value_gives_a_sentence():
    nested: list = []
    for _ in range(100_000):
        nested = [nested]
    for data in (make_definition(logic=nested), make_definition(trigger=nested),
                 make_definition(conditions=[make_condition(op=nested)])):  # fmt: skip
        err = error_of(data)
        assert "list" in err.message and len(str(err)) < 300


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("a\x00b", "control character"),
        ("two\nlines", "control character"),
        ("tab\there", "control character"),
        (12345, "text"),
        (True, "text"),
        (["a"], "text"),
        ("x" * 81, "at most 80"),
    ],
)
def test_bad_names_are_refused_with_a_sentence(name, words):
    err = error_of(make_definition(name=name))
    assert err.field == "name" and words in err.message


def test_names_are_trimmed():
    assert validate_definition(make_definition(name="  Scalp  ")).name == "Scalp"
    assert validate_definition(make_definition(name="   ")).name == ""
    assert validate_definition(make_definition()).name == ""
