"""Local HTTP servers that speak the Lemon Squeezy and Stripe APIs, for integration tests.

Each fake is a context manager running a stdlib ``ThreadingHTTPServer`` on 127.0.0.1 (free port) in a daemon
thread. Our server reaches it over real HTTP (``.base_url``); nothing is patched. Every request is recorded in
``.requests``; ``.fail_next(n, status)`` makes the next ``n`` API calls (paths under ``/v1/``) fail with a
provider-shaped error body. Webhook builders return ``(body, headers)`` signed the way the provider signs
them; ``send``/``send_async`` POST them.

Note: a ``StripeClient`` built with ``max_network_retries=N`` retries 409/5xx answers (same Idempotency-Key),
and every retry is one API call for ``fail_next``; the default (None) does not retry.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import secrets
import string
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

import httpx

__all__ = [
    "FakeLemonSqueezy",
    "FakeStripe",
    "RecordedRequest",
    "parse_stripe_form",
]

JSON = dict[str, Any]


# --------------------------------------------------------------------------------------------------
# shared machinery


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake received it. ``headers`` keys are lower-cased."""

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> JSON:
        """The body parsed as a Stripe-style bracketed form."""
        return parse_stripe_form(self.body)


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json_reply(status: int, doc: Any, content_type: str = "application/json", **headers: str) -> _Reply:
    return _Reply(status, json.dumps(doc).encode(), {"Content-Type": content_type, **headers})


def _html_reply(title: str) -> _Reply:
    t = html.escape(title)
    page = f"<!doctype html><html><head><title>{t}</title></head><body><h1>{t}</h1></body></html>"
    return _Reply(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})


