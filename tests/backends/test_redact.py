from __future__ import annotations

import pytest

from backends.redact import MASK, redact


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("login failed password=hunter2 for x", "hunter2"),
        ('config {"db_password": "s3cr3t!"} loaded', "s3cr3t!"),
        ("DB_PASSWORD=abc123 started", "abc123"),
        ("the passphrase is correct-horse", "correct-horse"),
        ("api_key: 9f8e7d6c5b4a", "9f8e7d6c5b4a"),
        ("client_secret=Zm9vYmFy&x=1", "Zm9vYmFy"),
        ("refresh token=eyJhYmMiOiJkZWYifQ", "eyJhYmMiOiJkZWYifQ"),
        ("Authorization: Bearer abcdefgh12345678", "abcdefgh12345678"),
        ('curl -H "Authorization: Basic dXNlcjpwYXNz" x', "dXNlcjpwYXNz"),
        ("sent Bearer Zx81kQ0aPq73LmN1 upstream", "Zx81kQ0aPq73LmN1"),
        ("using key sk-proj-ABCDEFGHIJKLMNOPQRST1234", "sk-proj-ABCDEFGHIJKLMNOPQRST1234"),
        ("aws AKIAIOSFODNN7EXAMPLE denied", "AKIAIOSFODNN7EXAMPLE"),
        ("token ghp_abcdefghijklmnopqrstuvwxyz0123456789 used", "ghp_abcdefghijklmnopqrstuvwxyz01"),
        ("fetch https://deploy:t0ps3cret@git.example.org/repo", "t0ps3cret"),
        ("mail from alice.smith+ops@example.co.uk bounced", "alice.smith+ops@example.co.uk"),
        (
            "key -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk\n"
            "-----END OPENSSH PRIVATE KEY-----",
            "b3BlbnNzaC1rZXk",
        ),
        ("cut -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA", "MIIEowIBAAKCAQEA"),
    ],
)
def test_each_kind_of_secret_is_masked(text: str, secret: str) -> None:
    masked = redact(text)
    assert secret not in masked
    assert MASK in masked


def test_the_name_of_a_secret_stays_so_the_line_still_reads() -> None:
    assert redact("login failed password=hunter2 for x") == f"login failed password={MASK} for x"
    assert redact('{"password": "s3cr3t"}') == f'{{"password": "{MASK}"}}'


def test_a_url_password_without_a_user_is_masked() -> None:
    assert redact("connect redis://:mypassword@cache-1:6379/0") == (
        f"connect redis://:{MASK}@cache-1:6379/0"
    )


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ('{"password": "p@ss word", "user": "bob"}', f'{{"password": "{MASK}", "user": "bob"}}'),
        ("password='two words' ok", f"password='{MASK}' ok"),
        ('token="a \\"quoted\\" b" next', f'token="{MASK}" next'),
        ('password="cut off by the log', f'password="{MASK}'),
    ],
)
def test_a_quoted_secret_is_masked_up_to_its_closing_quote(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "upstream timed out (110: Connection timed out) while reading, client: 10.0.0.7",
        "tests passed: 5 in 3 ms",
        "basic authentication failed for user deploy",
        "Accepted publickey for root from 10.1.1.1 port 22 ssh2",
        "nginx[811]: segfault at 0 ip 00007f3a2b1c4d10 error 4 in libc.so.6",
        "GET http://cache-1:6379/health returned 200",
        "listening on redis://cache-1:6379 and http://[::1]:8080/",
        'config {"user": "bob", "note": "two words here"} loaded',
    ],
)
def test_ordinary_log_lines_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_empty_text_stays_empty() -> None:
    assert redact("") == ""
