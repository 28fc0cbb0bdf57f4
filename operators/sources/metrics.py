"""The machine-wide metrics sample: CPU, memory, swap, load, memory pressure and package power.

In: psutil; on Linux `/proc/pressure/memory` (PSI) and `/sys/class/powercap/*/energy_uj`
(RAPL); on macOS the kernel's memory pressure level and, where `sudo -n` allows,
`powermetrics`. Out: one `MetricsEvent` per interval (TRACE_FORMAT.md section 1), each value's
`quality` named:

| field | quality |
|---|---|
| `cpu_percent` | measured: the busy share of `psutil.cpu_times()`'s delta over the interval |
| `mem_used_percent`, `swap_used_percent`, `load1` | measured (psutil) |
| `psi_mem_some_avg10`, `psi_mem_full_avg10` | measured (the kernel's PSI averages) |
| `mem_pressure` | derived on Linux (PSI against the two thresholds), measured on macOS |
| `cpu_power_mw` from RAPL | measured: the energy counter's delta over the interval |
| `cpu_power_mw`, `gpu_power_mw` from powermetrics | estimated: Apple's power model |

A value that cannot be read is left out (and said once at start), never guessed.
"""

from __future__ import annotations

import ctypes
import logging
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import psutil
from typing_extensions import override

from operators.events import MetricsEvent
from operators.sources.sampling import PeriodicSource

__all__ = [
    "MetricsSampler",
    "MetricsSource",
    "Psi",
    "memory_pressure",
    "parse_powermetrics",
    "parse_psi",
]

log = logging.getLogger(__name__)

POWERMETRICS_ARGV = (
    "sudo",
    "-n",
    "powermetrics",
    "-n",
    "1",
    "-i",
    "200",
    "--samplers",
    "cpu_power,gpu_power",
)
_DARWIN_PRESSURE = {1: "normal", 2: "warning", 4: "critical"}
_PSI_LINE = re.compile(r"^(some|full)\b.*?\bavg10=([0-9.]+)", re.M)
_POWER = (
    ("cpu_power_mw", re.compile(r"^CPU Power:\s*([0-9.]+)\s*mW", re.M), 1.0),
    ("gpu_power_mw", re.compile(r"^GPU Power:\s*([0-9.]+)\s*mW", re.M), 1.0),
    ("cpu_power_mw", re.compile(r"package power[^:\n]*:\s*([0-9.]+)\s*W", re.M), 1000.0),
)
# The MSR interface's top-level zones, one per package. Not `intel-rapl:N:M` (a part of a
# package, already in it) nor `intel-rapl-mmio:N` (the MMIO interface to the same package
# counter: adding it would count the package twice). AMD's driver uses the same names.
_RAPL_PACKAGE_ZONE = re.compile(r"^intel-rapl:\d+$")


@dataclass(frozen=True, slots=True)
class Psi:
    """Linux memory pressure stall information: the share of time tasks waited for memory.

    Attributes:
        some_avg10: % of the last 10 s in which at least one task stalled on memory.
        full_avg10: % of the last 10 s in which every non-idle task stalled on memory.
    """

    some_avg10: float
    full_avg10: float


def parse_psi(text: str) -> Psi:
    """Return the avg10 values of a `/proc/pressure/memory` text.

    Raises:
        ValueError: the text has no `some` line (`full` alone absent reads as 0).
    """
    found = {kind: float(value) for kind, value in _PSI_LINE.findall(text)}
    if "some" not in found:
        raise ValueError(f"no 'some avg10=' line in {text[:80]!r}")
    return Psi(found["some"], found.get("full", 0.0))


def memory_pressure(psi: Psi, warning_psi: float, critical_psi: float) -> str:
    """Return critical when full avg10 >= `critical_psi`, warning when some avg10 >=
    `warning_psi`, else normal."""
    if psi.full_avg10 >= critical_psi:
        return "critical"
    if psi.some_avg10 >= warning_psi:
        return "warning"
    return "normal"


