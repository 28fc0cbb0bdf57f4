"""The rules on real data: loghub syslog samples and NAB metric series (skipped without them)."""

from __future__ import annotations

import csv
import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from flows.config import CrashConfig, ResourceSpikeConfig
from operators.events import LogEvent, MetricsEvent
from operators.rules.crash import CrashRule
from operators.rules.resource_spike import ResourceSpikeRule
from tests.conftest import DATASETS

pytestmark = pytest.mark.skipif(not DATASETS.is_dir(), reason="no shared datasets here")


def _crash_reasons(name: str, level: str) -> list[str]:
    rule = CrashRule(CrashConfig(), cooldown_seconds=0.0)
    reasons = []
    with open(DATASETS / "loghub" / name, encoding="utf-8", errors="replace") as lines:
        for n, line in enumerate(lines):
            message = line.split(": ", 1)[-1].strip()
            reasons += [t.reason for t in rule.update(LogEvent(float(n), "h", level, message))]
    return reasons


@pytest.mark.parametrize("name", ["Linux_2k.log", "Mac_2k.log", "Thunderbird_2k.log"])
def test_no_strong_crash_signature_hides_in_ordinary_syslog(name: str) -> None:
    assert _crash_reasons(name, "info") == []


def test_as_error_lines_only_the_macos_assertion_failures_count_as_crashes() -> None:
    assert _crash_reasons("Linux_2k.log", "error") == []
    assert _crash_reasons("Thunderbird_2k.log", "error") == []
    reasons = _crash_reasons("Mac_2k.log", "error")
    assert len(reasons) == 7
    assert {r.split("'")[1] for r in reasons} == {"assertion failed"}


def _series(path: Path) -> list[MetricsEvent]:
    with open(path, newline="") as rows:
        return [
            MetricsEvent(
                datetime.fromisoformat(row["timestamp"]).replace(tzinfo=timezone.utc).timestamp(),
                "nab",
                {"cpu_percent": float(row["value"])},
            )
            for row in csv.DictReader(rows)
        ]


def _hourly_spikes(name: str) -> list[float]:
    config = ResourceSpikeConfig(window_seconds=3600.0, thresholds={"cpu_percent": 60.0})
    rule = ResourceSpikeRule(config, cooldown_seconds=3600.0)
    return [
        t.ts for sample in _series(DATASETS / "nab" / "data" / name) for t in rule.update(sample)
    ]


@pytest.mark.parametrize("name", ["art_daily_small_noise.csv", "art_flatline.csv", "art_noisy.csv"])
def test_series_without_anomalies_never_spike(name: str) -> None:
    assert _hourly_spikes(f"artificialNoAnomaly/{name}") == []


def test_the_jump_in_art_daily_jumpsup_fires_inside_its_labelled_window() -> None:
    labels = json.loads((DATASETS / "nab" / "labels" / "combined_windows.json").read_text())
    [(start, end)] = [
        tuple(datetime.fromisoformat(t).replace(tzinfo=timezone.utc).timestamp() for t in pair)
        for pair in labels["artificialWithAnomaly/art_daily_jumpsup.csv"]
    ]
    fired = _hourly_spikes("artificialWithAnomaly/art_daily_jumpsup.csv")
    assert len(fired) == 1
    assert start <= fired[0] <= end
