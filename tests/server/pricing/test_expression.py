"""Tests for the pricing expression language (src/scrawn/server/pricing/expression/)."""

from __future__ import annotations

import decimal
import math
import pickle
import time
from decimal import Decimal
from fractions import Fraction
from typing import TypeVar

import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from scrawn.server.pricing.expression import (
    MAX_DEPTH,
    MAX_LENGTH,
    Call,
    ExpressionError,
    ExprRef,
    Node,
    Number,
    Placeholder,
    TagRef,
    UnknownExpressionError,
    UnknownTagError,
    Variables,
    evaluate,
    parse,
    referenced_expressions,
    referenced_tags,
    to_text,
)

D = Decimal
T = TypeVar("T")
ALL_VARIABLES = Variables(
    input_tokens=1000,
    output_tokens=500,
    input_cache_tokens=200,
    output_cache_tokens=100,
    quantity=D("2.5"),
)


def ev(
    text: str,
    tags: dict[str, Decimal] | None = None,
    exprs: dict[str, str] | None = None,
    variables: Variables = ALL_VARIABLES,
) -> Decimal:
    return evaluate(
        parse(text),
        tags=tags or {},
        expressions={k: parse(v) for k, v in (exprs or {}).items()},
        variables=variables,
    )


def nested(depth: int, leaf: str = "1") -> str:
    """An expression whose tree is ``depth`` levels deep (a leaf is level 1)."""
    return "add(" * (depth - 1) + leaf + ",1)" * (depth - 1)


def deep_ast(depth: int) -> Node:
    node: Node = Number(D(1))
    for _ in range(depth - 1):
        node = Call("add", (node, Number(D(1))))
    return node


# ----------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", Number(D(12))),
        ("0.5", Number(D("0.5"))),
        ("003.250", Number(D("3.25"))),
        ("tag(PREMIUM_CALL)", TagRef("PREMIUM_CALL")),
        ("expr(BASE_2)", ExprRef("BASE_2")),
        ("inputTokens()", Placeholder("inputTokens")),
        ("outputTokens()", Placeholder("outputTokens")),
        ("inputCacheTokens()", Placeholder("inputCacheTokens")),
        ("outputCacheTokens()", Placeholder("outputCacheTokens")),
        ("quantity()", Placeholder("quantity")),
        ("add(1,2)", Call("add", (Number(D(1)), Number(D(2))))),
        ("sub(1,2,3)", Call("sub", (Number(D(1)), Number(D(2)), Number(D(3))))),
        (
            " \n\tmul ( tag ( A ) ,\r\n div( quantity ( ) , 4 ) ) \t",
            Call("mul", (TagRef("A"), Call("div", (Placeholder("quantity"), Number(D(4)))))),
        ),
        (
            "add(mul(tag(PREMIUM_CALL),3),tag(EXTRA_FEE),250)",  # what the TS SDK sends
            Call(
                "add",
                (Call("mul", (TagRef("PREMIUM_CALL"), Number(D(3)))), TagRef("EXTRA_FEE"), Number(D(250))),
            ),
        ),
    ],
)
def test_parse(text: str, expected: Node) -> None:
    assert parse(text) == expected


def test_number_keeps_exact_value() -> None:
    node = parse("003.250")
    assert isinstance(node, Number)
    assert node.value == D("3.25")
    assert node.value.as_tuple() == D("3.250").as_tuple()  # the digits as written, not rounded
    big = "1" * 80 + "." + "9" * 80
    node = parse(big)
    assert isinstance(node, Number) and str(node.value) == big


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("  add( 003.250 ,tag( A ) ) ", "add(3.25,tag(A))"),
        ("0.000", "0"),
        ("000", "0"),
        ("10.50", "10.5"),
        ("100", "100"),
        ("div( inputTokens(), 1000 )", "div(inputTokens(),1000)"),
        ("sub(expr(X),1,2)", "sub(expr(X),1,2)"),
    ],
)
def test_to_text_is_canonical(text: str, canonical: str) -> None:
    assert to_text(parse(text)) == canonical
    assert parse(canonical) == parse(text)


