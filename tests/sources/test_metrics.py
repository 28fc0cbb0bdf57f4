"""The machine-wide metrics sample: psutil values, PSI, RAPL power, macOS pressure and power."""

from __future__ import annotations

import logging
import sys
import textwrap
import threading
from pathlib import Path
from typing import NamedTuple

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main

from operators.events import MetricsEvent, event_to_json, parse_line
from operators.sources.metrics import (
    MetricsSampler,
    MetricsSource,
    Psi,
    memory_pressure,
    parse_powermetrics,
    parse_psi,
)

PSI_TEXT = (
    "some avg10=12.40 avg60=3.10 avg300=0.70 total=123456\n"
    "full avg10=1.50 avg60=0.20 avg300=0.05 total=23456\n"
)


def _proc(tmp_path: Path, text: str | None = PSI_TEXT) -> Path:
    root = tmp_path / "proc"
    (root / "pressure").mkdir(parents=True)
    if text is not None:
        (root / "pressure" / "memory").write_text(text)
    return root


class _Times(NamedTuple):
    """A `psutil.cpu_times()` reading of Linux's shape, in seconds (guest is inside user)."""

    user: float
    system: float
    idle: float
    iowait: float = 0.0
    guest: float = 0.0


class _CpuTimes:
    """An injected `cpu_times` reader: hands out `readings` in turn, noting the calling thread."""

    def __init__(self, *readings: _Times) -> None:
        self.readings = list(readings)
        self.threads: list[str] = []

    def __call__(self) -> _Times:
        self.threads.append(threading.current_thread().name)
        return self.readings.pop(0)


def _rapl_zone(sys_root: Path, zone: str, name: str, energy: int, wrap: int = 262143328850) -> Path:
    folder = sys_root / "class" / "powercap" / zone
    folder.mkdir(parents=True)
    (folder / "name").write_text(name + "\n")
    (folder / "energy_uj").write_text(f"{energy}\n")
    (folder / "max_energy_range_uj").write_text(f"{wrap}\n")
    return folder / "energy_uj"


def test_psi_avg10_values_are_read() -> None:
    assert parse_psi(PSI_TEXT) == Psi(12.4, 1.5)
    assert parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n") == Psi(0.0, 0.0)


def test_a_text_without_psi_is_an_error() -> None:
    with pytest.raises(ValueError, match="no 'some avg10=' line in 'hello'"):
        parse_psi("hello")


@pytest.mark.parametrize(
    ("some", "full", "level"),
    [(0.0, 0.0, "normal"), (9.9, 0.0, "normal"), (10.0, 0.0, "warning"), (50.0, 10.0, "critical")],
)
def test_memory_pressure_follows_the_two_thresholds(some: float, full: float, level: str) -> None:
    assert memory_pressure(Psi(some, full), warning_psi=10.0, critical_psi=10.0) == level


def test_powermetrics_text_of_apple_silicon_and_intel_is_read() -> None:
    apple = "**** Processor usage ****\nCPU Power: 1234 mW\nGPU Power: 56 mW\nANE Power: 0 mW\n"
    assert parse_powermetrics(apple) == {"cpu_power_mw": 1234.0, "gpu_power_mw": 56.0}
    intel = "Intel energy model derived package power (CPUs+GT+SA): 1.25W\n"
    assert parse_powermetrics(intel) == {"cpu_power_mw": 1250.0}
    assert parse_powermetrics("nothing") == {}


