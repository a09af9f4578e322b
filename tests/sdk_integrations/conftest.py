"""Fixtures of the SDK integration tests: the fake LLM provider, served for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.sdk_integrations.helpers import FakeProvider, provider_app, serve_asgi


@pytest.fixture(scope="session")
def provider() -> Iterator[FakeProvider]:
    state = FakeProvider()
    with serve_asgi(provider_app(state)) as url:
        state.base_url = url
        yield state


@pytest.fixture
def fake(provider: FakeProvider) -> FakeProvider:
    """The fake provider with its request log cleared and default usage for this test."""
    provider.requests.clear()
    provider.openai_usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 250,
        "total_tokens": 1250,
        "prompt_tokens_details": {"cached_tokens": 300},
    }
    provider.anthropic_usage = {
        "input_tokens": 700,
        "output_tokens": 180,
        "cache_read_input_tokens": 400,
        "cache_creation_input_tokens": 50,
    }
    return provider
