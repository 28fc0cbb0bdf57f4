"""The `ollama` backend: `POST {endpoint}/api/chat` with the insight's JSON schema as `format`.

In: a `TriggerContext`. Out: the model's answer (`stream: false`, low temperature,
`num_predict = max_tokens`), parsed into an `Insight`. A 404 means the model is not pulled and
is permanent; timeouts, connection errors, 429 and 5xx are transient (see `backends.http`).
`list_models` is the `GET {endpoint}/api/tags` probe that `backend = "auto"` runs at start.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import override

from backends.base import Answer, Backend
from backends.errors import InvalidInsight
from backends.http import JsonClient, get_json
from backends.insight import INSIGHT_SCHEMA
from backends.prompt import build_messages
from operators.triggers import TriggerContext

__all__ = ["TEMPERATURE", "OllamaBackend", "list_models"]

TEMPERATURE = 0.1


def _base(endpoint: str) -> str:
    return endpoint.rstrip("/")


def list_models(endpoint: str, *, timeout: float) -> list[str]:
    """Return the names of the models an Ollama server has pulled (`GET /api/tags`).

    Raises:
        TransientBackendError: nothing answers (refused, timeout) or the server failed.
        PermanentBackendError: the server answered with a 4xx.
        InvalidInsight: the reply is not Ollama's (no `models` list).
    """
    who = f"ollama at {_base(endpoint)}"
    data = get_json(f"{_base(endpoint)}/api/tags", who=who, timeout=timeout)
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, list):
        raise InvalidInsight(f"{who}: GET /api/tags did not return a models list")
    return [m["name"] for m in models if isinstance(m, dict) and isinstance(m.get("name"), str)]


class OllamaBackend(Backend):
    """Asks an Ollama server; one request per `analyze`, no retry (the LLM step retries).

    Never sends the prompt unredacted when `redact` is set. Not guaranteed: that the model
    honours `format` (the answer is validated anyway).

    Args:
        endpoint: the server, e.g. "http://localhost:11434".
        model: the model name, e.g. "llama3".
        timeout: seconds for connecting and for each read.
        max_tokens: `options.num_predict`.
        redact: mask secrets in host text before sending.
        max_connections: the HTTP connection pool's size (the step's `max_concurrency`).
    """

    name = "ollama"

    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        timeout: float = 60.0,
        max_tokens: int = 1024,
        redact: bool = True,
        max_connections: int = 4,
    ) -> None:
        self.model = model
        self.url = f"{_base(endpoint)}/api/chat"
        self._max_tokens = max_tokens
        self._redact = redact
        self._http = JsonClient(
            f"ollama at {_base(endpoint)}",
            base_url=endpoint,
            timeout=timeout,
            max_connections=max_connections,
        )
        self._fixes = {
            404: f"model {model!r} not found: pull it with `ollama pull {model}` or set [ai] model"
        }

    def payload(self, context: TriggerContext) -> dict[str, Any]:
        """Return the `/api/chat` request body for `context`."""
        return {
            "model": self.model,
            "messages": build_messages(context, redact=self._redact),
            "stream": False,
            "format": INSIGHT_SCHEMA,
            "options": {"temperature": TEMPERATURE, "num_predict": self._max_tokens},
        }

    @override
    async def answer(self, context: TriggerContext) -> Answer:
        data = await self._http.request("POST", self.url, self.payload(context), self._fixes)
        message = data.get("message") if isinstance(data, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            msg = f"{self._http.who}: the reply has no message content: {str(data)[:120]!r}"
            raise InvalidInsight(msg)
        model = data.get("model")
        return Answer(
            content,
            model if isinstance(model, str) and model else self.model,
            truncated=data.get("done_reason") == "length",
        )

    @override
    async def aclose(self) -> None:
        await self._http.aclose()
