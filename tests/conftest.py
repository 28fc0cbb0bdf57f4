"""Shared test set-up: no test sees the developer's own Eyes configuration."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
DATASETS = SHARED / "datasets"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(autouse=True)
def _no_eyes_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Clear `EYES_CONFIG` and `EYES__*` overrides; point the data directory at a temp folder."""
    for name in list(os.environ):
        if name == "EYES_CONFIG" or name.startswith("EYES__"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