def test_to_text_of_hand_built_numbers() -> None:
    assert to_text(Number(D("1E+3"))) == "1000"
    assert to_text(Number(D("-0"))) == "0"
    assert to_text(Number(D("0E-9"))) == "0"
    assert to_text(Number(D("1.2300E-3"))) == "0.00123"


@pytest.mark.parametrize(
    "node",
    [
        Number(D(-1)),
        Number(D("NaN")),
        Number(D("Infinity")),
        Number(D("1E+5000")),
        TagRef("lower"),
        TagRef("A" * 129),
        ExprRef(""),
        Placeholder("tokens"),
        Call("pow", (Number(D(1)), Number(D(2)))),
        Call("add", (Number(D(1)),)),
        Call("ADD", (Number(D(1)), Number(D(2)))),
        deep_ast(MAX_DEPTH + 1),
    ],
)
def test_to_text_rejects_invalid_trees(node: Node) -> None:
    with pytest.raises(ExpressionError):
        to_text(node)


def test_names_up_to_128_characters() -> None:
    name = "A" + "B_9" * 42 + "Z"
    assert len(name) == 128
    assert parse(f"tag({name})") == TagRef(name)
    assert parse(f"expr({name})") == ExprRef(name)


def test_length_limit_is_inclusive() -> None:
    text = "1" * MAX_LENGTH
    assert parse(text) == Number(D(text))
    padded = " " * (MAX_LENGTH - 3) + "1.5"
    assert parse(padded) == Number(D("1.5"))


def test_depth_limit_is_inclusive() -> None:
    assert parse(nested(MAX_DEPTH)) == deep_ast(MAX_DEPTH)
    assert parse(nested(MAX_DEPTH, "tag(A)")) is not None
    assert to_text(deep_ast(MAX_DEPTH)) == nested(MAX_DEPTH)