def parse_powermetrics(text: str) -> dict[str, float]:
    """Return `cpu_power_mw` and `gpu_power_mw` found in one `powermetrics` text sample."""
    out: dict[str, float] = {}
    for name, pattern, scale in _POWER:
        match = pattern.search(text)
        if match is not None and name not in out:
            out[name] = float(match[1]) * scale
    return out


class _Rapl:
    """Package power from the RAPL energy counters: the delta of `energy_uj` over time."""

    def __init__(self, sys_root: Path, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.counters: list[tuple[Path, int]] = []
        self.problem: str | None = None
        base = sys_root / "class" / "powercap"
        zones = sorted(p for p in base.glob("intel-rapl:*") if _RAPL_PACKAGE_ZONE.match(p.name))
        for zone in zones:
            try:
                name = (zone / "name").read_text().strip()
            except OSError:
                continue
            if not name.startswith("package"):
                continue
            try:
                int((zone / "energy_uj").read_text())
                wrap = int((zone / "max_energy_range_uj").read_text())
            except (OSError, ValueError) as exc:
                self.problem = f"{zone / 'energy_uj'} is not readable ({exc.__class__.__name__})"
                continue
            self.counters.append((zone / "energy_uj", wrap))
        if not self.counters and self.problem is None:
            self.problem = f"no RAPL package counters under {base}"
        self._last: tuple[float, list[int]] | None = None
        if self.counters:
            self.read()

    def read(self) -> float | None:
        """Return the package power in mW since the last call, or None on the first."""
        now = self._clock()
        try:
            values = [int(path.read_text()) for path, _ in self.counters]
        except (OSError, ValueError):
            self._last = None
            return None
        last, self._last = self._last, (now, values)
        if last is None or now <= last[0]:
            return None
        joules = 0
        for (_, wrap), before, after in zip(self.counters, last[1], values, strict=True):
            joules += after - before if after >= before else after + wrap - before
        return joules / (now - last[0]) / 1000.0  # µJ/s = µW -> mW


class _CpuTimes(Protocol):
    """What `psutil.cpu_times()` returns: named CPU times in seconds, iterable, with `idle`."""

    @property
    def idle(self) -> float: ...

    def __iter__(self) -> Iterator[float]: ...


def _busy_and_total(times: _CpuTimes) -> tuple[float, float]:
    """Return (busy, total) seconds of a CPU times reading, as psutil's `cpu_percent` does.

    Total is every field but `guest` and `guest_nice` (Linux counts them in `user` and `nice`
    already); busy is total less `idle` and `iowait` (on Linux not part of `idle`).
    """
    total = sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)
    return total - times.idle - getattr(times, "iowait", 0.0), total


class _CpuPercent:
    """The machine-wide busy CPU share between two calls, from the sampler's own readings.

    `psutil.cpu_percent(None)` keeps its last reading per thread, so its first call on the
    sampler thread answered 0.0 whatever the load. Here the reference reading is this object's,
    taken at construction, so the value does not depend on which thread calls.
    """

    def __init__(self, read: Callable[[], _CpuTimes]) -> None:
        self._read = read
        self._last = _busy_and_total(read())

    def read(self) -> float | tuple[str, str]:
        """Return the busy % since the last call, or (reason, detail) when there is none.

        The reading taken now is the next call's reference either way, so one bad reading
        costs one value, not every one after it.
        """
        busy, total = _busy_and_total(self._read())
        last_busy, last_total = self._last
        self._last = (busy, total)
        busy_delta, total_delta = busy - last_busy, total - last_total
        if total_delta < 0 or busy_delta < 0 or busy_delta > total_delta:
            return "cpu_times_backwards", (
                f"psutil.cpu_times() went backwards (busy {last_busy:.2f} -> {busy:.2f} s, "
                f"total {last_total:.2f} -> {total:.2f} s)"
            )
        if total_delta == 0:
            return "cpu_times_unchanged", "psutil.cpu_times() did not advance since the last sample"
        return round(busy_delta / total_delta * 100.0, 1)


