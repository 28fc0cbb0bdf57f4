"""Build the backend that `[ai]` names, probing for Ollama when `backend = "auto"`.

In: an `AiConfig` (and the environment, for the key). Out: a `Backend`; the two that ask a
server over HTTP (`ollama`, `openai`) run in a child process (`backends.process`). `auto` asks
`GET {endpoint}/api/tags` once, at start, with a short timeout: when Ollama answers and has the
model, `auto` is `ollama`; otherwise it is `none`, said in one log line with the reason and the
fix, and every trigger then gets the rule-based insight at no cost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from backends.base import Backend
from backends.errors import BackendError
from backends.mock import MockBackend
from backends.none import NoneBackend
from backends.ollama import OllamaBackend, list_models
from backends.openai import OpenAIBackend
from backends.process import ProcessBackend
from backends.recorded import RecordedBackend
from flows.config import AiConfig

__all__ = ["PROBE_SECONDS", "build_backend", "has_model", "recordings_path"]

log = logging.getLogger(__name__)

PROBE_SECONDS = 2.0
# Where the shipped recordings are found when `ai.recordings` is relative and not in the
# current directory: the Eyes checkout that holds `fixtures/`.
_CHECKOUT = Path(__file__).resolve().parents[1]


def has_model(names: list[str], model: str) -> bool:
    """Whether Ollama's model list holds `model` ("llama3" matches "llama3:latest")."""
    wanted = model if ":" in model else f"{model}:latest"
    return model in names or wanted in names


def _ollama(ai: AiConfig) -> ProcessBackend:
    return ProcessBackend(
        OllamaBackend(
            ai.endpoint,
            ai.model,
            timeout=ai.timeout_seconds,
            max_tokens=ai.max_tokens,
            redact=ai.redact,
            max_connections=ai.max_concurrency,
        )
    )


def _auto(ai: AiConfig, probe_seconds: float) -> Backend:
    timeout = min(probe_seconds, ai.timeout_seconds)
    try:
        names = list_models(ai.endpoint, timeout=timeout)
    except BackendError as exc:
        reason = f"[ai] backend = auto: no Ollama answers at {ai.endpoint} ({exc})"
        log.warning(
            "%s; using rule-based insights. Start Ollama, or set [ai] backend = none to "
            "silence this",
            reason,
        )
        return NoneBackend(reason)
    if not has_model(names, ai.model):
        reason = f"[ai] backend = auto: Ollama at {ai.endpoint} has no model {ai.model!r}"
        log.warning(
            "%s (it has %s); using rule-based insights. Pull it with `ollama pull %s` or set "
            "[ai] model",
            reason,
            ", ".join(names[:10]) or "none",
            ai.model,
        )
        return NoneBackend(reason)
    log.info("[ai] backend = auto: using Ollama at %s with model %s", ai.endpoint, ai.model)
    return _ollama(ai)


def build_backend(
    ai: AiConfig,
    *,
    environ: Mapping[str, str] | None = None,
    probe_seconds: float = PROBE_SECONDS,
) -> Backend:
    """Return the backend `ai.backend` names.

    Args:
        ai: the `[ai]` section.
        environ: where the key variable (`ai.api_key_env`) is read; default `os.environ`.
        probe_seconds: the `auto` probe's timeout (at most `ai.timeout_seconds`).

    Raises:
        ConfigError: `recorded` and the recordings file cannot be read.
    """
    env = os.environ if environ is None else environ
    if ai.backend == "none":
        return NoneBackend()
    if ai.backend == "mock":
        return MockBackend(model=ai.model)
    if ai.backend == "recorded":
        return RecordedBackend.from_file(recordings_path(ai.recordings))
    if ai.backend == "ollama":
        return _ollama(ai)
    if ai.backend == "openai":
        return ProcessBackend(
            OpenAIBackend(
                ai.endpoint,
                ai.model,
                api_key=env.get(ai.api_key_env) or None,
                timeout=ai.timeout_seconds,
                max_tokens=ai.max_tokens,
                redact=ai.redact,
                max_connections=ai.max_concurrency,
            )
        )
    return _auto(ai, probe_seconds)


def recordings_path(name: str, checkout: Path = _CHECKOUT) -> Path:
    """Return where `ai.recordings` is: as given when absolute or found from the current
    directory, else under the Eyes `checkout` (the shipped `fixtures/llm/...`), else as given
    (so that the error names the path the user wrote)."""
    path = Path(name)
    if path.is_absolute() or path.exists():
        return path
    shipped = checkout / path
    return shipped if shipped.exists() else path
