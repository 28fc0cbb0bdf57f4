"""The SQLite alert history: one row per alert, with its lifecycle, readable while the flow runs.

In: analysed triggers as they reach the alert stage (`admit`), final alert records (`record`),
and `resolve` from the command line. Out: `AlertRow`s for `eyes alerts`. `HistorySink` is the
dataflow's output that writes every final record.

Schema (version 1, kept in `PRAGMA user_version`): one table `alerts`, keyed by the alert id.

| column | meaning |
|---|---|
| `id` | the stable alert id (`Trigger.id`) |
| `rule`, `severity`, `host`, `key`, `reason`, `analysis` | as in the alert record |
| `ts` | event time the rule fired (Unix seconds) |
| `delivery`, `delivery_reason` | the fate; NULL while the alert stage still holds the alert |
| `record` | the whole alert record as JSON (evidence, insight) |
| `admitted_at` | when the trigger was admitted: the rule's event time, `ts` |
| `analysed_at` | when the analysed trigger reached the alert stage (the stage's clock) |
| `decided_at` | when the stage decided the fate (the stage's clock) |
| `resolved_at` | when someone ran `eyes alerts resolve` (wall time), else NULL |
| `updated_at` | wall time of the last write |

The stage's clock is event time in a replay and wall time in a live run.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from typing_extensions import override

from operators.errors import EyesError
from operators.records import AlertRecord, AnalysedTrigger

__all__ = ["SCHEMA_VERSION", "AlertHistory", "AlertRow", "HistoryError", "HistorySink"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
_BACKLOG_LIMIT = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    host TEXT NOT NULL,
    key TEXT NOT NULL,
    ts REAL NOT NULL,
    reason TEXT NOT NULL,
    analysis TEXT NOT NULL,
    delivery TEXT,
    delivery_reason TEXT NOT NULL DEFAULT '',
    record TEXT NOT NULL,
    admitted_at REAL NOT NULL,
    analysed_at REAL,
    decided_at REAL,
    resolved_at REAL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_by_ts ON alerts (ts);
"""

_COLUMNS = (
    "id, rule, severity, host, key, ts, reason, analysis, delivery, delivery_reason, record, "
    "admitted_at, analysed_at, decided_at, resolved_at, updated_at"
)

_COLUMN_NAMES = tuple(name.strip() for name in _COLUMNS.split(","))

_INSERT = """
INSERT INTO alerts (id, rule, severity, host, key, ts, reason, analysis, delivery,
                    delivery_reason, record, admitted_at, analysed_at, decided_at, updated_at)
VALUES (:id, :rule, :severity, :host, :key, :ts, :reason, :analysis, :delivery,
        :delivery_reason, :record, :admitted_at, :analysed_at, :decided_at, :updated_at)
"""

# A final record overwrites the content and the fate (a resumed flow may decide again), keeps
# the first `analysed_at`, takes a new `decided_at` when one is given, and never touches
# `resolved_at`.
_UPSERT_RECORD = (
    _INSERT
    + """
ON CONFLICT (id) DO UPDATE SET
    rule = excluded.rule, severity = excluded.severity, host = excluded.host,
    key = excluded.key, ts = excluded.ts, reason = excluded.reason,
    analysis = excluded.analysis, delivery = excluded.delivery,
    delivery_reason = excluded.delivery_reason, record = excluded.record,
    analysed_at = COALESCE(alerts.analysed_at, excluded.analysed_at),
    decided_at = COALESCE(excluded.decided_at, alerts.decided_at),
    updated_at = excluded.updated_at
"""
)

# An admission never changes a row that exists: it may already hold the final fate.
_UPSERT_ADMIT = _INSERT + "ON CONFLICT (id) DO NOTHING"


class HistoryError(EyesError):
    """The alert history cannot be opened, read or written; the message names the file."""


@dataclass(frozen=True, slots=True)
class AlertRow:
    """One alert as the history holds it; `delivery` is None while the stage still holds it."""

    id: str
    rule: str
    severity: str
    host: str
    key: str
    ts: float
    reason: str
    analysis: str
    delivery: str | None
    delivery_reason: str
    record: dict[str, Any]
    admitted_at: float
    analysed_at: float | None
    decided_at: float | None
    resolved_at: float | None
    updated_at: float


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only, and its folder (0700) if needed."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, mode=0o700, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)
    os.chmod(path, 0o600)


def _row(values: Sequence[Any]) -> AlertRow:
    data = dict(zip(_COLUMN_NAMES, values, strict=True))
    data["record"] = orjson.loads(data["record"])
    return AlertRow(**data)


