from __future__ import annotations

import pickle

from hypothesis import given, settings
from hypothesis import strategies as st

from flows.config import ErrorFrequencyConfig
from operators.events import LogEvent
from operators.rules.error_frequency import ErrorFrequencyRule
from operators.triggers import Trigger
from tests.rules.factory import T0, log

_KINDS = [
    "disk quota exceeded for {n}",
    "cannot open /var/lib/app/{n}.db",
    "token {n} expired",
    "queue {n} is full",
    "lock {n} timed out",
    "peer {n} refused",
    "bad request {n}",
]


def _rule(cooldown: float = 300.0, **config: object) -> ErrorFrequencyRule:
    return ErrorFrequencyRule(ErrorFrequencyConfig(**config), cooldown)  # type: ignore[arg-type]


def _feed(rule: ErrorFrequencyRule, lines: list[LogEvent]) -> list[Trigger]:
    return [trigger for line in lines for trigger in rule.update(line)]


def test_more_distinct_signatures_than_the_threshold_fire() -> None:
    lines = [log(n, kind.format(n=n), id=f"e{n}") for n, kind in enumerate(_KINDS[:6])]
    [trigger] = _feed(_rule(threshold=5), lines)
    assert trigger.rule == "error_frequency"
    assert trigger.key == "app/app.service"
    assert trigger.severity == "warning"
    assert (trigger.ts, trigger.window_start, trigger.window_end) == (T0 + 5, T0, T0 + 5)
    assert trigger.reason == (
        "app/app.service logged 6 distinct error signatures within 60 s (threshold 5)."
    )


def test_exactly_the_threshold_of_distinct_signatures_does_not_fire() -> None:
    lines = [log(n, kind.format(n=n)) for n, kind in enumerate(_KINDS[:5])]
    assert _feed(_rule(threshold=5), lines) == []


def test_the_evidence_lists_counted_signatures_and_sample_lines() -> None:
    lines = [log(0, "token 1 expired", id="a"), log(1, "token 2 expired", id="b")]
    lines += [log(2 + n, kind.format(n=n), id=f"k{n}") for n, kind in enumerate(_KINDS[3:6])]
    [trigger] = _feed(_rule(threshold=3), lines)
    texts = [(item.id, item.text) for item in trigger.evidence]
    assert texts[0] == ("b", "2 in the window, 0 in the one before: error 'token <num> expired'")
    assert len(texts) == 4 + 3
    assert texts[4] == ("b", "error: token 2 expired")


def test_one_signature_bursting_against_the_previous_window_fires() -> None:
    before = [log(0.5 * (n + 1), f"timeout after {31 + n} ms", id=f"p{n}") for n in range(3)]
    burst = [log(62 + n, f"timeout after {900 + n * 50} ms", id=f"b{n}") for n in range(6)]
    rule = _rule(threshold=5, burst_ratio=2.0)
    rule.start(T0 - 60)
    [trigger] = _feed(rule, before + burst)
    assert trigger.ts == T0 + 67
    assert trigger.window_start == T0 + 0.5
    assert trigger.reason == (
        "app/app.service logged the error 'timeout after <num> ms' 6 times within 60 s "
        "(threshold 5), against 3 in the preceding 60 s (burst ratio 2)."
    )
    assert [item.id for item in trigger.evidence] == ["b5", "b3", "b4", "b5"]


def test_a_steady_signature_is_not_a_burst_even_right_after_start_up() -> None:
    lines = [log(n * 5, f"timeout after {n} ms") for n in range(48)]  # 12 a minute, 4 minutes
    assert _feed(_rule(threshold=5, burst_ratio=2.0), lines) == []


def test_a_burst_waits_for_a_watched_preceding_window() -> None:
    rule = _rule(threshold=5, burst_ratio=2.0, window_seconds=60.0)
    rule.start(T0)
    early = [log(60 + n, f"lock {n} timed out") for n in range(6)]  # only (0, 60] watched before
    late = [log(180 + n, f"lock {n} timed out") for n in range(6)]
    assert _feed(rule, early) == []
    assert [t.ts for t in _feed(rule, late)] == [T0 + 185]


def test_a_burst_below_the_ratio_does_not_fire() -> None:
    before = [log(n * 6, "lock 1 timed out") for n in range(10)]  # 10 in the first minute
    after = [log(61 + n, "lock 1 timed out") for n in range(15)]  # 15 < 2 x 10
    rule = _rule(threshold=5, burst_ratio=2.0)
    _feed(rule, before)
    assert _feed(rule, after) == []


def test_unrelated_sources_are_never_combined() -> None:
    lines = [log(n, kind.format(n=n), process=f"p{n % 2}") for n, kind in enumerate(_KINDS[:7])]
    assert _feed(_rule(threshold=5), lines) == []


def test_lines_below_error_are_not_counted() -> None:
    lines = [log(n, kind.format(n=n), level="warning") for n, kind in enumerate(_KINDS)]
    assert _feed(_rule(threshold=2), lines) == []


