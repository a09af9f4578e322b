"""What a wrapped LLM call bills: token usage read from ``openai``/``anthropic`` responses (by attribute or
key; no provider package is imported), the per-call billing options (``bill_as``, ``scrawn_*`` keyword
arguments) and the :class:`Biller` that queues the resulting AI events. Token mapping: see
:mod:`scrawn._ai_wrappers`."""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final, cast

from scrawn._ai_events import (
    DEBIT_FIELDS,
    AiUsage,
    buffer_for,
    call_hook_sync,
    check_debit,
    check_metadata,
    check_tokens,
    debit_map,
    prepare_event,
)
from scrawn._client_base import AnyClient
from scrawn._core import check_user_id
from scrawn._retry import ErrorContext
from scrawn.errors import ScrawnError, ValidationError
from scrawn.pricing import Debit
from scrawn.types import DebitInput, Metadata

log = logging.getLogger("scrawn.ai")


OPTION_KWARGS: Final = (
    "scrawn_user_id",
    "scrawn_input_debit",
    "scrawn_output_debit",
    "scrawn_input_cache_debit",
    "scrawn_output_cache_debit",
    "scrawn_metadata",
)


# ------------------------------------------------------------------------------------- usage reading


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


def _count(name: str, value: Any) -> int:
    return 0 if value is None else check_tokens(name, value)


def _model(obj: Any) -> str | None:
    model = _get(obj, "model")
    return model if isinstance(model, str) and model else None


def openai_usage(response: object) -> AiUsage | None:
    """Token usage of an OpenAI chat completion, chat completion chunk, parsed completion, Responses-API
    response or ``response.completed`` event — or of their ``usage`` object — as an :class:`AiUsage`;
    ``None`` when it carries no usage (a stream chunk before the last one)."""
    source = response
    inner = _get(response, "response")  # a Responses-API stream event
    if _get(response, "usage") is None and inner is not None and _get(inner, "usage") is not None:
        source = inner
    usage = _get(source, "usage")
    if usage is None and (
        _get(source, "prompt_tokens") is not None or _get(source, "input_tokens") is not None
    ):
        usage, source = source, None
    if usage is None:
        return None
    if _get(usage, "prompt_tokens") is not None:  # chat completions
        total = _count("usage.prompt_tokens", _get(usage, "prompt_tokens"))
        details = _get(usage, "prompt_tokens_details")
        output = _count("usage.completion_tokens", _get(usage, "completion_tokens"))
        where = "usage.prompt_tokens_details"
    else:  # responses
        total = _count("usage.input_tokens", _get(usage, "input_tokens"))
        details = _get(usage, "input_tokens_details")
        output = _count("usage.output_tokens", _get(usage, "output_tokens"))
        where = "usage.input_tokens_details"
    cached = _count(f"{where}.cached_tokens", _get(details, "cached_tokens"))
    written = _count(f"{where}.cache_write_tokens", _get(details, "cache_write_tokens"))
    uncached = total - cached - written
    if uncached < 0:
        log.warning(
            "scrawn: OpenAI reported fewer input tokens (%d) than cached ones (%d read, %d written)",
            total,
            cached,
            written,
        )
        uncached = 0
    return AiUsage(
        input_tokens=uncached,
        output_tokens=output,
        input_cache_tokens=cached,
        output_cache_tokens=written,
        model=_model(source) if source is not None else None,
    )


def anthropic_usage(message: object) -> AiUsage | None:
    """Token usage of an Anthropic ``Message`` (or its ``usage`` object) as an :class:`AiUsage`."""
    usage = _get(message, "usage")
    source: Any = message
    if usage is None and _get(message, "input_tokens") is not None:
        usage, source = message, None
    if usage is None:
        return None
    return AiUsage(
        input_tokens=_count("usage.input_tokens", _get(usage, "input_tokens")),
        output_tokens=_count("usage.output_tokens", _get(usage, "output_tokens")),
        input_cache_tokens=_count("usage.cache_read_input_tokens", _get(usage, "cache_read_input_tokens")),
        output_cache_tokens=_count(
            "usage.cache_creation_input_tokens", _get(usage, "cache_creation_input_tokens")
        ),
        model=_model(source) if source is not None else None,
    )


# ------------------------------------------------------------------------------------------ options


@dataclass(frozen=True)
class BillingOptions:
    """Who to bill and how: wrap-level defaults, overridden by :func:`bill_as` and per-call kwargs."""

    user_id: str | None = None
    debits: tuple[tuple[str, Debit | None], ...] = ()
    metadata: dict[str, Any] | None = None

    def debit_map(self) -> dict[str, Debit | None]:
        found = dict(self.debits)
        return {key: found.get(key) for key in DEBIT_FIELDS}


