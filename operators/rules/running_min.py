"""The running-minimum spike test shared by `resource_spike` and `disk_spike`.

In: the samples of one series (event time, value, event id) in time order. Out: a `Spike` when
a sample exceeds the minimum of the earlier samples within the window by at least the threshold.
The minimum lives in a monotonic deque, so each sample costs O(1) amortised whatever the window.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from operators.rules.limits import Drops
from operators.triggers import Evidence, Trigger

__all__ = ["RunningMin", "Sample", "Spike", "SpikeDetector", "format_amount", "spike_trigger"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of a series: its event time, the value and the id of the event it came from."""

    ts: float
    value: float
    id: str | int | None = None


@dataclass(frozen=True, slots=True)
class Spike:
    """A rise of `peak` over `baseline` (the window's minimum) by at least `threshold`."""

    name: str
    baseline: Sample
    peak: Sample
    threshold: float
    window_seconds: float
    unit: str = ""

    @property
    def rise(self) -> float:
        """How far the peak is above the baseline."""
        return self.peak.value - self.baseline.value

    def describe(self) -> str:
        """Return `cpu_percent rose from 12 to 97.5 (+85.5) within 30 s (threshold +50)`."""
        unit = self.unit
        return (
            f"{self.name} rose from {format_amount(self.baseline.value, unit)} "
            f"to {format_amount(self.peak.value, unit)} "
            f"(+{format_amount(self.rise, unit)}) within {self.window_seconds:g} s "
            f"(threshold +{format_amount(self.threshold, unit)})"
        )

    def evidence(self) -> tuple[Evidence, Evidence]:
        """Return the baseline and the peak samples as evidence."""
        unit = self.unit
        return (
            Evidence(
                self.baseline.ts,
                f"baseline {self.name} = {format_amount(self.baseline.value, unit)}",
                self.baseline.id,
            ),
            Evidence(
                self.peak.ts,
                f"peak {self.name} = {format_amount(self.peak.value, unit)}",
                self.peak.id,
            ),
        )


def format_amount(value: float, unit: str = "") -> str:
    """Return `value` for a sentence: `97.5`, `1200`, or with `unit="B/s"` `512.0 MiB/s`."""
    if unit == "B/s":
        for scale, name in ((1 << 30, "GiB/s"), (1 << 20, "MiB/s"), (1 << 10, "KiB/s")):
            if abs(value) >= scale:
                return f"{value / scale:.1f} {name}"
        return f"{value:g} B/s"
    return f"{value:.6g}" + (f" {unit}" if unit else "")


# Samples are kept as (ts, value, id) tuples: building a `Sample` per event would cost more
# than the test itself; one is made only when a spike fires.
_Point = tuple[float, float, "str | int | None"]


class RunningMin:
    """The minimum of the samples of the last `window_seconds`, by a monotonic deque.

    In: `push(ts, value, id)` in time order; `minimum(now)` before pushing the sample at `now`.
    Out: the smallest sample with `ts >= now - window_seconds` as `(ts, value, id)`, or None.
    The deque holds only the samples that can still become the minimum (values increase from
    front to back), so each sample is appended and removed once: O(1) amortised, whatever the
    window. It is capped at `max_len`, the oldest (the current minimum) evicted and counted
    under `running_min`. A sample older than the newest one is accepted; the minimum may then
    linger until it leaves the front.

    Args:
        window_seconds: how far back the minimum looks.
        max_len: the bound on kept samples.
        drops: where evictions are counted.
    """

    __slots__ = ("_samples", "drops", "max_len", "window_seconds")

    def __init__(self, window_seconds: float, max_len: int, drops: Drops) -> None:
        self.window_seconds = window_seconds
        self.max_len = max_len
        self.drops = drops
        self._samples: deque[_Point] = deque()

    def minimum(self, now: float) -> _Point | None:
        """Return the minimum of the samples within `window_seconds` before `now`."""
        samples = self._samples
        horizon = now - self.window_seconds
        while samples and samples[0][0] < horizon:
            samples.popleft()
        return samples[0] if samples else None

    def push(self, ts: float, value: float, event_id: str | int | None) -> None:
        """Add a sample; the samples it makes irrelevant to the minimum are dropped."""
        samples = self._samples
        while samples and samples[-1][1] >= value:
            samples.pop()
        samples.append((ts, value, event_id))
        if len(samples) > self.max_len:
            samples.popleft()
            self.drops.add("running_min")

    def __len__(self) -> int:
        return len(self._samples)

    def snapshot(self) -> list[_Point]:
        """Return the kept samples, oldest first."""
        return list(self._samples)

    def restore(self, state: list[_Point]) -> None:
        """Load what `snapshot` returned."""
        self._samples = deque(state)


class SpikeDetector(RunningMin):
    """The spike test on one series: a sample at least `threshold` above the window's minimum.

    In: `update(ts, value, id)` per sample, in time order. Out: a `Spike` or None. The sample
    is compared with the earlier samples only (the `RunningMin`), then joins them; a decrease
    never fires, and a slow ramp fires only when its rise within one window reaches the
    threshold.

    Args:
        name: the series, e.g. `cpu_percent` or `write_bytes_per_s`.
        window_seconds: how far back the baseline looks.
        threshold: the smallest rise that fires.
        max_len: the bound on kept samples.
        drops: where evictions are counted.
        unit: how amounts are written in the reason (`""` or `"B/s"`).
    """

    __slots__ = ("name", "threshold", "unit")

    def __init__(
        self,
        name: str,
        window_seconds: float,
        threshold: float,
        max_len: int,
        drops: Drops,
        unit: str = "",
    ) -> None:
        super().__init__(window_seconds, max_len, drops)
        self.name = name
        self.threshold = threshold
        self.unit = unit

    def update(self, ts: float, value: float, event_id: str | int | None) -> Spike | None:
        """Return the spike `value` makes at `ts`, or None; then remember the sample."""
        # `minimum` then `push`, inlined: this runs for every watched value of every sample.
        samples = self._samples
        horizon = ts - self.window_seconds
        while samples and samples[0][0] < horizon:
            samples.popleft()
        baseline = samples[0] if samples else None
        while samples and samples[-1][1] >= value:
            samples.pop()
        samples.append((ts, value, event_id))
        if len(samples) > self.max_len:
            samples.popleft()
            self.drops.add("running_min")
        if baseline is None or value - baseline[1] < self.threshold:
            return None
        return Spike(
            self.name,
            Sample(*baseline),
            Sample(ts, value, event_id),
            self.threshold,
            self.window_seconds,
            self.unit,
        )


def spike_trigger(
    rule: str, host: str, key: str, severity: str, spikes: Sequence[Spike]
) -> Trigger:
    """Return the trigger of one or more spikes seen in the same sample.

    The window spans the earliest baseline to the peak; the reason names baseline, peak,
    rise and threshold of each spike; the evidence is each baseline and peak sample.
    """
    peak = spikes[0].peak
    reason = "; ".join(spike.describe() for spike in spikes)
    return Trigger(
        rule=rule,
        host=host,
        key=key,
        severity=severity,  # type: ignore[arg-type]
        ts=peak.ts,
        window_start=min(spike.baseline.ts for spike in spikes),
        window_end=peak.ts,
        reason=f"{reason}.",
        evidence=tuple(item for spike in spikes for item in spike.evidence()),
    )
