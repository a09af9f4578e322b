"""Tie a background worker to its process: deliver at interpreter exit, start afresh in a forked child.
Only weak references are kept, so a worker nobody uses any more is not kept alive by them."""

from __future__ import annotations

import atexit
import weakref
from collections.abc import Callable
from typing import Protocol


class ProcessBound(Protocol):
    def _at_exit(self) -> None: ...
    def _after_fork_in_child(self) -> None: ...


def register_exit(worker: ProcessBound) -> None:
    ref = weakref.ref(worker)

    def at_exit() -> None:
        live = ref()
        if live is not None:
            live._at_exit()

    atexit.register(at_exit)


def at_fork_child(worker: ProcessBound) -> Callable[[], None]:
    ref = weakref.ref(worker)

    def in_child() -> None:
        live = ref()
        if live is not None:
            live._after_fork_in_child()

    return in_child