@pytest.mark.parametrize(
    ("text", "fragment", "offset"),
    [
        ("", "empty", 0),
        ("   \t\n ", "empty", 0),
        ("foo(1)", "Unknown function 'foo' at offset 0", 0),
        ("add(1, pow(2,3))", "Unknown function 'pow' at offset 7", 7),
        ("ADD(1,2)", "use 'add'", 0),
        ("Tag(A)", "use 'tag'", 0),
        ("inputtokens()", "use 'inputTokens'", 0),
        ("1+2", "infix operators are not supported; use add(", 1),
        ("add(1,2)*3", "use mul(", 8),
        ("2/3", "use div(", 1),
        ("1 - 2", "use sub(", 2),
        ("-1", "negative numbers", 0),
        ("add(-1,2)", "negative numbers", 4),
        ("1e5", "exponents are not supported", 1),
        ("2.5E3", "exponents are not supported", 3),
        (".5", "must start with a digit", 0),
        ("1.", "expected a digit after '.'", 2),
        ("1.2.3", "Unexpected '.' after a number at offset 3", 3),
        ("12abc", "after a number at offset 2", 2),
        ("add(1,2) x", "Unexpected name 'x' at offset 9", 9),
        ("add(1,2))", "Unexpected ')' at offset 8: expected the end", 8),
        ("1 2", "Unexpected number '2' at offset 2", 2),
        ("add(1,2", "Missing ')' to close add( at offset 3", 7),
        ("add(1,", "Expected an expression at offset 6, found the end", 6),
        ("add(1 2)", "Expected ',' or ')' in add(…) at offset 6", 6),
        ("add", "Expected '(' after 'add' at offset 3", 3),
        ("add(1,,2)", "Expected an expression at offset 6, found ','", 6),
        ("add(1,2,)", "Expected an expression at offset 8", 8),
        ("add()", "add() needs at least 2 arguments, got 0", 0),
        ("add(1)", "add() needs at least 2 arguments, got 1", 0),
        ("mul(5)", "mul() needs at least 2 arguments, got 1", 0),
        ("sub(5)", "sub() needs at least 2 arguments, got 1", 0),
        (" div(5)", "div() needs at least 2 arguments, got 1", 1),
        ("inputTokens(1)", "inputTokens() takes no arguments", 12),
        ("quantity(tag(A))", "quantity() takes no arguments", 9),
        ("quantity", "Expected '(' after 'quantity'", 8),
        ("tag()", "Expected a tag name in tag(…) at offset 4", 4),
        ("tag(1)", "Expected a tag name", 4),
        ("tag(premium)", "Invalid tag name 'premium' at offset 4", 4),
        ("tag(_A)", "Invalid tag name", 4),
        ("expr(a_b)", "Invalid expression name 'a_b' at offset 5", 5),
        (f"tag({'A' * 129})", "at most 128 characters", 4),
        ("tag(A", "Expected ')' to close tag(", 5),
        ("tag(A B)", "Expected ')' to close tag(", 6),
        ("tag('A')", "names are not quoted", 4),
        ('tag("A")', "names are not quoted", 4),
        ("PREMIUM", "variables are not supported", 0),
        ("x", "variables are not supported", 0),
        ("(1)", "Expected an expression at offset 0, found '('", 0),
        ("add(1;2)", "Unexpected character ';' at offset 5", 5),
        ("add(1,\u00a02)", "Unexpected character '\\xa0' at offset 6", 6),
        ("\u0661", "Unexpected character", 0),  # ARABIC-INDIC DIGIT ONE is not a digit here
        ("1" * (MAX_LENGTH + 1), f"too long: {MAX_LENGTH + 1} characters", MAX_LENGTH),
        (nested(MAX_DEPTH + 1), "nested too deeply", 4 * MAX_DEPTH),
        (nested(MAX_DEPTH + 1, "tag(A)"), "nested too deeply", 4 * MAX_DEPTH),
        (nested(250), "nested too deeply", 4 * MAX_DEPTH),
    ],
)
def test_parse_errors(text: str, fragment: str, offset: int) -> None:
    with pytest.raises(ExpressionError) as info:
        parse(text)
    error = info.value
    assert fragment in error.message
    assert str(error) == error.message
    assert error.offset == offset
    assert type(error) is ExpressionError
    assert isinstance(error, ValueError)


def test_ten_thousand_deep_input_fails_fast() -> None:
    deep = nested(10_000)
    unclosed = "add(" * 10_000
    for text in (deep, unclosed, "add(1," * 10_000, deep[:MAX_LENGTH]):
        started = time.perf_counter()
        with pytest.raises(ExpressionError):
            parse(text)
        assert time.perf_counter() - started < 0.5


def test_ten_thousand_deep_tree_never_recurses() -> None:
    node = deep_ast(10_000)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        to_text(node)
    with pytest.raises(ExpressionError, match="nested too deeply"):
        evaluate(node, tags={}, expressions={})
    with pytest.raises(ExpressionError, match="nested too deeply"):
        evaluate(ExprRef("DEEP"), tags={}, expressions={"DEEP": node})
    assert referenced_tags(node) == frozenset()
    assert referenced_expressions(node) == frozenset()


def test_parse_rejects_non_strings() -> None:
    with pytest.raises(ExpressionError):
        parse(b"1")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- references


def test_referenced_names() -> None:
    node = parse("add(tag(A), mul(tag(B), expr(X)), div(tag(A), expr(Y), inputTokens()), 3)")
    assert referenced_tags(node) == frozenset({"A", "B"})
    assert referenced_expressions(node) == frozenset({"X", "Y"})
    assert referenced_tags(parse("1")) == frozenset()
    assert referenced_expressions(parse("tag(A)")) == frozenset()


