"""The context-manager and iterator protocols of the SDK's closable objects, written once for both
flavours: ``with`` (``async with``) closes the object when the block ends, and a stream iterates the
generator it holds in ``_gen``. Used by the clients, the ``fork=True`` streams and the billed provider
streams."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from types import TracebackType
from typing import Generic, Self, TypeVar

T = TypeVar("T")


class Closing:
    """``with obj:`` calls ``obj.close()`` when the block ends, however it ends."""

    def close(self) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClosing:
    """``async with obj:`` awaits ``obj.close()`` when the block ends, however it ends."""

    async def close(self) -> object:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


class Stream(Closing, Generic[T]):
    """A blocking stream: iterating it iterates its generator ``_gen``."""

    _gen: Generator[T, None, None]

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        return next(self._gen)


class AsyncStream(AsyncClosing, Generic[T]):
    """An asyncio stream: ``async for`` iterates its async generator ``_gen``."""

    _gen: AsyncGenerator[T, None]

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        return await self._gen.__anext__()
