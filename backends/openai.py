"""The `openai` backend: any OpenAI-compatible server (`POST {endpoint}/v1/chat/completions`).

In: a `TriggerContext`. Out: the model's answer, parsed into an `Insight`. Works with OpenAI,
vLLM, llama.cpp, LM Studio and Ollama's `/v1`. The request asks for the insight's JSON schema
with `response_format: {"type": "json_schema"}`; a server that rejects that (400, 422, or 500
naming `response_format`, as llama-cpp-python does) is asked again at once with
`{"type": "json_object", "schema": ...}` and then plain `{"type": "json_object"}`, and the
backend remembers the first form the server accepted. The key is read from the environment
variable named by `[ai] api_key_env` and sent as a bearer header; without it no header is sent
(local servers need none).
"""

from __future__ import annotations

import logging
from typing import Any

from typing_extensions import override

from backends.base import Answer, Backend
from backends.errors import BackendError, InvalidInsight
from backends.http import JsonClient
from backends.insight import INSIGHT_SCHEMA
from backends.prompt import build_messages
from operators.triggers import TriggerContext

__all__ = ["RESPONSE_FORMATS", "TEMPERATURE", "OpenAIBackend"]

log = logging.getLogger(__name__)

TEMPERATURE = 0.1
RESPONSE_FORMATS: tuple[dict[str, Any], ...] = (
    {
        "type": "json_schema",
        "json_schema": {"name": "insight", "schema": INSIGHT_SCHEMA, "strict": True},
    },
    {"type": "json_object", "schema": INSIGHT_SCHEMA},
    {"type": "json_object"},
)
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "schema")


def _base(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    return base[: -len("/v1")] if base.endswith("/v1") else base


def _rejects_format(error: BackendError) -> bool:
    """Whether the server refused the request because of its `response_format`."""
    text = str(error).lower()
    return error.status in (400, 422, 500) and any(word in text for word in _FORMAT_WORDS)


class OpenAIBackend(Backend):
    """Asks an OpenAI-compatible server; one request per `analyze` (two or three while it
    learns which `response_format` the server accepts), no retry (the LLM step retries).

    Never logs or puts the key in an error message. Not guaranteed: that the server honours
    the schema (the answer is validated anyway).

    Args:
        endpoint: the server, with or without a trailing `/v1`.
        model: the model name sent in each request.
        api_key: the bearer key, or None for servers that need none.
        timeout: seconds for connecting and for each read.
        max_tokens: the answer's token bound.
        redact: mask secrets in host text before sending.
        max_connections: the HTTP connection pool's size (the step's `max_concurrency`).
    """

    name = "openai"

    def __init__(
        self,
        endpoint: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 60.0,
        max_tokens: int = 1024,
        redact: bool = True,
        max_connections: int = 4,
    ) -> None:
        self.model = model
        self.url = f"{_base(endpoint)}/v1/chat/completions"
        self.format_index = 0
        self._max_tokens = max_tokens
        self._redact = redact
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = JsonClient(
            f"openai at {_base(endpoint)}",
            base_url=endpoint,
            timeout=timeout,
            headers=headers,
            max_connections=max_connections,
        )
        self._fixes = {
            404: f"check [ai] endpoint (it must serve /v1/chat/completions) and [ai] model "
            f"({model!r})",
        }

    def payload(self, context: TriggerContext, format_index: int = 0) -> dict[str, Any]:
        """Return the `/v1/chat/completions` request body for `context`."""
        return {
            "model": self.model,
            "messages": build_messages(context, redact=self._redact),
            "temperature": TEMPERATURE,
            "max_tokens": self._max_tokens,
            "stream": False,
            "response_format": RESPONSE_FORMATS[format_index],
        }

    async def _post(self, context: TriggerContext) -> Any:
        while True:
            index = self.format_index
            try:
                return await self._http.request(
                    "POST", self.url, self.payload(context, index), self._fixes
                )
            except BackendError as exc:
                if index + 1 >= len(RESPONSE_FORMATS) or not _rejects_format(exc):
                    raise
                if self.format_index == index:
                    self.format_index = index + 1
                    log.info(
                        "%s: the server refused response_format %s (HTTP %s); asking with %s",
                        self._http.who,
                        RESPONSE_FORMATS[index]["type"],
                        exc.status,
                        _describe(RESPONSE_FORMATS[index + 1]),
                    )

    @override
    async def answer(self, context: TriggerContext) -> Answer:
        data = await self._post(context)
        choices = data.get("choices") if isinstance(data, dict) else None
        choice = choices[0] if isinstance(choices, list) and choices else None
        message = choice.get("message") if isinstance(choice, dict) else None
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            refusal = message.get("refusal") if isinstance(message, dict) else None
            detail = f"the model refused: {refusal!r}" if refusal else f"{str(data)[:120]!r}"
            raise InvalidInsight(f"{self._http.who}: the reply has no message content: {detail}")
        model = data.get("model")
        return Answer(
            content,
            model if isinstance(model, str) and model else self.model,
            truncated=choice.get("finish_reason") == "length",
        )

    @override
    async def aclose(self) -> None:
        await self._http.aclose()


def _describe(response_format: dict[str, Any]) -> str:
    kind = response_format["type"]
    return f"{kind} with a schema" if "schema" in response_format else kind
