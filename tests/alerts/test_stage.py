"""The alert stage wired through Bytewax: fates on event time, the live timer, resume, history."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.recovery import RecoveryConfig, init_db_dir
from bytewax.testing import TestingSink, TestingSource, run_main
from typing_extensions import override

from flows.config import AlertsConfig
from operators.alerts.history import AlertHistory
from operators.alerts.notify import NotifyError, StdoutNotifier
from operators.alerts.stage import alert_stage
from operators.errors import ConfigError
from operators.records import AlertRecord
from operators.triggers import Watermark
from tests.alerts.factory import T0, alert, insight


class _Recorder:
    """A notifier that remembers the keys it was asked to send."""

    name = "recorder"

    def __init__(self) -> None:
        self.sent: list[str] = []

    def send(self, record: AlertRecord) -> None:
        self.sent.append(record.analysed.context.trigger.key)

    def close(self) -> None:
        return None


class _Down(_Recorder):
    name = "pager"

    def send(self, record: AlertRecord) -> None:
        raise NotifyError("pager: HTTP 503 (3 attempt(s) within 10s)")


def _run(
    items: list[object],
    alerts: AlertsConfig,
    database: Path,
    *,
    live: bool = False,
    notifiers: list[object] | None = None,
    recovery: RecoveryConfig | None = None,
    **kwargs: object,
) -> list[AlertRecord]:
    flow = Dataflow("alert_stage_test")
    stream = op.input("in", flow, TestingSource(items))
    records = alert_stage(
        "alert_policy",
        stream,
        alerts,
        live=live,
        database=database,
        notifiers=[] if notifiers is None else notifiers,
        **kwargs,
    )
    out: list[AlertRecord] = []
    op.output("out", records, TestingSink(out))
    if recovery is None:
        run_main(flow)
    else:
        run_main(flow, epoch_interval=timedelta(0), recovery_config=recovery)
    return out


def _fates(records: list[AlertRecord]) -> list[tuple[str, str]]:
    return [(r.analysed.context.trigger.key, r.delivery) for r in records]


_TRACE = [
    alert("a1", severity="critical", ts=T0),
    alert("i1", severity="info", ts=T0 + 1),
    alert("a2", severity="warning", ts=T0 + 2),
    alert("a3", severity="warning", ts=T0 + 3),
    alert("a4", severity="critical", ts=T0 + 4),
    alert("a5", severity="warning", ts=T0 + 5),
    Watermark(T0 + 59),
    Watermark(T0 + 61),
    Watermark(T0 + 200),
    alert("a6", severity="critical", ts=T0 + 210),
    alert("a7", severity="critical", ts=T0 + 211),
    alert("a8", severity="critical", ts=T0 + 212),
    Watermark(T0 + 230),
]
_EXPECTED = [
    ("a1", "delivered"),
    ("i1", "suppressed"),
    ("a2", "delivered"),
    ("a3", "dropped"),
    ("a4", "delivered"),
    ("a5", "delivered"),
    ("a6", "delivered"),
    ("a7", "delivered"),
    ("a8", "queued"),
]
_LIMITS = AlertsConfig(rate_limit_per_minute=2, queue_size=2, min_severity="warning", notify=[])


def _no_wall_clock() -> float:
    raise AssertionError("a replay must not read the wall clock")


def test_a_replay_decides_every_fate_on_event_time(tmp_path: Path) -> None:
    recorder = _Recorder()
    db = tmp_path / "eyes.db"
    out = _run(list(_TRACE), _LIMITS, db, notifiers=[recorder], clock=_no_wall_clock)
    assert _fates(out) == _EXPECTED
    assert recorder.sent == ["a1", "a2", "a4", "a5", "a6", "a7"]
    reasons = {r.analysed.context.trigger.key: r.delivery_reason for r in out}
    assert reasons["a1"] == "notified via recorder"
    assert reasons["a4"] == "notified via recorder; waited 56.0s for the rate limit (2 per 60s)"
    assert reasons["i1"] == "severity info is below min_severity warning"
    assert "queue was full" in reasons["a3"]
    assert reasons["a8"].startswith("still waiting for the rate limit (2 per 60s)")

    history = AlertHistory(db)
    rows = {row.key: row for row in history.find()[0]}
    history.close()
    assert {key: row.delivery for key, row in rows.items()} == dict(_EXPECTED)
    assert (rows["a4"].admitted_at, rows["a4"].analysed_at, rows["a4"].decided_at) == (
        T0 + 4,
        T0 + 4,
        T0 + 60,
    )
    assert rows["a5"].decided_at == T0 + 62
    assert rows["a8"].decided_at == T0 + 230


def test_a_replay_writes_the_same_records_in_the_same_order_every_time(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    first = _run(list(_TRACE), _LIMITS, tmp_path / "1.db", notifiers=[StdoutNotifier()])
    first_lines = capsys.readouterr().out
    second = _run(list(_TRACE), _LIMITS, tmp_path / "2.db", notifiers=[StdoutNotifier()])
    assert [r.to_dict() for r in first] == [r.to_dict() for r in second]
    assert capsys.readouterr().out == first_lines
    assert first_lines.count("\n") == 6


def test_an_alert_whose_every_notifier_fails_is_failed_with_the_reason(tmp_path: Path) -> None:
    items = [alert("a1"), alert("a2", ts=T0 + 1)]
    alerts = AlertsConfig(rate_limit_per_minute=1, queue_size=1)
    out = _run(items, alerts, tmp_path / "eyes.db", notifiers=[_Down()])
    assert _fates(out) == [("a1", "failed"), ("a2", "queued")]
    assert out[0].delivery_reason == (
        "every notifier failed: pager: pager: HTTP 503 (3 attempt(s) within 10s)"
    )


def test_without_notifiers_a_delivered_alert_is_recorded_only(tmp_path: Path) -> None:
    out = _run([alert("a1")], AlertsConfig(notify=[]), tmp_path / "eyes.db", notifiers=None)
    assert _fates(out) == [("a1", "delivered")]
    assert out[0].delivery_reason == "no notifier configured: recorded in the history only"


def test_min_severity_reads_the_rules_severity_not_the_insights(tmp_path: Path) -> None:
    calm = alert("a1", severity="critical", with_insight=insight("info"), analysis="analyzed")
    out = _run([calm], AlertsConfig(min_severity="critical"), tmp_path / "eyes.db")
    assert _fates(out) == [("a1", "delivered")]


class _TimedPartition(StatelessSinkPartition[AlertRecord]):
    def __init__(self, out: list[tuple[float, AlertRecord]]) -> None:
        self._out = out

    @override
    def write_batch(self, items: list[AlertRecord]) -> None:
        now = time.monotonic()
        self._out.extend((now, item) for item in items)


class _TimedSink(DynamicSink[AlertRecord]):
    """Remembers when each record came out of the flow."""

    def __init__(self, out: list[tuple[float, AlertRecord]]) -> None:
        self._out = out

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _TimedPartition:
        return _TimedPartition(self._out)


def test_a_live_timer_drains_the_queue_with_no_event(tmp_path: Path) -> None:
    db = tmp_path / "eyes.db"
    items: list[object] = [alert("a1"), alert("a2", ts=T0 + 1), alert("a3", ts=T0 + 2)]
    items.append(TestingSource.PAUSE(timedelta(seconds=2)))  # no event, no EOF meanwhile
    alerts = AlertsConfig(rate_limit_per_minute=1, queue_size=5, notify=[])
    flow = Dataflow("alert_stage_test")
    stream = op.input("in", flow, TestingSource(items))
    records = alert_stage("alert_policy", stream, alerts, live=True, database=db, period=0.2)
    out: list[tuple[float, AlertRecord]] = []
    op.output("out", records, _TimedSink(out))
    run_main(flow)
    ended = time.monotonic()
    assert _fates([r for _, r in out]) == [
        ("a1", "delivered"),
        ("a2", "delivered"),
        ("a3", "delivered"),
    ]
    # The timer delivered them during the pause, a slot apart, not the end of the input.
    assert out[2][0] < ended - 1.0
    assert out[2][0] - out[0][0] >= 0.3
    history = AlertHistory(db)
    decided = sorted(row.decided_at or 0 for row in history.find()[0])
    history.close()
    assert decided[1] >= decided[0] + 0.2
    assert decided[2] >= decided[1] + 0.2


def test_a_resumed_flow_still_delivers_the_queue(tmp_path: Path) -> None:
    recovery_dir = tmp_path / "recovery"
    recovery_dir.mkdir()
    init_db_dir(recovery_dir, 1)
    recovery = RecoveryConfig(str(recovery_dir))
    items = [
        alert("a1"),
        alert("a2", ts=T0 + 1),
        alert("a3", ts=T0 + 2),
        TestingSource.ABORT(),
        Watermark(T0 + 200),
    ]
    alerts = AlertsConfig(rate_limit_per_minute=1, queue_size=5, notify=[])
    db = tmp_path / "eyes.db"
    before = _run(items, alerts, db, recovery=recovery)
    assert _fates(before) == [("a1", "delivered")]
    after = _run(items, alerts, db, recovery=recovery)
    assert _fates(after) == [("a2", "delivered"), ("a3", "delivered")]
    history = AlertHistory(db)
    rows = {row.key: row for row in history.find()[0]}
    history.close()
    assert [rows[k].decided_at for k in ("a1", "a2", "a3")] == [T0, T0 + 60, T0 + 120]


def test_a_webhook_without_an_address_stops_the_flow_from_being_built(tmp_path: Path) -> None:
    flow = Dataflow("alert_stage_test")
    stream = op.input("in", flow, TestingSource([alert()]))
    alerts = AlertsConfig(notify=["webhook"])
    with pytest.raises(ConfigError, match=r"notify includes 'webhook' but webhook_url is empty"):
        alert_stage("alert_policy", stream, alerts, live=False, database=tmp_path / "eyes.db")
