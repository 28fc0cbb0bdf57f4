from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import orjson
import pytest

from backends.errors import PermanentBackendError
from backends.recorded import (
    RecordedBackend,
    Recording,
    context_fingerprint,
    load_recordings,
    trigger_key,
)
from operators.errors import ConfigError
from tests.contexts import demo_contexts, make_context

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "llm" / "llm_demo.jsonl"


def _write(path: Path, *recordings: Recording) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r.to_dict()) + b"\n" for r in recordings))
    return path


def _recording(context, text: str = '{"summary": "recorded"}') -> Recording:
    return Recording(context_fingerprint(context), trigger_key(context.trigger), "smol", text)


def test_the_fingerprint_is_stable_and_follows_the_context() -> None:
    context = make_context(logs=demo_contexts()[1].logs)
    assert context_fingerprint(context) == context_fingerprint(make_context(logs=context.logs))
    assert context_fingerprint(context) != context_fingerprint(make_context())
    assert len(context_fingerprint(context)) == 32
    assert trigger_key(context.trigger) == "crash|web-1|1796292000.0"


def test_an_exact_recording_is_replayed_and_validated(tmp_path: Path) -> None:
    context = make_context(severity="warning")
    text = '{"summary": "recorded", "severity": "critical", "recommendations": ["reboot"]}'
    backend = RecordedBackend.from_file(_write(tmp_path / "r.jsonl", _recording(context, text)))
    insight = asyncio.run(backend.analyze(context))
    assert (insight.summary, insight.severity) == ("recorded", "warning")
    assert insight.recommendations == ()
    assert (insight.backend, insight.model) == ("recorded", "smol")
    assert backend.matched == {"exact": 1}


def test_the_same_trigger_with_another_window_is_found_by_trigger(tmp_path: Path) -> None:
    recorded = make_context()
    backend = RecordedBackend([_recording(recorded)])
    changed = dataclasses.replace(recorded, logs=demo_contexts()[1].logs)
    assert asyncio.run(backend.analyze(changed)).summary == "recorded"
    assert backend.matched == {"by_trigger": 1}


def test_a_context_never_recorded_fails_permanently_with_the_fix() -> None:
    backend = RecordedBackend([_recording(make_context(1))], source="fixtures/x.jsonl")
    with pytest.raises(
        PermanentBackendError,
        match=r"recorded: no answer in fixtures/x.jsonl for crash on web-1 at "
        r"2026-12-03T10:00:00.000Z \(fingerprint [0-9a-f]{32}\); record it with",
    ):
        asyncio.run(backend.analyze(make_context(0)))
    assert backend.matched == {"missing": 1}


def test_a_recording_cut_at_max_tokens_replays_as_invalid(tmp_path: Path) -> None:
    context = make_context()
    cut = dataclasses.replace(_recording(context, '{"summ'), finish_reason="length")
    with pytest.raises(Exception, match="cut at max_tokens"):
        asyncio.run(RecordedBackend([cut]).analyze(context))


def test_a_missing_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[ai\] recordings: cannot read '.*nope.jsonl'"):
        load_recordings(tmp_path / "nope.jsonl")


def test_a_bad_line_is_a_configuration_error_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('# comment\n\n{"fingerprint": "a", "trigger": "t", "content": "c"}\n{"x": 1}\n')
    with pytest.raises(ConfigError, match=r"r.jsonl:4: not a recording \(KeyError"):
        load_recordings(path)


def test_the_committed_demo_recordings_answer_the_demo_contexts() -> None:
    backend = RecordedBackend.from_file(FIXTURE)
    insights = [asyncio.run(backend.analyze(c)) for c in demo_contexts()]
    assert backend.matched == {"exact": 2}
    assert [i.backend for i in insights] == ["recorded", "recorded"]
    assert {i.model for i in insights} == {"SmolLM2-135M-Instruct"}
    assert {r.trigger for r in load_recordings(FIXTURE)} == {
        "memory_pressure|web-1|1796292030.0",
        "crash|web-1|1796292040.25",
    }
