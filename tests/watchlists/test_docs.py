"""docs/instruments.md says the parser's own sentences: each row of its "Bad items" table
with an example item is checked against parse_item, and each example item of the syntax
table reads as documented."""

import re

import pytest

from engine.core.instruments import ItemError, parse_item
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "instruments.md").read_text()
SECTION = DOC.split("## Bad items", 1)[1].split("\n## ", 1)[0]
ROWS = re.findall(r"^\| [^|]+ \| `([^`]*)`[^|]*\| (.+) \|$", SECTION, re.M)


def test_the_table_has_the_rows():
    assert len(ROWS) >= 14


@pytest.mark.parametrize(("example", "sentence"), ROWS, ids=[r[0][:20] for r in ROWS])
def test_each_documented_sentence_is_the_parsers(example, sentence):
    if example == "AAPL, aapl:stk":  # a list's sentence, not one item's
        return
    raw = "X" * 5000 if example.startswith("XXXX") else example.replace("\\x00", "\x00")
    with pytest.raises(ItemError) as caught:
        parse_item(raw)
    assert str(caught.value) == sentence


@pytest.mark.parametrize(
    ("item", "text"),
    [("AAPL", "AAPL"), ("BRK.B", "BRK B"), ("ES:FUT:CME", "ES:FUT:CME"),
     ("EUR/USD:CASH", "EURUSD:CASH"), ("SAP:STK:IBIS:EUR", "SAP:STK:IBIS:EUR"),
     ("BTC:CRYPTO:PAXOS", "BTC:CRYPTO"), ("AAPL:STK:SMART:USD", "AAPL")],
)  # fmt: skip
def test_the_documented_examples_read_as_said(item, text):
    assert parse_item(item).text == text
    assert f"`{item}`" in DOC