def test_a_sample_carries_every_value_with_its_quality(tmp_path: Path) -> None:
    sys_root = tmp_path / "sys"
    package = _rapl_zone(sys_root, "intel-rapl:0", "package-0", 1_000_000)
    core = _rapl_zone(sys_root, "intel-rapl:0:0", "core", 5)  # inside the package: not added
    _rapl_zone(sys_root, "intel-rapl:1", "psys", 7)  # the whole platform: not a package
    now = [100.0]
    sampler = MetricsSampler(
        "web-1",
        warning_psi=10.0,
        critical_psi=10.0,
        platform="linux",
        proc_root=_proc(tmp_path),
        sys_root=sys_root,
        wall=lambda: 1796292002.0,
        clock=lambda: now[0],
        cpu_times=_CpuTimes(_Times(10.0, 10.0, 80.0), _Times(20.0, 20.0, 160.0)),
    )
    package.write_text("3000000\n")  # 2 J ...
    core.write_text("999999999\n")
    now[0] = 102.0  # ... in 2 s: 1 W
    [event] = sampler()
    assert isinstance(event, MetricsEvent)
    assert (event.ts, event.host, event.mem_pressure) == (1796292002.0, "web-1", "warning")
    assert event.values["psi_mem_some_avg10"] == 12.4
    assert event.values["psi_mem_full_avg10"] == 1.5
    assert event.values["cpu_power_mw"] == 1000.0
    assert event.values["cpu_percent"] == 20.0
    for name in ("mem_used_percent", "swap_used_percent"):
        assert 0.0 <= event.values[name] <= 100.0
    assert event.values["load1"] >= 0.0
    assert event.quality == {
        "cpu_percent": "measured",
        "mem_used_percent": "measured",
        "swap_used_percent": "measured",
        "load1": "measured",
        "psi_mem_some_avg10": "measured",
        "psi_mem_full_avg10": "measured",
        "mem_pressure": "derived",
        "cpu_power_mw": "measured",
    }
    assert sampler.missing == []
    assert parse_line(event_to_json(event), "x") == event  # exactly a trace event


def test_the_mmio_interface_to_a_package_counter_is_not_counted_again(tmp_path: Path) -> None:
    sys_root = tmp_path / "sys"
    msr = _rapl_zone(sys_root, "intel-rapl:0", "package-0", 1_000_000)
    mmio = _rapl_zone(sys_root, "intel-rapl-mmio:0", "package-0", 1_000_000)  # the same counter
    now = [0.0]
    sampler = MetricsSampler(
        "laptop",
        platform="linux",
        proc_root=_proc(tmp_path),
        sys_root=sys_root,
        clock=lambda: now[0],
    )
    msr.write_text("3000000\n")  # 2 J in 2 s, seen through both interfaces
    mmio.write_text("3000000\n")
    now[0] = 2.0
    [event] = sampler()
    assert event.values["cpu_power_mw"] == 1000.0


def _sampler_of_cpu_times(tmp_path: Path, cpu_times: _CpuTimes) -> MetricsSampler:
    return MetricsSampler(
        "web-1",
        platform="linux",
        proc_root=_proc(tmp_path),
        sys_root=tmp_path / "sys",
        cpu_times=cpu_times,
    )


def test_the_first_cpu_percent_is_measured_when_sampled_on_another_thread(
    tmp_path: Path,
) -> None:
    # Built on the worker thread, sampled on the sampler thread (as `PeriodicSource` does).
    cpu_times = _CpuTimes(
        _Times(user=100.0, system=20.0, idle=70.0, iowait=10.0),
        _Times(user=140.0, system=30.0, idle=110.0, iowait=20.0),  # 50 of 100 s busy
    )
    sampler = _sampler_of_cpu_times(tmp_path, cpu_times)
    events: list[MetricsEvent] = []
    sampling = threading.Thread(target=lambda: events.extend(sampler()), name="eyes-metrics")
    sampling.start()
    sampling.join()
    [event] = events
    assert event.values["cpu_percent"] == 50.0
    assert event.quality["cpu_percent"] == "measured"
    assert cpu_times.threads == [threading.current_thread().name, "eyes-metrics"]


