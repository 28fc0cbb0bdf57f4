"""The `crash` rule: a log line that carries a crash signature, as a whole token or phrase.

In: `LogEvent`s. Out: a `Trigger` (critical unless configured) keyed by `process/subsystem` when
the message contains one of `strong_keywords` (any level: Linux logs kernel segfaults at info and
core dumps at crit) or, on `error` and `fault` lines, one of `keywords`. Matching ignores case
and never looks inside a word: `crash` matches `crash:` and `Crash-handler` but not `Crashpad`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from flows.config import CrashConfig
from operators.events import LogEvent
from operators.rules.cooldown import Cooldown
from operators.rules.limits import Drops
from operators.triggers import Evidence, Trigger

__all__ = ["CrashRule", "KeywordMatcher"]

_MAX_KEYS = 10_000
_EVIDENCE_CHARS = 300
_SEVERE = frozenset({"error", "fault"})
_NOTHING: tuple[Trigger, ...] = ()


def _is_word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _trie_pattern(phrases: Iterable[str]) -> str:
    """Return a regular expression for the alternation of `phrases`, factored as a trie.

    A factored alternation tries far fewer branches at each position than a flat one, which
    matters because it runs on every log line. A space matches any run of white space.
    """
    trie: dict[str, Any] = {}
    for phrase in phrases:
        node = trie
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}

    def build(node: dict[str, Any]) -> str:
        ends = "" in node
        branches = [
            (r"\s+" if char == " " else re.escape(char)) + build(child)
            for char, child in sorted(node.items())
            if char
        ]
        if not branches:
            return ""
        if len(branches) == 1 and not ends:
            return branches[0]
        group = "(?:" + "|".join(branches) + ")"
        return group + "?" if ends else group

    return build(trie)


def _never(text: str) -> None:
    return None


class KeywordMatcher:
    """Finds the first of a set of keywords or phrases in a text, as whole tokens, any case.

    In: a text. Out: the keyword found (as written in the text, lower-cased) or None.
    Keywords are matched on the lower-cased text by one trie-shaped expression; a hit whose
    neighbouring character continues a word (letter, digit or `_`) is skipped, and only on
    the sides where the keyword itself begins or ends with a word character.

    Args:
        keywords: the words or phrases; empty ones are ignored.
    """

    def __init__(self, keywords: Sequence[str]) -> None:
        phrases = sorted({" ".join(k.lower().split()) for k in keywords if k.strip()})
        self.keywords = tuple(phrases)
        self._pattern = re.compile(_trie_pattern(phrases)) if phrases else None
        # `maybe(lowered)` is a cheap first test: None means no keyword can be there.
        self.maybe: Callable[[str], object] = (
            self._pattern.search if self._pattern is not None else _never
        )

    def find(self, text: str) -> str | None:
        """Return the first keyword that occurs in `text` as a whole token, or None."""
        return self.find_lowered(text.lower())

    def find_lowered(self, lowered: str) -> str | None:
        """Return the first keyword in the already lower-cased `lowered`, or None."""
        if self._pattern is None:
            return None
        search = self._pattern.search
        match = search(lowered)
        while match is not None:
            start, end = match.span()
            found = match.group()
            if not (
                (start > 0 and _is_word_char(found[0]) and _is_word_char(lowered[start - 1]))
                or (end < len(lowered) and _is_word_char(found[-1]) and _is_word_char(lowered[end]))
            ):
                return " ".join(found.split())
            match = search(lowered, start + 1)
        return None


class CrashRule:
    """Fires on crash signatures in log lines.

    In: `update(event)` with each `LogEvent`. Out: a one-item sequence with the trigger, or an
    empty one. State: the cooldown per `process/subsystem` (event time). The trigger's
    evidence is the crash line itself, with its `id`.

    Args:
        config: `[rules.crash]`.
        cooldown_seconds: `[rules] cooldown_seconds`.
    """

    name = "crash"
    kinds = frozenset({"log"})
    levels: frozenset[str] | None = None

    def __init__(self, config: CrashConfig, cooldown_seconds: float) -> None:
        self.severity = config.severity
        self.drops = Drops(f"rule {self.name}")
        self._strong = KeywordMatcher(config.strong_keywords)
        self._weak = KeywordMatcher(config.keywords)
        self._strong_maybe = self._strong.maybe
        self._weak_maybe = self._weak.maybe
        self._cooldown = Cooldown(cooldown_seconds, _MAX_KEYS, self.drops)

    def update(self, event: LogEvent) -> Sequence[Trigger]:
        """Return the trigger `event` fires, if any."""
        lowered = event.message.lower()
        if self._strong_maybe(lowered) is None and (
            event.level not in _SEVERE or self._weak_maybe(lowered) is None
        ):
            return _NOTHING
        found = self._strong.find_lowered(lowered)
        if found is None and event.level in _SEVERE:
            found = self._weak.find_lowered(lowered)
        if found is None:
            return _NOTHING
        message = event.message
        key = event.source
        ts = event.ts
        if not self._cooldown.admit(key, ts, self.severity):
            return _NOTHING
        pid = f" (pid {event.pid})" if event.pid is not None else ""
        reason = f"{key}{pid} logged the crash signature {found!r} at level {event.level}."
        evidence = Evidence(ts, f"{event.level}: {message[:_EVIDENCE_CHARS]}", event.id)
        return (
            Trigger(
                rule=self.name,
                host=event.host,
                key=key,
                severity=self.severity,  # type: ignore[arg-type]
                ts=ts,
                window_start=ts,
                window_end=ts,
                reason=reason,
                evidence=(evidence,),
            ),
        )

    def snapshot(self) -> object:
        """Return the rule's state as plain data."""
        return self._cooldown.snapshot()

    def restore(self, state: Any) -> None:
        """Load what `snapshot` returned."""
        self._cooldown.restore(state)
