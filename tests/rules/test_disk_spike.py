from __future__ import annotations

from flows.config import DiskSpikeConfig
from operators.events import DiskEvent
from operators.rules.disk_spike import DiskSpikeRule
from operators.triggers import Trigger
from tests.rules.factory import T0, disk

MIB = 1 << 20


def _rule(cooldown: float = 300.0) -> DiskSpikeRule:
    config = DiskSpikeConfig(read_bytes_per_s=512 * MIB, write_bytes_per_s=256 * MIB)
    return DiskSpikeRule(config, cooldown)


def _feed(rule: DiskSpikeRule, samples: list[DiskEvent]) -> list[Trigger]:
    return [trigger for sample in samples for trigger in rule.update(sample)]


def test_a_write_spike_on_one_device_fires_keyed_by_the_device() -> None:
    samples = [
        disk(0, "nvme0n1", read=2 * MIB, write=1 * MIB, id="d0"),
        disk(5, "nvme0n1", read=2 * MIB, write=700 * MIB, id="d1"),
    ]
    [trigger] = _feed(_rule(), samples)
    assert (trigger.rule, trigger.key, trigger.severity) == ("disk_spike", "nvme0n1", "warning")
    assert (trigger.ts, trigger.window_start, trigger.window_end) == (T0 + 5, T0, T0 + 5)
    assert trigger.reason == (
        "write_bytes_per_s rose from 1.0 MiB/s to 700.0 MiB/s (+699.0 MiB/s) within 30 s "
        "(threshold +256.0 MiB/s)."
    )
    assert [item.id for item in trigger.evidence] == ["d0", "d1"]


def test_samples_of_different_devices_are_never_compared() -> None:
    samples = [
        disk(0, "sda", write=1 * MIB),
        disk(1, "nvme0n1", write=900 * MIB),
        disk(5, "sda", write=2 * MIB),
        disk(6, "nvme0n1", write=910 * MIB),
    ]
    assert _feed(_rule(), samples) == []


def test_reads_and_writes_have_their_own_thresholds() -> None:
    rule = _rule()
    assert _feed(rule, [disk(0, read=0.0), disk(5, read=400 * MIB)]) == []
    assert len(_feed(rule, [disk(10, read=1000 * MIB)])) == 1


def test_reads_and_writes_spiking_together_fire_one_trigger() -> None:
    samples = [
        disk(0, read=0.0, write=0.0, id="a"),
        disk(5, read=900 * MIB, write=900 * MIB, id="b"),
    ]
    [trigger] = _feed(_rule(), samples)
    assert trigger.reason.startswith("read_bytes_per_s rose from 0 B/s to 900.0 MiB/s")
    assert "; write_bytes_per_s rose from 0 B/s to 900.0 MiB/s" in trigger.reason
    assert [item.id for item in trigger.evidence] == ["a", "b", "a", "b"]


def test_a_device_fires_once_per_cooldown_and_devices_have_their_own() -> None:
    rule = _rule(cooldown=300.0)
    spikes = [disk(0, "sda", write=0.0), disk(5, "sda", write=900 * MIB)]
    spikes += [disk(10, "sda", write=0.0), disk(15, "sda", write=900 * MIB)]
    spikes += [disk(20, "sdb", write=0.0), disk(25, "sdb", write=900 * MIB)]
    assert [(t.key, t.ts) for t in _feed(rule, spikes)] == [("sda", T0 + 5), ("sdb", T0 + 25)]


def test_a_device_silent_for_a_window_is_forgotten_when_another_appears() -> None:
    rule = _rule()
    rule.update(disk(0, "usb1", write=1.0))
    rule.update(disk(100, "sda", write=1.0))
    assert list(rule._devices) == ["sda"]