def test_cpu_times_going_backwards_give_no_cpu_percent_that_time(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cpu_times = _CpuTimes(
        _Times(user=500.0, system=100.0, idle=400.0),
        _Times(user=50.0, system=10.0, idle=40.0),  # reset (e.g. a restored VM): no value
        _Times(user=50.0, system=10.0, idle=140.0),  # then measured from the new reading: 0 %
        _Times(user=40.0, system=10.0, idle=240.0),  # busy went back while total grew: no value
        _Times(user=90.0, system=10.0, idle=290.0),  # 50 of 100 s busy
    )
    sampler = _sampler_of_cpu_times(tmp_path, cpu_times)
    with caplog.at_level(logging.WARNING):
        events = [sampler()[0] for _ in range(4)]
    assert [e.values.get("cpu_percent") for e in events] == [None, 0.0, None, 50.0]
    assert "cpu_percent" not in events[0].quality and "cpu_percent" not in events[2].quality
    assert events[0].values["mem_used_percent"] >= 0.0  # the rest of the sample is kept
    assert sampler.skipped == {"cpu_times_backwards": 2}
    said = [r.getMessage() for r in caplog.records if "cpu_percent" in r.getMessage()]
    assert said == [
        "metrics: cpu_percent left out of a sample (cpu_times_backwards): "
        "psutil.cpu_times() went backwards (busy 600.00 -> 60.00 s, total 1000.00 -> 100.00 s); "
        "later ones are only counted"
    ]


def test_a_wrapped_energy_counter_still_gives_the_power(tmp_path: Path) -> None:
    sys_root = tmp_path / "sys"
    package = _rapl_zone(sys_root, "intel-rapl:0", "package-0", 9_000_000, wrap=10_000_000)
    now = [0.0]
    sampler = MetricsSampler(
        "h", platform="linux", proc_root=_proc(tmp_path), sys_root=sys_root, clock=lambda: now[0]
    )
    package.write_text("1000000\n")  # 1 J to the wrap, 1 J after it
    now[0] = 1.0
    [event] = sampler()
    assert event.values["cpu_power_mw"] == 2000.0


def test_what_cannot_be_read_is_left_out_and_said_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        sampler = MetricsSampler(
            "h", platform="linux", proc_root=_proc(tmp_path, None), sys_root=tmp_path / "sys"
        )
        [first] = sampler()
        sampler()
    assert sampler.missing == ["memory pressure", "CPU power"]
    assert first.mem_pressure is None
    assert "psi_mem_some_avg10" not in first.values and "cpu_power_mw" not in first.values
    assert "mem_pressure" not in first.quality
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2
    assert "so the memory_pressure rule cannot fire" in messages[0]
    assert "cannot read CPU power: no RAPL package counters under" in messages[1]


@pytest.mark.skipif(not Path("/proc/pressure/memory").exists(), reason="this kernel has no PSI")
def test_the_sampler_reads_this_machines_real_psi() -> None:
    sampler = MetricsSampler("here", platform="linux")
    [event] = sampler()
    real = parse_psi(Path("/proc/pressure/memory").read_text())
    assert event.mem_pressure in ("normal", "warning", "critical")
    assert event.values["psi_mem_some_avg10"] >= 0.0
    assert event.values["psi_mem_full_avg10"] >= 0.0
    assert abs(event.values["psi_mem_some_avg10"] - real.some_avg10) < 50
    assert event.quality["mem_pressure"] == "derived"


def _program(tmp_path: Path, name: str, body: str) -> list[str]:
    path = tmp_path / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(0o755)
    return [str(path)]


def test_macos_pressure_level_and_powermetrics_power(tmp_path: Path) -> None:
    powermetrics = _program(
        tmp_path, "powermetrics", "print('CPU Power: 1234 mW')\nprint('GPU Power: 56 mW')\n"
    )
    sampler = MetricsSampler(
        "mac-1", platform="darwin", darwin_pressure=lambda: 2, powermetrics=powermetrics
    )
    [event] = sampler()
    assert event.mem_pressure == "warning"
    assert event.values["cpu_power_mw"] == 1234.0 and event.values["gpu_power_mw"] == 56.0
    assert event.quality["mem_pressure"] == "measured"
    assert event.quality["cpu_power_mw"] == event.quality["gpu_power_mw"] == "estimated"
    assert "psi_mem_some_avg10" not in event.values


def test_powermetrics_that_needs_a_password_is_given_up_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = tmp_path / "calls"
    sudo = _program(
        tmp_path,
        "sudo",
        f"""\
        import sys
        open({str(calls)!r}, "a").write("x")
        sys.stderr.write("sudo: a password is required\\n")
        sys.exit(1)
        """,
    )
    sampler = MetricsSampler(
        "mac-1", platform="darwin", darwin_pressure=lambda: None, powermetrics=sudo
    )
    with caplog.at_level(logging.INFO):
        [event] = sampler()
        sampler()
    assert calls.read_text() == "x"
    assert "cpu_power_mw" not in event.values and event.mem_pressure is None
    assert "sudo: a password is required" in caplog.text
    assert sampler.missing == ["memory pressure"]


def test_the_source_samples_every_interval_on_worker_0(tmp_path: Path) -> None:
    out: list[MetricsEvent] = []
    source = MetricsSource(
        "web-1", 0.05, proc_root=_proc(tmp_path), sys_root=tmp_path, stop=lambda: len(out) >= 3
    )
    flow = Dataflow("test")
    op.output("out", op.input("metrics", flow, source), TestingSink(out))
    run_main(flow)
    assert len(out) >= 3 and all(e.host == "web-1" for e in out)
    assert out[0].ts < out[1].ts < out[2].ts
    assert all(e.mem_pressure == "warning" for e in out)
