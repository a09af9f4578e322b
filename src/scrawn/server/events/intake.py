"""Turn wire requests into validated events (DESIGN §3.1, §3.4). Every problem names its field."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from scrawn._codes import INVALID_DATA, INVALID_TIMESTAMP, UNSUPPORTED_EVENT_TYPE, VALIDATION_FAILED
from scrawn._proto.event.v1 import event_pb2 as pb
from scrawn._proto.usage.v1 import usage_pb2 as usage_pb
from scrawn.errors import ValidationError
from scrawn.money import MoneyError, float32_bits_to_decimal, format_amount, parse_decimal, to_micros
from scrawn.server.clock import now_ms
from scrawn.server.pricing.expression import MAX_LENGTH as MAX_EXPRESSION
from scrawn.server.pricing.pricer import Debit, DebitKind
from scrawn.server.pricing.types import EVENT_TYPE_PATTERN, MAX_NAME, NAME_PATTERN

MAX_USER_ID = 256
MAX_IDEMPOTENCY_KEY = 255
MAX_METADATA_BYTES = 16 * 1024
MAX_MODEL = 255
FUTURE_SKEW_SECONDS = 24 * 3600
_FIXED32 = 5
_LENGTH_DELIMITED = 2


AI_COMPONENTS = ("input", "output", "inputCache", "outputCache")


class EventInvalid(ValidationError):
    """A rejected event: INVALID_ARGUMENT on unary calls, ``stream_code`` in a stream's failures."""

    def __init__(self, field: str, problem: str, stream_code: str = VALIDATION_FAILED) -> None:
        super().__init__(field, problem, context="Event validation failed")
        self.stream_code = stream_code


@dataclass(frozen=True)
class AiUsage:
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    input_cache_tokens: int
    output_cache_tokens: int
    debits: dict[str, Debit | None]  # by component: input, output, inputCache, outputCache


@dataclass(frozen=True)
class TypedUsage:
    """A typed event (usage.v1 TrackEvents): priced by the project's event price for ``name``."""

    name: str
    quantity: Decimal
    product_ref: str | None


@dataclass(frozen=True)
class EventInput:
    event_type: str  # BASIC_USAGE | AI_TOKEN_USAGE
    user_id: str
    reported_at: int  # Unix seconds
    event_id: str | None
    idempotency_key: str | None
    metadata: str | None
    fingerprint: str
    basic_usage_type: str | None = None
    debit: Debit | None = None
    ai: AiUsage | None = None
    typed: TypedUsage | None = None
    prefix: str = field(default="", compare=False)  # "" or "basicUsage." etc. for messages

    def to_json(self) -> str:
        """Everything needed to price this event again exactly (the quarantine keeps it); decimals as text."""
        data: dict[str, Any] = {
            "v": 1,
            "eventType": self.event_type,
            "userId": self.user_id,
            "reportedAt": self.reported_at,
            "eventId": self.event_id,
            "idempotencyKey": self.idempotency_key,
            "metadata": self.metadata,
            "fingerprint": self.fingerprint,
            "basicUsageType": self.basic_usage_type,
            "debit": self.debit.canonical() if self.debit else None,
        }
        if self.ai is not None:
            ai = self.ai
            data["ai"] = {
                "model": ai.model,
                "provider": ai.provider,
                "tokens": [ai.input_tokens, ai.output_tokens, ai.input_cache_tokens, ai.output_cache_tokens],
                "debits": {k: d.canonical() if d else None for k, d in ai.debits.items()},
            }
        if self.typed is not None:
            data["typed"] = {
                "name": self.typed.name,
                "quantity": format_amount(self.typed.quantity),
                "productRef": self.typed.product_ref,
            }
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> EventInput:
        data = json.loads(text)
        if data.get("v") != 1:
            raise ValueError(f"unknown stored event input version: {data.get('v')!r}")
        ai = typed = None
        if data.get("ai") is not None:
            a = data["ai"]
            input_tokens, output_tokens, input_cache, output_cache = (int(t) for t in a["tokens"])
            debits = {c: _debit_from(a["debits"][c]) for c in AI_COMPONENTS}
            ai = AiUsage(
                a["model"], a["provider"], input_tokens, output_tokens, input_cache, output_cache, debits
            )
        if data.get("typed") is not None:
            t = data["typed"]
            typed = TypedUsage(t["name"], Decimal(t["quantity"]), t["productRef"])
        return cls(
            event_type=data["eventType"],
            user_id=data["userId"],
            reported_at=int(data["reportedAt"]),
            event_id=data["eventId"],
            idempotency_key=data["idempotencyKey"],
            metadata=data["metadata"],
            fingerprint=data["fingerprint"],
            basic_usage_type=data["basicUsageType"],
            debit=_debit_from(data["debit"]),
            ai=ai,
            typed=typed,
        )


