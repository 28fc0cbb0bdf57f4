from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from flows.config import Config, load_config
from flows.eyes import build_flow
from operators.detect import _DetectLogic, detect_triggers
from operators.outputs import RecordFileSink, RunSummary
from operators.sources.replay import ReplaySource
from operators.triggers import TriggerContext, Watermark
from tests.conftest import FIXTURES
from tests.rules.factory import T0, config_with, log, metrics

TRACES = FIXTURES / "traces"
TRIGGER_FIELDS = (
    "id",
    "rule",
    "severity",
    "host",
    "key",
    "ts",
    "window_start",
    "window_end",
    "reason",
    "evidence",
)


def _config(tmp_path: Path, toml: str = "") -> Config:
    path = tmp_path / "eyes.toml"
    path.write_text(
        f'[ai]\nbackend = "none"\n[alerts]\nnotify = []\ndatabase = "{tmp_path / "h.db"}"\n' + toml
    )
    return load_config(path, environ={})


def _replay(config: Config, tmp_path: Path, *traces: Path) -> list[dict[str, Any]]:
    out = tmp_path / "records.jsonl"
    flow = build_flow(
        config,
        {"replay": ReplaySource(list(traces))},
        live=False,
        records_sink=RecordFileSink(out, RunSummary()),
    )
    run_main(flow)
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    return sorted(records, key=lambda r: (r["ts"], r["host"], r["rule"], r["key"]))


def _expected() -> list[dict[str, Any]]:
    lines = (TRACES / "rules_incident.expected.jsonl").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


def test_the_incident_replay_gives_the_expected_alert_records(tmp_path: Path) -> None:
    records = _replay(_config(tmp_path), tmp_path, TRACES / "rules_incident.jsonl")
    expected = _expected()
    assert [(r["rule"], r["host"], r["key"]) for r in records] == [
        (e["rule"], e["host"], e["key"]) for e in expected
    ]
    for record, wanted in zip(records, expected, strict=True):
        for name in TRIGGER_FIELDS:
            assert record[name] == wanted[name], f"{wanted['rule']} {wanted['key']}: {name}"


def test_events_out_of_order_by_a_few_seconds_give_the_same_records(tmp_path: Path) -> None:
    shuffled = _replay(_config(tmp_path), tmp_path, TRACES / "rules_incident_shuffled.jsonl")
    assert [{k: r[k] for k in TRIGGER_FIELDS} for r in shuffled] == [
        {k: e[k] for k in TRIGGER_FIELDS} for e in _expected()
    ]


def test_a_replay_gives_the_same_alert_ids_every_time(tmp_path: Path) -> None:
    config = _config(tmp_path)
    first = _replay(config, tmp_path, TRACES / "rules_incident.jsonl")
    second = _replay(config, tmp_path, TRACES / "rules_incident.jsonl")
    assert [r["id"] for r in first] == [r["id"] for r in second]


def test_the_toml_file_turns_rules_off_and_tunes_them(tmp_path: Path) -> None:
    toml = (
        "[rules.crash]\nenabled = false\n"
        "[rules.error_frequency]\nthreshold = 6\n"
        "[rules.resource_spike]\nthresholds = { cpu_percent = 80 }\n"
    )
    records = _replay(_config(tmp_path, toml), tmp_path, TRACES / "rules_incident.jsonl")
    assert [(r["rule"], r["key"]) for r in records] == [
        ("disk_spike", "sda"),
        ("memory_pressure", "mem_pressure"),
        ("memory_pressure", "mem_pressure"),
    ]


def _detect(items: list[Any], config: Config | None = None) -> list[Any]:
    flow = Dataflow("detect")
    events = op.input("in", flow, TestingSource(items))
    keyed = op.key_on("by_host", events, lambda event: event.host)
    out: list[Any] = []
    op.output("out", detect_triggers("rules", keyed, config or config_with()), TestingSink(out))
    run_main(flow)
    return out


def _shape(items: list[TriggerContext | Watermark]) -> list[tuple[str, float]]:
    return [
        ("watermark", item.ts - T0)
        if isinstance(item, Watermark)
        else (item.trigger.rule, item.trigger.ts - T0)
        for item in items
    ]


