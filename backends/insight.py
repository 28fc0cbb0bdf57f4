"""Turn a model's answer into a validated insight, or build the rule-based one.

In: the answer text of a model and the trigger it explains. Out: an `Insight` (TRACE_FORMAT.md
section 3) whose severity is capped at the rule's and whose destructive recommendations are
removed, or `InvalidInsight` saying why the answer cannot be used.

The JSON object is taken from plain JSON, a fenced code block, or the first balanced object in
prose. Fields of the wrong type are repaired where the intent is clear (`"0.8"` or `"80%"` for a
confidence, one string for a list, `"high"` for a severity); an answer with neither a summary
nor a root cause is rejected. `rule_based_insight` is what an alert carries when no model
answered: the rule's own reason, evidence and generic next steps.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from typing import Any

import orjson

from backends.advice import filter_advice
from backends.errors import InvalidInsight
from operators.records import Insight
from operators.triggers import SEVERITIES, Severity, Trigger, TriggerContext, severity_rank

__all__ = [
    "INSIGHT_SCHEMA",
    "extract_json_object",
    "parse_insight",
    "rule_based_insight",
    "validate_insight",
]

log = logging.getLogger(__name__)

INSIGHT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "summary": {"type": "string"},
        "root_cause": {"type": "string"},
        "severity": {"type": "string", "enum": list(SEVERITIES)},
        "confidence": {"type": "number"},
        "evidence": {"type": "array", "items": {"type": "string"}},
        "recommendations": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["summary", "root_cause", "severity", "confidence", "evidence", "recommendations"],
    "additionalProperties": False,
}

_MAX_TEXT = 1000
_MAX_ITEMS = 10
_MAX_ITEM_CHARS = 500
_MAX_CANDIDATES = 20
_UNKNOWN_CONFIDENCE = 0.5
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n?(.*?)```", re.DOTALL)
_WRAPPERS = ("insight", "analysis", "result", "answer", "response")
_SEVERITY_WORDS = {
    "info": "info",
    "informational": "info",
    "low": "info",
    "notice": "info",
    "debug": "info",
    "ok": "info",
    "warning": "warning",
    "warn": "warning",
    "medium": "warning",
    "moderate": "warning",
    "minor": "warning",
    "error": "critical",
    "critical": "critical",
    "crit": "critical",
    "high": "critical",
    "severe": "critical",
    "major": "critical",
    "fatal": "critical",
    "emergency": "critical",
}


def _loads(text: str) -> Any:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        try:  # small models put raw newlines and tabs inside strings
            value = json.loads(text, strict=False)
        except ValueError:
            return None
    if isinstance(value, str) and value.lstrip().startswith("{"):
        return _loads(value)  # a JSON object sent as a JSON string
    return value


def _balanced_objects(text: str) -> tuple[list[str], bool]:
    """Return the first balanced `{...}` spans of `text`, and whether one was left open."""
    spans: list[str] = []
    left_open = False
    start = text.find("{")
    while start != -1 and len(spans) < _MAX_CANDIDATES:
        depth = 0
        in_string = escaped = False
        end = -1
        for index in range(start, len(text)):
            char = text[index]
            if in_string:
                if escaped:
                    escaped = False
                elif char == "\\":
                    escaped = True
                elif char == '"':
                    in_string = False
            elif char == '"':
                in_string = True
            elif char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    end = index
                    break
        if end == -1:
            left_open = True
            break
        spans.append(text[start : end + 1])
        start = text.find("{", start + 1)
    return spans, left_open


def extract_json_object(text: str, *, truncated: bool = False) -> dict[str, Any]:
    """Return the JSON object in a model's answer.

    Tries, in order: the whole text, each fenced code block, each balanced `{...}` in the prose.

    Args:
        text: the answer.
        truncated: the server said the answer stopped at `max_tokens`; named in the error.

    Raises:
        InvalidInsight: no JSON object could be read; the message says whether one was cut off.
    """
    stripped = text.strip()
    if not stripped:
        raise InvalidInsight("the answer is empty" + (" (cut at max_tokens)" if truncated else ""))
    candidates = [stripped, *(block.strip() for block in _FENCE.findall(stripped))]
    spans, left_open = _balanced_objects(stripped)
    for candidate in candidates + spans:
        value = _loads(candidate)
        if isinstance(value, dict):
            return value
    if truncated:
        msg = f"the answer was cut at max_tokens before its JSON object closed: {stripped[:80]!r}"
        raise InvalidInsight(msg)
    if spans:
        raise InvalidInsight(f"the answer's JSON object is not valid JSON: {stripped[:80]!r}")
    if left_open:
        raise InvalidInsight(f"the answer's JSON object is not closed: {stripped[:80]!r}")
    raise InvalidInsight(f"the answer holds no JSON object: {stripped[:80]!r}")


def _text(value: Any) -> str:
    if isinstance(value, str):
        text = value.strip()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        text = " ".join(v.strip() for v in value)
    else:
        return ""
    return text[:_MAX_TEXT]


def _strings(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, (dict, list)):
            text = orjson.dumps(item).decode()
        elif isinstance(item, bool) or item is None:
            continue
        else:
            text = str(item).strip()
        if text:
            out.append(text[:_MAX_ITEM_CHARS])
    return tuple(out[:_MAX_ITEMS])


def _confidence(value: Any) -> float:
    number: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        raw = value.strip()
        percent = raw.endswith("%")
        try:
            number = float(raw.rstrip("%").strip())
        except ValueError:
            number = {"high": 0.8, "medium": 0.5, "low": 0.2}.get(raw.lower())
        else:
            number = number / 100 if percent else number
    if number is None or math.isnan(number):
        return _UNKNOWN_CONFIDENCE
    if 1 < number <= 100:
        number /= 100  # a percentage without the sign
    return min(1.0, max(0.0, number))


def _severity(value: Any, rule: Severity) -> Severity:
    word = _SEVERITY_WORDS.get(value.strip().lower()) if isinstance(value, str) else None
    if word is None or severity_rank(word) > severity_rank(rule):
        return rule
    return word  # type: ignore[return-value]


def _unwrap(data: Mapping[str, Any]) -> Mapping[str, Any]:
    if "summary" in data or "root_cause" in data:
        return data
    for name in _WRAPPERS:
        inner = data.get(name)
        if isinstance(inner, dict):
            return inner
    if len(data) == 1:
        (inner,) = data.values()
        if isinstance(inner, dict):
            return inner
    return data


def validate_insight(
    data: Mapping[str, Any], trigger: Trigger, *, backend: str, model: str
) -> Insight:
    """Return the insight in `data`, repaired, capped at the rule's severity and filtered.

    Raises:
        InvalidInsight: `data` has neither a usable summary nor a root cause.
    """
    data = _unwrap(data)
    summary = _text(data.get("summary"))
    root_cause = _text(data.get("root_cause", data.get("rootCause", data.get("cause"))))
    if not summary and not root_cause:
        keys = ", ".join(sorted(map(str, data))) or "none"
        raise InvalidInsight(f"the answer has neither a summary nor a root cause (keys: {keys})")
    kept, removed = filter_advice(_strings(data.get("recommendations")))
    if removed:
        log.warning(
            "%s: removed %d destructive recommendation(s) for %s on %s: %r",
            backend,
            len(removed),
            trigger.rule,
            trigger.host,
            removed,
        )
    return Insight(
        summary=summary or root_cause,
        root_cause=root_cause or "not stated",
        severity=_severity(data.get("severity"), trigger.severity),
        confidence=_confidence(data.get("confidence")),
        evidence=_strings(data.get("evidence")),
        recommendations=tuple(kept),
        backend=backend,
        model=model,
    )


def parse_insight(
    text: str, trigger: Trigger, *, backend: str, model: str, truncated: bool = False
) -> Insight:
    """Return the validated insight in a model's answer text.

    Raises:
        InvalidInsight: no JSON object in the answer, or one that cannot be an insight.
    """
    return validate_insight(
        extract_json_object(text, truncated=truncated), trigger, backend=backend, model=model
    )


_NEXT_STEPS: dict[str, tuple[str, ...]] = {
    "crash": (
        "Read the process's log around the crash: journalctl -u <unit> --since '-10 min'.",
        "Inspect the core dump, if one was kept: coredumpctl list; coredumpctl info <pid>.",
        "Check whether the process was restarted and whether it crashes again.",
    ),
    "error_frequency": (
        "Read the repeated error lines and the lines just before the burst began.",
        "Check the health of what the process talks to (upstreams, database, disk).",
    ),
    "memory_pressure": (
        "Find the largest memory users: ps aux --sort=-rss | head.",
        "Check swap use and recent OOM kills: free -m; journalctl -k | grep -i oom.",
    ),
    "resource_spike": (
        "Find the busiest processes: top -o %CPU, or ps aux --sort=-%cpu | head.",
        "Check whether the rise matches a scheduled job or a deployment.",
    ),
    "disk_spike": (
        "Find the processes doing the I/O: iotop -o, or pidstat -d 1.",
        "Check free space and whether a backup, log rotation or indexer is running.",
    ),
}
_GENERIC_STEPS = ("Read the evidence lines and the host's log around the time the rule fired.",)


def rule_based_insight(
    context: TriggerContext, *, backend: str = "none", model: str = ""
) -> Insight:
    """Return the insight built from the rule alone: its reason, evidence and generic next steps.

    The severity is the rule's; the confidence is 0.5 because no model weighed the evidence.
    """
    trigger = context.trigger
    return Insight(
        summary=f"{trigger.rule} on {trigger.host} ({trigger.key}): {trigger.reason}",
        root_cause=f"Not analysed by a model; the {trigger.rule} rule fired: {trigger.reason}",
        severity=trigger.severity,
        confidence=_UNKNOWN_CONFIDENCE,
        evidence=tuple(item.text[:_MAX_ITEM_CHARS] for item in trigger.evidence[:_MAX_ITEMS]),
        recommendations=_NEXT_STEPS.get(trigger.rule, _GENERIC_STEPS),
        backend=backend,
        model=model,
    )
