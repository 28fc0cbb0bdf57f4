"""A backend that runs another backend's requests in a child process, off the worker's GIL.

In: a `TriggerContext`. Out: the insight (or the error) the wrapped backend gives, computed in
`python -m backends.model_client`: the prompt, the HTTP request and the answer's validation all
happen there. The worker's process only packs the context, writes one frame and reads one
back. In the worker's process an httpx request wakes the event loop about 14 times, and each
wake takes the GIL from the Bytewax worker; out of it, a replay runs as fast with requests in
flight as without (see the README's performance section).

Frames are a 4-byte big-endian length and a pickle, on the child's stdin and stdout. The first
frame to the child is the wrapped backend itself (built but not yet connected), which the
child answers with `READY`. Then `(number, packed context)` asks for an analysis (plain tuples
pickle five times faster than the event dataclasses) and `(number, None)` cancels one. The
child answers `(number, outcome)` once per request: the insight, the `BackendError`, or
`CANCELLED`. Pickle is safe here: both ends are this program, on pipes private to the two.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import os
import pickle
import struct
import sys
from operator import attrgetter
from pathlib import Path
from typing import Any

from typing_extensions import override

from backends.base import Answer, Backend
from backends.errors import PermanentBackendError, TransientBackendError
from operators.events import DiskEvent, LogEvent, MetricsEvent
from operators.records import Insight
from operators.triggers import Trigger, TriggerContext

__all__ = [
    "CANCELLED",
    "READY",
    "ProcessBackend",
    "pack_context",
    "read_frame",
    "unpack_context",
    "write_frame",
]

log = logging.getLogger(__name__)

CANCELLED = "cancelled"
READY = "ready"
_HEADER = struct.Struct(">I")
_CHECKOUT = Path(__file__).resolve().parents[1]  # holds the `backends` package
_CANCEL_ACK_SECONDS = 5.0
_EXIT_SECONDS = 0.8


def _fields(cls: type) -> attrgetter[tuple[object, ...]]:
    return attrgetter(*(f.name for f in dataclasses.fields(cls)))


_LOG, _METRICS, _DISK = _fields(LogEvent), _fields(MetricsEvent), _fields(DiskEvent)
_Rows = list[tuple[object, ...]]
_Packed = tuple[Trigger, _Rows, _Rows, _Rows, int]


def pack_context(context: TriggerContext) -> _Packed:
    """Return `context` as tuples of plain fields: it pickles in a fifth of the time."""
    return (
        context.trigger,
        [_LOG(event) for event in context.logs],
        [_METRICS(event) for event in context.metrics],
        [_DISK(event) for event in context.disk],
        context.dropped_logs,
    )


def unpack_context(packed: _Packed) -> TriggerContext:
    """Return the context that `pack_context` packed."""
    trigger, logs, metrics, disk, dropped = packed
    return TriggerContext(
        trigger,
        tuple(LogEvent(*fields) for fields in logs),
        tuple(MetricsEvent(*fields) for fields in metrics),
        tuple(DiskEvent(*fields) for fields in disk),
        dropped,
    )


def _frame(body: bytes) -> bytes:
    return _HEADER.pack(len(body)) + body


def write_frame(writer: asyncio.WriteTransport | asyncio.StreamWriter, message: object) -> None:
    """Queue `message` as one frame on `writer` (never blocks)."""
    writer.write(_frame(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)))


async def read_frame(reader: asyncio.StreamReader) -> Any:
    """Return the next frame's message, or raise `EOFError` when the other end has closed."""
    try:
        header = await reader.readexactly(_HEADER.size)
        (size,) = _HEADER.unpack(header)
        body = await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise EOFError from exc
    return pickle.loads(body)  # our own child's frame, on a private pipe