# --------------------------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", D(12)),
        ("003.250", D("3.25")),
        ("add(1,2,3.5)", D("6.5")),
        ("sub(10,1,2,3)", D(4)),  # folds over every argument (upstream drops the extras)
        ("mul(2,3,0.5)", D(3)),
        ("div(10,4)", D("2.5")),  # exact (upstream floors to 2)
        ("div(100,2,5)", D(10)),
        ("div(7,2,2)", D("1.75")),
        ("div(1,3)", D("0." + "3" * 50)),  # 50 significant digits
        ("div(2,3)", D("0." + "6" * 49 + "7")),  # rounded half-even at the 50th digit
        ("add(sub(1,2),5)", D(4)),  # intermediate results may be negative
        ("sub(5,5)", D(0)),
        ("mul(sub(1,2),0)", D(0)),
        ("mul(tag(PREMIUM_CALL),3)", D("4.5")),
        ("add(mul(tag(PREMIUM_CALL),3),tag(EXTRA_FEE),250)", D("254.75")),
        ("div(mul(inputTokens(), 3), 1000)", D(3)),
        ("add(outputTokens(), inputCacheTokens(), outputCacheTokens())", D(800)),
        ("mul(quantity(), 4)", D(10)),
        ("mul(expr(BASE), 2)", D(23)),
    ],
)
def test_evaluate(text: str, expected: Decimal) -> None:
    tags = {"PREMIUM_CALL": D("1.5"), "EXTRA_FEE": D("0.25")}
    result = ev(text, tags, {"BASE": "add(tag(PREMIUM_CALL), 10)"})
    assert result == expected
    assert not result.is_signed()


def test_evaluate_uses_its_own_decimal_context() -> None:
    with decimal.localcontext() as ctx:
        ctx.clear_flags()  # the copy inherits flags that earlier code in this thread raised
        ctx.prec = 3
        ctx.rounding = decimal.ROUND_FLOOR
        ctx.traps[decimal.Inexact] = True
        ctx.traps[decimal.Rounded] = True
        assert ev("div(2,3)") == D("0." + "6" * 49 + "7")
        assert ev("add(1000000.5, 0.25)") == D("1000000.75")
        assert ev("mul(1.5, 1.5)") == D("2.25")
        assert ctx.prec == 3 and not ctx.flags[decimal.Inexact]


def test_evaluate_accepts_int_tags_and_keeps_tokens_exact() -> None:
    assert evaluate(parse("tag(A)"), tags={"A": 7}, expressions={}) == D(7)  # type: ignore[dict-item]
    big = 10**30 + 1
    result = evaluate(parse("inputTokens()"), tags={}, expressions={}, variables=Variables(input_tokens=big))
    assert result == D(big)


@pytest.mark.parametrize("text", ["div(1,0)", "div(5, 0.000)", "div(1,2,0)", "div(0,0)"])
def test_division_by_zero_literal(text: str) -> None:
    with pytest.raises(ExpressionError, match="Division by zero"):
        ev(text)


@pytest.mark.parametrize(
    "text",
    ["div(1, sub(2,2))", "div(1, mul(tag(A), 0))", "div(10, sub(inputTokens(), 1000))", "div(1, expr(ZERO))"],
)
def test_division_by_zero_computed(text: str) -> None:
    with pytest.raises(ExpressionError, match="Division by zero") as info:
        ev(text, {"A": D(3)}, {"ZERO": "sub(1,1)"})
    assert type(info.value) is ExpressionError


def test_division_by_zero_names_the_expression() -> None:
    with pytest.raises(ExpressionError, match=r"Division by zero \(in expression BAD\)"):
        ev("add(1, expr(BAD))", exprs={"BAD": "div(1, 0)"})


def test_cycle_two_expressions() -> None:
    with pytest.raises(ExpressionError) as info:
        ev("add(1, expr(A))", exprs={"A": "add(expr(B), 1)", "B": "mul(expr(A), 2)"})
    assert info.value.message == "Expression cycle: A -> B -> A"


def test_self_cycle() -> None:
    with pytest.raises(ExpressionError) as info:
        ev("expr(A)", exprs={"A": "add(1, expr(A))"})
    assert info.value.message == "Expression cycle: A -> A"


def test_longer_cycle_reports_only_the_cycle() -> None:
    with pytest.raises(ExpressionError) as info:
        ev("expr(START)", exprs={"START": "expr(A)", "A": "expr(B)", "B": "expr(C)", "C": "add(1, expr(A))"})
    assert info.value.message == "Expression cycle: A -> B -> C -> A"


