"""Text form: tokenizer, parser, formatter; round trips and fuzzing."""

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.core.rules import DEFAULT_RULE_DEFINITION, RuleError, validate_definition
from engine.core.text import format_text, parse_text


def make_rule(text: str, **extra):
    return validate_definition({**parse_text(text), "cooldown_sec": 60, **extra})


def test_parses_the_default_rule():
    assert parse_text("PRICE > MA5 AND MA5 > MA10") == {
        "logic": "AND",
        "conditions": DEFAULT_RULE_DEFINITION["conditions"],
    }


def test_formats_a_rule_def_and_a_dict():
    rule = validate_definition(DEFAULT_RULE_DEFINITION)
    assert format_text(rule) == "PRICE > MA5 AND MA5 > MA10"
    conditions = [
        {"left": "RSI14", "op": "<", "right": 30},
        {"left": "MA5", "op": "crosses_above", "right": "MA20"},
    ]
    text = format_text({"logic": "OR", "conditions": conditions})
    assert text == "RSI14 < 30 OR MA5 crosses_above MA20"


@pytest.mark.parametrize(
    "text",
    [
        "PRICE > MA5 AND MA5 > MA10",
        "MA5 crosses_above MA20",
        "EMA9 crosses_below EMA21 OR RSI14 >= 70",
        "PRICE <= BBLOWER20 AND VOLUME > 1000",
        "RSI14 < 30.5",
        "PRICE > VWAP AND OPEN < HIGH AND LOW >= 0.01",
        "PRICE > -1.5",
        "PRICE > 1e-05",
        "MA200 > MA2",
    ],
)
def test_canonical_text_round_trips(text):
    assert format_text(parse_text(text)) == text


def test_loose_text_is_canonicalised():
    assert format_text(parse_text("  price>ma5   and ma5>ma10 ")) == "PRICE > MA5 AND MA5 > MA10"
    assert format_text(parse_text("rsi14<30.0")) == "RSI14 < 30.0"
    assert parse_text("PRICE > MA5")["logic"] == "AND"


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("PRICE", "expected an operator after 'PRICE', found the end"),
        ("PRICE >", "expected an operand or a number after '>'"),
        ("PRICE > MA5 AND", "expected an operand such as PRICE"),
        (
            "PRICE > MA5 MA10",
            "expected AND, OR or the end of the rule, found 'MA10' at position 13",
        ),
        ("PRICE > MA5 AND MA5 > MA10 OR PRICE > 3", "mixing AND and OR"),
        ("PRICE > MA500", "unknown operand 'MA500' at position 9"),
        ("FOO > MA5", "unknown operand 'FOO' at position 1"),
        ("30 < RSI14", "put the number on the right"),
        ("PRICE == MA5", "unexpected '=' at position 7"),
        ("PRICE = MA5", "unexpected '='"),
        ("(PRICE > MA5)", "parentheses"),
        ("PRICE > MA5; DROP TABLE", "unexpected character ';' at position 12"),
        ("PRICE > 1e999", "finite"),
        ("PRICE > 1.2.3", "not a valid number"),
        ("PRICE crosses MA5", "expected an operator"),
        ("__import__ > 1", "unknown operand '__import__'"),
        (" AND ".join(["PRICE > MA5"] * 11), "at most 10"),
    ],
)
def test_bad_text_names_position_or_token(text, words):
    with pytest.raises(RuleError) as info:
        parse_text(text)
    assert info.value.field == "text"
    assert words in info.value.message


def test_non_string_text_is_a_rule_error():
    with pytest.raises(RuleError):
        parse_text(None)  # type: ignore[arg-type]


