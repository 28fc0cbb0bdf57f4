"""The `recorded` backend: answers recorded from a real server, replayed by context fingerprint.

In: a `TriggerContext`. Out: the answer recorded for it, parsed and validated as if the model
had just sent it, so replay tests of the whole flow are deterministic and need no server.

A recordings file is JSON Lines, one answer per line (written by `fixtures/llm/record.py`):

```
{"fingerprint": "...", "trigger": "crash|web-1|1796292001.25", "rule": "crash", "host": "web-1",
 "ts": "2026-12-03T10:00:01.250Z", "backend": "openai", "model": "...", "finish_reason": "stop",
 "content": "<the model's answer text>"}
```

A context is looked up by `context_fingerprint` (everything the prompt is built from). When no
answer was recorded for that exact context, the answer recorded for the same trigger (rule,
host and event time: `trigger_key`) is used, and the match is counted as `by_trigger`: the
window around a trigger may change when the rules change, while the trigger itself stays.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from typing_extensions import override

from backends.base import Answer, Backend
from backends.errors import PermanentBackendError
from operators.errors import ConfigError
from operators.events import format_ts
from operators.triggers import Trigger, TriggerContext

__all__ = [
    "RecordedBackend",
    "Recording",
    "context_fingerprint",
    "load_recordings",
    "trigger_key",
]

log = logging.getLogger(__name__)


def trigger_key(trigger: Trigger) -> str:
    """Return "rule|host|ts": what fired, where and when (event time, `repr` of the float)."""
    return f"{trigger.rule}|{trigger.host}|{trigger.ts!r}"


def _context_data(context: TriggerContext) -> dict[str, Any]:
    trigger = context.trigger
    return {
        "rule": trigger.rule,
        "host": trigger.host,
        "key": trigger.key,
        "severity": trigger.severity,
        "ts": trigger.ts,
        "window": [trigger.window_start, trigger.window_end],
        "reason": trigger.reason,
        "evidence": [[e.ts, e.text, e.id] for e in trigger.evidence],
        "logs": [[e.ts, e.level, e.source, e.message] for e in context.logs],
        "metrics": [[e.ts, dict(e.values), e.mem_pressure] for e in context.metrics],
        "disk": [[e.ts, e.device, dict(e.values)] for e in context.disk],
        "dropped_logs": context.dropped_logs,
    }


def context_fingerprint(context: TriggerContext) -> str:
    """Return a stable hash of everything the prompt is built from (32 hex digits)."""
    data = orjson.dumps(_context_data(context), option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded answer: the raw text a model sent for one context, and who sent it."""

    fingerprint: str
    trigger: str
    model: str
    content: str
    finish_reason: str = "stop"
    backend: str = "openai"

    def to_dict(self, context: TriggerContext | None = None) -> dict[str, Any]:
        """Return the JSON line of this recording (with rule, host, ts when `context` is given)."""
        out: dict[str, Any] = {"fingerprint": self.fingerprint, "trigger": self.trigger}
        if context is not None:
            trigger = context.trigger
            out |= {"rule": trigger.rule, "host": trigger.host, "ts": format_ts(trigger.ts)}
        return out | {
            "backend": self.backend,
            "model": self.model,
            "finish_reason": self.finish_reason,
            "content": self.content,
        }


def load_recordings(path: str | Path) -> list[Recording]:
    """Read a recordings file.

    Raises:
        ConfigError: the file is missing or unreadable, or a line is not a recording; the
            message names `[ai] recordings`, the file and the line.
    """
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as exc:
        msg = f"[ai] recordings: cannot read {str(path)!r}: {exc.strerror or exc}"
        raise ConfigError(msg) from exc
    out = []
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith(b"#"):
            continue
        try:
            data = orjson.loads(line)
            out.append(
                Recording(
                    fingerprint=str(data["fingerprint"]),
                    trigger=str(data["trigger"]),
                    model=str(data.get("model", "")),
                    content=str(data["content"]),
                    finish_reason=str(data.get("finish_reason", "stop")),
                    backend=str(data.get("backend", "openai")),
                )
            )
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            msg = f"[ai] recordings: {path}:{number}: not a recording ({type(exc).__name__}: {exc})"
            raise ConfigError(msg) from exc
    return out


class RecordedBackend(Backend):
    """Replays recorded answers; never does I/O. `matched` counts exact, by_trigger, missing.

    A context with no recording fails permanently with a message that says how to record it.

    Args:
        recordings: the answers (the last one wins when a fingerprint repeats).
        source: where they came from, named in error messages.
    """

    name = "recorded"

    def __init__(self, recordings: list[Recording], *, source: str = "recordings") -> None:
        self.model = recordings[0].model if recordings else ""
        self.source = source
        self.matched: Counter[str] = Counter()
        self._by_fingerprint = {r.fingerprint: r for r in recordings}
        self._by_trigger = {r.trigger: r for r in recordings}

    @classmethod
    def from_file(cls, path: str | Path) -> RecordedBackend:
        """Load the recordings in `path`.

        Raises:
            ConfigError: see `load_recordings`.
        """
        return cls(load_recordings(path), source=str(path))

    def find(self, context: TriggerContext) -> Recording | None:
        """Return the recording for `context` (exact fingerprint first, then by trigger)."""
        found = self._by_fingerprint.get(context_fingerprint(context))
        if found is not None:
            self.matched["exact"] += 1
            return found
        found = self._by_trigger.get(trigger_key(context.trigger))
        self.matched["by_trigger" if found is not None else "missing"] += 1
        return found

    @override
    async def answer(self, context: TriggerContext) -> Answer:
        found = self.find(context)
        if found is None:
            trigger = context.trigger
            msg = (
                f"recorded: no answer in {self.source} for {trigger.rule} on {trigger.host} at "
                f"{format_ts(trigger.ts)} (fingerprint {context_fingerprint(context)}); "
                "record it with `python fixtures/llm/record.py`"
            )
            raise PermanentBackendError(msg)
        return Answer(found.content, found.model, truncated=found.finish_reason == "length")
