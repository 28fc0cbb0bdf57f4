"""Message templates: the text of a log message with the parts that vary between occurrences masked.

In: a log message. Out: its template, where UUIDs, IP addresses (v4 with an optional port, v6),
MAC addresses, hex values and addresses, and numbers are replaced by `<uuid>`, `<ip>`, `<hex>`
and `<num>`, so that `timeout after 31 ms` and `timeout after 950 ms` are one signature.
"""

from __future__ import annotations

import re

__all__ = ["MAX_TEMPLATE_CHARS", "message_template"]

MAX_TEMPLATE_CHARS = 512
_CACHE_SIZE = 4096

_H = "[0-9a-fA-F]"
_UUID = re.compile(rf"\b{_H}{{8}}-{_H}{{4}}-{_H}{{4}}-{_H}{{4}}-{_H}{{12}}\b")
_IPV4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b")
_IPV6 = re.compile(
    rf"(?<![\w:])(?:(?:{_H}{{1,4}}:){{5,7}}{_H}{{1,4}}"
    rf"|(?:{_H}{{1,4}}:){{1,6}}:(?:{_H}{{1,4}}(?::{_H}{{1,4}}){{0,5}})?"
    rf"|::{_H}{{1,4}}(?::{_H}{{1,4}}){{0,6}})(?![\w:])"
)
_HEX_PREFIXED = re.compile(rf"\b0[xX]{_H}+\b")
_HEX_WORD = re.compile(rf"\b{_H}{{4,}}\b")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DIGITS = frozenset("0123456789")

_cache: dict[str, str] = {}


def _hex_word(match: re.Match[str]) -> str:
    # A word of 4+ hex characters is a hex value only when it mixes digits and letters:
    # `7f3a2b` and `deadbeef12` are, `accepted`, `cafe` and `12345678` (a number, masked
    # next) are not.
    word = match.group()
    has_digit = not _DIGITS.isdisjoint(word)
    return "<hex>" if has_digit and not word.isdigit() else word


def _mask(text: str) -> str:
    if "-" in text:
        text = _UUID.sub("<uuid>", text)
    if "." in text:
        text = _IPV4.sub("<ip>", text)
    if "::" in text or text.count(":") >= 5:
        text = _IPV6.sub("<ip>", text)
    if "0x" in text or "0X" in text:
        text = _HEX_PREFIXED.sub("<hex>", text)
    text = _HEX_WORD.sub(_hex_word, text)
    return _NUMBER.sub("<num>", text)


def message_template(message: str) -> str:
    """Return `message` with its varying parts masked, cut to `MAX_TEMPLATE_CHARS` first.

    Example: `conn 10.0.0.7:443 reset after 31 ms (0x7f3a)` gives
    `conn <ip> reset after <num> ms (<hex>)`. Recent results are cached (bounded).
    """
    template = _cache.get(message)
    if template is None:
        template = _mask(message[:MAX_TEMPLATE_CHARS])
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[message] = template
    return template
