from __future__ import annotations

import logging

import orjson
import pytest

from backends.errors import InvalidInsight
from backends.insight import (
    INSIGHT_SCHEMA,
    extract_json_object,
    parse_insight,
    rule_based_insight,
    validate_insight,
)
from tests.contexts import make_context

TRIGGER = make_context(severity="warning").trigger
GOOD = {
    "summary": "nginx crashed.",
    "root_cause": "A bad module.",
    "severity": "warning",
    "confidence": 0.7,
    "evidence": ["segfault at 0"],
    "recommendations": ["Check the core dump."],
}


def _parse(text: str, truncated: bool = False):
    return parse_insight(text, TRIGGER, backend="ollama", model="llama3", truncated=truncated)


def test_plain_json_is_read() -> None:
    insight = _parse(orjson.dumps(GOOD).decode())
    assert insight.summary == "nginx crashed."
    assert insight.root_cause == "A bad module."
    assert insight.severity == "warning"
    assert insight.confidence == 0.7
    assert insight.evidence == ("segfault at 0",)
    assert insight.recommendations == ("Check the core dump.",)
    assert (insight.backend, insight.model) == ("ollama", "llama3")


def test_a_fenced_block_is_read() -> None:
    text = "Here is my analysis:\n```json\n" + orjson.dumps(GOOD).decode() + "\n```\nHope it helps."
    assert _parse(text).summary == "nginx crashed."


def test_the_first_balanced_object_in_prose_is_read() -> None:
    text = 'I think {this} matters. {"summary": "a {brace} in a string", "root_cause": "x"} bye'
    assert extract_json_object(text) == {"summary": "a {brace} in a string", "root_cause": "x"}


def test_a_json_object_sent_as_a_json_string_is_read() -> None:
    assert extract_json_object(orjson.dumps(orjson.dumps(GOOD).decode()).decode()) == GOOD


def test_raw_newlines_inside_strings_are_accepted() -> None:
    assert extract_json_object('{"summary": "line one\nline two"}') == {
        "summary": "line one\nline two"
    }


def test_an_answer_cut_at_max_tokens_is_rejected_with_the_reason() -> None:
    with pytest.raises(InvalidInsight, match="cut at max_tokens before its JSON object closed"):
        _parse('{"summary": "nginx crashed", "root_cau', truncated=True)


def test_an_object_never_closed_is_rejected() -> None:
    with pytest.raises(InvalidInsight, match="JSON object is not closed"):
        _parse('Analysis: {"summary": "nginx crashed", "evidence": ["a"')


def test_an_object_that_is_not_json_is_rejected() -> None:
    with pytest.raises(InvalidInsight, match="is not valid JSON"):
        _parse("{summary: 'single quotes are not JSON'}")


def test_prose_without_an_object_is_rejected() -> None:
    with pytest.raises(InvalidInsight, match=r"holds no JSON object: 'The server is fine\.'"):
        _parse("The server is fine.")


def test_an_empty_answer_is_rejected() -> None:
    with pytest.raises(InvalidInsight, match="the answer is empty"):
        _parse("   ")


def test_an_answer_without_summary_or_root_cause_is_rejected_naming_its_keys() -> None:
    with pytest.raises(InvalidInsight, match=r"neither a summary nor a root cause \(keys: a, b\)"):
        _parse('{"a": 1, "b": 2}')


def test_wrong_types_are_repaired() -> None:
    insight = _parse(
        orjson.dumps(
            {
                "summary": ["nginx", "crashed."],
                "root_cause": 42,
                "severity": "HIGH",
                "confidence": "80%",
                "evidence": "one line",
                "recommendations": ["check dmesg", {"step": "look"}, None, 3],
            }
        ).decode()
    )
    assert insight.summary == "nginx crashed."
    assert insight.root_cause == "42"
    assert insight.severity == "warning"  # "high" is critical, capped at the rule's warning
    assert insight.confidence == 0.8
    assert insight.evidence == ("one line",)
    assert insight.recommendations == ("check dmesg", '{"step":"look"}', "3")


def test_missing_fields_get_defaults() -> None:
    insight = _parse('{"root_cause": "disk full"}')
    assert insight.summary == "disk full"
    assert insight.severity == "warning"  # unknown severity: the rule's
    assert insight.confidence == 0.5
    assert insight.evidence == ()
    assert insight.recommendations == ()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(0.3, 0.3), (85, 0.85), ("0.25", 0.25), ("low", 0.2), (-1, 0.0), (500, 1.0), ("n/a", 0.5)],
)
def test_confidence_is_read_and_clamped(raw: object, expected: float) -> None:
    assert _parse(orjson.dumps({"summary": "s", "confidence": raw}).decode()).confidence == expected


def test_a_wrapped_insight_is_unwrapped() -> None:
    assert _parse(orjson.dumps({"insight": GOOD}).decode()).summary == "nginx crashed."


@pytest.mark.parametrize(
    ("answer", "rule", "expected"),
    [
        ("critical", "warning", "warning"),
        ("critical", "critical", "critical"),
        ("info", "critical", "info"),
        ("medium", "critical", "warning"),
        ("catastrophic", "info", "info"),
    ],
)
def test_severity_is_capped_at_the_rules(answer: str, rule: str, expected: str) -> None:
    trigger = make_context(severity=rule).trigger  # type: ignore[arg-type]
    insight = validate_insight(
        {"summary": "s", "severity": answer}, trigger, backend="b", model="m"
    )
    assert insight.severity == expected


def test_destructive_recommendations_are_removed_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = {**GOOD, "recommendations": ["Check dmesg.", "rm -rf /var/lib/nginx", "Reboot the host"]}
    with caplog.at_level(logging.WARNING, logger="backends.insight"):
        insight = validate_insight(data, TRIGGER, backend="ollama", model="m")
    assert insight.recommendations == ("Check dmesg.",)
    assert "removed 2 destructive recommendation(s) for crash on web-1" in caplog.text


def test_long_lists_and_texts_are_bounded() -> None:
    data = {"summary": "x" * 5000, "evidence": [f"line {i}" for i in range(50)]}
    insight = validate_insight(data, TRIGGER, backend="b", model="m")
    assert len(insight.summary) == 1000
    assert len(insight.evidence) == 10


def test_the_rule_based_insight_carries_the_rules_facts() -> None:
    context = make_context(3, severity="critical")
    insight = rule_based_insight(context)
    assert insight.summary == (
        "crash on web-1 (kernel/-): crash signature 'segfault' in a kernel line (#3)"
    )
    assert insight.severity == "critical"
    assert insight.confidence == 0.5
    assert insight.evidence == (context.trigger.evidence[0].text,)
    assert insight.recommendations[1].startswith("Inspect the core dump")
    assert (insight.backend, insight.model) == ("none", "")


def test_the_schema_requires_every_field_and_nothing_else() -> None:
    assert set(INSIGHT_SCHEMA["required"]) == set(INSIGHT_SCHEMA["properties"])
    assert INSIGHT_SCHEMA["additionalProperties"] is False
    assert INSIGHT_SCHEMA["properties"]["severity"]["enum"] == ["info", "warning", "critical"]
