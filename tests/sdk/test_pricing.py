"""Pricing builders: the text they serialise to is the server's canonical expression text (DESIGN §4),
checked against the server's own parser; numbers; where placeholders are allowed."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scrawn import (
    Expression,
    add,
    amount,
    div,
    expr,
    input_cache_tokens,
    input_tokens,
    mul,
    output_cache_tokens,
    output_tokens,
    quantity,
    sub,
    tag,
)
from scrawn.errors import ValidationError
from scrawn.pricing import TOKEN_PLACEHOLDERS, Debit, to_debit
from scrawn.server.pricing.expression import parse, to_text


@pytest.mark.parametrize(
    ("built", "text"),
    [
        (mul(tag("GPT_IN"), input_tokens()), "mul(tag(GPT_IN),inputTokens())"),
        (
            add(mul(tag("PREMIUM_CALL"), 3), tag("EXTRA_FEE"), 250),
            "add(mul(tag(PREMIUM_CALL),3),tag(EXTRA_FEE),250)",
        ),
        (sub(tag("TOTAL"), 50), "sub(tag(TOTAL),50)"),
        (div(tag("TOTAL"), 2, 4), "div(tag(TOTAL),2,4)"),
        (expr("BASE_FEE"), "expr(BASE_FEE)"),
        (expr(mul(1, 2)), "mul(1,2)"),
        (expr(250), "250"),
        (amount(0.1), "0.1"),
        (amount(1e-7), "0.0000001"),
        (amount(1e16), "10000000000000000"),
        (amount(Decimal("2.50")), "2.5"),
        (amount(Decimal("1E+3")), "1000"),
        (amount("007.100"), "7.1"),
        (amount(-0.0), "0"),
        (amount(Decimal("-0")), "0"),
        (
            add(output_tokens(), input_cache_tokens(), output_cache_tokens()),
            "add(outputTokens(),inputCacheTokens(),outputCacheTokens())",
        ),
        (mul(quantity(), tag("PAGE")), "mul(quantity(),tag(PAGE))"),
        (add([1, 2, 3]), "add(1,2,3)"),  # type: ignore[arg-type]
        (div(0, 5), "div(0,5)"),
    ],
)
def test_text(built: Expression, text: str) -> None:
    assert str(built) == text and built.text == text
    assert to_text(parse(text)) == text  # the server reads it back to the same canonical text


def test_expressions_are_values() -> None:
    assert mul(tag("A"), 2) == mul(tag("A"), 2.0) and hash(tag("A")) == hash(tag("A"))
    assert repr(tag("A")) == "Tag('tag(A)')"
    assert mul(tag("A"), input_tokens()).placeholders == {"inputTokens"}


@pytest.mark.parametrize(
    ("value", "debit"),
    [
        (5, Debit("amount", 5)),
        (0, Debit("amount", 0)),
        (2**31 - 1, Debit("amount", 2**31 - 1)),
        (2**31, Debit("expr", "2147483648")),
        (5.0, Debit("amount", 5)),
        (Decimal("5.000"), Debit("amount", 5)),
        ("12", Debit("amount", 12)),
        (0.1, Debit("expr", "0.1")),
        ("1.25", Debit("expr", "1.25")),
        (amount(3), Debit("amount", 3)),
        (tag("X"), Debit("tag", "X")),
        (expr("E"), Debit("expr", "expr(E)")),
        (mul(tag("X"), 2), Debit("expr", "mul(tag(X),2)")),
    ],
)
def test_debits(value: Any, debit: Debit) -> None:
    assert to_debit("debit", value) == debit


def test_placeholders_are_checked_where_used() -> None:
    priced = mul(tag("GPT_IN"), input_tokens())
    assert to_debit("inputDebit", priced, allowed=TOKEN_PLACEHOLDERS) == Debit("expr", str(priced))
    with pytest.raises(ValidationError) as e:
        to_debit("debit", priced)
    assert e.value.field == "debit" and "AI token debits" in e.value.message
    with pytest.raises(ValidationError) as q:
        to_debit("inputDebit", mul(quantity(), 2), allowed=TOKEN_PLACEHOLDERS)
    assert "typed events" in q.value.message
    assert to_debit("debit", mul(quantity(), 2), allowed={"quantity"}).kind == "expr"


# ------------------------------------------------------------------- property: the server agrees

names = st.from_regex(r"[A-Z][A-Z0-9_]{0,6}", fullmatch=True)
numbers = st.one_of(
    st.integers(min_value=0, max_value=10**12),
    st.decimals(min_value=0, max_value=10**9, allow_nan=False, allow_infinity=False, places=6),
    st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False),
)
leaves = st.one_of(
    numbers.map(amount),
    names.map(tag),
    names.map(expr),
    st.sampled_from([input_tokens, output_tokens, input_cache_tokens, output_cache_tokens, quantity]).map(
        lambda f: f()
    ),
)


def _ops(children: Any) -> Any:
    return st.tuples(st.sampled_from([add, sub, mul]), st.lists(children, min_size=2, max_size=4)).map(
        lambda t: t[0](*t[1])
    )


@settings(max_examples=300, deadline=None)
@given(st.recursive(leaves, _ops, max_leaves=20))
def test_any_built_expression_is_canonical_server_text(built: Expression) -> None:
    text = str(built)
    assert to_text(parse(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_floats_go_through_their_shortest_repr(value: float) -> None:
    text = str(amount(value))
    assert Decimal(text) == Decimal(repr(value)) and float(text) == value
