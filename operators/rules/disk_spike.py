"""The `disk_spike` rule: a device's throughput rising fast above its recent minimum.

In: `DiskEvent`s. Out: a `Trigger` keyed by the device when its `read_bytes_per_s` or
`write_bytes_per_s` exceeds the minimum of that device's earlier samples within
`window_seconds` by at least the field's threshold. Devices are never compared with each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flows.config import DiskSpikeConfig
from operators.events import DiskEvent
from operators.rules.cooldown import Cooldown
from operators.rules.limits import Drops
from operators.rules.running_min import Spike, SpikeDetector, spike_trigger
from operators.triggers import Trigger

__all__ = ["DiskSpikeRule"]

_FIELDS = ("read_bytes_per_s", "write_bytes_per_s")
_MAX_DEVICES = 256
_MAX_SAMPLES = 10_000
_NOTHING: tuple[Trigger, ...] = ()


class _Device:
    """The two series of one device and the time of its last sample."""

    __slots__ = ("detectors", "last_ts")

    def __init__(self, detectors: tuple[SpikeDetector, SpikeDetector]) -> None:
        self.detectors = detectors
        self.last_ts = float("-inf")


class DiskSpikeRule:
    """Fires when a device's read or write throughput jumps above its running minimum.

    In: `update(event)` with each `DiskEvent`. Out: a one-item sequence with the trigger
    (both fields when both spiked in the sample), or an empty one. State: per device a
    running minimum per field (O(1) amortised per sample whatever the window, at most
    10,000 samples each) and the cooldown per device. When a new device appears, devices
    silent for a window are forgotten; at most 256 are kept (the least recently seen
    evicted and counted).

    Args:
        config: `[rules.disk_spike]`.
        cooldown_seconds: `[rules] cooldown_seconds`.
    """

    name = "disk_spike"
    kinds = frozenset({"disk"})
    levels: frozenset[str] | None = None

    def __init__(self, config: DiskSpikeConfig, cooldown_seconds: float) -> None:
        self.window = config.window_seconds
        self.severity = config.severity
        self.thresholds = (config.read_bytes_per_s, config.write_bytes_per_s)
        self.drops = Drops(f"rule {self.name}")
        self._devices: dict[str, _Device] = {}
        self._cooldown = Cooldown(cooldown_seconds, _MAX_DEVICES, self.drops)

    def update(self, event: DiskEvent) -> Sequence[Trigger]:
        """Add the sample of `event`; return the trigger it fires, if any."""
        ts = event.ts
        device = self._devices.get(event.device)
        if device is None:
            device = self._new_device(event.device, ts)
        if ts > device.last_ts:
            device.last_ts = ts
        values = event.values
        read, write = device.detectors
        spikes: list[Spike] = []
        value = values.get("read_bytes_per_s")
        if value is not None and (spike := read.update(ts, value, event.id)) is not None:
            spikes.append(spike)
        value = values.get("write_bytes_per_s")
        if value is not None and (spike := write.update(ts, value, event.id)) is not None:
            spikes.append(spike)
        if not spikes or not self._cooldown.admit(event.device, ts, self.severity):
            return _NOTHING
        return (spike_trigger(self.name, event.host, event.device, self.severity, spikes),)

    def _new_device(self, name: str, now: float) -> _Device:
        """Add a device, first forgetting the ones silent for a window, then the least recent."""
        devices = self._devices
        horizon = now - self.window
        for idle in [key for key, state in devices.items() if state.last_ts < horizon]:
            del devices[idle]
        if len(devices) >= _MAX_DEVICES:
            del devices[min(devices, key=lambda key: devices[key].last_ts)]
            self.drops.add("devices")
        device = devices[name] = _Device(self._detectors())
        return device

    def _detectors(self) -> tuple[SpikeDetector, SpikeDetector]:
        read, write = (
            SpikeDetector(field, self.window, threshold, _MAX_SAMPLES, self.drops, unit="B/s")
            for field, threshold in zip(_FIELDS, self.thresholds, strict=True)
        )
        return read, write

    def snapshot(self) -> object:
        """Return the rule's state as plain data."""
        devices = [
            (name, device.last_ts, [d.snapshot() for d in device.detectors])
            for name, device in self._devices.items()
        ]
        return {"devices": devices, "cooldown": self._cooldown.snapshot()}

    def restore(self, state: Any) -> None:
        """Load what `snapshot` returned."""
        self._devices.clear()
        for name, last_ts, samples in state["devices"]:
            device = _Device(self._detectors())
            device.last_ts = last_ts
            for detector, kept in zip(device.detectors, samples, strict=True):
                detector.restore(kept)
            self._devices[name] = device
        self._cooldown.restore(state["cooldown"])
