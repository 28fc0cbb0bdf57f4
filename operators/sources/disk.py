"""Per-disk throughput: deltas of the kernel's I/O counters over each interval.

In: `psutil.disk_io_counters(perdisk=True)`. Out: one `DiskEvent` per whole disk and interval
(TRACE_FORMAT.md section 1): `read_bytes_per_s`, `write_bytes_per_s`, `read_ops_per_s`,
`write_ops_per_s` and, where the kernel counts busy time (Linux), `util_percent`.

Whole disks only: on Linux the devices listed in `/sys/block`, without loop, ram, zram and
device-mapper (`dm-*`) devices, which would count the same I/O twice or none at all; on macOS
`diskN`. A `devices` list names exactly the devices wanted, any of these included.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import psutil
from typing_extensions import override

from operators.events import DiskEvent
from operators.sources.sampling import PeriodicSource

__all__ = ["DiskSampler", "DiskSource", "whole_disks"]

log = logging.getLogger(__name__)

_VIRTUAL = ("loop", "ram", "zram", "dm-")
_PARTITION = re.compile(
    r"^(?:(?:sd|hd|vd|xvd)[a-z]+\d+|(?:nvme\d+n\d+|mmcblk\d+)p\d+|disk\d+s\d+)$"
)
_DARWIN_DISK = re.compile(r"^disk\d+$")


def whole_disks(
    names: Sequence[str], platform: str = sys.platform, sys_root: Path = Path("/sys")
) -> list[str]:
    """Return the names among `names` that are whole, physical disks, sorted.

    Args:
        names: device names as psutil reports them.
        platform: `sys.platform`.
        sys_root: where `/sys` is; its `block` folder lists the whole devices on Linux.
    """
    if platform == "darwin":
        return sorted(n for n in names if _DARWIN_DISK.match(n))
    block = sys_root / "block"
    try:
        listed = {entry.replace("!", "/") for entry in os.listdir(block)}
    except OSError:
        listed = None
    out = []
    for name in names:
        if name.startswith(_VIRTUAL):
            continue
        if listed is not None and name not in listed:
            continue
        if listed is None and _PARTITION.match(name):
            continue
        out.append(name)
    return sorted(out)


def _psutil_counters() -> Mapping[str, Any]:
    return psutil.disk_io_counters(perdisk=True, nowrap=True) or {}


class DiskSampler:
    """Takes one sample of every chosen disk per call; a callable for `PeriodicSource`.

    Construction reads the counters once; each call returns the rates since the previous
    reading (the first call, those since construction). A counter that went backwards (device
    reset) gives no event for that device that time.

    Args:
        host: the host name of the events.
        devices: the devices wanted; empty: every whole disk.
        platform: `sys.platform`.
        sys_root: where `/sys` is.
        counters: returns psutil-shaped per-disk counters by device name.
        wall: Unix seconds, the events' ts.
        clock: monotonic seconds, for the rates.
        name: how messages name the sampler (a step id).
    """

    def __init__(
        self,
        host: str,
        *,
        devices: Sequence[str] = (),
        platform: str = sys.platform,
        sys_root: Path = Path("/sys"),
        counters: Callable[[], Mapping[str, Any]] = _psutil_counters,
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        name: str = "disk",
    ) -> None:
        self.host = host
        self._counters = counters
        self._wall = wall
        self._clock = clock
        first = counters()
        if devices:
            self.devices = [d for d in devices if d in first]
            missing = [d for d in devices if d not in first]
            if missing:
                log.warning(
                    "%s: no such devices %s (known: %s)", name, missing, ", ".join(sorted(first))
                )
        else:
            self.devices = whole_disks(list(first), platform, sys_root)
        if self.devices:
            log.info("%s: watching %s", name, ", ".join(self.devices))
        else:
            log.warning(
                "%s: no disk to watch (counters for: %s)", name, ", ".join(sorted(first)) or "none"
            )
        self._last: tuple[float, Mapping[str, Any]] = (clock(), first)

    def __call__(self) -> list[DiskEvent]:
        """Return one event per chosen disk: its rates since the last call."""
        now, ts, current = self._clock(), self._wall(), self._counters()
        before_at, before = self._last
        self._last = (now, current)
        elapsed = now - before_at
        if elapsed <= 0:
            return []
        events = []
        for device in self.devices:
            old, new = before.get(device), current.get(device)
            if old is None or new is None:
                continue
            deltas = {
                "read_bytes_per_s": new.read_bytes - old.read_bytes,
                "write_bytes_per_s": new.write_bytes - old.write_bytes,
                "read_ops_per_s": new.read_count - old.read_count,
                "write_ops_per_s": new.write_count - old.write_count,
            }
            if min(deltas.values()) < 0:
                continue
            values = {key: round(delta / elapsed, 3) for key, delta in deltas.items()}
            busy_old, busy_new = getattr(old, "busy_time", None), getattr(new, "busy_time", None)
            if busy_old is not None and busy_new is not None and busy_new >= busy_old:
                busy = (busy_new - busy_old) / (elapsed * 1000.0) * 100.0
                values["util_percent"] = round(min(busy, 100.0), 2)
            events.append(DiskEvent(ts, self.host, device, values))
        return events


class DiskSource(PeriodicSource[DiskEvent]):
    """One `DiskEvent` per whole disk every `interval_seconds`, sampled on its own thread.

    See `PeriodicSource` for what `next_batch` never does, what is not guaranteed and the
    at-most-once delivery; `DiskSampler` for the fields and which devices.

    Args:
        host: the host name of the events.
        interval_seconds: the time between two samples.
        devices: the devices wanted; empty: every whole disk.
        sys_root: where `/sys` is.
        platform: `sys.platform`.
        stop: when given and it returns True, the source ends.
    """

    def __init__(
        self,
        host: str,
        interval_seconds: float = 5.0,
        *,
        devices: Sequence[str] = (),
        sys_root: Path = Path("/sys"),
        platform: str = sys.platform,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(interval_seconds, stop=stop)
        self.host = host
        self.devices = list(devices)
        self.sys_root = sys_root
        self.platform = platform

    @override
    def make_sampler(self, step_id: str) -> DiskSampler:
        return DiskSampler(
            self.host,
            devices=self.devices,
            platform=self.platform,
            sys_root=self.sys_root,
            name=step_id,
        )
