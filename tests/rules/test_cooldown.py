from __future__ import annotations

from operators.rules.cooldown import Cooldown
from operators.rules.limits import Drops


def _cooldown(seconds: float = 300.0, max_keys: int = 100) -> Cooldown:
    return Cooldown(seconds, max_keys, Drops("test"))


def test_a_key_fires_once_within_the_cooldown() -> None:
    cooldown = _cooldown()
    assert cooldown.admit("nginx/-", 100.0, "warning") is True
    assert cooldown.admit("nginx/-", 399.9, "warning") is False


def test_a_key_fires_again_once_the_cooldown_has_passed() -> None:
    cooldown = _cooldown()
    assert cooldown.admit("nginx/-", 100.0, "warning") is True
    assert cooldown.admit("nginx/-", 400.0, "warning") is True


def test_other_keys_have_their_own_cooldown() -> None:
    cooldown = _cooldown()
    assert cooldown.admit("nginx/-", 100.0, "warning") is True
    assert cooldown.admit("sshd/-", 101.0, "warning") is True


def test_an_escalation_is_always_reported_and_restarts_the_cooldown() -> None:
    cooldown = _cooldown()
    assert cooldown.admit("mem_pressure", 100.0, "warning") is True
    assert cooldown.admit("mem_pressure", 110.0, "critical") is True
    assert cooldown.admit("mem_pressure", 120.0, "critical") is False
    assert cooldown.admit("mem_pressure", 130.0, "warning") is False
    assert cooldown.admit("mem_pressure", 410.0, "warning") is True


def test_an_event_slightly_older_than_the_last_fire_is_still_in_the_cooldown() -> None:
    cooldown = _cooldown()
    assert cooldown.admit("nginx/-", 100.0, "warning") is True
    assert cooldown.admit("nginx/-", 98.0, "warning") is False


def test_a_zero_cooldown_never_suppresses() -> None:
    cooldown = _cooldown(seconds=0.0)
    assert [cooldown.admit("k", 5.0, "warning") for _ in range(3)] == [True, True, True]


def test_keys_whose_cooldown_passed_are_forgotten() -> None:
    cooldown = _cooldown(seconds=10.0)
    for n in range(50):
        cooldown.admit(f"key-{n}", float(n), "warning")
    assert len(cooldown) == 10


def test_beyond_max_keys_the_oldest_is_evicted_and_counted() -> None:
    cooldown = _cooldown(max_keys=3)
    for n in range(5):
        cooldown.admit(f"key-{n}", float(n), "warning")
    assert len(cooldown) == 3
    assert cooldown.drops.counts == {"cooldown_keys": 2}
    assert cooldown.admit("key-0", 5.0, "warning") is True


def test_a_restored_cooldown_suppresses_like_the_original() -> None:
    original = _cooldown()
    original.admit("nginx/-", 100.0, "critical")
    restored = _cooldown()
    restored.restore(original.snapshot())
    assert restored.admit("nginx/-", 200.0, "critical") is False
    assert restored.admit("nginx/-", 400.0, "critical") is True
