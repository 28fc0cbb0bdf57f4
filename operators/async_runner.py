"""One asyncio event loop for the whole process, in a daemon thread.

In: coroutines, from any thread. Out: `concurrent.futures.Future`s that the caller polls or
waits on. The LLM step submits each request here, so the Bytewax worker never waits for one.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import threading
from collections.abc import Coroutine
from typing import Any, ClassVar, TypeVar

__all__ = ["AsyncRunner"]

T = TypeVar("T")


class AsyncRunner:
    """The process-wide event loop thread (`AsyncRunner.get()`), started on first use.

    Never: blocks the submitting thread. Not guaranteed: that coroutines still running when the
    process exits are finished (the thread is a daemon). Semaphores are shared by name, so a
    bound holds across every step that uses the same name.
    """

    _instance: ClassVar[AsyncRunner | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._semaphores: dict[tuple[str, int], asyncio.Semaphore] = {}
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="eyes-async-runner", daemon=True
        )
        self._thread.start()

    @classmethod
    def get(cls) -> AsyncRunner:
        """Return the process's runner, starting its thread the first time."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = AsyncRunner()
            return cls._instance

    def submit(self, coro: Coroutine[Any, Any, T]) -> cf.Future[T]:
        """Schedule `coro` on the loop; return its future (cancel it to cancel the coroutine)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def semaphore(self, name: str, limit: int) -> asyncio.Semaphore:
        """Return the semaphore `name` of `limit` slots. Call only from inside the loop."""
        key = (name, limit)
        found = self._semaphores.get(key)
        if found is None:
            found = self._semaphores[key] = asyncio.Semaphore(limit)
        return found
