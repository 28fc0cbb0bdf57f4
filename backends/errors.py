"""The backends' errors, split by what the caller does with them.

```
EyesError (operators.errors)
  BackendError              a backend could not turn a trigger context into an insight
    TransientBackendError   retried with backoff: timeout, connection error, 429 (.retry_after), 5xx
    PermanentBackendError   not retried: 400, 401, 403, 404 (unknown model), a missing recording;
                            the message says how to fix it
    InvalidInsight          the answer is not a usable insight (no JSON object, wrong shape,
                            cut at max_tokens); not retried
```

HTTP status codes and httpx exceptions are translated into this tree in one place,
`backends.http.translate_status` and `backends.http.translate_transport_error`.
"""

from __future__ import annotations

from operators.errors import EyesError

__all__ = ["BackendError", "InvalidInsight", "PermanentBackendError", "TransientBackendError"]


class BackendError(EyesError):
    """A backend could not produce an insight; the message names the backend and the cause.

    Args:
        message: what failed, naming the backend and the endpoint.
        status: the HTTP status code, when the server answered with one.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class TransientBackendError(BackendError):
    """A failure that may go away on its own (timeout, connection, 429, 5xx): retry later.

    Args:
        message: what failed, naming the backend and the endpoint.
        retry_after: seconds the server asked us to wait (`Retry-After`), when it said so.
        status: the HTTP status code, when the server answered with one.
    """

    def __init__(
        self, message: str, retry_after: float | None = None, *, status: int | None = None
    ) -> None:
        super().__init__(message, status=status)
        self.retry_after = retry_after


class PermanentBackendError(BackendError):
    """A failure that repeats until someone changes something (key, model, endpoint): no retry.

    The message ends with the fix, e.g. "pull it with `ollama pull llama3` or set [ai] model".
    """


class InvalidInsight(BackendError):
    """The model answered, but the answer cannot be used as an insight; the message says why."""
