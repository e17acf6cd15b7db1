"""Untrusted text readers: nesting, long numbers, non-finite numbers, Unicode digits."""

import pytest

from engine.core.inputs import InputError, load_json, parse_whole


def test_load_json_reads_ordinary_documents():
    assert load_json('{"a": [1, 2.5, "x", null, true]}') == {"a": [1, 2.5, "x", None, True]}
    assert load_json(b'[{"cooldown_sec": 60}]') == [{"cooldown_sec": 60}]


@pytest.mark.parametrize("depth", [33, 1000, 100_000])
def test_load_json_refuses_deep_nesting_with_a_sentence(depth):
    with pytest.raises(InputError, match="nested too deeply"):
        load_json("[" * depth + "]" * depth)


def test_load_json_accepts_the_depth_limit():
    assert load_json("[" * 32 + "]" * 32) is not None


@pytest.mark.parametrize(
    "text", ["5" * 5000, "1." + "5" * 5000, '{"cooldown_sec": ' + "9" * 41 + "}"]
)
def test_load_json_refuses_long_numbers(text):
    with pytest.raises(InputError, match="too long"):
        load_json(text)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", "-Infinity", "1e999"])
def test_load_json_refuses_non_finite_numbers(text):
    with pytest.raises(InputError):
        load_json(text)


def test_load_json_names_the_position_of_a_syntax_error():
    with pytest.raises(InputError, match="line 2, column 1"):
        load_json('{"a": 1,\n}')


def test_load_json_refuses_bytes_that_are_not_utf8():
    with pytest.raises(InputError, match="UTF-8"):
        load_json(b"\xff\xfe[]")


@pytest.mark.parametrize("raw", ["²", "٣", "1²", "-1", "1.0", "", " ", "0x10", "1e3"])
def test_parse_whole_refuses_anything_but_ascii_digits(raw):
    with pytest.raises(InputError):
        parse_whole(raw, name="since", maximum=10**18)


def test_parse_whole_refuses_out_of_range_without_converting_huge_text():
    with pytest.raises(InputError, match="out of range"):
        parse_whole("9" * 5000, name="since", maximum=10**18)
    with pytest.raises(InputError, match="out of range"):
        parse_whole("0", name="limit", minimum=1, maximum=1000)


def test_parse_whole_reads_digits():
    assert parse_whole("0", name="since", maximum=10) == 0
    assert parse_whole("0007", name="since", maximum=10) == 7
    assert parse_whole("1000", name="limit", minimum=1, maximum=1000) == 1000
