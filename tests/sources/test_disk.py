"""Per-disk throughput from counter deltas, whole disks only."""

from __future__ import annotations

import logging
from collections import namedtuple
from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main

from operators.events import DiskEvent, event_to_json, parse_line
from operators.sources.disk import DiskSampler, DiskSource, whole_disks

Io = namedtuple("Io", "read_count write_count read_bytes write_bytes busy_time")
MacIo = namedtuple("MacIo", "read_count write_count read_bytes write_bytes")


def _sys(tmp_path: Path, *devices: str) -> Path:
    root = tmp_path / "sys"
    for device in devices:
        (root / "block" / device).mkdir(parents=True)
    return root


NAMES = ["sda", "sda1", "nvme0n1", "nvme0n1p1", "loop0", "dm-0", "zram0", "ram0", "md0", "vda"]


def test_linux_whole_disks_are_those_in_sys_block_without_virtual_ones(tmp_path: Path) -> None:
    sys_root = _sys(tmp_path, "sda", "nvme0n1", "loop0", "dm-0", "zram0", "ram0", "md0")
    assert whole_disks(NAMES, "linux", sys_root) == ["md0", "nvme0n1", "sda"]


def test_without_sys_block_partitions_are_told_by_name(tmp_path: Path) -> None:
    assert whole_disks(NAMES, "linux", tmp_path / "none") == ["md0", "nvme0n1", "sda", "vda"]


def test_macos_whole_disks_are_disk_n() -> None:
    assert whole_disks(["disk0", "disk0s1", "disk1"], "darwin") == ["disk0", "disk1"]


class _Counters:
    def __init__(self, *snapshots: dict[str, object]) -> None:
        self.snapshots = list(snapshots)

    def __call__(self) -> dict[str, object]:
        return self.snapshots.pop(0)


def test_rates_are_the_counter_deltas_over_the_interval(tmp_path: Path) -> None:
    counters = _Counters(
        {"sda": Io(10, 20, 4096, 8192, 100), "sda1": Io(1, 1, 1, 1, 1)},
        {"sda": Io(60, 30, 4096 + 10_485_760, 8192 + 2048, 2600), "sda1": Io(2, 2, 2, 2, 2)},
    )
    now = [0.0]
    sampler = DiskSampler(
        "web-1",
        platform="linux",
        sys_root=_sys(tmp_path, "sda"),
        counters=counters,
        wall=lambda: 1796292002.0,
        clock=lambda: now[0],
    )
    now[0] = 5.0
    [event] = sampler()
    assert event == DiskEvent(
        1796292002.0,
        "web-1",
        "sda",
        {
            "read_bytes_per_s": 2097152.0,
            "write_bytes_per_s": 409.6,
            "read_ops_per_s": 10.0,
            "write_ops_per_s": 2.0,
            "util_percent": 50.0,
        },
    )
    assert parse_line(event_to_json(event), "x") == event  # exactly a trace event


def test_without_busy_time_there_is_no_util_percent() -> None:
    counters = _Counters({"disk0": MacIo(0, 0, 0, 0)}, {"disk0": MacIo(1, 1, 1, 1)})
    now = [0.0]
    sampler = DiskSampler("mac", platform="darwin", counters=counters, clock=lambda: now[0])
    now[0] = 1.0
    [event] = sampler()
    assert "util_percent" not in event.values


def test_a_counter_that_went_backwards_gives_no_event_that_time(tmp_path: Path) -> None:
    counters = _Counters({"sda": Io(10, 10, 10, 10, 10)}, {"sda": Io(0, 0, 0, 0, 0)})
    now = [0.0]
    sampler = DiskSampler(
        "h",
        platform="linux",
        sys_root=_sys(tmp_path, "sda"),
        counters=counters,
        clock=lambda: now[0],
    )
    now[0] = 1.0
    assert sampler() == []


def test_named_devices_narrow_the_set_even_to_virtual_ones(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    snapshot = {"sda": Io(0, 0, 0, 0, 0), "loop0": Io(0, 0, 0, 0, 0)}
    with caplog.at_level(logging.WARNING):
        sampler = DiskSampler(
            "h",
            devices=["loop0", "sdz"],
            platform="linux",
            sys_root=_sys(tmp_path, "sda", "loop0"),
            counters=lambda: snapshot,
        )
    assert sampler.devices == ["loop0"]
    assert "disk: no such devices ['sdz'] (known: loop0, sda)" in caplog.text


def test_this_machines_disks_leave_out_loop_and_ram_devices() -> None:
    sampler = DiskSampler("here")
    assert not [d for d in sampler.devices if d.startswith(("loop", "ram", "zram", "dm-"))]


def test_the_source_samples_every_interval(tmp_path: Path) -> None:
    out: list[DiskEvent] = []
    source = DiskSource("web-1", 0.05, stop=lambda: len(out) >= 2)
    flow = Dataflow("test")
    op.output("out", op.input("disk", flow, source), TestingSink(out))
    run_main(flow)
    assert len(out) >= 2
    assert all(isinstance(e, DiskEvent) and e.host == "web-1" for e in out)
