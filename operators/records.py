"""What flows after the rules: the insight, the analysed trigger and the final alert record.

`TriggerContext` -> LLM step -> `AnalysedTrigger` (context, what the AI stage did, insight)
-> alert stage -> `AlertRecord` (TRACE_FORMAT.md section 2), one per admitted trigger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from operators.events import format_ts
from operators.triggers import Severity, TriggerContext

__all__ = [
    "ANALYSES",
    "DELIVERIES",
    "AlertRecord",
    "AnalysedTrigger",
    "Analysis",
    "Delivery",
    "Insight",
]

Analysis = Literal["analyzed", "fallback", "failed", "skipped"]
ANALYSES: tuple[str, ...] = ("analyzed", "fallback", "failed", "skipped")
Delivery = Literal["delivered", "suppressed", "dropped", "queued", "failed"]
DELIVERIES: tuple[str, ...] = ("delivered", "suppressed", "dropped", "queued", "failed")


@dataclass(frozen=True, slots=True)
class Insight:
    """The AI's validated answer, or the rule-based fallback (TRACE_FORMAT.md section 3)."""

    summary: str
    root_cause: str
    severity: Severity
    confidence: float
    evidence: tuple[str, ...] = ()
    recommendations: tuple[str, ...] = ()
    backend: str = "none"
    model: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the insight object as JSON-ready data."""
        return {
            "summary": self.summary,
            "root_cause": self.root_cause,
            "severity": self.severity,
            "confidence": self.confidence,
            "evidence": list(self.evidence),
            "recommendations": list(self.recommendations),
            "backend": self.backend,
            "model": self.model,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Insight:
        """Return the insight that `to_dict` wrote (no validation: the data is our own)."""
        return cls(
            summary=data["summary"],
            root_cause=data["root_cause"],
            severity=data["severity"],
            confidence=float(data["confidence"]),
            evidence=tuple(data.get("evidence", ())),
            recommendations=tuple(data.get("recommendations", ())),
            backend=data.get("backend", "none"),
            model=data.get("model", ""),
        )


@dataclass(frozen=True, slots=True)
class AnalysedTrigger:
    """A trigger context after the AI stage: what it did (`analysis`), why when the model did
    not answer (`analysis_reason`), and the insight it gave."""

    context: TriggerContext
    analysis: Analysis
    insight: Insight | None
    analysis_reason: str = ""


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """The final record of one admitted trigger, whatever its fate."""

    analysed: AnalysedTrigger
    delivery: Delivery
    delivery_reason: str = ""

    @property
    def id(self) -> str:
        """The stable alert id (see `Trigger.id`)."""
        return self.analysed.context.trigger.id

    def to_dict(self) -> dict[str, Any]:
        """Return the alert record of TRACE_FORMAT.md section 2 as JSON-ready data."""
        trigger = self.analysed.context.trigger
        insight = self.analysed.insight
        return {
            "id": trigger.id,
            "rule": trigger.rule,
            "severity": trigger.severity,
            "host": trigger.host,
            "key": trigger.key,
            "ts": format_ts(trigger.ts),
            "window_start": format_ts(trigger.window_start),
            "window_end": format_ts(trigger.window_end),
            "reason": trigger.reason,
            "evidence": [item.to_dict() for item in trigger.evidence],
            "analysis": self.analysed.analysis,
            "analysis_reason": self.analysed.analysis_reason,
            "insight": None if insight is None else insight.to_dict(),
            "delivery": self.delivery,
            "delivery_reason": self.delivery_reason,
        }
