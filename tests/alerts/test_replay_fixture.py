"""A replay of the alert fixture trace through the whole flow: fates in the file and the history."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from bytewax.testing import run_main

from flows.cli import main
from flows.config import load_config
from flows.eyes import build_flow
from operators.alerts.history import AlertHistory
from operators.outputs import RecordFileSink, RunSummary
from operators.records import DELIVERIES
from operators.sources.replay import ReplaySource
from tests.conftest import FIXTURES

TRACE = FIXTURES / "traces" / "alerts_burst.jsonl"

# Crash keys by process, and the memory-pressure warning on db-1 (see the trace's header).
EXPECTED = {
    "nginx": "delivered",
    "php-fpm": "delivered",
    "postgres": "dropped",
    "redis-server": "delivered",
    "node": "delivered",
    "java": "queued",
    "db-1": "suppressed",
}


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "eyes.toml"
    path.write_text(
        "[ai]\n"
        'backend = "none"\n'
        "[alerts]\n"
        "rate_limit_per_minute = 2\n"
        "queue_size = 2\n"
        'min_severity = "critical"\n'
        "notify = []\n"
        f'database = "{tmp_path / "history" / "eyes.db"}"\n',
        encoding="utf-8",
    )
    return path


def _subject(record: dict[str, object]) -> str:
    if record["rule"] == "memory_pressure":
        return str(record["host"])
    key = str(record["key"])
    return next((name for name in EXPECTED if name in key), key)


def _fates_in(path: Path) -> dict[str, str]:
    records = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    fates = {_subject(r): r["delivery"] for r in records}
    assert len(fates) == len(records), "one record per trigger"
    return fates


def _fates_in_history(path: Path) -> dict[str, str | None]:
    history = AlertHistory(path, create=False)
    rows, _ = history.find()
    history.close()
    fates = {_subject(row.record): row.delivery for row in rows}
    assert len(fates) == len(rows), "one row per alert"
    return fates


def _replay(tmp_path: Path) -> tuple[Path, RunSummary]:
    """Run the whole flow over the trace; return the --out file and the summary."""
    config = load_config(_config(tmp_path))
    out = tmp_path / "alerts.jsonl"
    summary = RunSummary()
    sink = RecordFileSink(out, summary)
    run_main(build_flow(config, {"replay": ReplaySource([TRACE])}, live=False, records_sink=sink))
    return out, summary


def test_the_whole_flow_gives_every_trigger_one_record(tmp_path: Path) -> None:
    out, summary = _replay(tmp_path)
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert len(records) == summary.triggers
    assert all(r["delivery"] in DELIVERIES for r in records)
    assert len({r["id"] for r in records}) == len(records)


def test_the_fixture_trace_gives_the_expected_fate_record_by_record(tmp_path: Path) -> None:
    out, summary = _replay(tmp_path)
    assert summary.triggers == len(EXPECTED)
    assert _fates_in(out) == EXPECTED
    assert _fates_in_history(tmp_path / "history" / "eyes.db") == EXPECTED


def test_alerts_below_min_severity_are_not_analysed(tmp_path: Path) -> None:
    out, _ = _replay(tmp_path)
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    analysis = {_subject(r): (r["analysis"], r["analysis_reason"]) for r in records}
    skipped = ("skipped", "below [alerts] min_severity = critical: not sent to the model")
    assert analysis.pop("db-1") == skipped
    assert set(analysis.values()) == {("fallback", "[ai] backend = none")}


def test_eyes_replay_writes_the_fates_and_replaying_again_adds_no_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path)
    out = tmp_path / "alerts.jsonl"
    args = ["replay", str(TRACE), "--config", str(config), "--out", str(out)]
    assert main(args) == 0
    assert "4 delivered, 1 suppressed, 1 dropped, 1 queued, 0 failed" in capsys.readouterr().out
    first = out.read_bytes()
    assert main(args) == 0
    assert out.read_bytes() == first
    assert _fates_in(out) == EXPECTED
    database = tmp_path / "history" / "eyes.db"
    assert _fates_in_history(database) == EXPECTED


def test_with_one_event_per_batch_fates_are_decided_at_their_event_times(
    tmp_path: Path,
) -> None:
    # web-1 alone, one event per batch: each crash is released by a later batch, after
    # watermarks that must not run ahead of it (they are the host's reorder frontier).
    lines = TRACE.read_bytes().splitlines(keepends=True)
    trace = tmp_path / "web-1.jsonl"
    trace.write_bytes(b"".join(line for line in lines if b'"db-1"' not in line))
    config = load_config(_config(tmp_path))
    sink = RecordFileSink(tmp_path / "alerts.jsonl", RunSummary())
    source = ReplaySource([trace], batch_size=1)
    run_main(build_flow(config, {"replay": source}, live=False, records_sink=sink))
    history = AlertHistory(tmp_path / "history" / "eyes.db", create=False)
    rows, _ = history.find()
    history.close()
    decided = {_subject(row.record): row.decided_at - row.ts for row in rows}
    assert decided == {
        "nginx": 0.0,
        "php-fpm": 0.0,
        "postgres": 2.0,  # dropped when node arrived, at 10:00:04
        "redis-server": 57.0,  # at 10:01:00, when the two deliveries left the window
        "node": 57.0,  # at 10:01:01
        "java": 30.0,  # still waiting at the end, 10:01:40
    }


def test_the_fixture_trace_decides_each_fate_at_the_time_its_header_gives(
    tmp_path: Path,
) -> None:
    # db-1's watermark moves event time past web-1's crashes before they are released; each
    # is still decided at its own time, as the header's timeline says.
    _replay(tmp_path)
    history = AlertHistory(tmp_path / "history" / "eyes.db", create=False)
    rows, _ = history.find()
    history.close()
    start = min(row.ts for row in rows)  # 10:00:00
    decided = {_subject(row.record): row.decided_at - start for row in rows}
    assert decided == {
        "nginx": 0.0,
        "php-fpm": 1.0,
        "postgres": 4.0,
        "redis-server": 60.0,
        "node": 61.0,
        "db-1": 5.0,
        "java": 100.0,  # queued when the trace ends at 10:01:40
    }
