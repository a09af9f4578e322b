"""Pricing: tags, named expressions, event prices and model price overrides, each changed through the
catalog's own rules (``pricing/service.py``, ``pricing/overrides.py``), and the "what would this cost"
evaluator, which prices text exactly as an event would be priced (``pricer.PriceBook``)."""

from __future__ import annotations

from collections.abc import Awaitable
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.responses import RedirectResponse, Response

from scrawn.errors import ValidationError
from scrawn.server.dashboard import price_book
from scrawn.server.dashboard.web import Dashboard, View
from scrawn.server.db.engine import now_ms
from scrawn.server.pricing import overrides
from scrawn.server.pricing import service as catalog
from scrawn.server.pricing.expression import Variables
from scrawn.server.pricing.pricer import Debit, PricingError, load_price_book

TOKEN_FIELDS = ("input_tokens", "output_tokens", "input_cache_tokens", "output_cache_tokens")


async def pricing(dash: Dashboard, view: View, **extra: Any) -> Response:
    pid = view.caller.project_id
    search = price_book.search_of(view.request.query_params.get("model"))
    async with dash.db.read() as conn:
        tags = await catalog.list_tags(conn, pid)
        expressions = await catalog.current_expressions(conn, pid, None)
        event_prices = await catalog.current_event_prices(conn, pid, None)
        models = await overrides.list_overrides(conn, pid, None)
    return dash.render(
        view,
        "pricing.html",
        tags=tags,
        expressions=list(expressions.values()),
        event_prices=list(event_prices.values()),
        models=models,
        usd=overrides.usd,
        book=price_book.section(models, search),
        book_usd=price_book.usd,
        **extra,
    )


class _PutText(Protocol):
    def __call__(
        self, conn: AsyncConnection, project_id: str, name: str, text: str, /, *, by: str | None = None
    ) -> Awaitable[object]: ...


def _back(view: View) -> Response:
    return RedirectResponse(view.url("pricing"), 303)


async def put_tag(dash: Dashboard, view: View) -> Response:
    key = catalog.check_name("key", view.form.get("key", "").strip())
    price = catalog.check_price("price", view.form.get("price", "").strip())
    async with dash.db.write() as conn:
        await catalog.put_tag(conn, view.caller.project_id, key, price, by=view.caller.key_id)
    return _back(view)


async def put_expression(dash: Dashboard, view: View) -> Response:
    name = catalog.check_name("name", view.form.get("name", "").strip())
    return await _put_text(dash, view, name, catalog.put_expression)


async def put_event_price(dash: Dashboard, view: View) -> Response:
    event_type = catalog.check_event_type("type", view.form.get("type", "").strip())
    return await _put_text(dash, view, event_type, catalog.put_event_price)


async def _put_text(dash: Dashboard, view: View, name: str, put: _PutText) -> Response:
    """A named expression or an event price: checked text, stored through the catalog's rules."""
    text = catalog.check_expression("expression", view.form.get("expression", ""))
    async with dash.db.write() as conn:
        await put(conn, view.caller.project_id, name, text, by=view.caller.key_id)
    return _back(view)


async def put_model_price(dash: Dashboard, view: View) -> Response:
    form = view.form
    body = {name: form.get(name, "").strip() or None for name in overrides.RATE_FIELDS}
    model = overrides.check_model("model", form.get("model", "").strip())
    provider = overrides.check_provider("provider", form.get("provider", "").strip())
    when = form.get("effectiveFrom", "").strip()
    # Empty: from now on (never retroactive by accident); digits are Unix ms, as in the JSON API.
    effective_from = overrides.check_time("effectiveFrom", int(when) if when.isdigit() else when or now_ms())
    rates = overrides.check_rates(body)
    async with dash.db.write() as conn:
        await overrides.put_override(
            conn,
            view.caller.project_id,
            model=model,
            provider=provider,
            effective_from=effective_from,
            rates=rates,
            by=view.caller.key_id,
        )
    return _back(view)


def _count(field: str, text: str) -> int | None:
    if not text:
        return None
    if not text.isdigit() or int(text) > 2**31 - 1:
        raise ValidationError(field, "must be a whole number of tokens, 0 to 2147483647")
    return int(text)


async def evaluate(dash: Dashboard, view: View) -> Response:
    """Price expression text with today's catalog for the given token counts or quantity: the same code,
    and so the same answer, as an event sent now."""
    form = view.form
    text = catalog.check_expression("expression", form.get("expression", ""))
    quantity = None
    if form.get("quantity", "").strip():
        try:
            quantity = Decimal(form["quantity"].strip())
        except InvalidOperation:
            raise ValidationError("quantity", "must be a decimal number") from None
    counts = {name: _count(name, form.get(name, "").strip()) for name in TOKEN_FIELDS}
    variables = Variables(quantity=quantity, **counts)
    debit = Debit("expr", text)
    async with dash.db.read() as conn:
        book = await load_price_book(conn, view.caller.project_id, [debit])
    try:
        amount, _ = book.price("expression", debit, variables)
        answer, problem = amount, None
    except PricingError as e:
        answer, problem = None, e.message
    return await pricing(dash, view, evaluated=answer, problem=problem, asked=form)
