"""``ai_token_stream_consumer(..., fork=True)``: :class:`ForkedAiStream` and :class:`AsyncForkedAiStream`
yield every item of the source as it arrives while a background biller (a thread, or a task on the caller's
loop) bills the chunks in batches; nothing the billing does ever raises into the caller's iteration."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Generator,
    Iterable,
)
from functools import partial
from typing import Any, TypeVar

from scrawn._ai_events import (
    AiEvent,
    ErrorHook,
    call_hook_async,
    call_hook_sync,
    register_fork,
)
from scrawn._ai_stream import (
    _END,
    OPERATION,
    AiStreamResult,
    Delivery,
    Limits,
    StreamDefaults,
    _aiter,
    _record_failure,
    _record_local,
    async_delivery,
    deliver_steps,
    prepare_chunk,
    sync_delivery,
)
from scrawn._client_base import AnyClient, SyncClient
from scrawn._closing import AsyncStream, Stream
from scrawn._methods import Steps, run, run_async
from scrawn._retry import ErrorContext
from scrawn.errors import InternalError, ScrawnError

T = TypeVar("T")
log = logging.getLogger("scrawn.ai")


# ------------------------------------------------------------------------------- fork=True (sync)


class _Biller:
    """What both billing sides of a fork share: the result, and the loop that takes the queued chunks in
    batches (``batch_size``, or what came within ``flush_interval`` of the first) and bills them, written
    once as steps (:mod:`scrawn._methods`): run in the thread of a sync fork, awaited in the task of an
    async one. Nothing it meets is raised: a batch that fails unexpectedly is recorded as failed."""

    def __init__(self, client: AnyClient, delivery: Delivery, limits: Limits) -> None:
        self._delivery = delivery
        self._limits = limits
        self._finished = False
        self.result = AiStreamResult()
        register_fork(client, self)

    _queue: queue.SimpleQueue[Any] | asyncio.Queue[Any]

    def _started(self) -> bool:
        """Whether the worker (thread or task) was started, on the first billable chunk."""
        raise NotImplementedError

    def finish(self) -> None:
        """No more chunks: the worker ends once it has billed the queued ones."""
        if not self._finished:
            self._finished = True
            if self._started():
                self._queue.put_nowait(_END)

    def _take(self, timeout: float | None) -> Any:
        """The next queued chunk (or ``_END``), waiting at most ``timeout`` seconds."""
        raise NotImplementedError

    def _batches(self) -> Steps[None]:
        limits = self._limits
        while True:
            first = yield partial(self._take, None)
            if first is _END:
                return
            batch: list[AiEvent] = [first]
            ended = False
            deadline = time.monotonic() + limits.flush_interval
            while len(batch) < limits.batch_size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    item = yield partial(self._take, remaining)
                except (queue.Empty, TimeoutError):
                    break
                if item is _END:
                    ended = True
                    break
                batch.append(item)
            try:
                yield from deliver_steps(self._delivery, batch, self.result, False)
            except Exception as e:  # the worker must survive anything
                log.exception("scrawn: unexpected error billing AI token events")
                for event in batch:
                    _record_failure(self.result, event, InternalError(f"unexpected error: {e}"))
            if ended:
                return


class _ThreadBiller(_Biller):
    """The billing side of a sync fork: a queue drained by one thread (started on the first billable
    chunk), bounded by a semaphore so that ``finish()`` can always enqueue the end marker."""

    def __init__(self, client: SyncClient, hook: ErrorHook | None, limits: Limits) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._room = threading.BoundedSemaphore(limits.buffer_size)
        self._thread: threading.Thread | None = None
        super().__init__(client, sync_delivery(client, hook), limits)

    def put(self, event: AiEvent) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="scrawn-ai-fork", daemon=True)
            self._thread.start()
        self._room.acquire()  # waits when the billing side is buffer_size behind (backpressure)
        self._queue.put(event)

    def _started(self) -> bool:
        return self._thread is not None

    def wait(self, timeout: float | None) -> bool:
        self.finish()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _take(self, timeout: float | None) -> Any:
        item = self._queue.get(timeout=timeout)
        if item is not _END:
            self._room.release()
        return item

    def _run(self) -> None:
        run(self._batches())


class ForkedAiStream(Stream[T]):
    """The caller's side of ``ai_token_stream_consumer(..., fork=True)`` on a sync iterable: iterate it to
    get every chunk as the source yields it; billing runs in a background thread. Call
    :meth:`result` after iterating to wait for the billing (it ends the stream if it is still open).
    Use it as a context manager, or call :meth:`close`, when you stop iterating early."""

    def __init__(
        self, source: Iterable[T], defaults: StreamDefaults, biller: _ThreadBiller, hook: ErrorHook | None
    ) -> None:
        self._biller = biller
        self._hook = hook
        self._gen = self._run(source, defaults)

    def close(self) -> None:
        """Stop reading the source; what was read is still billed."""
        self._gen.close()
        self._biller.finish()

    def result(self, timeout: float | None = None) -> AiStreamResult:
        """Wait for the billing of every chunk read (at most ``timeout`` seconds: ``TimeoutError``)."""
        self.close()
        if not self._biller.wait(timeout):
            raise TimeoutError(f"billing the stream did not finish within {timeout} s")
        return self._biller.result

    def _report(self, index: int, error: ScrawnError) -> None:
        _record_local(self._biller.result, index, error)
        if self._hook is None:
            log.warning("scrawn: chunk %d of an AI token stream was not billed: %s", index, error.message)
            return
        call_hook_sync(self._hook, error, ErrorContext(OPERATION, "", None, 0))

    def _run(self, source: Iterable[T], defaults: StreamDefaults) -> Generator[T, None, None]:
        iterator = iter(source)
        index = 0
        try:
            for chunk in iterator:
                try:
                    event = prepare_chunk(chunk, index, defaults)
                except ScrawnError as e:
                    self._report(index, e)
                else:
                    if event is not None:
                        self._biller.put(event)
                index += 1
                yield chunk
        except GeneratorExit:
            close = getattr(iterator, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    close()
            raise
        finally:
            self._biller.finish()


# ------------------------------------------------------------------------------ fork=True (async)


class _TaskBiller(_Biller):
    """The billing side of an async fork: a queue drained by one task, bounded by a semaphore."""

    def __init__(self, client: AnyClient, hook: ErrorHook | None, limits: Limits) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._room = asyncio.BoundedSemaphore(limits.buffer_size)
        self._task: asyncio.Task[None] | None = None
        super().__init__(client, async_delivery(client, hook), limits)

    async def put(self, event: AiEvent) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())
        await self._room.acquire()
        self._queue.put_nowait(event)

    def _started(self) -> bool:
        return self._task is not None

    async def wait(self, timeout: float | None) -> bool:  # noqa: ASYNC109
        self.finish()
        if self._task is None:
            return True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except TimeoutError:
            return False
        return True

    async def _take(self, timeout: float | None) -> Any:  # noqa: ASYNC109
        item = await (self._queue.get() if timeout is None else asyncio.wait_for(self._queue.get(), timeout))
        if item is not _END:
            self._room.release()
        return item

    async def _run(self) -> None:
        await run_async(self._batches())


class AsyncForkedAiStream(AsyncStream[T]):
    """The caller's side of ``ai_token_stream_consumer(..., fork=True)`` in async code: ``async for`` it
    to get every chunk as the source yields it; billing runs in a background task. ``await
    stream.result()`` after iterating waits for the billing (it ends the stream if it is still open)."""

    def __init__(
        self,
        source: Iterable[T] | AsyncIterable[T],
        defaults: StreamDefaults,
        biller: _TaskBiller,
        hook: ErrorHook | None,
    ) -> None:
        self._biller = biller
        self._hook = hook
        self._source = source
        self._gen = self._run(source, defaults)

    async def aclose(self) -> None:
        """Stop reading the source; what was read is still billed."""
        await self._gen.aclose()
        self._biller.finish()

    close = aclose

    async def result(self, timeout: float | None = None) -> AiStreamResult:  # noqa: ASYNC109
        """Wait for the billing of every chunk read (at most ``timeout`` seconds: ``TimeoutError``)."""
        await self.aclose()
        if not await self._biller.wait(timeout):
            raise TimeoutError(f"billing the stream did not finish within {timeout} s")
        return self._biller.result

    async def _report(self, index: int, error: ScrawnError) -> None:
        _record_local(self._biller.result, index, error)
        if self._hook is None:
            log.warning("scrawn: chunk %d of an AI token stream was not billed: %s", index, error.message)
            return
        await call_hook_async(self._hook, error, ErrorContext(OPERATION, "", None, 0))

    async def _run(
        self, source: Iterable[T] | AsyncIterable[T], defaults: StreamDefaults
    ) -> AsyncGenerator[T, None]:
        index = 0
        try:
            async for chunk in _aiter(source):
                try:
                    event = prepare_chunk(chunk, index, defaults)
                except ScrawnError as e:
                    await self._report(index, e)
                else:
                    if event is not None:
                        await self._biller.put(event)
                index += 1
                yield chunk
        except GeneratorExit:
            close = getattr(source, "aclose", None) or getattr(source, "close", None)
            if callable(close):
                with contextlib.suppress(Exception):
                    outcome = close()
                    if asyncio.iscoroutine(outcome):
                        await outcome
            raise
        finally:
            self._biller.finish()
