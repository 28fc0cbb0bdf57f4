"""Trigger contexts for the LLM step's tests, built by hand.

`make_context` builds one context with sensible defaults. `demo_contexts` builds the contexts
that the rules are expected to fire on `fixtures/traces/llm_demo.jsonl` (a memory_pressure
trigger at +30 s and a crash trigger at +40 s): the answers in `fixtures/llm/llm_demo.jsonl`
were recorded for them, and a replay through the real rules finds them by trigger.
"""

from __future__ import annotations

from pathlib import Path

from operators.events import DiskEvent, Event, LogEvent, MetricsEvent
from operators.sources.replay import ReplayStats, read_trace
from operators.triggers import Evidence, Severity, Trigger, TriggerContext

__all__ = ["DEMO_TRACE", "demo_contexts", "make_context"]

DEMO_TRACE = Path(__file__).resolve().parents[1] / "fixtures" / "traces" / "llm_demo.jsonl"
T0 = 1_796_292_000.0


def make_context(
    number: int = 0,
    *,
    rule: str = "crash",
    severity: Severity = "critical",
    host: str = "web-1",
    message: str = "nginx[811]: segfault at 0 ip 00007f3a2b1c4d10 error 4 in libc.so.6",
    logs: tuple[LogEvent, ...] = (),
    metrics: tuple[MetricsEvent, ...] = (),
    disk: tuple[DiskEvent, ...] = (),
) -> TriggerContext:
    """Return a context whose trigger fires at `T0 + number` (so `number` tells them apart)."""
    ts = T0 + number
    trigger = Trigger(
        rule=rule,
        host=host,
        key="kernel/-",
        severity=severity,
        ts=ts,
        window_start=ts - 60,
        window_end=ts,
        reason=f"crash signature 'segfault' in a kernel line (#{number})",
        evidence=(Evidence(ts, message, f"e{number}"),),
    )
    return TriggerContext(trigger, logs=logs, metrics=metrics, disk=disk)


def _window(events: list[Event], end: float, seconds: float) -> list[Event]:
    return [e for e in events if end - seconds <= e.ts <= end]


def demo_contexts(path: Path = DEMO_TRACE, context_seconds: float = 60.0) -> list[TriggerContext]:
    """Return the memory_pressure and crash contexts of the demo trace, in event-time order."""
    events = sorted(read_trace(path, "replay", ReplayStats()), key=lambda e: e.ts)
    pressure = next(
        e for e in events if isinstance(e, MetricsEvent) and e.mem_pressure == "critical"
    )
    crash = next(e for e in events if isinstance(e, LogEvent) and "segfault" in e.message)
    some = pressure.values.get("psi_mem_some_avg10")
    full = pressure.values.get("psi_mem_full_avg10")
    triggers = [
        Trigger(
            rule="memory_pressure",
            host=pressure.host,
            key="mem_pressure",
            severity="critical",
            ts=pressure.ts,
            window_start=pressure.ts,
            window_end=pressure.ts,
            reason=f"memory pressure is critical (PSI some avg10 {some}%, full avg10 {full}%)",
            evidence=(Evidence(pressure.ts, "mem_pressure=critical", pressure.id),),
        ),
        Trigger(
            rule="crash",
            host=crash.host,
            key=crash.source,
            severity="critical",
            ts=crash.ts,
            window_start=crash.ts,
            window_end=crash.ts,
            reason=f"crash signature 'segfault' in a {crash.level} line of {crash.process}",
            evidence=(Evidence(crash.ts, crash.message, crash.id),),
        ),
    ]
    out = []
    for trigger in triggers:
        window = _window(events, trigger.ts, context_seconds)
        out.append(
            TriggerContext(
                trigger,
                logs=tuple(e for e in window if isinstance(e, LogEvent)),
                metrics=tuple(e for e in window if isinstance(e, MetricsEvent)),
                disk=tuple(e for e in window if isinstance(e, DiskEvent)),
            )
        )
    return out
