"""Reading the alert history for `eyes alerts`: durations, the list table, one alert in full.

In: the history's path and the command's options. Out: text for the terminal (the command
line prints it), or an `EyesError` subclass that says what was wrong with the request.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import orjson

from operators.alerts.history import AlertHistory, AlertRow
from operators.errors import EyesError

__all__ = [
    "LIST_LIMIT",
    "DurationError",
    "UnknownAlertError",
    "format_row_json",
    "format_show",
    "format_table",
    "list_alerts",
    "parse_duration",
    "resolve_alert",
    "show_alert",
]

LIST_LIMIT = 500
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_SHORT_REASON = 48


class DurationError(EyesError):
    """A `--since` duration that is not a number with a unit; exits 2 like any bad argument."""

    exit_code = 2


class UnknownAlertError(EyesError):
    """No alert with the id asked for is in the history."""


def parse_duration(text: str) -> float:
    """Return seconds from `30s`, `15m`, `2h`, `7d`, `1w`, or a sum like `1h30m`.

    Raises:
        DurationError: anything else, or a duration of zero.
    """
    cleaned = text.strip().lower()
    parts = _DURATION.findall(cleaned)
    if not cleaned or "".join(f"{n}{u}" for n, u in parts) != cleaned:
        msg = f"--since: not a duration {text!r}; use a number and a unit, e.g. 30s, 15m, 2h, 7d"
        raise DurationError(msg)
    seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        msg = f"--since: the duration must be more than 0, got {text!r}"
        raise DurationError(msg)
    return seconds


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _short(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "\u2026"


def _delivery(row: AlertRow) -> str:
    return row.delivery or "pending"


def format_table(rows: Sequence[AlertRow], total: int | None = None) -> str:
    """Return the rows as an aligned table, newest first, with a line for rows left out."""
    if not rows:
        return "no alerts match\n"
    header = ("ID", "TIME (UTC)", "SEVERITY", "RULE", "HOST", "KEY", "DELIVERY", "RESOLVED")
    body = [
        (
            row.id,
            _when(row.ts),
            row.severity,
            row.rule,
            _short(row.host, 24),
            _short(row.key, 32),
            _delivery(row),
            "yes" if row.resolved_at is not None else "no",
        )
        for row in rows
    ]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(header)]

    def line(cells: Sequence[str], reason: str) -> str:
        padded = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
        return f"{padded}  {reason}".rstrip()

    lines = [line(header, "REASON")]
    lines.extend(
        line(r, _short(row.reason, _SHORT_REASON)) for r, row in zip(body, rows, strict=True)
    )
    if total is not None and total > len(rows):
        lines.append(f"... {total - len(rows)} older alerts not shown; narrow with --since")
    return "\n".join(lines) + "\n"


def format_row_json(row: AlertRow) -> str:
    """Return the alert record of the row plus its lifecycle times, as one JSON line."""
    out: dict[str, Any] = dict(row.record)
    out["delivery"] = row.delivery
    out["delivery_reason"] = row.delivery_reason
    out["lifecycle"] = {
        "admitted_at": _iso(row.admitted_at),
        "analysed_at": _iso(row.analysed_at),
        "decided_at": _iso(row.decided_at),
        "resolved_at": _iso(row.resolved_at),
    }
    return orjson.dumps(out).decode("utf-8") + "\n"


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, tz=timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _wrap(label: str, text: str) -> list[str]:
    lines = textwrap.wrap(text, width=96, subsequent_indent=" " * 17) or [""]
    lines[0] = f"{label:<16} {lines[0]}"
    return lines


def format_show(row: AlertRow) -> str:
    """Return one alert in full: what fired and why, the evidence, the insight, its lifecycle."""
    record = row.record
    out = [
        f"alert {row.id}",
        *_wrap("rule", f"{row.rule} ({row.severity}) on {row.host}, key {row.key}"),
        *_wrap(
            "time",
            f"{_when(row.ts)}  window {record.get('window_start')} .. {record.get('window_end')}",
        ),
        *_wrap("reason", row.reason),
        *_wrap("delivery", f"{_delivery(row)}: {row.delivery_reason or '-'}"),
        *_wrap(
            "lifecycle",
            f"admitted {_when(row.admitted_at)}, analysed {_when(row.analysed_at)}, "
            f"decided {_when(row.decided_at)}, resolved {_when(row.resolved_at)}",
        ),
        "evidence",
    ]
    evidence = record.get("evidence") or []
    out.extend(f"  {item.get('ts', '?')}  {item.get('text', '')}" for item in evidence)
    if not evidence:
        out.append("  (none)")
    insight = record.get("insight")
    analysis = record.get("analysis", "?")
    why = record.get("analysis_reason")
    out.append(f"insight ({analysis}: {why})" if why else f"insight ({analysis})")
    if not insight:
        out.append("  (none)")
    else:
        out.extend(
            "  " + line
            for line in [
                *_wrap("summary", str(insight.get("summary", ""))),
                *_wrap("root cause", str(insight.get("root_cause", ""))),
                *_wrap(
                    "severity",
                    f"{insight.get('severity')} (confidence {insight.get('confidence')})",
                ),
                *_wrap("by", f"{insight.get('backend')} {insight.get('model')}".strip()),
            ]
        )
        for item in insight.get("evidence") or []:
            out.append(f"  - evidence: {item}")
        for item in insight.get("recommendations") or []:
            out.append(f"  - recommended: {item}")
    return "\n".join(out) + "\n"


def list_alerts(
    path: Path,
    *,
    now: float,
    since: str | None = None,
    rule: str | None = None,
    severity: str | None = None,
    open_only: bool = False,
    as_json: bool = False,
) -> str:
    """Return the `eyes alerts list` output for the history at `path`.

    Raises:
        DurationError: `since` is not a duration.
        HistoryError: the history cannot be read.
    """
    cutoff = None if since is None else now - parse_duration(since)
    if not path.is_file():
        return "" if as_json else f"no alerts recorded yet (no history at {path})\n"
    history = AlertHistory(path, create=False)
    try:
        rows, total = history.find(
            since=cutoff,
            rule=rule,
            severity=severity,
            open_only=open_only,
            limit=None if as_json else LIST_LIMIT,
        )
    finally:
        history.close()
    if as_json:
        return "".join(format_row_json(row) for row in rows)
    return format_table(rows, total)


def _unknown(alert_id: str, path: Path) -> UnknownAlertError:
    return UnknownAlertError(f"no alert with id {alert_id!r} in {path}")


def show_alert(path: Path, alert_id: str) -> str:
    """Return the `eyes alerts show` output.

    Raises:
        UnknownAlertError: no such alert (or no history yet).
        HistoryError: the history cannot be read.
    """
    if not path.is_file():
        raise _unknown(alert_id, path)
    history = AlertHistory(path, create=False)
    try:
        row = history.get(alert_id)
    finally:
        history.close()
    if row is None:
        raise _unknown(alert_id, path)
    return format_show(row)


def resolve_alert(path: Path, alert_id: str, *, now: float) -> str:
    """Mark the alert resolved (once; resolving again keeps the first time); return a line.

    Raises:
        UnknownAlertError: no such alert (or no history yet).
        HistoryError: the history cannot be written.
    """
    if not path.is_file():
        raise _unknown(alert_id, path)
    history = AlertHistory(path, create=False)
    try:
        before = history.get(alert_id)
        row = None if before is None else history.resolve(alert_id, at=now)
    finally:
        history.close()
    if before is None or row is None:
        raise _unknown(alert_id, path)
    if before.resolved_at is not None:
        return f"alert {alert_id} was already resolved at {_when(before.resolved_at)}\n"
    return f"alert {alert_id} resolved at {_when(row.resolved_at)}\n"
