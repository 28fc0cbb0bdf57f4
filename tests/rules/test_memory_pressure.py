from __future__ import annotations

from flows.config import MemoryPressureConfig
from operators.rules.memory_pressure import MemoryPressureRule
from operators.triggers import Evidence
from tests.rules.factory import T0, metrics


def _rule(threshold: str = "warning", cooldown: float = 300.0) -> MemoryPressureRule:
    return MemoryPressureRule(MemoryPressureConfig(threshold=threshold), cooldown)


def test_warning_pressure_fires_a_warning() -> None:
    sample = metrics(5, pressure="warning", id="m1", mem_used_percent=91.5, swap_used_percent=40)
    [trigger] = _rule().update(sample)
    assert (trigger.rule, trigger.key, trigger.severity) == (
        "memory_pressure",
        "mem_pressure",
        "warning",
    )
    assert (trigger.ts, trigger.window_start, trigger.window_end) == (T0 + 5, T0 + 5, T0 + 5)
    assert trigger.reason == (
        "Memory pressure is warning (threshold warning): memory 91.5 % used, swap 40 % used."
    )
    assert trigger.evidence == (
        Evidence(T0 + 5, "mem_pressure=warning, mem_used_percent=91.5, swap_used_percent=40", "m1"),
    )


def test_critical_pressure_fires_a_critical_alert() -> None:
    [trigger] = _rule().update(metrics(5, pressure="critical", psi_mem_full_avg10=18.2))
    assert trigger.severity == "critical"
    assert "PSI full 18.2 %" in trigger.reason


def test_normal_and_unknown_pressure_never_fire() -> None:
    rule = _rule()
    assert rule.update(metrics(0, pressure="normal")) == ()
    assert rule.update(metrics(5, mem_used_percent=99.0)) == ()


def test_a_critical_threshold_ignores_warnings() -> None:
    rule = _rule(threshold="critical")
    assert rule.update(metrics(0, pressure="warning")) == ()
    assert len(rule.update(metrics(5, pressure="critical"))) == 1


def test_an_escalation_from_warning_to_critical_is_always_reported() -> None:
    rule = _rule()
    fired = [
        rule.update(metrics(n * 5, pressure=p))
        for n, p in enumerate(["warning", "warning", "critical", "critical", "warning"])
    ]
    assert [[t.severity for t in f] for f in fired] == [["warning"], [], ["critical"], [], []]


def test_pressure_fires_again_after_the_cooldown() -> None:
    rule = _rule(cooldown=60.0)
    assert len(rule.update(metrics(0, pressure="warning"))) == 1
    assert rule.update(metrics(30, pressure="warning")) == ()
    [again] = rule.update(metrics(60, pressure="warning"))
    assert again.window_start == T0 + 0
    assert again.reason == (
        "Memory pressure is warning (threshold warning), "
        "at or above the threshold for 3 samples over 60 s."
    )


def test_a_normal_sample_ends_the_episode() -> None:
    rule = _rule(cooldown=0.0)
    rule.update(metrics(0, pressure="warning"))
    rule.update(metrics(5, pressure="normal"))
    [trigger] = rule.update(metrics(10, pressure="warning"))
    assert trigger.window_start == T0 + 10
