"""The `resource_spike` rule: a machine metric rising fast above its recent minimum.

In: `MetricsEvent`s. Out: a `Trigger` keyed by the metric name when a sample of a metric named
in `thresholds` exceeds the minimum of the earlier samples within `window_seconds` by at least
that metric's threshold. Values marked `estimated` in `quality` are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flows.config import ResourceSpikeConfig
from operators.events import MetricsEvent
from operators.rules.cooldown import Cooldown
from operators.rules.limits import Drops
from operators.rules.running_min import SpikeDetector, spike_trigger
from operators.triggers import Trigger

__all__ = ["ResourceSpikeRule"]

_MAX_SAMPLES = 10_000
_NOTHING: tuple[Trigger, ...] = ()


class ResourceSpikeRule:
    """Fires when a watched metric jumps above its running minimum.

    In: `update(event)` with each `MetricsEvent`. Out: one trigger per metric that spiked
    (and is out of its cooldown), or an empty sequence. State: a running minimum per metric
    (a monotonic deque: O(1) amortised per sample whatever the window, at most 10,000
    samples) and the cooldown per metric.

    Args:
        config: `[rules.resource_spike]`.
        cooldown_seconds: `[rules] cooldown_seconds`.
    """

    name = "resource_spike"
    kinds = frozenset({"metrics"})
    levels: frozenset[str] | None = None

    def __init__(self, config: ResourceSpikeConfig, cooldown_seconds: float) -> None:
        self.severity = config.severity
        self.drops = Drops(f"rule {self.name}")
        self._detectors = {
            metric: SpikeDetector(
                metric, config.window_seconds, threshold, _MAX_SAMPLES, self.drops
            )
            for metric, threshold in sorted(config.thresholds.items())
        }
        self._watched = tuple(self._detectors.items())
        self._cooldown = Cooldown(cooldown_seconds, len(self._detectors) + 1, self.drops)

    def update(self, event: MetricsEvent) -> Sequence[Trigger]:
        """Add the watched values of `event`; return the triggers they fire."""
        values = event.values
        quality = event.quality
        ts = event.ts
        fired: list[Trigger] | None = None
        for metric, detector in self._watched:
            value = values.get(metric)
            if value is None or (quality and quality.get(metric) == "estimated"):
                continue
            spike = detector.update(ts, value, event.id)
            if spike is not None and self._cooldown.admit(metric, ts, self.severity):
                trigger = spike_trigger(self.name, event.host, metric, self.severity, [spike])
                fired = [trigger] if fired is None else [*fired, trigger]
        return _NOTHING if fired is None else fired

    def snapshot(self) -> object:
        """Return the rule's state as plain data."""
        samples = {metric: d.snapshot() for metric, d in self._detectors.items()}
        return {"samples": samples, "cooldown": self._cooldown.snapshot()}

    def restore(self, state: Any) -> None:
        """Load what `snapshot` returned; metrics no longer watched are left out."""
        for metric, samples in state["samples"].items():
            detector = self._detectors.get(metric)
            if detector is not None:
                detector.restore(samples)
        self._cooldown.restore(state["cooldown"])