def test_each_batch_ends_with_one_watermark_when_event_time_advanced() -> None:
    config = config_with(state={"reorder_seconds": 0.0})
    items = [
        log(0, "app crashed"),
        TestingSource.EOF(),
    ]
    assert _shape(_detect(items, config)) == [("crash", 0.0), ("watermark", 0.0)]


def test_a_batch_that_does_not_advance_event_time_emits_no_watermark() -> None:
    config = config_with(state={"reorder_seconds": 0.0})
    items: list[Any] = [log(10, "hello", level="info"), log(5, "older", level="info")]
    source = TestingSource(items, batch_size=1)
    flow = Dataflow("detect")
    keyed = op.key_on("by_host", op.input("in", flow, source), lambda event: event.host)
    out: list[Any] = []
    op.output("out", detect_triggers("rules", keyed, config), TestingSink(out))
    run_main(flow)
    assert _shape(out) == [("watermark", 10.0)]


def test_triggers_wait_for_the_reorder_bound_and_are_flushed_at_the_end() -> None:
    items = [log(0, "app crashed"), metrics(1, pressure="critical")]
    # The watermark is the host's frontier: the newest event time less reorder_seconds (5 s),
    # so no trigger can come after it with an older time; after the flush, the newest.
    assert _shape(_detect(items)) == [
        ("watermark", -5.0),
        ("watermark", -4.0),
        ("crash", 0.0),
        ("memory_pressure", 1.0),
        ("watermark", 1.0),
    ]


def test_hosts_are_kept_apart() -> None:
    items = [
        metrics(0, host="a", cpu_percent=10.0),
        metrics(5, host="b", cpu_percent=90.0),
        metrics(10, host="a", cpu_percent=20.0),
    ]
    assert [i for i in _detect(items) if isinstance(i, TriggerContext)] == []


class _Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 3, 10, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now


def test_a_quiet_host_has_its_buffer_flushed_then_is_discarded() -> None:
    clock = _Clock()
    logic = _DetectLogic(config_with(), None, clock)
    out, discard = logic.on_batch([log(0, "app crashed")])
    assert [type(item).__name__ for item in out] == ["Watermark"]
    flush_at = logic.notify_at()
    assert flush_at == clock.now + timedelta(seconds=15)
    clock.now = flush_at
    out, discard = logic.on_notify()
    assert _shape(out) == [("crash", 0.0), ("watermark", 0.0)]
    assert discard is False
    idle_at = logic.notify_at()
    assert idle_at is not None and idle_at > clock.now
    clock.now = idle_at
    assert logic.on_notify() == ([], True)


def test_a_notify_before_any_deadline_changes_nothing() -> None:
    clock = _Clock()
    logic = _DetectLogic(config_with(), None, clock)
    logic.on_batch([log(0, "app crashed")])
    deadline = logic.notify_at()
    assert logic.on_notify() == ([], False)
    assert logic.notify_at() == deadline


def test_the_snapshot_resumes_the_same_state() -> None:
    clock = _Clock()
    logic = _DetectLogic(config_with(), None, clock)
    logic.on_batch([log(0, "app crashed")])
    resumed = _DetectLogic(config_with(), logic.snapshot(), clock)
    out, _ = resumed.on_eof()
    assert _shape(out) == [("crash", 0.0), ("watermark", 0.0)]


@pytest.mark.parametrize("name", ["llm_demo.jsonl", "alerts_burst.jsonl"])
def test_the_other_stages_fixtures_fire_what_their_headers_promise(
    name: str, tmp_path: Path
) -> None:
    records = _replay(_config(tmp_path), tmp_path, TRACES / name)
    fired = [(r["rule"], r["severity"], r["host"], r["key"]) for r in records]
    if name == "llm_demo.jsonl":
        assert fired == [
            ("memory_pressure", "critical", "web-1", "mem_pressure"),
            ("crash", "critical", "web-1", "kernel/-"),
        ]
    else:
        crashes = ["nginx", "php-fpm", "postgres", "redis-server", "node"]
        assert fired == [
            *[("crash", "critical", "web-1", f"{p}/-") for p in crashes],
            ("memory_pressure", "warning", "db-1", "mem_pressure"),
            ("crash", "critical", "web-1", "java/-"),
        ]
