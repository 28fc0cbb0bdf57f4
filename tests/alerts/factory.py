"""Hand-built analysed triggers for the alert stage's tests."""

from __future__ import annotations

from operators.records import AnalysedTrigger, Insight
from operators.triggers import Evidence, Trigger, TriggerContext

__all__ = ["T0", "alert", "insight"]

T0 = 1_796_292_000.0  # 2026-12-03T10:00:00Z


def insight(severity: str = "warning", summary: str = "nginx crashed in libc") -> Insight:
    """Return a plausible insight."""
    return Insight(
        summary=summary,
        root_cause="a null pointer in a worker",
        severity=severity,  # type: ignore[arg-type]
        confidence=0.8,
        evidence=("segfault at 0 ip 00007f",),
        recommendations=("update nginx",),
        backend="mock",
        model="m",
    )


def alert(
    key: str = "nginx/-",
    *,
    severity: str = "critical",
    ts: float = T0,
    rule: str = "crash",
    host: str = "web-1",
    with_insight: Insight | None = None,
    analysis: str = "skipped",
    reason: str | None = None,
) -> AnalysedTrigger:
    """Return an analysed trigger of `rule` on `host`/`key` at `ts`."""
    trigger = Trigger(
        rule=rule,
        host=host,
        key=key,
        severity=severity,  # type: ignore[arg-type]
        ts=ts,
        window_start=ts - 60,
        window_end=ts,
        reason=reason or f"{key} logged 'segfault' (1 line in 60s)",
        evidence=(Evidence(ts, f"{key}: segfault at 0 ip 00007f", id=7),),
    )
    return AnalysedTrigger(TriggerContext(trigger), analysis, with_insight)  # type: ignore[arg-type]