def test_shared_references_are_not_cycles() -> None:
    exprs = {"A": "add(expr(B), expr(B))", "B": "mul(expr(C), expr(C))", "C": "2"}
    assert ev("add(expr(A), expr(B), expr(C))", exprs=exprs) == D(8 + 4 + 2)


def test_reference_depth_is_bounded() -> None:
    def chain(length: int) -> dict[str, str]:
        exprs = {f"E{i}": f"expr(E{i + 1})" for i in range(length - 1)}
        exprs[f"E{length - 1}"] = "7"
        return exprs

    assert ev("expr(E0)", exprs=chain(MAX_DEPTH)) == D(7)
    with pytest.raises(ExpressionError, match="references are nested too deeply"):
        ev("expr(E0)", exprs=chain(MAX_DEPTH + 1))
    long_chain = {f"E{i}": f"expr(E{i + 1})" for i in range(10_000)}
    with pytest.raises(ExpressionError, match="references are nested too deeply"):
        ev("expr(E0)", exprs=long_chain)


def test_shared_references_are_evaluated_once() -> None:
    # 32 levels of doubling: 2**31 leaf visits without memoisation.
    exprs = {f"E{i}": f"add(expr(E{i + 1}), expr(E{i + 1}))" for i in range(MAX_DEPTH - 1)}
    exprs[f"E{MAX_DEPTH - 1}"] = "1"
    started = time.perf_counter()
    assert ev("expr(E0)", exprs=exprs) == D(2 ** (MAX_DEPTH - 1))
    assert time.perf_counter() - started < 1


def test_unknown_tag() -> None:
    with pytest.raises(UnknownTagError) as info:
        ev("add(tag(KNOWN), tag(MISSING))", {"KNOWN": D(1)})
    error = info.value
    assert error.name == "MISSING"
    assert error.message == "Tag not found: MISSING" == str(error)
    assert isinstance(error, ExpressionError) and isinstance(error, ValueError)


def test_unknown_tag_inside_named_expression() -> None:
    with pytest.raises(UnknownTagError, match=r"^Tag not found: GONE$"):
        ev("expr(A)", exprs={"A": "tag(GONE)"})


def test_unknown_expression() -> None:
    with pytest.raises(UnknownExpressionError) as info:
        ev("add(1, expr(NOPE))")
    error = info.value
    assert error.name == "NOPE"
    assert error.message == "Expression not found: NOPE" == str(error)
    assert isinstance(error, ExpressionError)


@pytest.mark.parametrize(
    ("placeholder", "field", "scope"),
    [
        ("inputTokens", "input_tokens", "AI events"),
        ("outputTokens", "output_tokens", "AI events"),
        ("inputCacheTokens", "input_cache_tokens", "AI events"),
        ("outputCacheTokens", "output_cache_tokens", "AI events"),
        ("quantity", "quantity", "typed events"),
    ],
)
def test_placeholder_unavailable(placeholder: str, field: str, scope: str) -> None:
    text = f"add(1, {placeholder}())"
    with pytest.raises(ExpressionError) as info:
        evaluate(parse(text), tags={}, expressions={})  # no variables at all
    assert info.value.message.startswith(f"{placeholder}() is not available on this event")
    assert scope in info.value.message
    # Available when (and only when) that one field is set.
    value = D(3) if field == "quantity" else 3
    only = Variables(**{field: value})  # type: ignore[arg-type]
    assert evaluate(parse(text), tags={}, expressions={}, variables=only) == D(4)
    others = {
        "input_tokens": 1,
        "output_tokens": 1,
        "input_cache_tokens": 1,
        "output_cache_tokens": 1,
        "quantity": D(1),
    }
    del others[field]
    with pytest.raises(ExpressionError, match=placeholder):
        evaluate(parse(text), tags={}, expressions={}, variables=Variables(**others))  # type: ignore[arg-type]


