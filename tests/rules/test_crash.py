from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.config import DEFAULT_CRASH_KEYWORDS, DEFAULT_STRONG_CRASH_KEYWORDS, CrashConfig
from operators.rules.crash import CrashRule, KeywordMatcher
from operators.triggers import Evidence
from tests.rules.factory import T0, log


def _rule(cooldown: float = 300.0, **config: object) -> CrashRule:
    return CrashRule(CrashConfig(**config), cooldown)  # type: ignore[arg-type]


def test_a_crash_keyword_on_an_error_line_fires_a_critical_trigger() -> None:
    line = log(5, "worker 3 crashed with signal 11", process="nginx", subsystem="nginx.service")
    [trigger] = _rule().update(line)
    assert trigger.rule == "crash"
    assert trigger.severity == "critical"
    assert trigger.host == "web-1"
    assert trigger.key == "nginx/nginx.service"
    assert (trigger.ts, trigger.window_start, trigger.window_end) == (T0 + 5, T0 + 5, T0 + 5)
    assert trigger.reason == (
        "nginx/nginx.service logged the crash signature 'crashed' at level error."
    )


def test_the_evidence_is_the_crash_line_with_its_id() -> None:
    [trigger] = _rule().update(log(5, "app crashed", id="e42"))
    assert trigger.evidence == (Evidence(T0 + 5, "error: app crashed", "e42"),)


def test_keyword_inside_a_word_does_not_fire() -> None:
    rule = _rule()
    assert rule.update(log(1, "Crashpad handler started")) == ()
    assert rule.update(log(2, "wrote /Library/Logs/CrashReporter/x.ips")) == ()
    assert rule.update(log(3, "crash_handler installed")) == ()
    assert rule.update(log(4, "segfaulted_count=0", level="info")) == ()


@pytest.mark.parametrize(
    "message",
    ["CRASH in module x", "app Crashed!", "[crash] worker", "crash-handler: caught it"],
)
def test_a_keyword_is_found_as_a_whole_token_in_any_case(message: str) -> None:
    assert len(_rule().update(log(1, message))) == 1


def test_a_weak_keyword_below_error_does_not_fire() -> None:
    rule = _rule()
    assert rule.update(log(1, "previous run crashed, recovering", level="warning")) == ()
    assert rule.update(log(2, "previous run crashed, recovering", level="info")) == ()


def test_a_kernel_segfault_logged_at_info_fires() -> None:
    line = log(
        1,
        "nginx[811]: segfault at 0 ip 00007f3a2b1c4d10 sp 00007ffd5e6f7a80 error 4 in libc.so.6",
        level="info",
        process="kernel",
        subsystem=None,
    )
    [trigger] = _rule().update(line)
    assert trigger.key == "kernel/-"
    assert "'segfault'" in trigger.reason


def test_a_phrase_matches_across_any_white_space() -> None:
    [trigger] = _rule().update(log(1, "Out of memory:   Killed process 4242 (java)", level="info"))
    assert "'out of memory: killed process'" in trigger.reason


def test_a_core_dump_at_crit_fires() -> None:
    line = log(1, "Process 811 (nginx) of user 0 dumped core.", level="fault")
    assert len(_rule().update(line)) == 1


def test_macos_crash_signatures_fire_at_any_level() -> None:
    rule = _rule()
    assert len(rule.update(log(1, "Exception Type: EXC_BAD_ACCESS (SIGSEGV)", level="notice")))
    assert len(rule.update(log(2, "panic(cpu 2 caller 0xffffff8012): Kernel trap", process="k")))


def test_the_same_source_fires_once_per_cooldown() -> None:
    rule = _rule(cooldown=300.0)
    assert len(rule.update(log(0, "app crashed"))) == 1
    assert rule.update(log(100, "app crashed again")) == ()
    assert len(rule.update(log(300, "app crashed once more"))) == 1


def test_different_sources_fire_independently() -> None:
    rule = _rule()
    assert len(rule.update(log(0, "app crashed", process="a"))) == 1
    assert len(rule.update(log(1, "app crashed", process="b"))) == 1


def test_configured_keywords_replace_the_defaults() -> None:
    rule = _rule(keywords=["went boom"], strong_keywords=[])
    assert rule.update(log(0, "segfault at 0", level="fault")) == ()
    assert len(rule.update(log(1, "the reactor Went  Boom", level="error"))) == 1


def test_the_configured_severity_is_used() -> None:
    [trigger] = _rule(severity="warning").update(log(0, "app crashed"))
    assert trigger.severity == "warning"


def test_the_matcher_skips_a_hit_inside_a_word_and_finds_a_later_one() -> None:
    matcher = KeywordMatcher(["segfault"])
    assert matcher.find("segfaulted, then a segfault") == "segfault"


def test_every_default_keyword_matches_itself() -> None:
    for keywords in (DEFAULT_CRASH_KEYWORDS, DEFAULT_STRONG_CRASH_KEYWORDS):
        matcher = KeywordMatcher(keywords)
        for keyword in keywords:
            assert matcher.find(f"x {keyword} y") is not None, keyword


_ordinary = st.text(alphabet="abdfhjlmnqrtuvwxyz0123456789 .:=/-", max_size=120)


@given(_ordinary)
def test_text_without_a_keyword_never_fires(message: str) -> None:
    assert _rule().update(log(0, message, level="fault")) == ()


@given(st.sampled_from(DEFAULT_STRONG_CRASH_KEYWORDS), st.text(alphabet="abcxyz", max_size=3))
def test_a_strong_keyword_glued_to_letters_does_not_fire(keyword: str, glue: str) -> None:
    first_is_word = keyword[0].isalnum()
    last_is_word = keyword[-1].isalnum()
    message = f"{glue if first_is_word else ''}{keyword}{glue if last_is_word else ''}"
    fired = _rule(keywords=[]).update(log(0, message, level="info"))
    assert (len(fired) == 1) == (glue == "")