def _debit_from(value: list[str] | None) -> Debit | None:
    if value is None:
        return None
    kind, text = value
    if kind not in _DEBIT_KINDS:
        raise ValueError(f"unknown debit kind in a stored event input: {kind!r}")
    return Debit(_DEBIT_KINDS[kind], text)


_DEBIT_KINDS: dict[str, DebitKind] = {"amount": "amount", "tag": "tag", "expr": "expr"}


def from_register(req: pb.RegisterEventRequest) -> EventInput:
    if req.type != pb.BASIC_USAGE:
        raise EventInvalid("type", f"must be BASIC_USAGE, got {_enum_name(req.type)}", UNSUPPORTED_EVENT_TYPE)
    usage: pb.BasicUsage | None = req.basicUsage if req.HasField("basicUsage") else None
    legacy_call = _legacy_sdk_call(req)
    if usage is None:
        usage = legacy_call
    return _build(req.type, req.userId, req.reportedTimestamp, req.eventId, req.idempotencyKey, usage, None)


def from_stream_item(req: pb.StreamEventRequest) -> EventInput:
    if req.type == pb.BASIC_USAGE:
        usage = req.basicUsage if req.HasField("basicUsage") else None
        return _build(
            req.type, req.userId, req.reportedTimestamp, req.eventId, req.idempotencyKey, usage, None
        )
    if req.type == pb.AI_TOKEN_USAGE:
        if not req.HasField("aiTokenUsage"):
            raise EventInvalid("aiTokenUsage", "is required for AI_TOKEN_USAGE events", INVALID_DATA)
        return _build(
            req.type,
            req.userId,
            req.reportedTimestamp,
            req.eventId,
            req.idempotencyKey,
            None,
            req.aiTokenUsage,
        )
    raise EventInvalid(
        "type", f"must be BASIC_USAGE or AI_TOKEN_USAGE, got {_enum_name(req.type)}", UNSUPPORTED_EVENT_TYPE
    )


def from_tracked(item: usage_pb.TrackedEvent) -> EventInput:
    name = item.type
    if not name or len(name) > MAX_NAME or not EVENT_TYPE_PATTERN.fullmatch(name):
        raise EventInvalid("type", "must match ^[A-Za-z0-9][A-Za-z0-9._:-]*$ and be at most 128 characters")
    quantity = Decimal(1)
    if item.quantity:
        try:
            quantity = parse_decimal(item.quantity)
            to_micros(quantity)
        except MoneyError as e:
            raise EventInvalid("quantity", str(e)) from None
        if quantity < 0:
            raise EventInvalid("quantity", "must not be negative")
    product = item.productRef or None
    if product is not None and (len(product) > MAX_MODEL or "\x00" in product):
        raise EventInvalid("productRef", f"must be at most {MAX_MODEL} characters, without NUL")
    if item.timestamp < 0 or item.timestamp > 2**31:
        raise EventInvalid("timestamp", "must be Unix seconds", INVALID_TIMESTAMP)
    user = _text("userId", item.userId, MAX_USER_ID)
    reported_at = _timestamp(item.timestamp)
    eid = _event_id(item.eventId)
    key = _text("idempotencyKey", item.idempotencyKey, MAX_IDEMPOTENCY_KEY) if item.idempotencyKey else None
    metadata = _metadata("metadata", item.metadata if item.HasField("metadata") else None)
    typed = TypedUsage(name, quantity, product)
    content = {
        "type": "TYPED",
        "name": name,
        "user": user,
        "reported": item.timestamp,
        "eventId": eid,
        "quantity": format_amount(quantity),
        "product": product,
        "metadata": metadata,
    }
    return EventInput("TYPED", user, reported_at, eid, key, metadata, _fingerprint(content), typed=typed)


