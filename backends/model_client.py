"""The model client: the child process of a `ProcessBackend`, where the requests really run.

In (stdin): the frames of `backends.process`: the backend first (answered with `READY`), then
`(number, packed context)` to analyze and `(number, None)` to cancel. Out (stdout):
`(number, outcome)` once per request: the insight, the error the backend raised (a
`RuntimeError` naming it when it cannot be pickled), or `CANCELLED`. Runs every request at once
on one event loop (the parent bounds how many it sends). Ignores SIGINT and SIGTERM: it ends
when stdin closes, after cancelling what still runs.

    python -m backends.model_client      # started by ProcessBackend, not by hand
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import Any

from backends.base import Backend
from backends.process import CANCELLED, READY, read_frame, unpack_context, write_frame

__all__ = ["main", "serve"]


async def serve(reader: asyncio.StreamReader, writer: asyncio.WriteTransport) -> None:
    """Answer the requests read from `reader` on `writer` until `reader` ends."""
    try:
        backend: Backend = await read_frame(reader)
    except EOFError:  # closed before it sent the backend: nothing to do
        return
    write_frame(writer, READY)
    running: dict[int, asyncio.Task[None]] = {}

    async def run(number: int, context: Any) -> None:
        outcome: object
        try:
            outcome = await backend.analyze(unpack_context(context))
        except asyncio.CancelledError:
            outcome = CANCELLED
        except Exception as exc:  # sent back as a value; the parent decides what it means
            outcome = exc
        finally:
            running.pop(number, None)
        if writer.is_closing():
            return
        try:
            write_frame(writer, (number, outcome))  # pickles before it writes anything
        except Exception:  # pickle cannot carry it: send its name and message instead
            write_frame(writer, (number, RuntimeError(f"{type(outcome).__name__}: {outcome}")))

    try:
        while True:
            number, context = await read_frame(reader)
            if context is not None:
                running[number] = asyncio.create_task(run(number, context))
            elif number in running:  # else it finished first: its answer is on its way
                running[number].cancel()
    except EOFError:
        pass
    tasks = list(running.values())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await backend.aclose()


async def _main() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**31 - 1)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    writer, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout.buffer)
    try:
        await serve(reader, writer)
    finally:
        writer.close()


def main() -> int:
    """Run the model client on stdin and stdout; return the exit code."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="eyes model client: %(message)s")
    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
