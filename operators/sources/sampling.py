"""Sources that sample the machine on a timer thread: the base of the metrics and disk sources.

In: a sampler, a callable returning the events of one sample. Out: those events, every
`interval_seconds`, in batches. The sampler runs on its own thread, never in `next_batch`,
and the partition sleeps until the next sample is due.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from bytewax.inputs import DynamicSource, StatelessSourcePartition
from typing_extensions import override

from operators.sources.base import BoundedQueue, DropLog, EofPartition, awake_in

__all__ = ["MAX_SLEEP_SECONDS", "PeriodicSource"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# Wake this long after a sample is due, so that the sampler has put it in the queue.
_SLACK_SECONDS = 0.02
_MIN_SLEEP_SECONDS = 0.05
# The longest a partition sleeps. Measured with Bytewax 0.21.1: once triggers flowed, an input
# partition asleep for seconds (until its next 5 s sample) made the worker spin at 100 % of a
# core for most of that sleep, every epoch; a sleep of at most 0.1 s never did, and each extra
# wake-up costs some tens of microseconds.
MAX_SLEEP_SECONDS = 0.1


class _SamplerThread:
    """Calls `sample` every `interval` seconds (on a fixed schedule) and queues its events."""

    def __init__(
        self,
        name: str,
        sample: Callable[[], Sequence[T]],
        interval: float,
        queue: BoundedQueue[T],
        drops: DropLog,
        clock: Callable[[], float],
    ) -> None:
        self._name = name
        self._sample = sample
        self._interval = interval
        self._queue = queue
        self._drops = drops
        self._clock = clock
        self._stopping = threading.Event()
        self.next_due = clock() + interval
        self.samples = 0
        self._thread = threading.Thread(target=self._run, name=f"eyes-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(max(self.next_due - self._clock(), 0.0)):
            try:
                events = self._sample()
            except Exception as exc:  # a failed sample is counted; the next one is tried
                events = ()
                self._drops.count("sample_failed", repr(exc))
            self.samples += 1
            for event in events:
                if not self._queue.offer(event):
                    self._drops.count("queue_full", "the flow is not draining samples")
            now = self._clock()
            self.next_due += self._interval
            if self.next_due <= now:  # fell behind (suspend, slow sample): skip, do not burst
                self.next_due = now + self._interval


class _PeriodicPartition(StatelessSourcePartition[T]):
    """Drains the sampler's queue; after an empty batch sleeps until the next sample is due."""

    def __init__(
        self,
        step_id: str,
        sample: Callable[[], Sequence[T]],
        interval: float,
        stop: Callable[[], bool] | None,
        queue_items: int,
        clock: Callable[[], float],
    ) -> None:
        self._queue: BoundedQueue[T] = BoundedQueue(queue_items)
        self.drops = DropLog(step_id)
        self._stop = stop
        self._clock = clock
        self._thread = _SamplerThread(step_id, sample, interval, self._queue, self.drops, clock)
        self._awake: datetime | None = None
        self._thread.start()

    @override
    def next_batch(self) -> list[T]:
        if self._stop is not None and self._stop():
            raise StopIteration
        batch = self._queue.drain(1000)
        if batch:
            self._awake = None
            return batch
        wait = max(self._thread.next_due - self._clock() + _SLACK_SECONDS, _MIN_SLEEP_SECONDS)
        self._awake = awake_in(min(wait, MAX_SLEEP_SECONDS))
        return batch

    @override
    def next_awake(self) -> datetime | None:
        return self._awake

    @override
    def close(self) -> None:
        self._queue.close()
        self._thread.close()


class PeriodicSource(DynamicSource[T]):
    """Samples on a timer thread on worker 0, every `interval_seconds`; other workers get nothing.

    Subclasses implement `make_sampler`, called once when the partition is built; the callable
    it returns is then called on the sampler thread at a fixed rate and returns the events of
    one sample (none when it has nothing yet, e.g. before a first delta).

    `next_batch` never blocks and never samples: it drains a bounded queue and, when empty,
    sleeps until the next sample is due, but never longer than `MAX_SLEEP_SECONDS`. Not
    guaranteed: a sample that takes longer than the
    interval delays the next (samples are skipped, not bunched); `close` is skipped on SIGKILL
    (the thread dies with the process). Delivery is at-most-once: samples queued when the flow
    stops are lost, and a full queue drops new samples (counted as `queue_full`).

    Args:
        interval_seconds: the time between two samples.
        stop: when given and it returns True, the source ends (`eyes record --duration`).
        queue_items: the bound of the hand-off queue, in events.
        clock: monotonic seconds, for the schedule.
    """

    def __init__(
        self,
        interval_seconds: float,
        *,
        stop: Callable[[], bool] | None = None,
        queue_items: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_seconds = interval_seconds
        self.stop = stop
        self.queue_items = queue_items
        self.clock = clock

    @abstractmethod
    def make_sampler(self, step_id: str) -> Callable[[], Sequence[T]]:
        """Return the callable that takes one sample (called once, on worker 0)."""

    @override
    def build(
        self, step_id: str, worker_index: int, worker_count: int
    ) -> StatelessSourcePartition[T]:
        if worker_index != 0:
            return EofPartition()
        name = step_id.rsplit(".", 1)[-1]
        return _PeriodicPartition(
            name,
            self.make_sampler(name),
            self.interval_seconds,
            self.stop,
            self.queue_items,
            self.clock,
        )