def _build(
    event_type: int,
    user_id: str,
    reported: int,
    event_id: str,
    idempotency_key: str,
    usage: pb.BasicUsage | None,
    ai: pb.AITokenUsage | None,
) -> EventInput:
    user = _text("userId", user_id, MAX_USER_ID)
    reported_at = _timestamp(reported)
    eid = _event_id(event_id)
    key = _text("idempotencyKey", idempotency_key, MAX_IDEMPOTENCY_KEY) if idempotency_key else None
    if ai is None:
        if usage is None:
            raise EventInvalid("basicUsage", "is required for BASIC_USAGE events", INVALID_DATA)
        debit = _basic_debit(usage)
        metadata = _metadata("basicUsage.metadata", usage.metadata if usage.HasField("metadata") else None)
        usage_type = "MIDDLEWARE_CALL" if usage.basicUsageType == pb.MIDDLEWARE_CALL else "RAW"
        if usage.basicUsageType not in (0, pb.RAW, pb.MIDDLEWARE_CALL):
            raise EventInvalid("basicUsage.basicUsageType", f"unknown value {usage.basicUsageType}")
        print_ = basic_fingerprint(event_type, user, reported, eid, debit, metadata, usage_type)
        return EventInput("BASIC_USAGE", user, reported_at, eid, key, metadata, print_, usage_type, debit)
    content: dict[str, Any] = {"type": event_type, "user": user, "reported": reported, "eventId": eid}
    ai_usage = _ai_usage(ai)
    metadata = _metadata("aiTokenUsage.metadata", ai.metadata if ai.HasField("metadata") else None)
    content |= {
        "model": ai_usage.model,
        "provider": ai_usage.provider,
        "tokens": [
            ai_usage.input_tokens,
            ai_usage.output_tokens,
            ai_usage.input_cache_tokens,
            ai_usage.output_cache_tokens,
        ],
        "debits": {k: d.canonical() if d else None for k, d in ai_usage.debits.items()},
        "metadata": metadata,
    }
    return EventInput(
        "AI_TOKEN_USAGE", user, reported_at, eid, key, metadata, _fingerprint(content), ai=ai_usage
    )


def _text(name: str, value: str, limit: int) -> str:
    if not value or not value.strip():
        raise EventInvalid(name, "must be a non-empty string")
    if len(value) > limit:
        raise EventInvalid(name, f"must be at most {limit} characters")
    if "\x00" in value:
        raise EventInvalid(name, "must not contain NUL characters")
    return value


def _timestamp(seconds: int) -> int:
    now = now_ms() // 1000
    if seconds == 0:
        return now
    if seconds < 0:
        raise EventInvalid("reportedTimestamp", "must be Unix seconds, not negative", INVALID_TIMESTAMP)
    if seconds > now + FUTURE_SKEW_SECONDS:
        raise EventInvalid("reportedTimestamp", "is more than a day in the future", INVALID_TIMESTAMP)
    return seconds


def _event_id(value: str) -> str | None:
    if not value:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise EventInvalid("eventId", "must be a UUID") from None


