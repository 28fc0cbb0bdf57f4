from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from operators.rules.limits import Drops
from operators.rules.running_min import RunningMin, SpikeDetector, format_amount

_samples = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=5.0, allow_nan=False),
        st.floats(min_value=0.0, max_value=100.0, allow_nan=False),
    ),
    max_size=60,
)


@given(_samples, st.floats(min_value=0.5, max_value=30.0))
def test_the_running_minimum_is_the_minimum_of_the_window(
    steps: list[tuple[float, float]], window: float
) -> None:
    running = RunningMin(window, 10_000, Drops("test"))
    seen: list[tuple[float, float]] = []
    now = 0.0
    for step, value in steps:
        now += step
        expected = min((v for t, v in seen if t >= now - window), default=None)
        got = running.minimum(now)
        assert (got[1] if got is not None else None) == expected
        running.push(now, value, None)
        seen.append((now, value))


@given(_samples, st.floats(min_value=0.5, max_value=30.0), st.floats(min_value=1.0, max_value=50.0))
def test_a_spike_fires_exactly_when_a_value_rises_past_the_window_minimum(
    steps: list[tuple[float, float]], window: float, threshold: float
) -> None:
    detector = SpikeDetector("cpu_percent", window, threshold, 10_000, Drops("test"))
    seen: list[tuple[float, float]] = []
    now = 0.0
    for step, value in steps:
        now += step
        baseline = min((v for t, v in seen if t >= now - window), default=None)
        spike = detector.update(now, value, None)
        assert (spike is not None) == (baseline is not None and value - baseline >= threshold)
        seen.append((now, value))


def test_the_deque_keeps_only_samples_that_can_become_the_minimum() -> None:
    running = RunningMin(60.0, 10_000, Drops("test"))
    for n, value in enumerate([5.0, 4.0, 3.0, 2.0, 1.0]):
        running.push(float(n), value, None)
    assert len(running) == 1


def test_a_full_deque_evicts_its_oldest_sample_and_counts_it() -> None:
    running = RunningMin(60.0, 3, Drops("test"))
    for n in range(5):
        running.push(float(n), float(n), n)
    assert running.minimum(5.0) == (2.0, 2.0, 2)
    assert running.drops.counts == {"running_min": 2}


def test_a_spike_says_baseline_peak_rise_and_threshold() -> None:
    detector = SpikeDetector("cpu_percent", 30.0, 50.0, 100, Drops("test"))
    detector.update(0.0, 12.0, "m1")
    spike = detector.update(5.0, 97.5, "m2")
    assert spike is not None
    assert spike.describe() == (
        "cpu_percent rose from 12 to 97.5 (+85.5) within 30 s (threshold +50)"
    )
    assert [(e.ts, e.id, e.text) for e in spike.evidence()] == [
        (0.0, "m1", "baseline cpu_percent = 12"),
        (5.0, "m2", "peak cpu_percent = 97.5"),
    ]


def test_throughput_is_written_in_binary_units() -> None:
    assert format_amount(734003200, "B/s") == "700.0 MiB/s"
    assert format_amount(2 << 30, "B/s") == "2.0 GiB/s"
    assert format_amount(512, "B/s") == "512 B/s"
