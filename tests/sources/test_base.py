"""The bounded hand-off queue, the drop log and the empty partition."""

from __future__ import annotations

import logging
import threading

import pytest

from operators.sources.base import BoundedQueue, DropLog, EofPartition, awake_in


def test_offer_refuses_when_the_item_bound_is_reached() -> None:
    queue: BoundedQueue[int] = BoundedQueue(max_items=2)
    assert queue.offer(1) and queue.offer(2)
    assert not queue.offer(3)
    assert queue.drain(10) == [1, 2]
    assert queue.offer(3)


def test_offer_refuses_when_the_byte_bound_is_reached_but_admits_one_big_item() -> None:
    queue: BoundedQueue[str] = BoundedQueue(max_items=100, max_bytes=10)
    assert queue.offer("a", 6)
    assert not queue.offer("b", 6)
    queue.drain(1)
    assert queue.offer("huge", 50)  # alone in the queue: admitted, or it could never pass
    assert not queue.offer("c", 1)


def test_drain_returns_at_most_the_asked_count_oldest_first() -> None:
    queue: BoundedQueue[int] = BoundedQueue(max_items=10)
    for item in range(5):
        queue.offer(item)
    assert queue.drain(2) == [0, 1]
    assert queue.drain(10) == [2, 3, 4]
    assert queue.drain(10) == []


def test_put_waits_for_room_and_close_releases_it() -> None:
    queue: BoundedQueue[int] = BoundedQueue(max_items=1)
    queue.put(1)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(queue.put(2)))
    waiter.start()
    assert queue.drain(1) == [1]
    waiter.join(10)
    assert results == [True] and queue.drain(1) == [2]
    queue.put(3)
    blocked = threading.Thread(target=lambda: results.append(queue.put(4)))
    blocked.start()
    queue.close()
    blocked.join(10)
    assert results == [True, False]
    assert queue.drain(5) == [3]  # what was queued stays drainable
    assert not queue.offer(5)


def test_put_gives_up_after_its_timeout() -> None:
    queue: BoundedQueue[int] = BoundedQueue(max_items=1)
    queue.put(1)
    assert queue.put(2, timeout=0.01) is False


def test_queue_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="queue limits must be 1 or more, got max_items=0"):
        BoundedQueue(0)


def test_drop_log_logs_the_first_of_each_reason_then_periodic_summaries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    drops = DropLog("logs", summary_seconds=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING):
        drops.count("unparseable", "line 1")
        drops.count("unparseable", "line 2")
        drops.count("too_long", "line 3")
        now[0] = 61.0
        drops.count("unparseable", "line 4")
        drops.count("unparseable", "line 5")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "logs: dropped a line (unparseable): line 1",
        "logs: dropped a line (too_long): line 3",
        "logs: dropped so far: too_long=1, unparseable=3",
    ]
    assert drops.dropped == {"unparseable": 4, "too_long": 1}
    assert drops.total == 5


def test_the_empty_partition_ends_at_once() -> None:
    with pytest.raises(StopIteration):
        EofPartition().next_batch()


def test_awake_in_is_an_aware_time_in_the_future() -> None:
    assert awake_in(1.0).tzinfo is not None
