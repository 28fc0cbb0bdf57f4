"""The model client process: the same answers and errors as the backend it runs, off the GIL."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from backends.base import Answer, Backend
from backends.errors import PermanentBackendError, TransientBackendError
from backends.ollama import OllamaBackend
from backends.openai import OpenAIBackend
from backends.process import ProcessBackend, pack_context, unpack_context
from operators.events import DiskEvent, LogEvent, MetricsEvent
from operators.triggers import TriggerContext
from tests.contexts import make_context
from tests.llm_server import LlmServer, Reply

T = TypeVar("T")


def _run(backend: ProcessBackend, body: Callable[[], Awaitable[T]]) -> T:
    async def go() -> T:
        try:
            return await body()
        finally:
            await backend.aclose()

    return asyncio.run(go())


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


async def _error_of(backend: ProcessBackend) -> BaseException:
    """Return the error that analysing one context raises (fail if it raises none)."""
    try:
        await backend.analyze(make_context())
    except Exception as exc:
        return exc
    raise AssertionError("no error")


def _ollama(server: LlmServer) -> ProcessBackend:
    return ProcessBackend(OllamaBackend(server.url, "llama3", timeout=10.0))


def test_the_answer_comes_from_a_child_process_and_matches_the_backend_in_this_one(
    server: LlmServer,
) -> None:
    backend = _ollama(server)
    pids: list[int | None] = []

    async def both() -> tuple[object, object]:
        remote = await backend.analyze(make_context(severity="warning"))
        pids.append(backend.pid)
        here = OllamaBackend(server.url, "llama3")
        try:
            return remote, await here.analyze(make_context(severity="warning"))
        finally:
            await here.aclose()

    remote, here = _run(backend, both)
    assert remote == here
    assert pids[0] is not None and pids[0] != os.getpid()
    first, second = server.chats()
    assert first.body == second.body  # the same prompt, built on either side
    assert (backend.name, backend.model) == ("ollama", "llama3")


def test_errors_cross_with_their_kind_status_and_retry_after(server: LlmServer) -> None:
    server.then(
        Reply(status=503, headers={"Retry-After": "7"}),
        Reply(status=404, error='model "llama3" not found, try pulling it first'),
    )
    backend = _ollama(server)

    async def twice() -> list[BaseException]:
        return [await _error_of(backend), await _error_of(backend)]

    transient, permanent = _run(backend, twice)
    assert isinstance(transient, TransientBackendError)
    assert (transient.status, transient.retry_after) == (503, 7.0)
    assert isinstance(permanent, PermanentBackendError)
    assert permanent.status == 404
    assert "pull it with `ollama pull llama3`" in str(permanent)


def test_a_request_cancelled_here_is_stopped_there_and_the_child_goes_on(
    server: LlmServer,
) -> None:
    server.then(Reply(delay=5.0))
    backend = _ollama(server)

    async def cancel_then_ask() -> object:
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(backend.analyze(make_context()), 0.3)
        assert backend.cancelled == 1  # the child stopped the request before we went on
        return await backend.analyze(make_context())

    insight = _run(backend, cancel_then_ask)
    assert insight.summary == "nginx crashed with a segfault in libc."  # type: ignore[attr-defined]
    assert len(server.chats()) == 2


def test_requests_pending_when_the_child_dies_fail_transient_and_a_new_child_answers(
    server: LlmServer,
) -> None:
    server.then(Reply(delay=5.0))
    backend = _ollama(server)

    async def kill_then_ask() -> tuple[BaseException, object, int | None, int | None]:
        await backend.start()
        first_pid = backend.pid
        assert first_pid is not None
        pending = asyncio.ensure_future(backend.analyze(make_context()))
        await _until(lambda: bool(server.chats()))  # the request is in flight in the child
        os.kill(first_pid, signal.SIGKILL)
        error = await asyncio.gather(pending, return_exceptions=True)
        insight = await backend.analyze(make_context())
        return error[0], insight, first_pid, backend.pid

    error, insight, first_pid, second_pid = _run(backend, kill_then_ask)
    assert isinstance(error, TransientBackendError)
    assert f"{backend.who}: the model client exited with code -9" == str(error)
    assert insight.summary  # type: ignore[attr-defined]
    assert second_pid is not None and second_pid != first_pid


def test_the_child_ignores_sigint_and_ends_when_closed(server: LlmServer) -> None:
    backend = _ollama(server)
    pids: list[int] = []

    async def interrupt_then_close() -> object:
        await backend.start()
        assert backend.pid is not None
        pids.append(backend.pid)
        os.kill(backend.pid, signal.SIGINT)  # what Ctrl-C sends the whole process group
        insight = await backend.analyze(make_context())
        assert backend.pid == pids[0]
        await backend.aclose()
        assert backend.pid is None
        return insight

    assert _run(backend, interrupt_then_close)
    with pytest.raises(ProcessLookupError):
        os.kill(pids[0], 0)


def test_a_child_that_cannot_start_is_a_transient_error(server: LlmServer) -> None:
    backend = ProcessBackend(OllamaBackend(server.url, "llama3"), python="/nonexistent/python")

    error = _run(backend, lambda: _error_of(backend))
    assert isinstance(error, TransientBackendError)
    assert "cannot start the model client" in str(error)


def test_the_openai_backend_runs_there_too(server: LlmServer) -> None:
    backend = ProcessBackend(OpenAIBackend(server.url, "gpt", api_key="sk-test-0123456789"))
    insight = _run(backend, lambda: backend.analyze(make_context()))
    assert (insight.backend, insight.model) == ("openai", "gpt")
    (seen,) = server.chats()
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["authorization"] == "Bearer sk-test-0123456789"


def test_a_packed_context_unpacks_to_an_equal_one() -> None:
    context = make_context()
    trigger = context.trigger
    full = type(context)(
        trigger,
        (
            LogEvent(1.0, "h", "error", "boom", "app", 12, "sub", "cat", "id-1", {"unit": "x"}),
            LogEvent(2.0, "h", "info", "ok"),
        ),
        (MetricsEvent(1.0, "h", {"cpu_percent": 5.0}, "warning"),),
        (DiskEvent(1.0, "h", "sda", {"read_bytes_per_s": 1.0}),),
        dropped_logs=3,
    )
    assert unpack_context(pack_context(full)) == full


class _Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("holds a lock")
        self.lock = threading.Lock()


class _RaisesUnpicklable(Backend):
    """Runs in the child (which imports this module) and fails in a way pickle cannot carry."""

    name = "odd"

    async def answer(self, context: TriggerContext) -> Answer:
        raise _Unpicklable


def test_an_error_that_cannot_be_pickled_comes_back_as_a_runtime_error_naming_it() -> None:
    backend = ProcessBackend(_RaisesUnpicklable())

    error = _run(backend, lambda: _error_of(backend))
    assert type(error) is RuntimeError
    assert str(error) == "_Unpicklable: holds a lock"
