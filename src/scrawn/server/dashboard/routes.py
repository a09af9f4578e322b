"""Every dashboard URL: ``/dashboard/{live|test}/<page>``, sign-in and sign-out, and the static assets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial

from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from scrawn.server.dashboard import (
    pages_customers,
    pages_events,
    pages_keys,
    pages_overview,
    pages_payments,
    pages_pricing,
    pages_quarantine,
    pages_webhooks,
)
from scrawn.server.dashboard.web import HERE, Dashboard, View

Page = Callable[[Dashboard, View], Awaitable[Response]]


def routes(dash: Dashboard) -> list[BaseRoute]:
    def get(path: str, page: Page) -> Route:
        return Route(f"/dashboard/{{mode}}{path}", dash.page(partial(page, dash)), methods=["GET"])

    def post(path: str, page: Page) -> Route:
        return Route(f"/dashboard/{{mode}}{path}", dash.page(partial(page, dash)), methods=["POST"])

    return [
        Route("/dashboard", dash.home, methods=["GET"]),
        Route("/dashboard/", dash.home, methods=["GET"]),
        Route("/dashboard/sign-in", dash.sign_in_form, methods=["GET"]),
        Route("/dashboard/sign-in", dash.sign_in, methods=["POST"]),
        Route("/dashboard/sign-out", dash.sign_out, methods=["POST"]),
        Mount("/dashboard/static", StaticFiles(directory=HERE / "static"), name="dashboard-static"),
        get("/overview", pages_overview.overview),
        post("/overview/time-zone", pages_overview.set_time_zone),
        get("/events", pages_events.events),
        get("/events/{id}", pages_events.event),
        post("/events/{id}/void", pages_events.void),
        get("/customers", pages_customers.customers),
        # A user id may hold any character, "/" too: it travels in the query or the form, never the path.
        get("/customer", pages_customers.customer),
        post("/customer/grant", pages_customers.grant),
        post("/customer/limits", pages_customers.limits),
        post("/customer/checkout", pages_customers.checkout),
        get("/keys", pages_keys.keys),
        post("/keys", pages_keys.create),
        post("/keys/{id}/revoke", pages_keys.revoke),
        get("/pricing", pages_pricing.pricing),
        post("/pricing/evaluate", pages_pricing.evaluate),
        post("/pricing/tags", pages_pricing.put_tag),
        post("/pricing/expressions", pages_pricing.put_expression),
        post("/pricing/event-prices", pages_pricing.put_event_price),
        post("/pricing/models", pages_pricing.put_model_price),
        get("/payments", pages_payments.payments),
        post("/payments", pages_payments.configure),
        get("/webhooks", pages_webhooks.webhooks),
        post("/webhooks/endpoint", pages_webhooks.put_endpoint),
        get("/webhooks/{id}", pages_webhooks.message),
        post("/webhooks/{id}/replay", pages_webhooks.replay),
        get("/quarantine", pages_quarantine.page),
        post("/quarantine/reprice", pages_quarantine.reprice),
    ]