def _darwin_pressure_level() -> int | None:
    """Return `kern.memorystatus_vm_pressure_level` (1, 2 or 4) on macOS, else None."""
    if sys.platform != "darwin":
        return None
    try:
        libc = ctypes.CDLL(None)
        value = ctypes.c_int(0)
        size = ctypes.c_size_t(ctypes.sizeof(value))
        status = libc.sysctlbyname(
            b"kern.memorystatus_vm_pressure_level",
            ctypes.byref(value),
            ctypes.byref(size),
            None,
            ctypes.c_size_t(0),
        )
    except (OSError, AttributeError):
        return None
    return value.value if status == 0 else None


class MetricsSampler:
    """Takes one machine-wide sample per call; a callable for `PeriodicSource`.

    Args:
        host: the host name of the events.
        warning_psi: `mem_pressure` is warning when PSI some avg10 reaches this.
        critical_psi: `mem_pressure` is critical when PSI full avg10 reaches this.
        platform: `sys.platform`.
        proc_root: where `/proc` is (PSI).
        sys_root: where `/sys` is (RAPL).
        wall: Unix seconds, the events' ts.
        clock: monotonic seconds, for power deltas.
        cpu_times: returns the machine-wide CPU times (`psutil.cpu_times()`); read once here,
            then at every sample, for `cpu_percent` over the interval.
        darwin_pressure: returns the macOS pressure level (1, 2, 4) or None.
        powermetrics: the macOS power command; None or empty: no power.
        name: how messages name the sampler (a step id).
    """

    def __init__(
        self,
        host: str,
        *,
        warning_psi: float = 10.0,
        critical_psi: float = 10.0,
        platform: str = sys.platform,
        proc_root: Path = Path("/proc"),
        sys_root: Path = Path("/sys"),
        wall: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
        cpu_times: Callable[[], _CpuTimes] = psutil.cpu_times,
        darwin_pressure: Callable[[], int | None] = _darwin_pressure_level,
        powermetrics: Sequence[str] | None = POWERMETRICS_ARGV,
        name: str = "metrics",
    ) -> None:
        self.host = host
        self.warning_psi = warning_psi
        self.critical_psi = critical_psi
        self.platform = platform
        self._wall = wall
        self._linux = platform.startswith("linux")
        self._darwin = platform == "darwin"
        self.psi_path: Path | None = proc_root / "pressure" / "memory" if self._linux else None
        self.rapl = _Rapl(sys_root, clock) if self._linux else None
        self._darwin_pressure = darwin_pressure if self._darwin else None
        self._powermetrics = list(powermetrics or ()) if self._darwin else []
        self.missing: list[str] = []
        self.skipped: Counter[str] = Counter()  # a value left out of one sample, by reason
        self._name = name
        self._check()
        self._cpu = _CpuPercent(cpu_times)  # the reference reading of the first sample

    def _check(self) -> None:
        """Find out once what can be read here, and say what cannot (in `missing`)."""
        pressure_rule = "mem_pressure left out, so the memory_pressure rule cannot fire"
        if self.psi_path is not None:
            try:
                parse_psi(self.psi_path.read_text())
            except (OSError, ValueError) as exc:
                log.warning(
                    "%s: cannot read %s (%s); %s", self._name, self.psi_path, exc, pressure_rule
                )
                self.psi_path = None
                self.missing.append("memory pressure")
        if self._darwin_pressure is not None and self._darwin_pressure() is None:
            log.warning(
                "%s: cannot read the kernel's memory pressure level; %s", self._name, pressure_rule
            )
            self._darwin_pressure = None
            self.missing.append("memory pressure")
        if self.rapl is not None and not self.rapl.counters:
            log.info(
                "%s: cannot read CPU power: %s; cpu_power_mw left out",
                self._name,
                self.rapl.problem,
            )
            self.rapl = None
            self.missing.append("CPU power")
        if not self._linux and not self._darwin:
            log.warning("%s: no memory pressure or power on %s", self._name, self.platform)
            self.missing.extend(("memory pressure", "CPU power"))

    def _power(self) -> dict[str, float]:
        if not self._powermetrics:
            return {}
        try:
            done = subprocess.run(
                self._powermetrics, capture_output=True, timeout=10, text=True, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            done = None
            problem = str(exc)
        else:
            problem = done.stderr.strip()[:200] or f"exit status {done.returncode}"
        if done is None or done.returncode != 0:
            log.info(
                "%s: cannot read power with %s (%s); left out",
                self._name,
                self._powermetrics[0],
                problem,
            )
            self._powermetrics = []
            return {}
        return parse_powermetrics(done.stdout)

    def _skip(self, metric: str, reason: str, detail: str) -> None:
        """Count a value left out of this sample by `reason`; say the first of each reason.

        Two samples within one clock tick of the kernel (`cpu_times_unchanged`) are no fault:
        said at DEBUG only.
        """
        first = not self.skipped[reason]
        self.skipped[reason] += 1
        if first:
            log.log(
                logging.DEBUG if reason == "cpu_times_unchanged" else logging.WARNING,
                "%s: %s left out of a sample (%s): %s; later ones are only counted",
                self._name,
                metric,
                reason,
                detail,
            )

    def __call__(self) -> list[MetricsEvent]:
        """Return the one event of a sample taken now."""
        ts = self._wall()
        values: dict[str, float] = {}
        cpu = self._cpu.read()
        if isinstance(cpu, tuple):
            self._skip("cpu_percent", *cpu)
        else:
            values["cpu_percent"] = cpu
        values["mem_used_percent"] = psutil.virtual_memory().percent
        values["swap_used_percent"] = psutil.swap_memory().percent
        values["load1"] = round(psutil.getloadavg()[0], 2)
        quality = dict.fromkeys(values, "measured")
        pressure: str | None = None
        if self.psi_path is not None:
            try:
                psi = parse_psi(self.psi_path.read_text())
            except (OSError, ValueError):
                psi = None
            if psi is not None:
                values["psi_mem_some_avg10"] = psi.some_avg10
                values["psi_mem_full_avg10"] = psi.full_avg10
                quality["psi_mem_some_avg10"] = quality["psi_mem_full_avg10"] = "measured"
                pressure = memory_pressure(psi, self.warning_psi, self.critical_psi)
                quality["mem_pressure"] = "derived"
        if self.rapl is not None and (power := self.rapl.read()) is not None:
            values["cpu_power_mw"] = round(power, 1)
            quality["cpu_power_mw"] = "measured"
        if self._darwin_pressure is not None:
            pressure = _DARWIN_PRESSURE.get(self._darwin_pressure() or 0)
            if pressure is not None:
                quality["mem_pressure"] = "measured"
        for metric, value in self._power().items():
            values[metric] = round(value, 1)
            quality[metric] = "estimated"
        return [MetricsEvent(ts, self.host, values, pressure, quality)]


class MetricsSource(PeriodicSource[MetricsEvent]):
    """One machine-wide `MetricsEvent` every `interval_seconds`, sampled on its own thread.

    See `PeriodicSource` for what `next_batch` never does, what is not guaranteed and the
    at-most-once delivery; `MetricsSampler` for the fields and their quality.

    Args:
        host: the host name of the events.
        interval_seconds: the time between two samples.
        warning_psi: see `MetricsSampler`.
        critical_psi: see `MetricsSampler`.
        proc_root: where `/proc` is.
        sys_root: where `/sys` is.
        platform: `sys.platform`.
        stop: when given and it returns True, the source ends.
    """

    def __init__(
        self,
        host: str,
        interval_seconds: float = 5.0,
        *,
        warning_psi: float = 10.0,
        critical_psi: float = 10.0,
        proc_root: Path = Path("/proc"),
        sys_root: Path = Path("/sys"),
        platform: str = sys.platform,
        stop: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(interval_seconds, stop=stop)
        self.host = host
        self.warning_psi = warning_psi
        self.critical_psi = critical_psi
        self.proc_root = proc_root
        self.sys_root = sys_root
        self.platform = platform

    @override
    def make_sampler(self, step_id: str) -> MetricsSampler:
        return MetricsSampler(
            self.host,
            warning_psi=self.warning_psi,
            critical_psi=self.critical_psi,
            platform=self.platform,
            proc_root=self.proc_root,
            sys_root=self.sys_root,
            name=step_id,
        )
