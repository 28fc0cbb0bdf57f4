"""What a trigger rule emits: the trigger, its evidence, and the host's context around it.

A rule turns events into a `Trigger`; the windowed state wraps it with the host's recent logs,
metrics and disk samples into a `TriggerContext`, which is what the LLM step and the alert stage
receive. All times are Unix seconds of event time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Literal

from operators.events import DiskEvent, LogEvent, MetricsEvent, format_ts

__all__ = [
    "SEVERITIES",
    "Evidence",
    "Severity",
    "Trigger",
    "TriggerContext",
    "Watermark",
    "severity_rank",
]

Severity = Literal["info", "warning", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")
_SEVERITY_RANK = {name: rank for rank, name in enumerate(SEVERITIES)}


def severity_rank(severity: str) -> int:
    """Return 0 for info, 1 for warning, 2 for critical."""
    return _SEVERITY_RANK[severity]


@dataclass(frozen=True, slots=True)
class Evidence:
    """One event that made a rule fire: its time, its `id` when it had one, and a short text."""

    ts: float
    text: str
    id: str | int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the evidence object of an alert record (TRACE_FORMAT.md section 2)."""
        out: dict[str, Any] = {"ts": format_ts(self.ts), "text": self.text}
        if self.id is not None:
            out["id"] = self.id
        return out


@dataclass(frozen=True, slots=True)
class Trigger:
    """A rule's decision that something on `host` is worth an alert.

    `key` is what fired inside the host (`process/subsystem`, a metric name or a device);
    `ts` is the event time of the event that fired; `window_start`..`window_end` is the span
    of events the rule looked at; `reason` is one sentence with the numbers. `occurrence`
    counts the earlier triggers of the same rule, host, key, time and severity (possible with
    `cooldown_seconds = 0`), so that each trigger has an id of its own.
    """

    rule: str
    host: str
    key: str
    severity: Severity
    ts: float
    window_start: float
    window_end: float
    reason: str
    evidence: tuple[Evidence, ...] = ()
    occurrence: int = 0

    @property
    def id(self) -> str:
        """A stable id: the same trigger replayed from the same trace gets the same id."""
        text = f"{self.rule}\x1f{self.host}\x1f{self.key}\x1f{self.ts!r}\x1f{self.severity}"
        if self.occurrence:
            text += f"\x1f{self.occurrence}"
        return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True, slots=True)
class TriggerContext:
    """A trigger with the host's recent events of all three streams (oldest first).

    `dropped_logs` counts log lines of the window left out by the `state.max_events` bound.
    """

    trigger: Trigger
    logs: tuple[LogEvent, ...] = ()
    metrics: tuple[MetricsEvent, ...] = ()
    disk: tuple[DiskEvent, ...] = ()
    dropped_logs: int = field(default=0)

    @property
    def id(self) -> str:
        """The alert id of this trigger."""
        return self.trigger.id


@dataclass(frozen=True, slots=True)
class Watermark:
    """A marker that a host's events up to `ts` have all been handled (its frontier): the
    rules step emits one after a batch that moved the frontier on.

    It travels behind the triggers of the same batch, through the LLM step (which keeps it in
    order), to the alert stage, whose rate limit and queue then run on event time in a replay.
    """

    ts: float
