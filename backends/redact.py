"""Mask secrets in text before it leaves the machine in a prompt.

In: any text from a host (log lines, process names, rule reasons). Out: the same text with
passwords, tokens, API keys, bearer and basic credentials, private keys, credentials in URLs and
e-mail addresses replaced by `[REDACTED]` (the name of the field is kept, the value is not).

Masking is pattern based: it errs on the side of masking a harmless value (`token: expired`)
rather than letting a secret through, and it cannot know a secret that has no recognisable shape
or name (a bare password on its own line).
"""

from __future__ import annotations

import re

__all__ = ["MASK", "redact"]

MASK = "[REDACTED]"

# PEM private keys, whole block; a block cut before its END line is masked to the end of text.
_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----.*?"
    r"(-----END[A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----|\Z)",
    re.DOTALL,
)
# Credentials in URLs: scheme://user:password@host, the user possibly empty (redis://:pw@host).
_URL_CREDENTIALS = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+@")
# Authorization headers (the whole value), and bare bearer / basic credentials.
_AUTHORIZATION = re.compile(r"(?i)\b((?:proxy-)?authorization\"?\s*[:=]\s*\"?)[^\r\n\"']+")
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9._~+/=-]{8,}")
_BASIC = re.compile(r"\b((?i:basic)\s+)(?=[A-Za-z0-9+/]*[A-Z0-9+/=])[A-Za-z0-9+/]{8,}={0,2}")
# name=value, name: value, "name": "value" for names that hold secrets. A quoted value is
# masked up to its closing quote (spaces and backslash-escaped quotes included), or to the end
# of the line when the quote is never closed; a bare value ends at a space or a delimiter.
_SECRET_NAMES = (
    r"[A-Za-z0-9_.-]*?(?:password|passwd|passphrase|secret|token|api[_-]?key|access[_-]?key"
    r"|private[_-]?key|credentials?)s?|pwd|cookie|session[_-]?id"
)
_NAMED_SECRET = re.compile(
    rf"(?i)(?<![A-Za-z0-9])({_SECRET_NAMES})(\"?\s*[=:]\s*\"?|\s+is\s+)(['\"]?)"
    r"(?!\[REDACTED\])((?<=\")(?:\\.|[^\"\\\r\n])+|(?<=')[^'\r\n]+|[^\s'\",;&)}\]]+)"
)
# Well-known key shapes, wherever they appear.
_KEY_SHAPES = re.compile(
    r"\b(?:"
    r"sk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}"  # OpenAI, Anthropic
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key ids
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{20,}"  # GitHub
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35}"  # Google
    r"|[rs]k_(?:live|test)_[0-9A-Za-z]{16,}"  # Stripe
    r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"  # JSON web tokens
    r")"
)
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"
)


def redact(text: str) -> str:
    """Return `text` with every recognised secret and e-mail address replaced by `[REDACTED]`."""
    if not text:
        return text
    text = _PRIVATE_KEY.sub(MASK, text)
    text = _URL_CREDENTIALS.sub(rf"\1{MASK}@", text)
    text = _AUTHORIZATION.sub(rf"\1{MASK}", text)
    text = _BEARER.sub(rf"\1{MASK}", text)
    text = _BASIC.sub(rf"\1{MASK}", text)
    text = _KEY_SHAPES.sub(MASK, text)
    text = _NAMED_SECRET.sub(rf"\1\2\3{MASK}", text)
    return _EMAIL.sub(MASK, text)
