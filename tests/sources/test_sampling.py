"""Sources that sample on a timer thread: the schedule, failures, the bound, the awake times."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import pytest
from typing_extensions import override

from operators.sources.base import EofPartition
from operators.sources.sampling import MAX_SLEEP_SECONDS, PeriodicSource
from tests.sources.conftest import collect, wait_for


class _Counting(PeriodicSource[int]):
    def __init__(self, sample: Callable[[], Sequence[int]], **kwargs: object) -> None:
        super().__init__(0.01, **kwargs)  # type: ignore[arg-type]
        self._sample = sample

    @override
    def make_sampler(self, step_id: str) -> Callable[[], Sequence[int]]:
        return self._sample


def test_samples_arrive_in_order_on_the_schedule() -> None:
    counter = iter(range(1000))
    part = _Counting(lambda: [next(counter)]).build("eyes.test", 0, 1)
    try:
        items, eof = collect(part, lambda got: len(got) >= 5)
    finally:
        part.close()
    assert not eof and items[:5] == [0, 1, 2, 3, 4]


def test_a_failed_sample_is_counted_and_the_next_one_taken(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = iter(range(1000))

    def sample() -> list[int]:
        n = next(calls)
        if n == 0:
            raise OSError("counters unreadable")
        return [n]

    part = _Counting(sample).build("eyes.test", 0, 1)
    try:
        with caplog.at_level(logging.WARNING):
            items, _ = collect(part, lambda got: len(got) >= 2)
        assert part.drops.dropped["sample_failed"] == 1
    finally:
        part.close()
    assert items[:2] == [1, 2]
    assert "test: dropped a line (sample_failed): OSError('counters unreadable')" in caplog.text


def test_a_full_queue_drops_new_samples_and_counts_them() -> None:
    part = _Counting(lambda: [1, 2, 3], queue_items=2).build("eyes.test", 0, 1)
    try:
        wait_for(lambda: part.drops.dropped["queue_full"] > 0, what="a queue_full drop")
        assert len(part.next_batch()) == 2
    finally:
        part.close()


def test_an_idle_partition_sleeps_briefly_and_stop_ends_it() -> None:
    stopped = [False]
    source = _Counting(lambda: [], stop=lambda: stopped[0])
    source.interval_seconds = 60.0
    part = source.build("eyes.test", 0, 1)
    try:
        assert part.next_batch() == []
        awake = part.next_awake()
        assert awake is not None
        left = (awake - datetime.now(timezone.utc)).total_seconds()
        assert 0 < left <= MAX_SLEEP_SECONDS
        stopped[0] = True
        with pytest.raises(StopIteration):
            part.next_batch()
    finally:
        part.close()


def test_only_worker_0_samples() -> None:
    assert isinstance(_Counting(lambda: [1]).build("eyes.test", 1, 2), EofPartition)