def test_placeholder_unavailable_inside_named_expression() -> None:
    with pytest.raises(
        ExpressionError, match=r"quantity\(\) is not available on this event \(in expression Q\)"
    ):
        ev("expr(Q)", exprs={"Q": "quantity()"}, variables=Variables(input_tokens=1))


@pytest.mark.parametrize("text", ["sub(1,2)", "sub(tag(A), 0.000001, tag(A))", "mul(sub(0,1), 5)"])
def test_negative_result(text: str) -> None:
    with pytest.raises(ExpressionError, match="negative") as info:
        ev(text, {"A": D(1)})
    assert type(info.value) is ExpressionError


def test_negative_inputs_are_caught_by_the_result_check() -> None:
    with pytest.raises(ExpressionError, match="negative"):
        ev("tag(A)", {"A": D("-0.5")})
    with pytest.raises(ExpressionError, match="negative"):
        ev("quantity()", variables=Variables(quantity=D(-2)))


@pytest.mark.parametrize("value", [D("NaN"), D("Infinity"), "3", 1.5, True])
def test_invalid_tag_values(value: object) -> None:
    with pytest.raises(ExpressionError, match="Tag A has an invalid value"):
        evaluate(parse("tag(A)"), tags={"A": value}, expressions={})  # type: ignore[dict-item]


def test_invalid_named_expression_node() -> None:
    with pytest.raises(ExpressionError, match="Not an expression node"):
        evaluate(parse("expr(A)"), tags={}, expressions={"A": "1"})  # type: ignore[dict-item]


def test_overflow_is_an_expression_error() -> None:
    exprs = {f"E{i}": f"mul(expr(E{i + 1}), expr(E{i + 1}))" for i in range(30)}
    exprs["E30"] = "1" + "0" * 1000
    with pytest.raises(ExpressionError, match="too large"):
        ev("expr(E0)", exprs=exprs)


def test_errors_pickle() -> None:
    for error in (ExpressionError("bad", offset=3), UnknownTagError("A"), UnknownExpressionError("B")):
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert copy.message == error.message
        assert copy.offset == error.offset
        assert getattr(copy, "name", None) == getattr(error, "name", None)


# ------------------------------------------------------------------------------- property: round trip

TAG_NAMES = ("A", "B", "PREMIUM_CALL", "X_1")
EXPR_NAMES = ("E1", "E2")
PLACEHOLDERS = ("inputTokens", "outputTokens", "inputCacheTokens", "outputCacheTokens", "quantity")

names = st.from_regex(r"[A-Z][A-Z0-9_]{0,20}", fullmatch=True)
any_numbers = st.one_of(
    st.integers(min_value=0, max_value=10**30).map(Decimal),
    st.decimals(min_value=0, max_value=10**12, places=6, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=1, places=20, allow_nan=False, allow_infinity=False),
).map(Number)


def trees(
    leaves: st.SearchStrategy[Node], max_args: int = 4, max_leaves: int = 25
) -> st.SearchStrategy[Node]:
    return st.recursive(
        leaves,
        lambda children: (
            st.builds(Call, st.sampled_from(["add", "sub", "mul", "div"]), st.tuples(children, children))
            | st.builds(
                Call,
                st.sampled_from(["add", "sub", "mul", "div"]),
                st.lists(children, min_size=2, max_size=max_args).map(tuple),
            )
        ),
        max_leaves=max_leaves,
    )


any_trees = trees(
    st.one_of(
        any_numbers,
        names.map(TagRef),
        names.map(ExprRef),
        st.sampled_from(PLACEHOLDERS).map(Placeholder),
    )
)


def spaced_text(node: Node, data: st.DataObject) -> str:
    """Independent printer that puts random whitespace between tokens."""
    space = st.text(alphabet=" \t\r\n", max_size=2)

    def ws() -> str:
        return data.draw(space)

    def go(n: Node) -> str:
        if isinstance(n, Number):
            text = "0" if n.value.is_zero() else format(n.value, "f")
            zeros = data.draw(st.integers(0, 2))
            return "0" * zeros + text
        if isinstance(n, TagRef | ExprRef):
            fn = "tag" if isinstance(n, TagRef) else "expr"
            return f"{fn}{ws()}({ws()}{n.name}{ws()})"
        if isinstance(n, Placeholder):
            return f"{n.name}{ws()}({ws()})"
        inner = ",".join(f"{ws()}{go(a)}{ws()}" for a in n.args)
        return f"{n.fn}{ws()}({inner})"

    return ws() + go(node) + ws()


