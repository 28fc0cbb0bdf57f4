"""Shared set-up of the live source tests: fake `journalctl` and `log` first on PATH, polling."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import FIXTURES

BIN = FIXTURES / "bin"


@pytest.fixture
def fake_bin(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the fake `journalctl` and `log` programs first on PATH; return their folder."""
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    for name in list(os.environ):
        if name.startswith(("FAKE_JOURNALCTL_", "FAKE_LOG_")) or name in (
            "FAKE_PID_FILE",
            "FAKE_ARGV_FILE",
        ):
            monkeypatch.delenv(name)
    return BIN


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll `predicate` until it returns something true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


def pid_alive(pid: int) -> bool:
    """Return True while `pid` is a live (not zombie) process."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            state = handle.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def pids_in(path: Path) -> list[int]:
    """Return the pids a fake program wrote to its pid file, in start order."""
    try:
        return [int(line) for line in path.read_text().split()]
    except FileNotFoundError:
        return []


def collect(
    part: Any, until: Callable[[list[Any]], bool] = lambda _: False, timeout: float = 30.0
) -> tuple[list[Any], bool]:
    """Call `part.next_batch()` until `until(items so far)` or EOF; return (items, eof)."""
    items: list[Any] = []
    deadline = time.monotonic() + timeout
    while not until(items):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s; got {len(items)} items")
        try:
            batch = list(part.next_batch())
        except StopIteration:
            return items, True
        if batch:
            items.extend(batch)
        else:
            time.sleep(0.005)
    return items, False
