"""Every module states its public surface in `__all__`, and every name there exists."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

PACKAGES = ("flows", "operators", "backends")


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        module = importlib.import_module(package)
        names.extend(
            info.name for info in pkgutil.walk_packages(module.__path__, prefix=f"{package}.")
        )
    return sorted(names)


@pytest.mark.parametrize("name", _modules())
def test_every_module_names_its_public_surface(name: str) -> None:
    module = importlib.import_module(name)
    if hasattr(module, "__path__"):
        return  # a package's __init__ only describes the folder
    assert hasattr(module, "__all__"), f"{name} does not set __all__"
    missing = [symbol for symbol in module.__all__ if not hasattr(module, symbol)]
    assert missing == [], f"{name}.__all__ names what it does not define"
    assert module.__doc__, f"{name} has no docstring"