class AlertHistory:
    """The alert history in one SQLite file, in WAL mode so readers never wait for the writer.

    In: `admit(analysed, at=)` when a trigger reaches the alert stage, `record(records)` for
    final records, `resolve(id, at=)`. Out: `get(id)`, `find(...)`.

    Never: more than one row per alert id (every write is an upsert by id); a final fate
    overwritten by a later admission; `resolved_at` cleared by a write. A new file is created
    with mode 0600, its folder with 0700. Not guaranteed: durability of the last transactions
    on power loss (`synchronous = NORMAL`). Delivery: writes are idempotent by alert id, so the
    at-least-once replay of records after a resume leaves one row per alert.

    Args:
        path: the database file.
        create: create the file when it is missing (False: `HistoryError` instead).
        busy_timeout: seconds to wait for another writer's lock.
        clock: wall-clock seconds, for `updated_at`.

    Raises:
        HistoryError: the file cannot be created or opened, is not a database, or was written
            by a newer schema.
    """

    def __init__(
        self,
        path: Path,
        *,
        create: bool = True,
        busy_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        try:
            if create:
                _create_private(self.path)
            elif not self.path.is_file():
                msg = f"{self.path}: no alert history here"
                raise HistoryError(msg)
            self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
        except OSError as exc:
            msg = f"{self.path}: cannot create the alert history: {exc.strerror or exc}"
            raise HistoryError(msg) from exc
        except sqlite3.Error as exc:
            msg = f"{self.path}: cannot open the alert history: {exc}"
            raise HistoryError(msg) from exc
        try:
            self._prepare()
        except sqlite3.Error as exc:
            self._db.close()
            msg = f"{self.path}: cannot open the alert history: {exc}"
            raise HistoryError(msg) from exc

    def _prepare(self) -> None:
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version > SCHEMA_VERSION:
            self._db.close()
            msg = (
                f"{self.path}: the alert history has schema version {version}, newer than "
                f"this Eyes reads ({SCHEMA_VERSION})"
            )
            raise HistoryError(msg)
        with self._transaction():
            self._db.executescript("BEGIN IMMEDIATE;" + _SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)

    def admit(self, analysed: AnalysedTrigger, *, at: float) -> None:
        """Add the row of an alert the stage now holds (no fate yet); keep an existing row.

        Raises:
            HistoryError: the write failed (locked past the busy timeout, disk full, ...).
        """
        pending = AlertRecord(analysed, "delivered")  # content only: the fate stays NULL
        self._write(_UPSERT_ADMIT, [self._params(pending, delivery=None, analysed_at=at)])

    def record(
        self, records: Iterable[AlertRecord], *, decided_at: Mapping[str, float] | None = None
    ) -> None:
        """Write final records in one transaction; `decided_at` maps alert ids to fate times.

        Raises:
            HistoryError: the write failed (locked past the busy timeout, disk full, ...).
        """
        stamps = decided_at or {}
        rows = [self._params(r, delivery=r.delivery, decided_at=stamps.get(r.id)) for r in records]
        if rows:
            self._write(_UPSERT_RECORD, rows)

    def _params(
        self,
        record: AlertRecord,
        *,
        delivery: str | None,
        analysed_at: float | None = None,
        decided_at: float | None = None,
    ) -> dict[str, Any]:
        trigger = record.analysed.context.trigger
        data = record.to_dict()
        data["delivery"] = delivery
        if delivery is None:
            data["delivery_reason"] = ""
        return {
            "id": trigger.id,
            "rule": trigger.rule,
            "severity": trigger.severity,
            "host": trigger.host,
            "key": trigger.key,
            "ts": trigger.ts,
            "reason": trigger.reason,
            "analysis": record.analysed.analysis,
            "delivery": delivery,
            "delivery_reason": data["delivery_reason"],
            "record": orjson.dumps(data).decode("utf-8"),
            "admitted_at": trigger.ts,
            "analysed_at": analysed_at,
            "decided_at": decided_at,
            "updated_at": self._clock(),
        }

    def _write(self, sql: str, rows: list[dict[str, Any]]) -> None:
        try:
            with self._transaction():
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(sql, rows)
        except sqlite3.Error as exc:
            msg = f"{self.path}: cannot write {len(rows)} alert row(s): {exc}"
            raise HistoryError(msg) from exc

    def get(self, alert_id: str) -> AlertRow | None:
        """Return the alert `alert_id`, or None."""
        return self._one(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id,))

    def _one(self, sql: str, params: Sequence[Any]) -> AlertRow | None:
        try:
            found = self._db.execute(sql, params).fetchone()
        except sqlite3.Error as exc:
            msg = f"{self.path}: cannot read the alert history: {exc}"
            raise HistoryError(msg) from exc
        return None if found is None else _row(found)

    def find(
        self,
        *,
        since: float | None = None,
        rule: str | None = None,
        severity: str | None = None,
        open_only: bool = False,
        limit: int | None = None,
    ) -> tuple[list[AlertRow], int]:
        """Return the matching alerts, newest first, at most `limit`; and how many match.

        Args:
            since: only alerts whose event time is at or after this (Unix seconds).
            rule: only this rule.
            severity: only this severity.
            open_only: only alerts not resolved.
            limit: at most this many rows (None: all).
        """
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where.append("ts >= ?")
            params.append(since)
        if rule is not None:
            where.append("rule = ?")
            params.append(rule)
        if severity is not None:
            where.append("severity = ?")
            params.append(severity)
        if open_only:
            where.append("resolved_at IS NULL")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        try:
            total = self._db.execute(f"SELECT count(*) FROM alerts{clause}", params).fetchone()[0]
            sql = f"SELECT {_COLUMNS} FROM alerts{clause} ORDER BY ts DESC, id"
            if limit is not None:
                sql += f" LIMIT {int(limit)}"
            rows = [_row(found) for found in self._db.execute(sql, params)]
        except sqlite3.Error as exc:
            msg = f"{self.path}: cannot read the alert history: {exc}"
            raise HistoryError(msg) from exc
        return rows, total

    def resolve(self, alert_id: str, *, at: float) -> AlertRow | None:
        """Mark the alert resolved at `at` unless it already is; return its row, or None.

        Raises:
            HistoryError: the write failed.
        """
        sql = (
            "UPDATE alerts SET resolved_at = ?, updated_at = ? WHERE id = ? AND resolved_at IS NULL"
        )
        try:
            with self._transaction():
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute(sql, (at, self._clock(), alert_id))
        except sqlite3.Error as exc:
            msg = f"{self.path}: cannot resolve alert {alert_id!r}: {exc}"
            raise HistoryError(msg) from exc
        return self.get(alert_id)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()


