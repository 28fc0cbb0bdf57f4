"""The `error_frequency` rule: too many kinds of errors, or one error suddenly much more often.

In: `LogEvent`s at `error` or `fault` not matching an `ignore` pattern. Each source
(`process/subsystem`) is counted on its own, by signature: the level and the message template
(`operators.rules.template`). Out: a `Trigger` keyed by the source when, in the sliding window
of `window_seconds` ending at the event, the source has more than `threshold` distinct
signatures, or the event's signature occurs more than `threshold` times and at least
`burst_ratio` times as often as in the preceding window of the same length.

The burst test needs that preceding window to have been watched: it applies from two windows
after the host was first seen (`start`). Before that a steady stream of one error, which every
service restart or agent restart would otherwise report as a burst against an empty history,
fires nothing; the distinct-signatures test applies at once.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from flows.config import ErrorFrequencyConfig
from operators.events import LogEvent
from operators.rules.cooldown import Cooldown
from operators.rules.limits import Drops
from operators.rules.template import message_template
from operators.triggers import Evidence, Trigger

__all__ = ["ErrorFrequencyRule"]

_SEVERE = frozenset({"error", "fault"})
_MAX_SOURCES = 1000
_MAX_EVENTS_PER_SOURCE = 10_000
_SAMPLES = 3
_EVIDENCE_SIGNATURES = 8
_SAMPLED_SIGNATURES = 3
_TEXT_CHARS = 200
_NOTHING: tuple[Trigger, ...] = ()


class _Signature:
    """One signature of one source: its counts in the current and the preceding window."""

    __slots__ = ("current", "level", "live", "previous", "samples", "template")

    def __init__(self, level: str, template: str) -> None:
        self.level = level
        self.template = template
        self.current = 0
        self.previous = 0
        self.live = True  # False once evicted: entries still in the deques no longer count
        self.samples: deque[LogEvent] = deque(maxlen=_SAMPLES)


class _Source:
    """The error lines of one `process/subsystem` within the last two windows.

    `current` holds (ts, signature) for ts in (now - window, now], `previous` those in
    (now - 2 window, now - window]; `distinct` counts the live signatures with current > 0.
    """

    __slots__ = ("current", "distinct", "last_ts", "previous", "signatures")

    def __init__(self) -> None:
        self.current: deque[tuple[float, _Signature]] = deque()
        self.previous: deque[tuple[float, _Signature]] = deque()
        self.signatures: OrderedDict[tuple[str, str], _Signature] = OrderedDict()
        self.distinct = 0
        self.last_ts = float("-inf")


class ErrorFrequencyRule:
    """Fires on a source with many distinct error signatures, or on a burst of one signature.

    In: `update(event)` with each `LogEvent` (other levels are skipped at once). Out: a
    one-item sequence with the trigger, or an empty one. State: per source the (ts, signature)
    entries of the last two windows and the counts per signature, and the cooldown; each entry
    moves from the current to the preceding window and out once, so an event costs O(1)
    amortised whatever the window. Bounds, counted in `drops` when they evict: at most
    `max_signatures` signatures per source (least recently seen evicted), 10,000 entries per
    source and 1,000 sources (least recently seen evicted); a source idle for two windows is
    forgotten.

    Args:
        config: `[rules.error_frequency]`.
        cooldown_seconds: `[rules] cooldown_seconds`.
    """

    name = "error_frequency"
    kinds = frozenset({"log"})
    levels: frozenset[str] | None = _SEVERE

    def __init__(self, config: ErrorFrequencyConfig, cooldown_seconds: float) -> None:
        self.window = config.window_seconds
        self.threshold = config.threshold
        self.burst_ratio = config.burst_ratio
        self.severity = config.severity
        self.max_signatures = config.max_signatures
        self.drops = Drops(f"rule {self.name}")
        self._ignore = (
            re.compile("|".join(f"(?:{p})" for p in config.ignore)) if config.ignore else None
        )
        self._sources: OrderedDict[str, _Source] = OrderedDict()
        self._cooldown = Cooldown(cooldown_seconds, _MAX_SOURCES, self.drops)
        self._watched_since: float | None = None

    def start(self, ts: float) -> None:
        """Note that the host is watched from event time `ts` (default: the first error line)."""
        if self._watched_since is None or ts < self._watched_since:
            self._watched_since = ts

    def update(self, event: LogEvent) -> Sequence[Trigger]:
        """Count `event` and return the trigger it fires, if any."""
        level = event.level
        if level not in _SEVERE:
            return _NOTHING
        message = event.message
        if self._ignore is not None and self._ignore.search(message):
            return _NOTHING
        ts = event.ts
        if self._watched_since is None:
            self._watched_since = ts
        self._forget_idle(ts)
        key = event.source
        source = self._source(key)
        self._slide(source, ts)
        sig = self._signature(source, level, message_template(message))
        if sig.current == 0:
            source.distinct += 1
        sig.current += 1
        sig.samples.append(event)
        source.current.append((ts, sig))
        if ts > source.last_ts:
            source.last_ts = ts
        if len(source.current) + len(source.previous) > _MAX_EVENTS_PER_SOURCE:
            self._evict_oldest_entry(source)

        threshold = self.threshold
        distinct = source.distinct > threshold
        burst = (
            sig.current > threshold
            and sig.current >= self.burst_ratio * sig.previous
            and ts - 2 * self.window >= self._watched_since
        )
        if not (distinct or burst):
            return _NOTHING
        if not self._cooldown.admit(key, ts, self.severity):
            return _NOTHING
        if distinct:
            return (self._distinct_trigger(event, key, source),)
        return (self._burst_trigger(event, key, source, sig),)

    def _forget_idle(self, now: float) -> None:
        # Sources are in the order they were last seen; one idle for two windows holds nothing.
        sources = self._sources
        horizon = now - 2 * self.window
        while sources:
            key, source = next(iter(sources.items()))
            if source.last_ts > horizon:
                return
            del sources[key]

    def _source(self, key: str) -> _Source:
        sources = self._sources
        source = sources.pop(key, None)
        if source is None:
            source = _Source()
            if len(sources) >= _MAX_SOURCES:
                sources.popitem(last=False)
                self.drops.add("sources")
        sources[key] = source
        return source

    def _slide(self, source: _Source, now: float) -> None:
        """Move entries from the current window to the preceding one, and out of it."""
        current, previous = source.current, source.previous
        window = self.window
        edge = now - window
        while current and current[0][0] <= edge:
            entry = current.popleft()
            sig = entry[1]
            sig.current -= 1
            if sig.current == 0 and sig.live:
                source.distinct -= 1
            sig.previous += 1
            previous.append(entry)
        edge -= window
        while previous and previous[0][0] <= edge:
            sig = previous.popleft()[1]
            sig.previous -= 1
            if sig.live and sig.current == 0 and sig.previous == 0:
                del source.signatures[(sig.level, sig.template)]

    def _signature(self, source: _Source, level: str, template: str) -> _Signature:
        signatures = source.signatures
        name = (level, template)
        sig = signatures.get(name)
        if sig is not None:
            signatures.move_to_end(name)
            return sig
        if len(signatures) >= self.max_signatures:
            _, evicted = signatures.popitem(last=False)
            evicted.live = False
            if evicted.current > 0:
                source.distinct -= 1
            self.drops.add("signatures")
        sig = signatures[name] = _Signature(level, template)
        return sig

    def _evict_oldest_entry(self, source: _Source) -> None:
        if source.previous:
            sig = source.previous.popleft()[1]
            sig.previous -= 1
        else:
            sig = source.current.popleft()[1]
            sig.current -= 1
            if sig.current == 0 and sig.live:
                source.distinct -= 1
        if sig.live and sig.current == 0 and sig.previous == 0:
            del source.signatures[(sig.level, sig.template)]
        self.drops.add("entries")

    def _distinct_trigger(self, event: LogEvent, key: str, source: _Source) -> Trigger:
        counted = sorted(
            (sig for sig in source.signatures.values() if sig.current > 0),
            key=lambda sig: (-sig.current, sig.level, sig.template),
        )
        start = source.current[0][0]
        evidence = [_summary(sig) for sig in counted[:_EVIDENCE_SIGNATURES]]
        evidence.extend(_sample(sig.samples[-1]) for sig in counted[:_SAMPLED_SIGNATURES])
        reason = (
            f"{key} logged {source.distinct} distinct error signatures within "
            f"{self.window:g} s (threshold {self.threshold})."
        )
        return self._trigger(event, key, start, reason, evidence)

    def _burst_trigger(
        self, event: LogEvent, key: str, source: _Source, sig: _Signature
    ) -> Trigger:
        start = source.previous[0][0] if source.previous else source.current[0][0]
        evidence = [_summary(sig), *(_sample(line) for line in sig.samples)]
        reason = (
            f"{key} logged the {sig.level} {_quote(sig.template)} {sig.current} times within "
            f"{self.window:g} s (threshold {self.threshold}), against {sig.previous} in the "
            f"preceding {self.window:g} s (burst ratio {self.burst_ratio:g})."
        )
        return self._trigger(event, key, start, reason, evidence)

    def _trigger(
        self, event: LogEvent, key: str, start: float, reason: str, evidence: list[Evidence]
    ) -> Trigger:
        return Trigger(
            rule=self.name,
            host=event.host,
            key=key,
            severity=self.severity,  # type: ignore[arg-type]
            ts=event.ts,
            window_start=min(start, event.ts),
            window_end=event.ts,
            reason=reason,
            evidence=tuple(evidence),
        )

    def snapshot(self) -> object:
        """Return the rule's state as plain data: sources, their entries and the cooldown."""
        sources = []
        for key, source in self._sources.items():
            order = {id(sig): n for n, sig in enumerate(source.signatures.values())}
            sigs = [
                (sig.level, sig.template, list(sig.samples)) for sig in source.signatures.values()
            ]
            # Entries of evicted signatures are left out: they no longer count.
            current = [(ts, order[id(s)]) for ts, s in source.current if s.live]
            previous = [(ts, order[id(s)]) for ts, s in source.previous if s.live]
            sources.append((key, source.last_ts, sigs, current, previous))
        return {
            "sources": sources,
            "cooldown": self._cooldown.snapshot(),
            "watched_since": self._watched_since,
        }

    def restore(self, state: Any) -> None:
        """Load what `snapshot` returned."""
        self._sources.clear()
        for key, last_ts, sigs, current, previous in state["sources"]:
            source = _Source()
            source.last_ts = last_ts
            table = []
            for level, template, samples in sigs:
                sig = _Signature(level, template)
                sig.samples.extend(samples)
                source.signatures[(level, template)] = sig
                table.append(sig)
            for ts, n in current:
                table[n].current += 1
                source.current.append((ts, table[n]))
            for ts, n in previous:
                table[n].previous += 1
                source.previous.append((ts, table[n]))
            source.distinct = sum(1 for sig in table if sig.current > 0)
            self._sources[key] = source
        self._cooldown.restore(state["cooldown"])
        self._watched_since = state["watched_since"]


def _quote(template: str) -> str:
    text = template if len(template) <= _TEXT_CHARS else template[: _TEXT_CHARS - 3] + "..."
    return repr(text)


def _summary(sig: _Signature) -> Evidence:
    newest = sig.samples[-1]
    text = (
        f"{sig.current} in the window, {sig.previous} in the one before: "
        f"{sig.level} {_quote(sig.template)}"
    )
    return Evidence(newest.ts, text, newest.id)


def _sample(line: LogEvent) -> Evidence:
    return Evidence(line.ts, f"{line.level}: {line.message[:_TEXT_CHARS]}", line.id)