def _metadata(name: str, value: str | None) -> str | None:
    if value is None:
        return None
    if len(value.encode()) > MAX_METADATA_BYTES:
        raise EventInvalid(name, f"must be at most {MAX_METADATA_BYTES} bytes", INVALID_DATA)
    if "\x00" in value:
        raise EventInvalid(name, "must not contain NUL characters", INVALID_DATA)
    try:
        parsed = json.loads(value, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        raise EventInvalid(name, "must be a JSON object", INVALID_DATA) from None
    if not isinstance(parsed, dict):
        raise EventInvalid(name, "must be a JSON object", INVALID_DATA)
    return value


def _reject_constant(name: str) -> None:
    raise ValueError(name)


def _basic_debit(usage: pb.BasicUsage) -> Debit:
    which = usage.WhichOneof("debit")
    if which == "amount":
        return _amount_debit("basicUsage.amount", usage.amount)
    if which == "tag":
        return _tag_debit("basicUsage.tag", usage.tag)
    if which == "expr":
        return _expr_debit("basicUsage.expr", usage.expr)
    legacy = _legacy_float(usage, 2)
    if legacy is not None:
        return _amount_debit("basicUsage.amount", _float_amount("basicUsage.amount", legacy))
    raise EventInvalid("basicUsage.debit", "one of amount, tag or expr is required")


def _ai_usage(ai: pb.AITokenUsage) -> AiUsage:
    model = ai.model
    if not model or not model.strip():
        raise EventInvalid("aiTokenUsage.model", "must be a non-empty string")
    if len(model) > MAX_MODEL or "\x00" in model:
        raise EventInvalid("aiTokenUsage.model", f"must be at most {MAX_MODEL} characters, without NUL")
    provider = ai.provider if ai.HasField("provider") and ai.provider.strip() else "unknown"
    if len(provider) > MAX_MODEL or "\x00" in provider:
        raise EventInvalid("aiTokenUsage.provider", f"must be at most {MAX_MODEL} characters, without NUL")
    tokens = {}
    for name in ("inputTokens", "outputTokens", "inputCacheTokens", "outputCacheTokens"):
        value = getattr(ai, name)
        if value < 0:
            raise EventInvalid(f"aiTokenUsage.{name}", "must not be negative")
        tokens[name] = value
    debits: dict[str, Debit | None] = {}
    legacy_fields = {"input": 4, "output": 6}
    for component in AI_COMPONENTS:
        which = ai.WhichOneof(f"{component}Debit")
        debit: Debit | None = None
        if which is not None:
            field_name = f"aiTokenUsage.{which}"
            value = getattr(ai, which)
            if which.endswith("Amount"):
                debit = _amount_debit(field_name, value)
            elif which.endswith("Tag"):
                debit = _tag_debit(field_name, value)
            else:
                debit = _expr_debit(field_name, value)
        elif component in legacy_fields:
            bits = _legacy_float(ai, legacy_fields[component])
            if bits is not None:
                field_name = f"aiTokenUsage.{component}Amount"
                debit = _amount_debit(field_name, _float_amount(field_name, bits))
        debits[component] = debit
    return AiUsage(
        model,
        provider,
        tokens["inputTokens"],
        tokens["outputTokens"],
        tokens["inputCacheTokens"],
        tokens["outputCacheTokens"],
        debits,
    )


def _amount_debit(name: str, amount: int | Decimal) -> Debit:
    if amount < 0:
        raise EventInvalid(name, "must not be negative")
    # A whole number's text is what format_amount writes for it, without Decimal's normalising.
    return Debit("amount", str(amount) if isinstance(amount, int) else format_amount(amount))


def _tag_debit(name: str, tag: str) -> Debit:
    if not tag:
        raise EventInvalid(name, "must be a non-empty tag name")
    if len(tag) > MAX_NAME or not NAME_PATTERN.fullmatch(tag):
        raise EventInvalid(name, "must match ^[A-Z][A-Z0-9_]*$ and be at most 128 characters")
    return Debit("tag", tag)


def _expr_debit(name: str, text: str) -> Debit:
    if not text.strip():
        raise EventInvalid(name, "must be a non-empty expression")
    if len(text) > MAX_EXPRESSION:
        raise EventInvalid(name, f"must be at most {MAX_EXPRESSION} characters")
    return Debit("expr", text)


_MAX_FLOAT_AMOUNT = Decimal(2**63 - 1).scaleb(-6)  # the most the ledger's micro-unit BIGINT holds


def _float_amount(name: str, bits: int) -> Decimal:
    try:
        amount = float32_bits_to_decimal(bits)
    except MoneyError:
        raise EventInvalid(name, "must be a finite number (got NaN or infinity)") from None
    except OverflowError:  # float32_bits_to_decimal overflows near float32's maximum (3.4e38)
        raise EventInvalid(name, "is too large") from None
    if amount.copy_abs() > _MAX_FLOAT_AMOUNT:  # ≥ 1e28 would even crash format_amount (INTERNAL)
        raise EventInvalid(name, "is too large")
    return amount


def _legacy_float(message: Any, number: int) -> int | None:
    """A float32 sent by TS SDK 0.0.6 where the contract has an int32: an unknown fixed32 field."""
    for unknown in _unknown_fields(message):
        if unknown.field_number == number and unknown.wire_type == _FIXED32:
            return int(unknown.data)
    return None


def _legacy_sdk_call(req: pb.RegisterEventRequest) -> pb.BasicUsage | None:
    """The oldest layout sent ``SDKCall sdkCall = 3`` (a message where we have reportedTimestamp).
    Its fields 1–3 line up with BasicUsage (type, float amount, tag), so we read it as one."""
    for unknown in _unknown_fields(req):
        if unknown.field_number == 3 and unknown.wire_type == _LENGTH_DELIMITED:
            try:
                usage: pb.BasicUsage = pb.BasicUsage.FromString(unknown.data)
                return usage
            except DecodeError:
                raise EventInvalid("sdkCall", "is not a valid SDKCall message", INVALID_DATA) from None
    return None


def _unknown_fields(message: Message) -> list[Any]:
    fields = UnknownFieldSet(message)
    return [fields[i] for i in range(len(fields))]


def _enum_name(value: int) -> str:
    try:
        return str(pb.EventType.Name(value))
    except ValueError:
        return str(value)


def basic_fingerprint(
    event_type: int, user: str, reported: int, eid: str | None, debit: Debit, metadata: str | None, usage: str
) -> str:
    """``_fingerprint`` of a basic event's content, its text written out in the order sorting gives
    (debit, eventId, metadata, reported, type, usageType, user): the same hash, a third of the work."""
    text = (
        f"[('debit', {debit.canonical()!r}), ('eventId', {eid!r}), ('metadata', {metadata!r}), "
        f"('reported', {reported!r}), ('type', {event_type!r}), ('usageType', {usage!r}), ('user', {user!r})]"
    )
    return hashlib.sha256(text.encode()).hexdigest()


def _fingerprint(content: dict[str, Any]) -> str:
    # repr() of str/int/None/list/dict values built in a fixed order is canonical, and far cheaper than JSON.
    return hashlib.sha256(repr(sorted(content.items())).encode()).hexdigest()