def tree_depth(node: Node) -> int:
    return 1 + max((tree_depth(a) for a in node.args), default=0) if isinstance(node, Call) else 1


@given(any_trees)
def test_round_trip(node: Node) -> None:
    text = to_text(node)
    assert parse(text) == node
    assert to_text(parse(text)) == text
    assert " " not in text


@given(any_trees, st.data())
def test_round_trip_with_whitespace_and_leading_zeros(node: Node, data: st.DataObject) -> None:
    text = spaced_text(node, data)
    assume(len(text) <= MAX_LENGTH)
    parsed = parse(text)
    assert parsed == node
    assert to_text(parsed) == to_text(node)


@given(any_trees)
def test_referenced_names_match_a_naive_walk(node: Node) -> None:
    def walk(n: Node) -> list[Node]:
        return [n, *(m for a in n.args for m in walk(a))] if isinstance(n, Call) else [n]

    nodes = walk(node)
    assert referenced_tags(node) == {n.name for n in nodes if isinstance(n, TagRef)}
    assert referenced_expressions(node) == {n.name for n in nodes if isinstance(n, ExprRef)}


@given(st.text(max_size=60))
def test_parse_never_crashes(text: str) -> None:
    try:
        node = parse(text)
    except ExpressionError as error:
        assert error.offset is None or 0 <= error.offset <= len(text)
    else:
        assert parse(to_text(node)) == node


SOUP = ["add(", "sub(", "tag(A)", "1", "0.5", ",", ")", " ", "quantity()", "x", "+", "tag("]


@given(st.lists(st.sampled_from(SOUP), max_size=40).map("".join))
def test_parse_token_soup_never_crashes(text: str) -> None:
    try:
        node = parse(text)
    except ExpressionError:
        return
    assert parse(to_text(node)) == node
    assert tree_depth(node) <= MAX_DEPTH


# ------------------------------------------------------------------ property: evaluate vs. reference


class Unavailable(Exception):
    pass


class Reference:
    """Independent evaluator over exact rationals. Also records the largest magnitude and the
    smallest divisor it met, so the test can stay where 50 significant digits are plenty."""

    def __init__(self, tags: dict[str, Decimal], exprs: dict[str, Node], variables: Variables) -> None:
        self.tags = tags
        self.exprs = exprs
        self.variables = variables
        self.largest = Fraction(0)
        self.smallest_divisor: Fraction | None = None

    def value(self, node: Node) -> Fraction:
        result = self._value(node)
        self.largest = max(self.largest, abs(result))
        return result

    def _value(self, node: Node) -> Fraction:
        if isinstance(node, Number):
            return Fraction(node.value)
        if isinstance(node, TagRef):
            return Fraction(self.tags[node.name])
        if isinstance(node, ExprRef):
            return self.value(self.exprs[node.name])
        if isinstance(node, Placeholder):
            raw = {
                "inputTokens": self.variables.input_tokens,
                "outputTokens": self.variables.output_tokens,
                "inputCacheTokens": self.variables.input_cache_tokens,
                "outputCacheTokens": self.variables.output_cache_tokens,
                "quantity": self.variables.quantity,
            }[node.name]
            if raw is None:
                raise Unavailable(node.name)
            return Fraction(raw)
        args = [self.value(a) for a in node.args]
        first, rest = args[0], args[1:]
        if node.fn == "add":
            return first + sum(rest, Fraction(0))
        if node.fn == "mul":
            return first * math.prod(rest, start=Fraction(1))
        if node.fn == "sub":
            for value in rest:
                first -= value
            return first
        for value in rest:
            if value:
                small = abs(value)
                self.smallest_divisor = (
                    small if self.smallest_divisor is None else min(self.smallest_divisor, small)
                )
            first /= value  # ZeroDivisionError on zero
        return first


