"""``wrap_openai`` and ``wrap_anthropic``, published by :mod:`scrawn.ai` and as the clients' methods: the
official LLM clients' calls billed through :func:`scrawn._ai_wrappers.wrap` with each provider's routes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar, cast

from scrawn._ai_events import check_client, debit_map
from scrawn._ai_wrappers import ANTHROPIC_ROUTES, OPENAI_ROUTES, wrap
from scrawn._client_base import AnyClient
from scrawn.types import DebitInput, Metadata

P = TypeVar("P")


def _wrap(
    provider_client: P,
    scrawn_client: AnyClient,
    provider_name: str,
    routes: Mapping[tuple[str, ...], str],
    provider: str,
    user_id: str | None,
    debits: Mapping[str, object],
    metadata: Metadata | None,
) -> P:
    check_client(scrawn_client)
    wrapped = wrap(
        provider_client,
        scrawn_client,
        provider_name=provider_name,
        routes=routes,
        provider=provider,
        user_id=user_id,
        debits=debits,
        metadata=metadata,
    )
    return cast(P, wrapped)  # a WrappedClient stands in for the provider's client


def wrap_openai(
    openai_client: P,
    scrawn_client: AnyClient,
    *,
    user_id: str | None = None,
    input_debit: DebitInput | None = None,
    output_debit: DebitInput | None = None,
    input_cache_debit: DebitInput | None = None,
    output_cache_debit: DebitInput | None = None,
    metadata: Metadata | None = None,
    provider: str = "openai",
) -> P:
    """Bill an ``openai.OpenAI`` / ``openai.AsyncOpenAI`` client's calls to Scrawn.

    Billed: ``chat.completions.create`` (streamed too), ``chat.completions.parse``,
    ``chat.completions.stream``, ``responses.create`` (streamed too) and ``responses.parse``. Every other
    attribute is the client's own. A call is billed to the per-call ``scrawn_user_id=``, else the user of
    an enclosing :func:`bill_as` block, else ``user_id``; with none of them it passes through untouched.
    Per-call ``scrawn_input_debit=`` / ``scrawn_output_debit=`` / ``scrawn_input_cache_debit=`` /
    ``scrawn_output_cache_debit=`` / ``scrawn_metadata=`` override the defaults given here. The
    ``scrawn_*`` arguments are removed before the call reaches OpenAI and validated before it is made.

    A billed streamed chat completion asks OpenAI for the final usage chunk
    (``stream_options.include_usage``); unless you asked for it yourself, that chunk is not passed on.
    Usage is queued with :func:`track_ai` when the call (or the stream) ends, so billing never slows or
    fails the call; a stream closed before OpenAI reported usage is not billed (logged)."""
    debits = debit_map(input_debit, output_debit, input_cache_debit, output_cache_debit)
    return _wrap(openai_client, scrawn_client, "openai", OPENAI_ROUTES, provider, user_id, debits, metadata)


def wrap_anthropic(
    anthropic_client: P,
    scrawn_client: AnyClient,
    *,
    user_id: str | None = None,
    input_debit: DebitInput | None = None,
    output_debit: DebitInput | None = None,
    input_cache_debit: DebitInput | None = None,
    output_cache_debit: DebitInput | None = None,
    metadata: Metadata | None = None,
    provider: str = "anthropic",
) -> P:
    """Bill an ``anthropic.Anthropic`` / ``anthropic.AsyncAnthropic`` client's calls to Scrawn.

    Billed: ``messages.create`` (streamed too), ``messages.parse`` and ``messages.stream`` (billed from
    the accumulated message when the ``with`` block exits). Users and overrides as :func:`wrap_openai`.
    ``cache_read_input_tokens`` are billed as input cache tokens and ``cache_creation_input_tokens`` as
    output cache tokens (cache writes), each with its own debit."""
    debits = debit_map(input_debit, output_debit, input_cache_debit, output_cache_debit)
    return _wrap(
        anthropic_client, scrawn_client, "anthropic", ANTHROPIC_ROUTES, provider, user_id, debits, metadata
    )