def test_fault_and_error_lines_of_one_message_are_two_signatures() -> None:
    lines = [log(0, "disk gone", level="error"), log(1, "disk gone", level="fault")]
    lines.append(log(2, "bus reset"))
    assert len(_feed(_rule(threshold=2), lines)) == 1


def test_ignored_messages_are_not_counted() -> None:
    lines = [log(n, kind.format(n=n)) for n, kind in enumerate(_KINDS)]
    rule = _rule(threshold=5, ignore=["^token", "refused$", "quota"])
    assert _feed(rule, lines) == []


def test_signatures_older_than_the_window_no_longer_count() -> None:
    old = [log(n, kind.format(n=n)) for n, kind in enumerate(_KINDS[:3])]
    new = [log(100 + n, kind.format(n=n)) for n, kind in enumerate(_KINDS[3:6])]
    assert _feed(_rule(threshold=5), old + new) == []


def test_a_source_fires_once_per_cooldown() -> None:
    lines = [log(n, kind.format(n=n)) for n, kind in enumerate(_KINDS)]
    lines += [log(200 + n, kind.format(n=n)) for n, kind in enumerate(_KINDS)]
    lines += [log(400 + n, kind.format(n=n)) for n, kind in enumerate(_KINDS)]
    triggers = _feed(_rule(cooldown=300.0, threshold=5), lines)
    assert [t.ts for t in triggers] == [T0 + 5, T0 + 405]


def test_a_flood_of_unique_messages_is_bounded_and_counted() -> None:
    rule = _rule(threshold=1_000_000, max_signatures=50)
    for n in range(500):
        rule.update(log(n * 0.01, f"unique failure {'x' * (n % 7)} {chr(65 + n % 26)}{n}"))
    assert len(rule._sources["app/app.service"].signatures) == 50
    assert rule.drops.counts["signatures"] > 0


def test_an_evicted_signature_no_longer_counts_as_distinct() -> None:
    rule = _rule(threshold=3, max_signatures=3)
    lines = [log(n, kind.format(n=n)) for n, kind in enumerate(_KINDS[:6])]
    assert _feed(rule, lines) == []
    assert rule._sources["app/app.service"].distinct == 3


def test_a_source_silent_for_two_windows_is_forgotten() -> None:
    rule = _rule(window_seconds=60.0)
    rule.update(log(0, "x failed", process="old"))
    rule.update(log(121, "y failed", process="new"))
    assert list(rule._sources) == ["new/app.service"]


_lines = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=20.0),
        st.sampled_from(_KINDS),
        st.sampled_from(["a", "b"]),
        st.sampled_from(["error", "fault", "info"]),
    ),
    max_size=80,
)


def _events(steps: list[tuple[float, str, str, str]]) -> list[LogEvent]:
    now = 0.0
    out = []
    for n, (step, kind, process, level) in enumerate(steps):
        now += step
        out.append(log(now, kind.format(n=n), process=process, level=level, id=n))
    return out


@settings(max_examples=60)
@given(_lines, st.integers(min_value=0, max_value=80))
def test_a_restored_rule_fires_what_the_original_would(
    steps: list[tuple[float, str, str, str]], cut: int
) -> None:
    lines = _events(steps)
    original = _rule(cooldown=30.0, threshold=2, window_seconds=30.0)
    expected = _feed(original, lines)
    first = _rule(cooldown=30.0, threshold=2, window_seconds=30.0)
    head = _feed(first, lines[:cut])
    resumed = _rule(cooldown=30.0, threshold=2, window_seconds=30.0)
    resumed.restore(pickle.loads(pickle.dumps(first.snapshot())))
    assert head + _feed(resumed, lines[cut:]) == expected


def _brute_force(lines: list[LogEvent], threshold: int, window: float, ratio: float) -> list[float]:
    """The rule by definition, rescanning everything per line (cooldown 0)."""
    fired = []
    seen: list[LogEvent] = []
    for line in lines:
        if line.level not in ("error", "fault"):
            continue
        seen.append(line)
        now = line.ts
        watched = now - 2 * window >= seen[0].ts

        def sig(event: LogEvent) -> tuple[str, str]:
            return event.level, event.message.split(" ")[0]

        mine = [e for e in seen if e.source == line.source]
        current = [sig(e) for e in mine if now - window < e.ts <= now]
        previous = [sig(e) for e in mine if now - 2 * window < e.ts <= now - window]
        count = current.count(sig(line))
        if len(set(current)) > threshold or (
            watched and count > threshold and count >= ratio * previous.count(sig(line))
        ):
            fired.append(now)
    return fired


@settings(max_examples=80)
@given(_lines)
def test_the_incremental_rule_agrees_with_a_full_rescan(
    steps: list[tuple[float, str, str, str]],
) -> None:
    lines = _events(steps)
    rule = _rule(cooldown=0.0, threshold=2, window_seconds=15.0, burst_ratio=2.0)
    fired = [t.ts for t in _feed(rule, lines)]
    assert fired == _brute_force(lines, threshold=2, window=15.0, ratio=2.0)
