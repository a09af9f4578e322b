"""``pricing/service.py`` on both databases: input checks naming the field, versions, and the safety rules
applied inside the write (unknown names, cycles, deletes of names still in use; docs/pricing-safety.md)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from scrawn.errors import NotFoundError, ValidationError
from scrawn.server.pricing import service as catalog
from scrawn.server.pricing.references import ConfigurationConflict
from tests.server.fresh import Fresh

D = Decimal


@pytest.mark.parametrize(
    ("check", "value", "problem"),
    [
        (catalog.check_name, "lower", "must match ^[A-Z][A-Z0-9_]*$"),
        (catalog.check_name, "", "must be a non-empty string"),
        (catalog.check_event_type, "-starts-with-dash", "must match ^[A-Za-z0-9]"),
        (catalog.check_price, "-1", "must not be negative"),
        (catalog.check_price, "0.0000001", "at most 6 decimal places"),
        (catalog.check_price, True, "must be a decimal string or an integer"),
        (catalog.check_expression, "add(1)", "needs at least 2 arguments"),
    ],
)
def test_checks_name_the_field(check: object, value: object, problem: str) -> None:
    assert callable(check)
    with pytest.raises(ValidationError) as caught:
        check("theField", value)
    assert caught.value.field == "theField"
    assert problem in caught.value.message


def test_checks_return_what_is_stored() -> None:
    assert catalog.check_price("price", "1.250000") == D("1.25")
    assert catalog.check_price("price", 7) == D(7)
    assert catalog.check_name("key", "PER_PAGE_2") == "PER_PAGE_2"
    assert catalog.check_event_type("type", "pdf.page:v2") == "pdf.page:v2"


async def test_puts_write_versions_and_reads_see_the_latest(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        first = await catalog.put_tag(conn, project_id, "CALL", D(1))
        second = await catalog.put_tag(conn, project_id, "CALL", D("2.5"))
        named = await catalog.put_expression(conn, project_id, "TWICE", "mul(tag(CALL),2)")
        price = await catalog.put_event_price(conn, project_id, "pdf.page", "expr(TWICE)")
    assert (first.version, second.version, named.version, price.version) == (1, 2, 1, 1)
    async with db.read() as conn:
        assert await catalog.list_tags(conn, project_id) == [second]
        assert await catalog.current_expressions(conn, project_id, None) == {"TWICE": named}
        assert await catalog.current_event_prices(conn, project_id, {"pdf.page"}) == {"pdf.page": price}
        assert catalog.event_price_json(price)["type"] == "pdf.page"
        assert catalog.tag_json(second)["price"] == "2.5"


async def test_text_naming_a_missing_tag_or_expression_is_refused(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        with pytest.raises(ValidationError) as caught:
            await catalog.put_expression(conn, project_id, "A", "add(tag(NOPE),expr(GONE))")
        assert caught.value.field == "expression"
        assert "unknown tag: NOPE" in caught.value.message
        assert "unknown expression: GONE" in caught.value.message
        with pytest.raises(ValidationError, match="unknown tag: NOPE"):
            await catalog.put_event_price(conn, project_id, "call", "tag(NOPE)")
        assert await catalog.current_expressions(conn, project_id, None) == {}


async def test_a_cycle_is_refused_but_an_event_price_never_forms_one(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        await catalog.put_expression(conn, project_id, "A", "1")
        await catalog.put_expression(conn, project_id, "B", "expr(A)")
        with pytest.raises(ConfigurationConflict, match="would form a cycle: A -> B -> A"):
            await catalog.put_expression(conn, project_id, "A", "expr(B)")
        with pytest.raises(ConfigurationConflict, match="would form a cycle: C -> C"):
            await catalog.put_expression(conn, project_id, "C", "expr(C)")
        await catalog.put_event_price(conn, project_id, "A", "expr(B)")  # a type is no expression name


async def test_deletes_refused_while_named_then_allowed(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        await catalog.put_tag(conn, project_id, "CALL", D(1))
        await catalog.put_expression(conn, project_id, "TOTAL", "tag(CALL)")
        await catalog.put_event_price(conn, project_id, "call", "expr(TOTAL)")
        with pytest.raises(ConfigurationConflict) as caught:
            await catalog.delete_tag(conn, project_id, "CALL")
        assert (caught.value.field, caught.value.message) == (
            "key",
            "Tag CALL is used by expression TOTAL; change those first",
        )
        with pytest.raises(ConfigurationConflict, match="used by event price call"):
            await catalog.delete_expression(conn, project_id, "TOTAL")
        await catalog.delete_event_price(conn, project_id, "call")
        await catalog.delete_expression(conn, project_id, "TOTAL")
        await catalog.delete_tag(conn, project_id, "CALL")
        assert await catalog.list_tags(conn, project_id) == []
        assert await catalog.recent_uses(conn, project_id, "tag", "CALL") == 0


async def test_missing_entries_and_projects_are_not_found(fresh: Fresh) -> None:
    db, project_id = fresh.db, fresh.project_id
    async with db.write() as conn:
        for delete, field, label in (
            (catalog.delete_tag, "key", "Tag"),
            (catalog.delete_expression, "name", "Expression"),
            (catalog.delete_event_price, "event_type", "Event price"),
        ):
            with pytest.raises(NotFoundError) as caught:
                await delete(conn, project_id, "NONE")
            assert (caught.value.field, caught.value.message) == (field, f"{label} not found: NONE")
        with pytest.raises(NotFoundError, match="Project not found: no-such-project"):
            await catalog.put_tag(conn, "no-such-project", "CALL", D(1))