def _metadata_dict(name: str, value: object) -> dict[str, Any] | None:
    text = check_metadata(name, value)
    if text is None:
        return None
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def build_options(
    prefix: str,
    *,
    user_id: object = None,
    debits: Mapping[str, object] | None = None,
    metadata: object = None,
) -> BillingOptions:
    """Validate a set of billing options; fields named ``{prefix}user_id``, ``{prefix}input_debit``, …"""
    given = debits or {}
    return BillingOptions(
        user_id=None if user_id is None else check_user_id(user_id, f"{prefix}user_id"),
        debits=tuple(
            (key, check_debit(f"{prefix}{key}", given[key]))
            for key in DEBIT_FIELDS
            if given.get(key) is not None
        ),
        metadata=_metadata_dict(f"{prefix}metadata", metadata),
    )


def _merge(base: BillingOptions, over: BillingOptions | None) -> BillingOptions:
    if over is None:
        return base
    debits = dict(base.debits)
    debits.update(over.debits)
    metadata = base.metadata
    if over.metadata is not None:
        metadata = {**(metadata or {}), **over.metadata}
    return BillingOptions(
        user_id=over.user_id if over.user_id is not None else base.user_id,
        debits=tuple(debits.items()),
        metadata=metadata,
    )


_context: contextvars.ContextVar[BillingOptions | None] = contextvars.ContextVar(
    "scrawn_ai_billing", default=None
)


@contextlib.contextmanager
def bill_as(
    user_id: str | None = None,
    *,
    input_debit: DebitInput | None = None,
    output_debit: DebitInput | None = None,
    input_cache_debit: DebitInput | None = None,
    output_cache_debit: DebitInput | None = None,
    metadata: Metadata | None = None,
) -> Iterator[None]:
    """Bill the wrapped-client calls made inside the block to ``user_id`` (and these debits), without
    per-call ``scrawn_*`` keyword arguments — handy in typed code::

        with bill_as("user_123"):
            client.chat.completions.create(model="gpt-4o-mini", messages=[...])

    Per-call ``scrawn_*`` arguments still win. Works in threads and asyncio tasks (a context variable)."""
    options = build_options(
        "",
        user_id=user_id,
        debits=debit_map(input_debit, output_debit, input_cache_debit, output_cache_debit),
        metadata=metadata,
    )
    token = _context.set(_merge(_context.get() or BillingOptions(), options))
    try:
        yield
    finally:
        _context.reset(token)


# -------------------------------------------------------------------------------------------- biller


class Biller:
    """What a wrapped client bills with: the Scrawn client, the provider name and default options."""

    def __init__(self, client: AnyClient, provider: str, defaults: BillingOptions) -> None:
        self.client = client
        self.provider = provider
        self.defaults = defaults

    def options(self, kwargs: dict[str, Any]) -> BillingOptions | None:
        """Pop (and validate) the ``scrawn_*`` arguments; ``None`` when no user is to be billed."""
        unknown = [k for k in kwargs if k.startswith("scrawn_") and k not in OPTION_KWARGS]
        if unknown:
            raise ValidationError(
                unknown[0],
                f"is not a Scrawn option (expected one of {', '.join(OPTION_KWARGS)})",
                context="Invalid billing option",
            )
        popped: dict[str, Any] = {k: kwargs.pop(k) for k in OPTION_KWARGS if k in kwargs}
        per_call = None
        if popped:
            per_call = build_options(
                "scrawn_",
                user_id=popped.get("scrawn_user_id"),
                debits={key: popped.get(f"scrawn_{key}") for key in DEBIT_FIELDS},
                metadata=popped.get("scrawn_metadata"),
            )
        merged = _merge(_merge(self.defaults, _context.get()), per_call)
        return merged if merged.user_id is not None else None

    def bill(
        self, options: BillingOptions, usage: AiUsage | None, request_model: Any, response_id: Any
    ) -> None:
        """Queue one AI event (non-blocking). Never raises: problems are logged or sent to ``on_error``."""
        try:
            if usage is None:
                log.warning(
                    "scrawn: the %s response carried no token usage; this call was not billed (user %s)",
                    self.provider,
                    options.user_id,
                )
                return
            metadata = options.metadata
            if isinstance(response_id, str) and response_id and "response_id" not in (metadata or {}):
                metadata = {**(metadata or {}), "response_id": response_id[:200]}
            event = prepare_event(
                prefix="usage.",
                user_id=options.user_id,
                model=usage.model or request_model,
                provider=self.provider,
                tokens={
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "input_cache_tokens": usage.input_cache_tokens,
                    "output_cache_tokens": usage.output_cache_tokens,
                },
                debits=options.debit_map(),
                metadata=check_metadata("metadata", metadata),
                idempotency_key=None,
            )
            buffer_for(self.client).put(cast(Any, event))
        except ScrawnError as error:
            self.report(error, options)
        except Exception:
            log.exception("scrawn: billing a %s call failed", self.provider)

    def report(self, error: ScrawnError, options: BillingOptions) -> None:
        hook = self.client._config.on_error
        if hook is None:
            log.warning("scrawn: a %s call was not billed: %s", self.provider, error.message)
            return
        call_hook_sync(hook, error, ErrorContext(f"wrap_{self.provider}", "", options.user_id, 0))


__all__ = ["Biller", "BillingOptions", "anthropic_usage", "bill_as", "openai_usage"]
