from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.rules.template import MAX_TEMPLATE_CHARS, message_template


def test_timeouts_of_different_lengths_are_one_signature() -> None:
    assert message_template("timeout after 31 ms") == "timeout after <num> ms"
    assert message_template("timeout after 950 ms") == "timeout after <num> ms"


@pytest.mark.parametrize(
    ("message", "template"),
    [
        ("conn 10.0.0.7:443 reset", "conn <ip> reset"),
        ("peer 192.168.1.20 gone", "peer <ip> gone"),
        ("bind [fe80::1] failed", "bind [<ip>] failed"),
        ("from 2001:db8::8a2e:370:7334 denied", "from <ip> denied"),
        ("link 00:1a:2b:3c:4d:5e down", "link <ip> down"),
        ("fault at 0x7f3a2b1c4d10", "fault at <hex>"),
        ("object 7fc235807b90 freed twice", "object <hex> freed twice"),
        ("session 7f3a2b closed", "session <hex> closed"),
        ("lock a1b2 held by 4f0e", "lock <hex> held by <hex>"),
        (
            "job 1234abcd-1234-4abc-a123-123456789abc failed",
            "job <uuid> failed",
        ),
        ("took 1.5 s on try 3", "took <num> s on try <num>"),
    ],
)
def test_varying_parts_are_masked(message: str, template: str) -> None:
    assert message_template(message) == template


def test_words_made_of_hex_letters_are_kept() -> None:
    assert message_template("accepted deadbeef cafe feed") == "accepted deadbeef cafe feed"


def test_a_long_message_is_cut_before_masking() -> None:
    assert len(message_template("x" * (MAX_TEMPLATE_CHARS + 100))) == MAX_TEMPLATE_CHARS


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=0, max_value=10**12))
def test_messages_that_differ_only_in_numbers_share_a_template(first: int, second: int) -> None:
    one = message_template(f"request {first} failed after {first % 977} ms")
    other = message_template(f"request {second} failed after {second % 977} ms")
    assert one == other == "request <num> failed after <num> ms"


@given(st.text(max_size=200))
def test_masking_a_template_again_changes_nothing(message: str) -> None:
    template = message_template(message)
    assert message_template(template) == template
