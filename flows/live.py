"""Watch this machine: run the live dataflow (`eyes run`), or record its events (`eyes record`).

`run` builds the flow of `flows/eyes.py` over the live sources and runs it with Bytewax's own
runner until SIGINT or SIGTERM. `record` runs only the live sources into a trace file
(TRACE_FORMAT.md section 1), which `eyes replay` reads back to the same triggers.

The first SIGINT or SIGTERM ends the live sources, so the flow finishes as a replay does: the
rules release what they hold, pending analyses get up to `[ai] drain_seconds`, waiting alerts
are recorded `queued`, and the run returns. A second signal stops at once.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import bytewax.operators as op
from bytewax.dataflow import Dataflow
from bytewax.errors import BytewaxRuntimeError
from bytewax.inputs import Source
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.run import cli_main
from bytewax.testing import run_main
from typing_extensions import override

from flows.config import Config, resolve_host_name
from flows.eyes import build_flow
from operators.errors import ConfigError, InputFileError
from operators.events import Event, event_to_json
from operators.outputs import check_writable
from operators.sources.live import live_sources

__all__ = ["RecordStats", "StopSignal", "TraceFileSink", "live_flow", "record", "run"]

log = logging.getLogger(__name__)


class StopSignal:
    """Turns SIGINT and SIGTERM into a request to finish; call it to ask whether one came.

    In: the signals, once `install`ed (from the main thread). Out: `self()` is True from the
    first signal on, which the live sources read as their `stop`: they end and close their
    children, and the flow drains. The second signal raises KeyboardInterrupt at once.
    Not guaranteed: with one worker, the handler runs when the worker next calls into Python
    (within the sources' poll interval, at most 0.1 s).
    """

    def __init__(self) -> None:
        self._requested = threading.Event()

    def __call__(self) -> bool:
        return self._requested.is_set()

    def install(self) -> StopSignal:
        """Handle SIGINT and SIGTERM from now on; return self."""
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        return self

    def _on_signal(self, signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if self._requested.is_set():
            log.warning("%s again: stopping now", name)
            raise KeyboardInterrupt
        self._requested.set()
        log.warning("%s: finishing what is in flight (send it again to stop at once)", name)


def _sources(config: Config, stop: Callable[[], bool] | None) -> dict[str, Source[Event]]:
    host = resolve_host_name(config)
    sources = live_sources(config, host, stop=stop)
    if not sources:
        msg = (
            f"{config.source}: [sources] logs, metrics and disk are all turned off "
            "(enabled = false); nothing to watch"
        )
        raise ConfigError(msg)
    log.info("watching host %r with %s", host, ", ".join(sources))
    return sources


def live_flow(config: Config) -> Dataflow:
    """Return the live dataflow of `config`, with a `StopSignal` installed as its sources' stop.

    Raises:
        ConfigError: every live source is turned off.
    """
    return build_flow(config, _sources(config, StopSignal().install()), live=True)


def _interrupted(exc: BaseException) -> bool:
    """Return True when a Bytewax error is the KeyboardInterrupt of SIGINT or SIGTERM."""
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__cause__  # type: ignore[assignment]
    return False


def run(config: Config, workers: int = 1) -> None:
    """Run the live dataflow in this process until SIGINT or SIGTERM, and what it holds drains.

    Args:
        config: the effective configuration.
        workers: worker threads; the sources read the machine on worker 0 only.

    Raises:
        ConfigError: every live source is turned off.
        KeyboardInterrupt: a second signal stopped the run before it had drained.
    """
    try:
        cli_main(live_flow(config), workers_per_process=workers)
    except BytewaxRuntimeError as exc:
        if _interrupted(exc):
            raise KeyboardInterrupt from None
        raise


@dataclass
class RecordStats:
    """What a recording wrote: events by kind, and where."""

    path: Path
    events: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        """Events written."""
        return sum(self.events.values())

    def describe(self) -> str:
        """Return `12 events (10 log, 1 metrics, 1 disk) to trace.jsonl`."""
        kinds = ", ".join(f"{self.events[k]} {k}" for k in ("log", "metrics", "disk"))
        return f"{self.total} events ({kinds}) to {self.path}"


class _TracePartition(StatelessSinkPartition[Event]):
    def __init__(self, handle: IO[bytes], stats: RecordStats) -> None:
        self._handle = handle
        self._stats = stats

    @override
    def write_batch(self, items: list[Event]) -> None:
        if not items:
            return
        self._handle.write(b"".join(event_to_json(event) + b"\n" for event in items))
        self._handle.flush()
        for event in items:
            self._stats.events[event.kind] += 1

    @override
    def close(self) -> None:
        self._handle.close()


class TraceFileSink(DynamicSink[Event]):
    """Writes events as a trace: one JSON line each, flushed after every batch.

    The file is truncated when the run starts. Every batch is on disk once `write_batch`
    returns, so a recording stopped by SIGINT or SIGTERM keeps what it had; a line half
    written at SIGKILL is skipped by the replay as a bad line. Delivery: each event once.

    Raises:
        InputFileError: the file cannot be created (raised when the flow starts).
    """

    def __init__(self, path: Path, stats: RecordStats) -> None:
        self.path = path
        self.stats = stats

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _TracePartition:
        try:
            handle = open(self.path, "wb")  # noqa: SIM115 - closed by the partition's close()
        except OSError as exc:
            raise InputFileError(f"{self.path}: cannot write the trace: {exc.strerror}") from None
        return _TracePartition(handle, self.stats)


def record(
    config: Config,
    out: Path,
    duration: float | None = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> RecordStats:
    """Write the live events of this machine to `out` for `duration` seconds, or until stopped.

    Args:
        config: the effective configuration (`[host]`, `[sources.*]`).
        out: the trace file (truncated first).
        duration: seconds to record; None records until SIGINT or SIGTERM.
        clock: monotonic seconds.

    Returns:
        What was written (also when stopped by a signal).

    Raises:
        ConfigError: every live source is turned off.
        InputFileError: `out` cannot be created.
    """
    check_writable(out, "the trace")
    requested = StopSignal().install()
    stats = RecordStats(out)
    deadline = None if duration is None else clock() + duration

    def stop() -> bool:
        return requested() or (deadline is not None and clock() >= deadline)

    flow = Dataflow("eyes_record")
    inputs = [op.input(name, flow, source) for name, source in _sources(config, stop).items()]
    events = op.merge("merge_sources", *inputs)  # Event
    op.output("trace", events, TraceFileSink(out, stats))  # JSON Lines
    try:
        run_main(flow)
    except (KeyboardInterrupt, BytewaxRuntimeError) as exc:
        if not _interrupted(exc):
            raise
        log.info("recording stopped by a signal")
    return stats