OPERANDS = st.one_of(
    st.sampled_from(["PRICE", "VWAP", "VOLUME", "OPEN", "HIGH", "LOW"]),
    st.builds(lambda kind, n: f"{kind}{n}",
              st.sampled_from(["MA", "EMA", "RSI", "BBUPPER", "BBLOWER"]), st.integers(2, 200)),
)  # fmt: skip
NUMBERS = st.one_of(
    st.integers(-(10**12), 10**12),
    st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False),
)
CONDITIONS = st.builds(
    lambda left, op, right: {"left": left, "op": op, "right": right},
    OPERANDS,
    st.sampled_from([">", "<", ">=", "<=", "crosses_above", "crosses_below"]),
    st.one_of(OPERANDS, NUMBERS),
)
DEFINITIONS = st.builds(
    lambda logic, conditions: {"logic": logic, "conditions": conditions},
    st.sampled_from(["AND", "OR"]),
    st.lists(CONDITIONS, min_size=1, max_size=10),
)


@settings(max_examples=300)
@given(DEFINITIONS)
def test_format_then_parse_gives_the_same_rule(definition):
    text = format_text(definition)
    parsed = parse_text(text)
    if len(definition["conditions"]) > 1:
        assert parsed["logic"] == definition["logic"]
    assert parsed["conditions"] == definition["conditions"]
    assert format_text(parsed) == text


TOKENS = st.sampled_from(
    ["PRICE", "MA5", "ma10", "EMA9", "RSI14", "MA0", "MA999", "AND", "OR", "and", ">", "<", ">=",
     "<=", "=", "==", "crosses_above", "crosses_below", "30", "-1.5", "1e5", "1e999", "1" * 60,
     "(", ")", ";", "'", "\"", "\\", "\x00", "²", "١", "MA٥", "ＭＡ5", "\n", " ", "e", ".",
     "-", "+"]
)  # fmt: skip


@settings(max_examples=1000)
@given(st.one_of(st.text(max_size=80), st.lists(TOKENS, max_size=15).map(" ".join),
                 st.lists(TOKENS, max_size=15).map("".join)))  # fmt: skip
def test_no_input_raises_anything_but_a_rule_error(text):
    try:
        parsed = parse_text(text)
    except RuleError as err:
        assert err.field == "text"
        assert err.message
    else:
        # Whatever parses is a valid rule and formats to text that parses to the same rule.
        validate_definition({**parsed, "cooldown_sec": 0})
        assert parse_text(format_text(parsed))["conditions"] == parsed["conditions"]


@settings(max_examples=300)
@given(st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.sampled_from(["logic", "conditions", "cooldown_sec", "trigger", "left",
                                       "op", "right", "id", "name", "x"]), children, max_size=5),
    max_leaves=20,
))  # fmt: skip
def test_validator_raises_only_rule_errors_on_any_json(data):
    with contextlib.suppress(RuleError):
        validate_definition(data)


@pytest.mark.parametrize(
    ("typed", "canonical"),
    [
        ("PRICE ≥ MA5", "PRICE >= MA5"),
        ("PRICE≤MA5 AND RSI14 ≥ 30", "PRICE <= MA5 AND RSI14 >= 30"),
        ("MA5 crosses above MA20", "MA5 crosses_above MA20"),
        ("ma5 Crosses  Below ma20 or price ≥ vwap", "MA5 crosses_below MA20 OR PRICE >= VWAP"),
        ("MA5 CROSSES_ABOVE MA20", "MA5 crosses_above MA20"),
    ],
)
def test_the_builders_operator_labels_are_accepted_and_formatted_canonically(typed, canonical):
    """The text box takes what the operator dropdown shows (≥, crosses above) as well."""
    assert format_text(parse_text(typed)) == canonical


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("MA5 crosses MA20", ["'crosses'", "crosses above", "crosses below"]),
        ("MA5 crosses sideways MA20", ["'crosses'", "crosses above"]),
        ("MA5 crosses", ["'crosses'", "the end of the text"]),
        ("PRICE ≠ MA5", ["'≠'", "position 7"]),
    ],
)
def test_half_written_label_operators_get_a_sentence(text, words):
    with pytest.raises(RuleError) as err:
        parse_text(text)
    assert err.value.field == "text"
    for word in words:
        assert word in err.value.message