small_numbers = st.one_of(
    st.integers(min_value=0, max_value=1000),
    st.decimals(min_value=0, max_value=1000, places=3, allow_nan=False, allow_infinity=False),
    st.decimals(min_value=0, max_value=1, places=6, allow_nan=False, allow_infinity=False),
).map(Decimal)
plain_leaves = st.one_of(
    small_numbers.map(Number),
    st.sampled_from(TAG_NAMES).map(TagRef),
    st.sampled_from(PLACEHOLDERS).map(Placeholder),
)
plain_trees = trees(plain_leaves, max_args=3, max_leaves=10)
root_trees = trees(
    st.one_of(plain_leaves, st.sampled_from(EXPR_NAMES).map(ExprRef)), max_args=3, max_leaves=12
)
token_counts = st.integers(min_value=0, max_value=100_000)


@st.composite
def event_variables(draw: st.DrawFn) -> Variables:
    """Each placeholder is available about three times in four."""

    def maybe(strategy: st.SearchStrategy[T]) -> T | None:
        return draw(st.one_of(strategy, st.none())) if draw(st.booleans()) else draw(strategy)

    return Variables(
        input_tokens=maybe(token_counts),
        output_tokens=maybe(token_counts),
        input_cache_tokens=maybe(token_counts),
        output_cache_tokens=maybe(token_counts),
        quantity=maybe(small_numbers),
    )


EPSILON = Fraction(1, 10**15)
MICRO = Fraction(1, 10**6)


def quantize_exact(value: Fraction) -> Fraction:
    return Fraction(round(value / MICRO)) * MICRO  # round() on a Fraction is half-even


def quantize_decimal(value: Decimal) -> Fraction:
    ctx = decimal.Context(prec=200, rounding=decimal.ROUND_HALF_EVEN)
    return Fraction(value.quantize(Decimal("0.000001"), context=ctx))


@settings(max_examples=400, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(
    root_trees,
    st.fixed_dictionaries({name: small_numbers for name in TAG_NAMES}),
    st.fixed_dictionaries({name: plain_trees for name in EXPR_NAMES}),
    event_variables(),
)
def test_evaluate_matches_reference(
    node: Node, tags: dict[str, Decimal], exprs: dict[str, Node], variables: Variables
) -> None:
    reference = Reference(tags, exprs, variables)
    try:
        exact = reference.value(node)
    except ZeroDivisionError:
        assume(False)
        return
    except Unavailable as missing:
        event("placeholder unavailable")
        with pytest.raises(ExpressionError, match="not available on this event"):
            evaluate(node, tags=tags, expressions=exprs, variables=variables)
        assert str(missing) in PLACEHOLDERS
        return
    # Stay where a 50-significant-digit context must agree with exact arithmetic to well past 1e-6.
    assume(reference.largest <= 10**20)
    assume(reference.smallest_divisor is None or reference.smallest_divisor >= Fraction(1, 10**9))

    event("divided" if reference.smallest_divisor is not None else "no division")
    if exact < -EPSILON:
        event("negative")
        with pytest.raises(ExpressionError, match="negative"):
            evaluate(node, tags=tags, expressions=exprs, variables=variables)
        return
    try:
        result = evaluate(node, tags=tags, expressions=exprs, variables=variables)
    except ExpressionError as error:
        assert exact <= EPSILON, error  # only a result within rounding of zero may come out negative
        assert "negative" in error.message
        return
    event("compared")
    assert result >= 0
    assert abs(Fraction(result) - exact) <= EPSILON
    expected, got = quantize_exact(exact), quantize_decimal(result)
    if got != expected:
        # Only allowed when the exact value sits (within EPSILON) on a half-micro boundary.
        half = Fraction(math.floor(exact / MICRO)) * MICRO + MICRO / 2
        assert abs(exact - half) <= EPSILON and abs(got - expected) == MICRO