class _Transaction:
    """Commit on success, roll back on error, for a connection in autocommit mode."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        if not self._db.in_transaction:
            return
        if kind is None:
            self._db.execute("COMMIT")
        else:
            self._db.execute("ROLLBACK")


class _HistoryPartition(StatelessSinkPartition[AlertRecord]):
    """Writes each batch in one transaction; a failed batch waits (bounded) for the next one."""

    def __init__(self, history: AlertHistory) -> None:
        self._history = history
        self._backlog: list[AlertRecord] = []
        self.dropped: Counter[str] = Counter()

    def _offer(self, records: Iterable[AlertRecord]) -> None:
        for record in records:
            if len(self._backlog) >= _BACKLOG_LIMIT:
                self.dropped["backlog_full"] += 1
                if self.dropped["backlog_full"] == 1:
                    log.error(
                        "%s: history backlog full (%d records); newer records are not written",
                        self._history.path,
                        _BACKLOG_LIMIT,
                    )
                continue
            self._backlog.append(record)

    def _flush(self) -> bool:
        if not self._backlog:
            return True
        try:
            self._history.record(self._backlog)
        except HistoryError as exc:
            self.dropped["write_failed"] += 1
            log.warning("%s; %d record(s) kept to retry", exc, len(self._backlog))
            return False
        self._backlog.clear()
        return True

    @override
    def write_batch(self, items: list[AlertRecord]) -> None:
        self._offer(items)
        self._flush()

    @override
    def close(self) -> None:
        if not self._flush():
            log.error(
                "%s: %d alert record(s) could not be written to the history",
                self._history.path,
                len(self._backlog),
            )
        self._history.close()


class HistorySink(DynamicSink[AlertRecord]):
    """Writes every final alert record to the SQLite history at `path`.

    In: `AlertRecord`s. Out: one row per alert id (see `AlertHistory`). A batch that cannot be
    written (the database locked past the busy timeout, a full disk) is logged and kept, up to
    10,000 records, to retry with the next batch and at close.

    Never: two rows for one alert; an exception out of `write_batch` for a failed write.
    Not guaranteed: records kept for retry survive a crash or SIGKILL; `close` runs on EOF and
    Ctrl-C only. Delivery: at-least-once; writes are idempotent by alert id.

    Raises:
        HistoryError: from `build`, when the database cannot be opened (the flow does not start).
    """

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self.busy_timeout = busy_timeout

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _HistoryPartition:
        return _HistoryPartition(AlertHistory(self.path, busy_timeout=self.busy_timeout))
