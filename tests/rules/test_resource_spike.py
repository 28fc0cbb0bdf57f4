from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from flows.config import ResourceSpikeConfig
from operators.events import MetricsEvent
from operators.rules.resource_spike import ResourceSpikeRule
from operators.triggers import Evidence, Trigger
from tests.rules.factory import T0, metrics

_THRESHOLDS = {"cpu_percent": 50.0, "cpu_power_mw": 1000.0}


def _rule(window: float = 30.0, cooldown: float = 300.0) -> ResourceSpikeRule:
    config = ResourceSpikeConfig(window_seconds=window, thresholds=dict(_THRESHOLDS))
    return ResourceSpikeRule(config, cooldown)


def _feed(rule: ResourceSpikeRule, samples: list[MetricsEvent]) -> list[Trigger]:
    return [trigger for sample in samples for trigger in rule.update(sample)]


def _cpu(values: list[float], every: float = 5.0) -> list[MetricsEvent]:
    return [metrics(n * every, id=f"m{n}", cpu_percent=v) for n, v in enumerate(values)]


def test_a_transient_spike_that_returns_to_baseline_fires_once() -> None:
    [trigger] = _feed(_rule(), _cpu([12.0, 14.0, 97.5, 13.0, 12.5]))
    assert (trigger.rule, trigger.key, trigger.severity) == (
        "resource_spike",
        "cpu_percent",
        "warning",
    )
    assert (trigger.ts, trigger.window_start, trigger.window_end) == (T0 + 10, T0, T0 + 10)
    assert trigger.reason == (
        "cpu_percent rose from 12 to 97.5 (+85.5) within 30 s (threshold +50)."
    )
    assert trigger.evidence == (
        Evidence(T0, "baseline cpu_percent = 12", "m0"),
        Evidence(T0 + 10, "peak cpu_percent = 97.5", "m2"),
    )


def test_a_rise_exactly_at_the_threshold_fires() -> None:
    assert len(_feed(_rule(), _cpu([10.0, 60.0]))) == 1


def test_a_baseline_older_than_the_window_is_not_used() -> None:
    assert _feed(_rule(window=30.0), _cpu([10.0, 70.0], every=31.0)) == []


def test_a_slow_ramp_does_not_fire() -> None:
    ramp = [10.0 + 8.0 * n for n in range(12)]  # +8 every 5 s: +48 within 30 s, +88 overall
    assert _feed(_rule(window=30.0), _cpu(ramp)) == []


@given(st.lists(st.floats(min_value=0.0, max_value=100.0), max_size=40))
def test_a_decrease_never_fires(values: list[float]) -> None:
    falling = sorted(values, reverse=True)
    assert _feed(_rule(cooldown=0.0), _cpu(falling)) == []


@given(
    st.floats(min_value=0.0, max_value=50.0),
    st.lists(st.floats(min_value=0.0, max_value=8.0), max_size=60),
)
def test_a_ramp_whose_rise_within_any_window_stays_under_the_threshold_never_fires(
    start: float, steps: list[float]
) -> None:
    values = [start]
    for step in steps:
        values.append(values[-1] + step)  # at most +8 per 5 s: at most +48 within 30 s
    assert _feed(_rule(window=30.0, cooldown=0.0), _cpu(values)) == []


def test_estimated_values_are_ignored() -> None:
    samples = [
        metrics(0, cpu_power_mw=4000.0, quality={"cpu_power_mw": "estimated"}),
        metrics(5, cpu_power_mw=9000.0, quality={"cpu_power_mw": "estimated"}),
        metrics(10, cpu_power_mw=4100.0, quality={"cpu_power_mw": "measured"}),
        metrics(15, cpu_power_mw=4200.0, quality={"cpu_power_mw": "derived"}),
    ]
    assert _feed(_rule(), samples) == []


def test_metrics_without_a_threshold_are_not_watched() -> None:
    samples = [metrics(0, load1=0.5), metrics(5, load1=95.0)]
    assert _feed(_rule(), samples) == []


def test_two_metrics_spiking_together_fire_one_trigger_each() -> None:
    samples = [
        metrics(0, cpu_percent=10.0, cpu_power_mw=3000.0),
        metrics(5, cpu_percent=90.0, cpu_power_mw=6500.0),
    ]
    assert sorted(t.key for t in _feed(_rule(), samples)) == ["cpu_percent", "cpu_power_mw"]


def test_a_metric_fires_once_per_cooldown() -> None:
    values = [10.0, 90.0, 10.0, 90.0, 10.0, 90.0]
    triggers = _feed(_rule(cooldown=12.0), _cpu(values))
    assert [t.ts for t in triggers] == [T0 + 5, T0 + 25]
