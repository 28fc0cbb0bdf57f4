"""The set of enabled rules, built from `[rules]`, and the interface they share.

In: `RulesConfig`. Out: one rule object per enabled rule, in a fixed order (crash,
error_frequency, memory_pressure, resource_spike, disk_spike); a rule with `enabled = false`
is not built at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from flows.config import RulesConfig
from operators.rules.crash import CrashRule
from operators.rules.disk_spike import DiskSpikeRule
from operators.rules.error_frequency import ErrorFrequencyRule
from operators.rules.limits import Drops
from operators.rules.memory_pressure import MemoryPressureRule
from operators.rules.resource_spike import ResourceSpikeRule
from operators.triggers import Trigger

__all__ = ["Rule", "build_rules"]


class Rule(Protocol):
    """What every rule offers: its name, the events it reads, and its state.

    In: `update(event)` with each event of one of `kinds` (for logs, only at one of `levels`
    unless that is None), in event-time order, from one host. Out: the triggers it fires
    (usually none). `snapshot()` returns plain, picklable data that `restore()` loads into a
    freshly built rule. A rule may also define `start(ts)`: it is then called once, before
    the first event, with the event time from which the host is watched.
    """

    name: str
    kinds: frozenset[str]
    levels: frozenset[str] | None
    drops: Drops

    def update(self, event: Any) -> Sequence[Trigger]: ...

    def snapshot(self) -> object: ...

    def restore(self, state: Any) -> None: ...


def build_rules(config: RulesConfig) -> list[Rule]:
    """Return the enabled rules of `config`, each with the shared cooldown."""
    cooldown = config.cooldown_seconds
    rules: list[Rule] = []
    if config.crash.enabled:
        rules.append(CrashRule(config.crash, cooldown))
    if config.error_frequency.enabled:
        rules.append(ErrorFrequencyRule(config.error_frequency, cooldown))
    if config.memory_pressure.enabled:
        rules.append(MemoryPressureRule(config.memory_pressure, cooldown))
    if config.resource_spike.enabled:
        rules.append(ResourceSpikeRule(config.resource_spike, cooldown))
    if config.disk_spike.enabled:
        rules.append(DiskSpikeRule(config.disk_spike, cooldown))
    return rules