def _random_token(n: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def _iso(ts: float) -> str:
    """Lemon Squeezy's timestamp format: ``2024-01-31T12:00:00.000000Z``."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _FakeServer:
    """A ThreadingHTTPServer in a daemon thread, request recording and failure injection."""

    api_prefix = "/v1/"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self.requests: list[RecordedRequest] = []
        self._failures: deque[int] = deque()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.base_url = ""

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> Self:
        if self._server is not None:
            return self
        server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self._dispatch))
        server.daemon_threads = True
        self._server = server
        self.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=type(self).__name__, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- test controls ----------------------------------------------------------------------------

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """The next ``n`` API calls (after already queued failures) answer ``status`` with an error body."""
        if n < 0 or not 400 <= status <= 599:
            raise ValueError("n must be >= 0 and status a 4xx/5xx code")
        with self._lock:
            self._failures.extend([status] * n)

    def api_requests(
        self, method: str | None = None, path_prefix: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded requests to the API (``/v1/...``), optionally filtered."""
        prefix = path_prefix or self.api_prefix
        with self._lock:
            return [
                r
                for r in self.requests
                if r.path.startswith(prefix) and (method is None or r.method == method.upper())
            ]

    @staticmethod
    def send(url: str, body: bytes, headers: Mapping[str, str], timeout: float = 10.0) -> httpx.Response:
        """POST a webhook built by this fake to ``url``."""
        return httpx.post(url, content=body, headers=dict(headers), timeout=timeout)

    @staticmethod
    async def send_async(url: str, body: bytes, headers: Mapping[str, str]) -> httpx.Response:
        async with httpx.AsyncClient(timeout=10.0) as client:
            return await client.post(url, content=body, headers=dict(headers))

    # -- dispatch ---------------------------------------------------------------------------------

    def _dispatch(self, req: RecordedRequest) -> _Reply:
        with self._lock:
            self.requests.append(req)
            if req.path.startswith(self.api_prefix) and self._failures:
                return self._error_reply(self._failures.popleft(), "Injected failure (fake provider).")
            try:
                return self._handle(req)
            except Exception as exc:  # a bug in the fake: answer like a provider outage, keep serving
                return self._error_reply(500, f"Fake provider crashed: {exc!r}")

    def _handle(self, req: RecordedRequest) -> _Reply:
        raise NotImplementedError

    def _error_reply(self, status: int, message: str) -> _Reply:
        raise NotImplementedError


def _make_handler(dispatch: Callable[[RecordedRequest], _Reply]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "FakeProvider/1.0"

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length > 0 else b""

        def _serve(self) -> None:
            body = self._read_body()
            headers: dict[str, str] = {}
            for key, value in self.headers.items():
                k = key.lower()
                headers[k] = f"{headers[k]}, {value}" if k in headers else value
            parts = urlsplit(self.path)
            reply = dispatch(RecordedRequest(self.command, parts.path, parts.query, headers, body))
            self.send_response(reply.status)
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# --------------------------------------------------------------------------------------------------
# Stripe form parsing

_BRACKETS = re.compile(r"\[([^\]]*)\]")


def _split_key(key: str) -> list[str]:
    head, _, rest = key.partition("[")
    if not rest:
        return [head]
    return [head, *_BRACKETS.findall("[" + rest)]


def _listify(node: Any) -> Any:
    if isinstance(node, dict):
        converted = {k: _listify(v) for k, v in node.items()}
        if converted and all(k.isdigit() for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return node


def parse_stripe_form(body: bytes | str) -> JSON:
    """Parse ``a[b][0][c]=1&a[b][0][d]=2`` into ``{"a": {"b": [{"c": "1", "d": "2"}]}}``.

    Dicts whose keys are all decimal indexes become lists (ordered by index); ``key[]`` appends. Values stay
    strings, as Stripe receives them.
    """
    text = body.decode() if isinstance(body, bytes) else body
    root: JSON = {}
    for key, value in parse_qsl(text, keep_blank_values=True):
        parts = _split_key(key)
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            if part == "":  # "expand[]": append with the next free index
                part = str(len(node))
            if last:
                node[part] = value
            else:
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    raise ValueError(f"conflicting form keys at {key!r}")
                node = child
    result = _listify(root)
    assert isinstance(result, dict)
    return result


# --------------------------------------------------------------------------------------------------
# Lemon Squeezy

_LS_JSONAPI = "application/vnd.api+json"
_LS_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    406: "Not Acceptable",
    409: "Conflict",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_LS_STATUS_FORMATTED = {
    "pending": "Pending",
    "failed": "Failed",
    "paid": "Paid",
    "refunded": "Refunded",
    "partial_refund": "Partial refund",
    "fraudulent": "Fraudulent",
}


def _usd(cents: int) -> str:
    return f"${cents / 100:,.2f}"


class _LSInvalid(Exception):
    def __init__(self, detail: str, pointer: str) -> None:
        super().__init__(detail)
        self.detail = detail
        self.pointer = pointer


class FakeLemonSqueezy(_FakeServer):
    """Lemon Squeezy's ``POST /v1/checkouts`` (+ ``GET /v1/checkouts/<id>``), hosted checkout pages, and
    ``order_created``/``order_refunded`` webhooks signed with ``X-Signature`` (hex HMAC-SHA256 of the
    body)."""

    def __init__(self, api_key: str, signing_secret: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.signing_secret = signing_secret
        self.checkouts: dict[str, JSON] = {}  # id -> the checkout resource ("data" of the API document)
        self.orders: dict[str, JSON] = {}  # order id -> {"checkout_id", "total", "refunded_amount", ...}
        self.order_checkout: dict[str, str] = {}  # order id -> checkout id
        self._next_order = 1_000_001
        self._next_customer = 2_000_001

    # -- HTTP -------------------------------------------------------------------------------------

    def _error_reply(self, status: int, message: str) -> _Reply:
        err = {"detail": message, "status": str(status), "title": _LS_TITLES.get(status, "Error")}
        return _json_reply(status, {"jsonapi": {"version": "1.0"}, "errors": [err]}, _LS_JSONAPI)

    def _handle(self, req: RecordedRequest) -> _Reply:
        m = re.fullmatch(r"/checkout/custom/([0-9a-f-]+)", req.path)
        if m and req.method in ("GET", "HEAD"):
            if m.group(1) not in self.checkouts:
                return _Reply(404, b"Not found", {"Content-Type": "text/plain"})
            return _html_reply(f"Lemon Squeezy checkout {m.group(1)}")
        if not req.path.startswith("/v1/"):
            return _Reply(404, b"Not found", {"Content-Type": "text/plain"})
        if req.headers.get("authorization") != f"Bearer {self.api_key}":
            return self._error_reply(401, "Unauthenticated.")
        if _LS_JSONAPI not in req.headers.get("accept", ""):
            return self._error_reply(406, f"The Accept header must be {_LS_JSONAPI}.")
        if req.path == "/v1/checkouts" and req.method == "POST":
            if req.headers.get("content-type", "").split(";")[0].strip() != _LS_JSONAPI:
                return self._error_reply(415, f"The Content-Type header must be {_LS_JSONAPI}.")
            return self._create_checkout(req.body)
        m = re.fullmatch(r"/v1/checkouts/([0-9a-f-]+)", req.path)
        if m and req.method == "GET":
            checkout = self.checkouts.get(m.group(1))
            if checkout is None:
                return self._error_reply(404, "Not Found")
            return _json_reply(200, self._document(checkout), _LS_JSONAPI)
        return self._error_reply(404, "Not Found")

    def _unprocessable(self, detail: str, pointer: str) -> _Reply:
        err = {
            "detail": detail,
            "source": {"pointer": pointer},
            "status": "422",
            "title": "Unprocessable Entity",
        }
        return _json_reply(422, {"jsonapi": {"version": "1.0"}, "errors": [err]}, _LS_JSONAPI)

    def _relationship_id(self, rels: Any, name: str) -> int:
        pointer = f"/data/relationships/{name}"
        rel = rels.get(name) if isinstance(rels, dict) else None
        data = rel.get("data") if isinstance(rel, dict) else None
        if not isinstance(data, dict):
            raise _LSInvalid(f"The {name} relationship is required.", pointer)
        if data.get("type") != f"{name}s":
            raise _LSInvalid(f"The type must be {name}s.", f"{pointer}/data/type")
        rid = data.get("id")
        if not isinstance(rid, str) or not rid.isdigit():
            raise _LSInvalid(f"The {name} id must be a numeric string.", f"{pointer}/data/id")
        return int(rid)

    def _create_checkout(self, raw: bytes) -> _Reply:
        try:
            doc = json.loads(raw)
        except ValueError:
            return self._error_reply(400, "The request body is not valid JSON.")
        try:
            checkout = self._validate_checkout(doc)
        except _LSInvalid as exc:
            return self._unprocessable(exc.detail, exc.pointer)
        self.checkouts[checkout["id"]] = checkout
        return _json_reply(201, self._document(checkout), _LS_JSONAPI)

    def _validate_checkout(self, doc: Any) -> JSON:
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, dict):
            raise _LSInvalid("The data member is required.", "/data")
        if data.get("type") != "checkouts":
            raise _LSInvalid("The type must be checkouts.", "/data/type")
        attrs = data.get("attributes", {})
        if not isinstance(attrs, dict):
            raise _LSInvalid("The attributes member must be an object.", "/data/attributes")
        price = attrs.get("custom_price")
        if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
            raise _LSInvalid("The custom price must be a positive integer.", "/data/attributes/custom_price")
        store_id = self._relationship_id(data.get("relationships"), "store")
        variant_id = self._relationship_id(data.get("relationships"), "variant")
        product_options = attrs.get("product_options") or {}
        if not isinstance(product_options, dict):
            raise _LSInvalid("The product options must be an object.", "/data/attributes/product_options")
        checkout_data = attrs.get("checkout_data") or {}
        if not isinstance(checkout_data, dict):
            raise _LSInvalid("The checkout data must be an object.", "/data/attributes/checkout_data")
        custom = checkout_data.get("custom") or {}
        if not isinstance(custom, dict):
            raise _LSInvalid("The custom data must be an object.", "/data/attributes/checkout_data/custom")
        expires_at = attrs.get("expires_at")
        if expires_at is not None:
            try:
                if not isinstance(expires_at, str):
                    raise ValueError
                datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
            except ValueError:
                raise _LSInvalid(
                    "The expires at must be a valid date.", "/data/attributes/expires_at"
                ) from None
        test_mode = attrs.get("test_mode", False)
        if not isinstance(test_mode, bool):
            raise _LSInvalid("The test mode field must be true or false.", "/data/attributes/test_mode")

        cid = str(uuid.uuid4())
        now = _iso(time.time())
        return {
            "type": "checkouts",
            "id": cid,
            "attributes": {
                "store_id": store_id,
                "variant_id": variant_id,
                "custom_price": price,
                "product_options": {
                    "name": "",
                    "description": "",
                    "media": [],
                    "redirect_url": "",
                    "receipt_button_text": "",
                    "receipt_link_url": "",
                    "receipt_thank_you_note": "",
                    "enabled_variants": [],
                    "confirmation_title": "",
                    "confirmation_message": "",
                    "confirmation_button_text": "",
                    **product_options,
                },
                "checkout_options": {
                    "embed": False,
                    "media": True,
                    "logo": True,
                    "desc": True,
                    "discount": True,
                    "skip_trial": False,
                    "subscription_preview": True,
                    "button_color": "#7047EB",
                    **(attrs.get("checkout_options") or {}),
                },
                "checkout_data": {
                    "email": "",
                    "name": "",
                    "billing_address": [],
                    "tax_number": "",
                    "discount_code": "",
                    "variant_quantities": [],
                    **checkout_data,
                    "custom": dict(custom) if custom else [],  # PHP: an empty map serializes as []
                },
                "preview": attrs.get("preview", False),
                "expires_at": expires_at,
                "created_at": now,
                "updated_at": now,
                "test_mode": test_mode,
                "url": f"{self.base_url}/checkout/custom/{cid}",
            },
            "relationships": {
                name: {
                    "links": {
                        "related": f"{self.base_url}/v1/checkouts/{cid}/{name}",
                        "self": f"{self.base_url}/v1/checkouts/{cid}/relationships/{name}",
                    }
                }
                for name in ("store", "variant")
            },
            "links": {"self": f"{self.base_url}/v1/checkouts/{cid}"},
        }

    def _document(self, checkout: JSON) -> JSON:
        return {"jsonapi": {"version": "1.0"}, "links": checkout["links"], "data": checkout}

    # -- webhooks ---------------------------------------------------------------------------------

    def sign(self, body: bytes, secret: str | None = None) -> str:
        key = (self.signing_secret if secret is None else secret).encode()
        return hmac.new(key, body, hashlib.sha256).hexdigest()

    def _webhook(self, event: str, doc: JSON, secret: str | None) -> tuple[bytes, dict[str, str]]:
        body = json.dumps(doc).encode()
        return body, {
            "Content-Type": "application/json",
            "X-Event-Name": event,
            "X-Signature": self.sign(body, secret),
        }

    def _order_document(self, order_id: str, event: str) -> JSON:
        o = self.orders[order_id]
        checkout = self.checkouts[o["checkout_id"]]
        attrs = checkout["attributes"]
        total, refunded_amount, status = o["total"], o["refunded_amount"], o["status"]
        custom = attrs["checkout_data"]["custom"]
        meta: JSON = {"test_mode": attrs["test_mode"], "event_name": event, "webhook_id": str(uuid.uuid4())}
        if custom:
            meta["custom_data"] = dict(custom)
        links = f"{self.base_url}/v1/orders/{order_id}"
        return {
            "meta": meta,
            "data": {
                "type": "orders",
                "id": order_id,
                "attributes": {
                    "store_id": attrs["store_id"],
                    "customer_id": o["customer_id"],
                    "identifier": o["identifier"],
                    "order_number": o["order_number"],
                    "user_name": "Test Buyer",
                    "user_email": "buyer@example.com",
                    "currency": "USD",
                    "currency_rate": "1.00000000",
                    "subtotal": total,
                    "setup_fee": 0,
                    "discount_total": 0,
                    "tax": 0,
                    "total": total,
                    "refunded_amount": refunded_amount,
                    "subtotal_usd": total,
                    "setup_fee_usd": 0,
                    "discount_total_usd": 0,
                    "tax_usd": 0,
                    "total_usd": total,
                    "refunded_amount_usd": refunded_amount,
                    "tax_name": None,
                    "tax_rate": "0.00",
                    "tax_inclusive": False,
                    "status": status,
                    "status_formatted": _LS_STATUS_FORMATTED.get(
                        status, status.replace("_", " ").capitalize()
                    ),
                    "refunded": o["refunded_at"] is not None,
                    "refunded_at": o["refunded_at"],
                    "subtotal_formatted": _usd(total),
                    "setup_fee_formatted": _usd(0),
                    "discount_total_formatted": _usd(0),
                    "tax_formatted": _usd(0),
                    "total_formatted": _usd(total),
                    "refunded_amount_formatted": _usd(refunded_amount),
                    "first_order_item": {
                        "id": o["order_item_id"],
                        "order_id": int(order_id) if order_id.isdigit() else 0,
                        "product_id": 100_001,
                        "variant_id": attrs["variant_id"],
                        "price_id": 300_001,
                        "product_name": "Scrawn credits",
                        "variant_name": "Default",
                        "price": total,
                        "quantity": 1,
                        "created_at": o["created_at"],
                        "updated_at": o["updated_at"],
                        "test_mode": attrs["test_mode"],
                    },
                    "urls": {"receipt": f"{self.base_url}/my-orders/{o['identifier']}"},
                    "created_at": o["created_at"],
                    "updated_at": o["updated_at"],
                    "test_mode": attrs["test_mode"],
                },
                "relationships": {
                    name: {"links": {"related": f"{links}/{name}", "self": f"{links}/relationships/{name}"}}
                    for name in ("store", "customer", "order-items", "subscriptions", "license-keys")
                },
                "links": {"self": links},
            },
        }

    def order_created(
        self,
        checkout_id: str,
        *,
        total: int | None = None,
        status: str = "paid",
        order_id: str | None = None,
        secret: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """An ``order_created`` webhook for a checkout made through this fake (its custom data)."""
        with self._lock:
            checkout = self.checkouts.get(checkout_id)
            if checkout is None:
                raise KeyError(f"unknown Lemon Squeezy checkout {checkout_id!r}")
            if order_id is None:
                order_id = str(self._next_order)
                self._next_order += 1
            now = _iso(time.time())
            self.orders[order_id] = {
                "checkout_id": checkout_id,
                "total": checkout["attributes"]["custom_price"] if total is None else total,
                "refunded_amount": 0,
                "status": status,
                "refunded_at": None,
                "customer_id": self._next_customer,
                "identifier": str(uuid.uuid4()),
                "order_number": int(order_id) % 1_000_000 if order_id.isdigit() else 1,
                "order_item_id": (int(order_id) if order_id.isdigit() else 0) + 500_000,
                "created_at": now,
                "updated_at": now,
            }
            self._next_customer += 1
            self.order_checkout[order_id] = checkout_id
            return self._webhook("order_created", self._order_document(order_id, "order_created"), secret)

    def order_refunded(
        self, order_id: str, *, refunded_amount: int, secret: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """An ``order_refunded`` webhook; ``refunded_amount`` is cumulative cents."""
        with self._lock:
            o = self.orders.get(order_id)
            if o is None:
                raise KeyError(f"unknown Lemon Squeezy order {order_id!r}")
            now = _iso(time.time())
            o["refunded_amount"] = refunded_amount
            o["status"] = "refunded" if refunded_amount >= o["total"] else "partial_refund"
            o["refunded_at"] = now
            o["updated_at"] = now
            return self._webhook("order_refunded", self._order_document(order_id, "order_refunded"), secret)


# --------------------------------------------------------------------------------------------------
# Stripe


class _StripeInvalid(Exception):
    def __init__(
        self, message: str, param: str | None = None, code: str | None = "parameter_invalid"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def _req_id() -> str:
    return "req_" + _random_token(14)


class FakeStripe(_FakeServer):
    """Stripe's Checkout Sessions API as the ``stripe`` library (v1, form-encoded) calls it, hosted pages, and
    signed webhook events (``Stripe-Signature: t=...,v1=...``)."""

    api_version = "2025-09-30.clover"

    def __init__(self, api_key: str, webhook_secret: str) -> None:
        super().__init__()
        self.api_key = api_key
        self.webhook_secret = webhook_secret
        self.sessions: dict[str, JSON] = {}  # id -> Checkout Session object
        self.session_params: dict[str, JSON] = {}  # id -> the parsed create params
        self.created_count = 0
        self._idempotency: dict[str, tuple[str, JSON, _Reply]] = {}  # key -> (path, params, reply)
        self._charges: dict[str, JSON] = {}  # session id -> charge state

    # -- HTTP -------------------------------------------------------------------------------------

    def _error_reply(
        self,
        status: int,
        message: str,
        type_: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> _Reply:
        if type_ is None:
            type_ = "api_error" if status >= 500 else "invalid_request_error"
        if status == 429 and code is None:
            code = "rate_limit"
        err: JSON = {"message": message, "type": type_}
        if param is not None:
            err["param"] = param
        if code is not None:
            err["code"] = code
        rid = _req_id()
        err["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{rid}"
        return _json_reply(status, {"error": err}, **{"Request-Id": rid})

    def _handle(self, req: RecordedRequest) -> _Reply:
        m = re.fullmatch(r"/c/pay/(cs_\w+)", req.path)
        if m and req.method in ("GET", "HEAD"):
            if m.group(1) not in self.sessions:
                return _Reply(404, b"Not found", {"Content-Type": "text/plain"})
            return _html_reply(f"Stripe Checkout {m.group(1)}")
        if not req.path.startswith("/v1/"):
            return _Reply(404, b"Not found", {"Content-Type": "text/plain"})
        auth = req.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            shown = auth.removeprefix("Bearer ")
            shown = f"{shown[:8]}{'*' * max(len(shown) - 12, 0)}{shown[-4:]}" if len(shown) > 12 else shown
            msg = f"Invalid API Key provided: {shown}" if shown else "You did not provide an API key."
            return self._error_reply(401, msg)
        try:
            params = parse_stripe_form(req.body) if req.method == "POST" else parse_stripe_form(req.query)
        except ValueError as exc:
            return self._error_reply(400, f"Invalid request body: {exc}")

        key = req.headers.get("idempotency-key")
        if req.method == "POST" and key:
            seen = self._idempotency.get(key)
            if seen is not None:
                path, old_params, reply = seen
                if path != req.path or old_params != params:
                    return self._error_reply(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters they were "
                        f"first used with. Try using a key other than '{key}' if you meant to execute a "
                        "different request.",
                        type_="idempotency_error",
                    )
                headers = {
                    **reply.headers,
                    "Idempotent-Replayed": "true",
                    "Original-Request": reply.headers["Request-Id"],
                    "Request-Id": _req_id(),
                }
                return _Reply(reply.status, reply.body, headers)

        reply = self._route(req, params)
        if req.method == "POST" and key and 200 <= reply.status < 300:  # failed validation is not saved
            self._idempotency[key] = (req.path, params, reply)
        return reply

    def _route(self, req: RecordedRequest, params: JSON) -> _Reply:
        if req.path == "/v1/checkout/sessions" and req.method == "POST":
            try:
                session = self._create_session(params)
            except _StripeInvalid as exc:
                return self._error_reply(400, exc.message, param=exc.param, code=exc.code)
            return self._ok(session)
        m = re.fullmatch(r"/v1/checkout/sessions/([^/]+)(/expire)?", req.path)
        if m:
            sid, expire = m.group(1), m.group(2)
            found = self.sessions.get(sid)
            if found is None:
                return self._error_reply(
                    404, f"No such checkout.session: '{sid}'", param="session", code="resource_missing"
                )
            if expire and req.method == "POST":
                if found["status"] != "open":
                    return self._error_reply(
                        400,
                        f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
                        f'Session has a status of "{found["status"]}".',
                    )
                found["status"] = "expired"
                return self._ok(found)
            if not expire and req.method == "GET":
                return self._ok(found)
        return self._error_reply(
            404, f"Unrecognized request URL ({req.method}: {req.path}). Please see https://stripe.com/docs"
        )

    def _ok(self, obj: JSON) -> _Reply:
        return _json_reply(200, obj, **{"Request-Id": _req_id(), "Stripe-Version": self.api_version})

    @staticmethod
    def _int(value: Any, param: str, *, positive: bool = True) -> int:
        if not isinstance(value, str) or not re.fullmatch(r"-?\d+", value):
            raise _StripeInvalid(f"Invalid integer: {value}", param)
        n = int(value)
        if positive and n <= 0:
            raise _StripeInvalid(
                f"Invalid {param.rsplit('[', 1)[-1].rstrip(']')}: must be greater than 0", param
            )
        return n

    @staticmethod
    def _str_map(value: Any, param: str) -> dict[str, str]:
        if value is None or value == "":
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _StripeInvalid(f"Invalid object: {param} must be a map of strings", param)
        return dict(value)

    def _create_session(self, p: JSON) -> JSON:
        if "mode" not in p:
            raise _StripeInvalid("Missing required param: mode.", "mode", "parameter_missing")
        if p["mode"] != "payment":
            raise _StripeInvalid("This fake only supports mode=payment.", "mode")
        items = p.get("line_items")
        if not isinstance(items, list) or not items:
            raise _StripeInvalid(
                "You must specify `line_items` in `payment` mode.", "line_items", "parameter_missing"
            )
        subtotal = 0
        currency: str | None = None
        for i, item in enumerate(items):
            base = f"line_items[{i}]"
            if not isinstance(item, dict):
                raise _StripeInvalid(f"Invalid object: {base}", base)
            pd = item.get("price_data")
            if not isinstance(pd, dict):
                raise _StripeInvalid(
                    f"Missing required param: {base}[price_data].", f"{base}[price_data]", "parameter_missing"
                )
            for name in ("currency", "unit_amount"):
                if name not in pd:
                    raise _StripeInvalid(
                        f"Missing required param: {base}[price_data][{name}].",
                        f"{base}[price_data][{name}]",
                        "parameter_missing",
                    )
            cur = str(pd["currency"]).lower()
            if not re.fullmatch(r"[a-z]{3}", cur):
                raise _StripeInvalid(f"Invalid currency: {pd['currency']}", f"{base}[price_data][currency]")
            if currency is not None and cur != currency:
                raise _StripeInvalid(
                    "All line items must use the same currency.", f"{base}[price_data][currency]"
                )
            currency = cur
            unit = self._int(pd["unit_amount"], f"{base}[price_data][unit_amount]")
            product = pd.get("product_data")
            if not isinstance(product, dict) or not product.get("name"):
                raise _StripeInvalid(
                    f"Missing required param: {base}[price_data][product_data][name].",
                    f"{base}[price_data][product_data][name]",
                    "parameter_missing",
                )
            if "quantity" not in item:
                raise _StripeInvalid(
                    f"Missing required param: {base}[quantity].", f"{base}[quantity]", "parameter_missing"
                )
            subtotal += unit * self._int(item["quantity"], f"{base}[quantity]")
        assert currency is not None

        now = int(time.time())
        expires_at = now + 24 * 3600
        if "expires_at" in p:
            expires_at = self._int(p["expires_at"], "expires_at")
            if not now + 30 * 60 - 60 <= expires_at <= now + 24 * 3600 + 60:
                raise _StripeInvalid(
                    "The `expires_at` timestamp must be between 30 minutes and 24 hours after the Checkout "
                    "Session is created.",
                    "expires_at",
                )
        metadata = self._str_map(p.get("metadata"), "metadata")
        pid = p.get("payment_intent_data") or {}
        if not isinstance(pid, dict):
            raise _StripeInvalid("Invalid object: payment_intent_data", "payment_intent_data")
        self._str_map(pid.get("metadata"), "payment_intent_data[metadata]")

        sid = "cs_test_" + _random_token(58)
        session: JSON = {
            "id": sid,
            "object": "checkout.session",
            "adaptive_pricing": {"enabled": False},
            "after_expiration": None,
            "allow_promotion_codes": None,
            "amount_subtotal": subtotal,
            "amount_total": subtotal,
            "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
            "billing_address_collection": None,
            "cancel_url": p.get("cancel_url"),
            "client_reference_id": p.get("client_reference_id"),
            "client_secret": None,
            "collected_information": None,
            "consent": None,
            "consent_collection": None,
            "created": now,
            "currency": currency,
            "currency_conversion": None,
            "custom_fields": [],
            "custom_text": {
                "after_submit": None,
                "shipping_address": None,
                "submit": None,
                "terms_of_service_acceptance": None,
            },
            "customer": None,
            "customer_creation": "if_required",
            "customer_details": None,
            "customer_email": p.get("customer_email"),
            "discounts": [],
            "expires_at": expires_at,
            "invoice": None,
            "invoice_creation": {"enabled": False, "invoice_data": {}},
            "livemode": False,
            "locale": p.get("locale"),
            "metadata": metadata,
            "mode": "payment",
            "origin_context": None,
            "payment_intent": None,
            "payment_link": None,
            "payment_method_collection": "if_required",
            "payment_method_configuration_details": None,
            "payment_method_options": {},
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "permissions": None,
            "phone_number_collection": {"enabled": False},
            "recovered_from": None,
            "saved_payment_method_options": None,
            "setup_intent": None,
            "shipping_address_collection": None,
            "shipping_cost": None,
            "shipping_options": [],
            "status": "open",
            "submit_type": None,
            "subscription": None,
            "success_url": p.get("success_url"),
            "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
            "ui_mode": "hosted",
            "url": f"{self.base_url}/c/pay/{sid}",
            "wallet_options": None,
        }
        self.sessions[sid] = session
        self.session_params[sid] = p
        self.created_count += 1
        return session

    # -- webhooks ---------------------------------------------------------------------------------

    def sign(self, body: bytes, timestamp: int | None = None, secret: str | None = None) -> str:
        """The ``Stripe-Signature`` header value for ``body``."""
        ts = int(time.time()) if timestamp is None else timestamp
        key = (self.webhook_secret if secret is None else secret).encode()
        mac = hmac.new(key, f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={ts},v1={mac}"

    def event(
        self,
        type_: str,
        obj: JSON,
        *,
        timestamp: int | None = None,
        secret: str | None = None,
        previous_attributes: JSON | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """A signed event of any type around ``obj`` (a snapshot: the object is copied)."""
        ts = int(time.time()) if timestamp is None else timestamp
        data: JSON = {"object": json.loads(json.dumps(obj))}
        if previous_attributes is not None:
            data["previous_attributes"] = previous_attributes
        doc = {
            "id": "evt_" + _random_token(24),
            "object": "event",
            "api_version": self.api_version,
            "created": ts,
            "data": data,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": type_,
        }
        body = json.dumps(doc).encode()
        return body, {"Content-Type": "application/json", "Stripe-Signature": self.sign(body, ts, secret)}

    def _session(self, session_id: str) -> JSON:
        session = self.sessions.get(session_id)
        if session is None:
            raise KeyError(f"unknown Stripe Checkout Session {session_id!r}")
        return session

    def checkout_completed(
        self,
        session_id: str,
        *,
        amount_total: int | None = None,
        payment_status: str = "paid",
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """``checkout.session.completed``: the session becomes complete (``payment_status`` as given; "unpaid"
        models a delayed payment method) with a new PaymentIntent."""
        with self._lock:
            s = self._session(session_id)
            s["status"] = "complete"
            s["payment_status"] = payment_status
            if amount_total is not None:
                s["amount_total"] = amount_total
            if s["payment_intent"] is None:
                s["payment_intent"] = "pi_" + _random_token(24)
            s["customer_details"] = {
                "address": {
                    "city": None,
                    "country": "US",
                    "line1": None,
                    "line2": None,
                    "postal_code": "94103",
                    "state": None,
                },
                "email": "buyer@example.com",
                "name": "Test Buyer",
                "phone": None,
                "tax_exempt": "none",
                "tax_ids": [],
            }
            return self.event("checkout.session.completed", s, timestamp=timestamp, secret=secret)

    def async_payment_succeeded(
        self, session_id: str, *, timestamp: int | None = None, secret: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        with self._lock:
            s = self._session(session_id)
            s["status"] = "complete"
            s["payment_status"] = "paid"
            return self.event(
                "checkout.session.async_payment_succeeded", s, timestamp=timestamp, secret=secret
            )

    def async_payment_failed(
        self, session_id: str, *, timestamp: int | None = None, secret: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        with self._lock:
            s = self._session(session_id)
            s["status"] = "complete"
            s["payment_status"] = "unpaid"
            return self.event("checkout.session.async_payment_failed", s, timestamp=timestamp, secret=secret)

    def session_expired(
        self, session_id: str, *, timestamp: int | None = None, secret: str | None = None
    ) -> tuple[bytes, dict[str, str]]:
        with self._lock:
            s = self._session(session_id)
            s["status"] = "expired"
            return self.event("checkout.session.expired", s, timestamp=timestamp, secret=secret)

    def charge_refunded(
        self,
        session_id: str,
        *,
        amount_refunded: int,
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> tuple[bytes, dict[str, str]]:
        """``charge.refunded`` for the session's payment; ``amount_refunded`` is cumulative."""
        with self._lock:
            s = self._session(session_id)
            if s["payment_intent"] is None:
                s["payment_intent"] = "pi_" + _random_token(24)
            pi_metadata = (self.session_params.get(session_id, {}).get("payment_intent_data") or {}).get(
                "metadata"
            ) or {}
            amount = int(s["amount_total"])
            charge = self._charges.get(session_id)
            if charge is None:
                charge = {
                    "id": "ch_" + _random_token(24),
                    "object": "charge",
                    "amount": amount,
                    "amount_captured": amount,
                    "amount_refunded": 0,
                    "application": None,
                    "application_fee": None,
                    "application_fee_amount": None,
                    "balance_transaction": "txn_" + _random_token(24),
                    "billing_details": {"address": None, "email": "buyer@example.com", "name": "Test Buyer"},
                    "captured": True,
                    "created": int(time.time()),
                    "currency": s["currency"],
                    "customer": None,
                    "description": None,
                    "disputed": False,
                    "failure_code": None,
                    "failure_message": None,
                    "livemode": False,
                    "metadata": dict(pi_metadata),
                    "outcome": {"network_status": "approved_by_network", "type": "authorized"},
                    "paid": True,
                    "payment_intent": s["payment_intent"],
                    "payment_method": "pm_" + _random_token(24),
                    "receipt_url": f"{self.base_url}/receipts/{s['id']}",
                    "refunded": False,
                    "status": "succeeded",
                }
                self._charges[session_id] = charge
            previous = {"amount_refunded": charge["amount_refunded"], "refunded": charge["refunded"]}
            charge["amount_refunded"] = amount_refunded
            charge["refunded"] = amount_refunded >= amount
            return self.event(
                "charge.refunded", charge, timestamp=timestamp, secret=secret, previous_attributes=previous
            )