class ProcessBackend(Backend):
    """Runs `inner` in a child process; the same answers and the same errors as `inner`.

    The child is started by `start` (the LLM step calls it outside the request timeout) or by
    the first `analyze`, inside the running event loop, and again after `aclose`, after it
    exits, or from another loop. It ignores SIGINT and SIGTERM and ends when its stdin closes,
    so a stop signal lets the flow drain its pending analyses, and it never outlives the
    worker's process.

    Never: lets a request it was asked to cancel run on: `analyze` returns only once the
    child has stopped it (or after 5 s), so a caller's concurrency bound holds at the server.
    Not guaranteed: the answers of requests in flight when the child dies; each fails with a
    `TransientBackendError`, and the next request starts a new child.

    Args:
        inner: the backend to run in the child; it must be picklable (built from the
            configuration, not yet connected).
        python: the interpreter that runs the child.
        start_seconds: how long the child may take to start and build `inner`.
    """

    def __init__(
        self, inner: Backend, *, python: str = sys.executable, start_seconds: float = 30.0
    ) -> None:
        self.inner = inner
        self.name = inner.name
        self.model = inner.model
        self.offline_reason = inner.offline_reason
        self.who = f"{inner.name} {inner.model}".strip()
        self._recipe = pickle.dumps(inner, protocol=pickle.HIGHEST_PROTOCOL)
        self._python = python
        self._start_seconds = start_seconds
        self._numbers = itertools.count()
        self._child: asyncio.subprocess.Process | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Task[asyncio.subprocess.Process] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._waiting: dict[int, asyncio.Future[object]] = {}
        self.cancelled = 0  # requests the child confirmed it stopped

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs, else None."""
        child = self._child
        return child.pid if child is not None and child.returncode is None else None

    @override
    async def start(self) -> None:
        await self._running_child()

    @override
    async def answer(self, context: TriggerContext) -> Answer:
        msg = f"{self.who}: the model's raw answer stays in the model client; use analyze()"
        raise PermanentBackendError(msg)

    @override
    async def analyze(self, context: TriggerContext) -> Insight:
        child = await self._running_child()
        number = next(self._numbers)
        reply = asyncio.get_running_loop().create_future()
        self._waiting[number] = reply
        assert child.stdin is not None
        write_frame(child.stdin, (number, pack_context(context)))
        try:
            outcome = await asyncio.shield(reply)
        except asyncio.CancelledError:
            await self._cancel(child, number, reply)
            raise
        if isinstance(outcome, BaseException):
            raise outcome
        if not isinstance(outcome, Insight):
            msg = f"{self.who}: the model client answered {type(outcome).__name__}"
            raise TransientBackendError(msg)
        return outcome

    async def _cancel(
        self, child: asyncio.subprocess.Process, number: int, reply: asyncio.Future[object]
    ) -> None:
        """Ask the child to stop request `number`, and wait until it has."""
        try:
            if reply.done() or child.stdin is None or child.stdin.is_closing():
                return
            write_frame(child.stdin, (number, None))
            if await asyncio.wait_for(asyncio.shield(reply), _CANCEL_ACK_SECONDS) == CANCELLED:
                self.cancelled += 1
        except (asyncio.CancelledError, Exception):
            log.debug("%s: request %d was not confirmed cancelled", self.who, number)
        finally:
            self._waiting.pop(number, None)

    async def _running_child(self) -> asyncio.subprocess.Process:
        """Return the running child, starting it (once, however many callers wait) if needed."""
        loop = asyncio.get_running_loop()
        child = self._child
        if child is not None and child.returncode is None and self._loop is loop:
            return child
        starting = self._starting
        if starting is None or starting.get_loop() is not loop or starting.done():
            if child is not None:
                _kill(child)  # its loop is gone
            self._child = None
            starting = self._starting = loop.create_task(self._start_child())
        return await asyncio.shield(starting)

    async def _start_child(self) -> asyncio.subprocess.Process:
        loop = asyncio.get_running_loop()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(_CHECKOUT), env.get("PYTHONPATH", "")) if p
        )
        try:
            child = await asyncio.create_subprocess_exec(
                self._python,
                "-m",
                "backends.model_client",
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            msg = f"{self.who}: cannot start the model client: {exc}"
            raise TransientBackendError(msg) from exc
        assert child.stdin is not None and child.stdout is not None
        child.stdin.write(_frame(self._recipe))
        try:
            said = await asyncio.wait_for(read_frame(child.stdout), self._start_seconds)
        except (EOFError, asyncio.TimeoutError, pickle.UnpicklingError) as exc:
            said = exc
        if said != READY:
            _kill(child)
            code = await child.wait()
            why = {EOFError: "exited", asyncio.TimeoutError: "did not start in time"}.get(
                type(said), f"said {said!r}"
            )
            msg = f"{self.who}: the model client {why} (code {code}); its own error is above"
            raise TransientBackendError(msg)
        self._child, self._loop = child, loop
        self._reader = loop.create_task(self._read_replies(child))
        log.debug("%s: model client started (pid %d)", self.who, child.pid)
        return child

    async def _read_replies(self, child: asyncio.subprocess.Process) -> None:
        """Hand each of the child's answers to its request; fail the rest when it exits."""
        assert child.stdout is not None
        try:
            while True:
                number, outcome = await read_frame(child.stdout)
                reply = self._waiting.pop(number, None)
                if reply is not None and not reply.done():
                    reply.set_result(outcome)
        except EOFError:
            pass
        except Exception:  # a frame that does not unpickle: the child cannot be trusted
            log.exception("%s: unreadable answer from the model client; restarting it", self.who)
            _kill(child)
        code = await child.wait()
        error = TransientBackendError(f"{self.who}: the model client exited with code {code}")
        for number in [n for n, reply in self._waiting.items() if not reply.done()]:
            self._waiting.pop(number).set_exception(error)

    @override
    async def aclose(self) -> None:
        child, self._child, self._starting = self._child, None, None
        if child is None or child.returncode is not None:
            return
        if self._loop is not _loop_or_none():
            _kill(child)  # made on a loop that is gone: its pipes cannot be closed from here
            return
        assert child.stdin is not None
        child.stdin.close()  # the child cancels what it still runs, closes, and exits
        try:
            await asyncio.wait_for(child.wait(), _EXIT_SECONDS)
        except asyncio.TimeoutError:
            child.kill()
            await child.wait()
        if self._reader is not None:
            await self._reader


def _kill(child: asyncio.subprocess.Process) -> None:
    if child.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            child.kill()


def _loop_or_none() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
