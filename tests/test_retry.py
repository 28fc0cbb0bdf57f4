from __future__ import annotations

import pytest

from backends.errors import InvalidInsight, PermanentBackendError, TransientBackendError
from operators.retry import RetryPolicy, RetryQueue

BUSY = TransientBackendError("ollama: HTTP 503")


def _policy(**kw: float) -> RetryPolicy:
    args = {"max_attempts": 5, "base": 1.0, "cap": 60.0, "jitter": 0.2, "random": lambda: 0.0}
    return RetryPolicy(**{**args, **kw})  # type: ignore[arg-type]


def test_delays_double_from_the_base() -> None:
    policy = _policy()
    assert [policy.next_attempt(n, BUSY, 100.0) for n in (1, 2, 3, 4)] == [
        101.0,
        102.0,
        104.0,
        108.0,
    ]


def test_delays_are_capped() -> None:
    assert _policy(base=10.0, cap=25.0).delay(3) == 25.0


def test_a_very_late_attempt_waits_the_cap_instead_of_overflowing() -> None:
    policy = _policy(max_attempts=10_000, base=1.0, cap=60.0)
    assert policy.delay(5000) == 60.0
    assert policy.next_attempt(5000, BUSY, 100.0) == 160.0
    assert policy.delay(5000, retry_after=7.0) == 60.0


def test_jitter_takes_off_at_most_its_fraction() -> None:
    assert _policy(random=lambda: 0.999999).delay(1) == pytest.approx(0.8, abs=1e-5)
    assert _policy(random=lambda: 0.5).delay(2) == pytest.approx(1.8)


def test_retry_after_is_honoured_up_to_the_cap() -> None:
    policy = _policy(cap=30.0)
    assert policy.next_attempt(1, TransientBackendError("429", retry_after=7.0), 0.0) == 7.0
    assert policy.next_attempt(1, TransientBackendError("429", retry_after=900.0), 0.0) == 30.0
    assert policy.next_attempt(3, TransientBackendError("429", retry_after=0.5), 0.0) == 4.0


def test_the_last_attempt_gives_up() -> None:
    policy = _policy(max_attempts=3)
    assert policy.next_attempt(2, BUSY, 0.0) is not None
    assert policy.next_attempt(3, BUSY, 0.0) is None
    assert _policy(max_attempts=1).next_attempt(1, BUSY, 0.0) is None


@pytest.mark.parametrize(
    "error",
    [PermanentBackendError("404"), InvalidInsight("no JSON"), ValueError("a bug")],
)
def test_anything_but_a_transient_error_is_given_up_at_once(error: Exception) -> None:
    assert _policy().next_attempt(1, error, 0.0) is None


def test_the_queue_pops_what_is_due_earliest_first_within_the_limit() -> None:
    queue: RetryQueue[str] = RetryQueue(10)
    for name, due, seq in [("c", 3.0, 0), ("a", 1.0, 1), ("b", 2.0, 2), ("late", 9.0, 3)]:
        assert queue.offer(name, due=due, seq=seq, rank=1)
    assert queue.next_due() == 1.0
    assert queue.pop_due(5.0, limit=2) == ["a", "b"]
    assert queue.pop_due(5.0, limit=5) == ["c"]
    assert queue.pop_due(5.0, limit=5) == []
    assert len(queue) == 1
    assert queue.next_due() == 9.0


def test_offer_refuses_when_full() -> None:
    queue: RetryQueue[str] = RetryQueue(2)
    assert queue.offer("a", due=1, seq=0, rank=1)
    assert queue.offer("b", due=1, seq=1, rank=1)
    assert not queue.offer("c", due=1, seq=2, rank=2)
    assert [item for _, item in queue.items()] == ["a", "b"]


def test_displace_gives_up_the_oldest_of_the_lowest_severity() -> None:
    queue: RetryQueue[str] = RetryQueue(3)
    queue.offer("warning-old", due=5, seq=0, rank=1)
    queue.offer("info-new", due=5, seq=2, rank=0)
    queue.offer("info-old", due=5, seq=1, rank=0)
    assert queue.displace("critical", due=1, seq=3, rank=2) == "info-old"
    assert queue.displace("warning", due=1, seq=4, rank=1) == "info-new"
    assert [item for _, item in queue.items()] == ["warning-old", "critical", "warning"]
    assert queue.pop_due(1.0, limit=5) == ["critical", "warning"]


def test_displace_gives_up_the_new_item_when_it_is_the_least_severe() -> None:
    queue: RetryQueue[str] = RetryQueue(1)
    queue.offer("critical", due=5, seq=0, rank=2)
    assert queue.displace("info", due=1, seq=1, rank=0) == "info"
    assert [item for _, item in queue.items()] == ["critical"]


def test_clear_returns_everything_in_input_order() -> None:
    queue: RetryQueue[str] = RetryQueue(5)
    for seq, due in [(4, 1.0), (2, 9.0), (7, 0.5)]:
        queue.offer(f"s{seq}", due=due, seq=seq, rank=1)
    assert queue.clear() == ["s2", "s4", "s7"]
    assert len(queue) == 0
    assert queue.next_due() is None


def test_many_displacements_keep_the_heap_small() -> None:
    queue: RetryQueue[int] = RetryQueue(4)
    for seq in range(1000):
        if not queue.offer(seq, due=float(seq), seq=seq, rank=seq % 3):
            queue.displace(seq, due=float(seq), seq=seq, rank=seq % 3)
    assert len(queue) == 4
    assert len(queue._heap) < 30


def test_a_queue_needs_room_for_one() -> None:
    with pytest.raises(ValueError, match="RetryQueue size must be at least 1, got 0"):
        RetryQueue(0)
