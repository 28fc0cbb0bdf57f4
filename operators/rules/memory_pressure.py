"""The `memory_pressure` rule: the measured memory pressure at or above a level.

In: `MetricsEvent`s. Out: a `Trigger` keyed `mem_pressure` when a sample's `mem_pressure` is at
or above `threshold` (warning or critical); its severity is the level seen, so an escalation
from warning to critical passes the cooldown. A sample without `mem_pressure` (unknown) never
fires and does not end an episode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flows.config import MemoryPressureConfig
from operators.events import MetricsEvent
from operators.rules.cooldown import Cooldown
from operators.rules.limits import Drops
from operators.rules.running_min import format_amount
from operators.triggers import Evidence, Trigger

__all__ = ["MemoryPressureRule"]

_KEY = "mem_pressure"
_RANK = {"normal": 0, "warning": 1, "critical": 2}
_DETAILS = (
    ("mem_used_percent", "memory {} % used"),
    ("swap_used_percent", "swap {} % used"),
    ("psi_mem_some_avg10", "PSI some {} %"),
    ("psi_mem_full_avg10", "PSI full {} %"),
)
_NOTHING: tuple[Trigger, ...] = ()


class MemoryPressureRule:
    """Fires when memory pressure reaches `threshold`, with the severity of the level seen.

    In: `update(event)` with each `MetricsEvent`. Out: a one-item sequence with the trigger,
    or an empty one. State: the start and length of the current episode (consecutive samples
    at or above the threshold; the trigger's window starts there) and the cooldown.

    Args:
        config: `[rules.memory_pressure]`.
        cooldown_seconds: `[rules] cooldown_seconds`.
    """

    name = "memory_pressure"
    kinds = frozenset({"metrics"})
    levels: frozenset[str] | None = None

    def __init__(self, config: MemoryPressureConfig, cooldown_seconds: float) -> None:
        self.threshold = config.threshold
        self._threshold_rank = _RANK[config.threshold]
        self.drops = Drops(f"rule {self.name}")
        self._cooldown = Cooldown(cooldown_seconds, 16, self.drops)
        self._episode_start: float | None = None
        self._episode_samples = 0

    def update(self, event: MetricsEvent) -> Sequence[Trigger]:
        """Return the trigger `event` fires, if any."""
        pressure = event.mem_pressure
        if pressure is None:
            return _NOTHING
        ts = event.ts
        if _RANK[pressure] < self._threshold_rank:
            self._episode_start = None
            self._episode_samples = 0
            return _NOTHING
        if self._episode_start is None or ts < self._episode_start:
            self._episode_start = ts
        self._episode_samples += 1
        if not self._cooldown.admit(_KEY, ts, pressure):
            return _NOTHING
        details = [
            template.format(format_amount(event.values[name]))
            for name, template in _DETAILS
            if name in event.values
        ]
        samples = self._episode_samples
        reason = f"Memory pressure is {pressure} (threshold {self.threshold})"
        if samples > 1:
            span = ts - self._episode_start
            reason += f", at or above the threshold for {samples} samples over {span:g} s"
        reason += f": {', '.join(details)}." if details else "."
        text = f"mem_pressure={pressure}" + "".join(
            f", {name}={format_amount(event.values[name])}"
            for name, _ in _DETAILS
            if name in event.values
        )
        return (
            Trigger(
                rule=self.name,
                host=event.host,
                key=_KEY,
                severity=pressure,  # type: ignore[arg-type]
                ts=ts,
                window_start=self._episode_start,
                window_end=ts,
                reason=reason,
                evidence=(Evidence(ts, text, event.id),),
            ),
        )

    def snapshot(self) -> object:
        """Return the rule's state as plain data."""
        return (self._episode_start, self._episode_samples, self._cooldown.snapshot())

    def restore(self, state: Any) -> None:
        """Load what `snapshot` returned."""
        self._episode_start, self._episode_samples, cooldown = state
        self._cooldown.restore(cooldown)
