from __future__ import annotations

from flows.config import Config
from operators.rules.ruleset import build_rules
from tests.rules.factory import config_with


def test_the_defaults_build_all_five_rules() -> None:
    assert [rule.name for rule in build_rules(Config().rules)] == [
        "crash",
        "error_frequency",
        "memory_pressure",
        "resource_spike",
        "disk_spike",
    ]


def test_a_disabled_rule_is_not_built() -> None:
    config = config_with(crash={"enabled": False}, disk_spike={"enabled": False})
    assert [rule.name for rule in build_rules(config.rules)] == [
        "error_frequency",
        "memory_pressure",
        "resource_spike",
    ]


def test_the_shared_cooldown_reaches_every_rule() -> None:
    rules = build_rules(config_with(rules={"cooldown_seconds": 7.0}).rules)
    assert {rule._cooldown.seconds for rule in rules} == {7.0}  # type: ignore[attr-defined]
