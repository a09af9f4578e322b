"""The context-manager and iterator protocols of the SDK's closable objects, written once for both
flavours: ``with`` (``async with``) settles the object when the block ends — closes it, or settles a
reservation — and a stream iterates the generator it holds in ``_gen``. Used by the clients, the
reservations, the ``fork=True`` streams and the billed provider streams."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from types import TracebackType
from typing import Generic, Self, TypeVar

T = TypeVar("T")


ExcType = type[BaseException] | None


class Settled:
    """``with obj:`` settles the object when the block ends, however it ends: ``_settle`` is told the
    block's exception, if it raised one."""

    def _settle(self, exc_type: ExcType, exc: BaseException | None) -> object:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: ExcType, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._settle(exc_type, exc)


class AsyncSettled:
    """``async with obj:`` awaits the settling of the object when the block ends, however it ends."""

    async def _settle(self, exc_type: ExcType, exc: BaseException | None) -> object:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, exc_type: ExcType, exc: BaseException | None, tb: TracebackType | None) -> None:
        await self._settle(exc_type, exc)


class Closing(Settled):
    """``with obj:`` calls ``obj.close()`` when the block ends, however it ends."""

    def close(self) -> object:
        raise NotImplementedError

    def _settle(self, exc_type: ExcType, exc: BaseException | None) -> object:
        return self.close()


class AsyncClosing(AsyncSettled):
    """``async with obj:`` awaits ``obj.close()`` when the block ends, however it ends."""

    async def close(self) -> object:
        raise NotImplementedError

    async def _settle(self, exc_type: ExcType, exc: BaseException | None) -> object:
        return await self.close()


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
