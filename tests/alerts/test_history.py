"""The SQLite history on a real file: schema, WAL, file mode, idempotent writes, lifecycle."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import bytewax.operators as op
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSource, run_main

from operators.alerts.history import SCHEMA_VERSION, AlertHistory, HistoryError, HistorySink
from operators.records import AlertRecord
from tests.alerts.factory import T0, alert, insight


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_history_is_private_in_wal_mode_with_a_schema_version(tmp_path: Path) -> None:
    path = tmp_path / "data" / "eyes" / "eyes.db"
    history = AlertHistory(path)
    history.record([AlertRecord(alert(), "delivered")])
    assert _mode(path) == 0o600
    assert _mode(path.parent) == 0o700
    for side in ("eyes.db-wal", "eyes.db-shm"):
        assert _mode(path.parent / side) == 0o600
    history.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_the_same_records_written_twice_give_one_row_each(tmp_path: Path) -> None:
    history = AlertHistory(tmp_path / "eyes.db")
    records = [AlertRecord(alert(f"p{i}/-", ts=T0 + i), "delivered") for i in range(3)]
    history.record(records)
    history.record(records)
    rows, total = history.find()
    assert total == 3
    assert sorted(r.id for r in rows) == sorted(r.id for r in records)
    history.close()


def test_a_row_carries_its_lifecycle(tmp_path: Path) -> None:
    history = AlertHistory(tmp_path / "eyes.db")
    analysed = alert(ts=T0, with_insight=insight(), analysis="analyzed")
    history.admit(analysed, at=T0 + 5)
    pending = history.get(analysed.context.id)
    assert pending is not None
    assert (pending.delivery, pending.admitted_at, pending.analysed_at) == (None, T0, T0 + 5)
    record = AlertRecord(analysed, "delivered", "notified via stdout")
    history.record([record], decided_at={record.id: T0 + 65})
    history.resolve(record.id, at=T0 + 100)
    history.record([record])  # a replayed record after a resume
    row = history.get(record.id)
    assert row is not None
    assert (row.delivery, row.delivery_reason) == ("delivered", "notified via stdout")
    assert (row.analysed_at, row.decided_at, row.resolved_at) == (T0 + 5, T0 + 65, T0 + 100)
    assert row.record == record.to_dict()
    assert row.record["insight"]["summary"] == "nginx crashed in libc"
    history.close()


def test_an_admission_never_overwrites_a_final_fate(tmp_path: Path) -> None:
    history = AlertHistory(tmp_path / "eyes.db")
    analysed = alert()
    history.record([AlertRecord(analysed, "dropped", "queue full")])
    history.admit(analysed, at=T0)
    row = history.get(analysed.context.id)
    assert row is not None
    assert row.delivery == "dropped"
    history.close()


def test_resolving_twice_keeps_the_first_time(tmp_path: Path) -> None:
    history = AlertHistory(tmp_path / "eyes.db")
    record = AlertRecord(alert(), "delivered")
    history.record([record])
    history.resolve(record.id, at=T0 + 1)
    row = history.resolve(record.id, at=T0 + 2)
    assert row is not None
    assert row.resolved_at == T0 + 1
    assert history.resolve("nope", at=T0) is None
    history.close()


def test_find_filters_and_orders_newest_first(tmp_path: Path) -> None:
    history = AlertHistory(tmp_path / "eyes.db")
    history.record(
        [
            AlertRecord(alert("a/-", ts=T0, severity="warning"), "delivered"),
            AlertRecord(alert("b/-", ts=T0 + 10, rule="error_frequency"), "delivered"),
            AlertRecord(alert("c/-", ts=T0 + 20), "suppressed"),
        ]
    )
    rows, _ = history.find()
    assert [r.key for r in rows] == ["c/-", "b/-", "a/-"]
    history.resolve(rows[0].id, at=T0 + 30)
    assert [r.key for r in history.find(since=T0 + 5)[0]] == ["c/-", "b/-"]
    assert [r.key for r in history.find(rule="error_frequency")[0]] == ["b/-"]
    assert [r.key for r in history.find(severity="warning")[0]] == ["a/-"]
    assert [r.key for r in history.find(open_only=True)[0]] == ["b/-", "a/-"]
    assert history.find(limit=1) == (history.find()[0][:1], 3)
    history.close()


def test_readers_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "eyes.db"
    writer = AlertHistory(path)
    writer.record([AlertRecord(alert("a/-"), "delivered")])
    held = sqlite3.connect(path, isolation_level=None)
    held.execute("BEGIN IMMEDIATE")
    held.execute("UPDATE alerts SET reason = 'changing'")
    reader = AlertHistory(path, create=False, busy_timeout=0.1)
    rows, _ = reader.find()
    assert [r.reason for r in rows] == ["a/- logged 'segfault' (1 line in 60s)"]
    held.execute("ROLLBACK")
    for db in (held, reader, writer):
        db.close()


def test_a_history_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "eyes.db"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(HistoryError, match=r"schema version 99, newer than this Eyes reads \(1\)"):
        AlertHistory(path)


def test_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "eyes.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(
        HistoryError, match=r"eyes.db: cannot open the alert history: .*not a database"
    ):
        AlertHistory(path)


def test_a_missing_history_is_not_created_for_reading(tmp_path: Path) -> None:
    with pytest.raises(HistoryError, match=r"eyes.db: no alert history here"):
        AlertHistory(tmp_path / "eyes.db", create=False)
    assert not (tmp_path / "eyes.db").exists()


def test_a_history_that_cannot_be_created_says_where(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HistoryError, match=r"file/eyes.db: cannot create the alert history"):
        AlertHistory(blocker / "eyes.db")


def test_a_locked_write_fails_with_the_file_named(tmp_path: Path) -> None:
    path = tmp_path / "eyes.db"
    history = AlertHistory(path, busy_timeout=0.05)
    held = sqlite3.connect(path, isolation_level=None)
    held.execute("BEGIN IMMEDIATE")
    with pytest.raises(
        HistoryError, match=r"eyes.db: cannot write 1 alert row\(s\): database is locked"
    ):
        history.record([AlertRecord(alert(), "delivered")])
    held.execute("ROLLBACK")
    held.close()
    history.close()


def test_the_sink_keeps_a_failed_batch_and_writes_it_with_the_next(tmp_path: Path) -> None:
    path = tmp_path / "eyes.db"
    part = HistorySink(path, busy_timeout=0.05).build("history", 0, 1)
    held = sqlite3.connect(path, isolation_level=None)
    held.execute("BEGIN IMMEDIATE")
    part.write_batch([AlertRecord(alert("a/-"), "delivered")])
    held.execute("ROLLBACK")
    held.close()
    part.write_batch([AlertRecord(alert("b/-"), "suppressed")])
    part.close()
    history = AlertHistory(path)
    assert sorted(r.key for r in history.find()[0]) == ["a/-", "b/-"]
    history.close()


def test_the_sink_writes_records_from_a_dataflow(tmp_path: Path) -> None:
    path = tmp_path / "eyes.db"
    records = [AlertRecord(alert(f"p{i}/-", ts=T0 + i), "delivered") for i in range(5)]
    flow = Dataflow("history_test")
    stream = op.input("in", flow, TestingSource(records + records))  # at-least-once replay
    op.output("history", stream, HistorySink(path))
    run_main(flow)
    history = AlertHistory(path)
    assert history.find()[1] == 5
    history.close()
