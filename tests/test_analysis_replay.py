"""Replays through the LLM step with the `recorded` backend: deterministic, no server needed."""

from __future__ import annotations

from pathlib import Path

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, TestingSource, run_main

from backends.insight import parse_insight
from backends.recorded import load_recordings
from flows.cli import main
from flows.config import AiConfig
from operators.analysis import analyze_triggers
from operators.records import AnalysedTrigger
from operators.triggers import Trigger, Watermark
from tests.contexts import DEMO_TRACE, demo_contexts

RECORDINGS = Path(__file__).resolve().parents[1] / "fixtures" / "llm" / "llm_demo.jsonl"


def _recorded_insight(trigger: Trigger) -> dict[str, object]:
    """The insight the recording for `trigger` gives, as the alert record shows it."""
    key = f"{trigger.rule}|{trigger.host}|{trigger.ts!r}"
    (recording,) = [r for r in load_recordings(RECORDINGS) if r.trigger == key]
    insight = parse_insight(recording.content, trigger, backend="recorded", model=recording.model)
    return insight.to_dict()


def test_the_demo_contexts_get_their_recorded_insights_in_order() -> None:
    contexts = demo_contexts()
    items = [contexts[0], Watermark(contexts[0].trigger.ts), contexts[1], Watermark(1e10)]
    flow = Dataflow("recorded_step")
    source = op.input("in", flow, TestingSource(items))
    ai = AiConfig(backend="recorded", recordings=str(RECORDINGS))
    out: list[AnalysedTrigger | Watermark] = []
    op.output("out", analyze_triggers("analysis", source, ai, ordered=True), TestingSink(out))
    run_main(flow)
    assert [type(o).__name__ for o in out] == ["AnalysedTrigger", "Watermark"] * 2
    analysed = [o for o in out if isinstance(o, AnalysedTrigger)]
    assert [a.analysis for a in analysed] == ["analyzed", "analyzed"]
    for result, context in zip(analysed, contexts, strict=True):
        assert result.insight is not None
        assert result.insight.to_dict() == _recorded_insight(context.trigger)


def test_a_replay_of_the_demo_trace_through_the_whole_flow(tmp_path: Path) -> None:
    """Needs the rules step: the trace fires memory_pressure at +30 s and crash at +40 s."""
    config = tmp_path / "eyes.toml"
    config.write_text(f'[ai]\nbackend = "recorded"\nrecordings = "{RECORDINGS}"\n')
    out = tmp_path / "alerts.jsonl"
    assert main(["replay", str(DEMO_TRACE), "--config", str(config), "--out", str(out)]) == 0
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [(r["rule"], r["host"], r["ts"]) for r in records] == [
        ("memory_pressure", "web-1", "2026-12-03T10:00:30.000Z"),
        ("crash", "web-1", "2026-12-03T10:00:40.250Z"),
    ]
    assert [r["analysis"] for r in records] == ["analyzed", "analyzed"]
    for record, context in zip(records, demo_contexts(), strict=True):
        assert record["severity"] == "critical"
        assert record["insight"] == _recorded_insight(context.trigger)
