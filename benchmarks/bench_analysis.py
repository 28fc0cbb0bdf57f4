"""Benchmark the LLM step: concurrency speed-up, and the replay's pace while requests are pending.

In: nothing (it writes its own trace). Out: printed figures.

1. 40 trigger contexts go through the LLM step against a loopback server (Ollama protocol, in a
   child process) that answers in 500 ms: the total analysis time with `max_concurrency = 1`
   and `= 8`, and the speed-up (goal: at least 6x).
2. A trace of background events with 40 crash lines spread through it is replayed through the
   rules and the LLM step, once with `backend = "none"` and once against the same server with
   `max_concurrency = 8`: the replay's events/s until its source is exhausted (goal: slowed by
   at most 10 % while requests are pending), and the same per CPU-second of this process (all
   its threads; the server is another process). The trace is long enough that the replay
   outlasts the 40 analyses (the figures say how many were answered before it ended), so every
   request's cost falls inside the measured span. Runs come in pairs, in alternating order, and
   each pair's slowdown is computed on its own, so the machine's drift between pairs cancels;
   the median and the range over `--repeat` pairs are shown, with the event-loop thread's CPU
   per analysis (the part of the slowdown that does not depend on the trace's length).

    python benchmarks/bench_analysis.py                 # about three minutes on two cores
    python benchmarks/bench_analysis.py --events 100000 --repeat 1 --skip-serial
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.inputs import StatefulSourcePartition
from bytewax.testing import TestingSink, TestingSource, run_main
from typing_extensions import override

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flows.config import AiConfig, load_config  # noqa: E402
from operators.analysis import AnalysisStats, analyze_triggers  # noqa: E402
from operators.async_runner import AsyncRunner  # noqa: E402
from operators.detect import detect_triggers  # noqa: E402
from operators.events import Event  # noqa: E402
from operators.records import AnalysedTrigger  # noqa: E402
from operators.sources.replay import ReplaySource, ReplayStats  # noqa: E402
from tests.contexts import make_context  # noqa: E402

__all__ = ["main"]

log = logging.getLogger("bench_analysis")

T0 = 1_796_292_000.0
TRIGGERS = 40
LATENCY = 0.5


# -- the loopback server, in a child process ---------------------------------------------------


def _serve(latency: float) -> None:
    """Child mode: serve until stdin closes, then print the most requests served at once."""
    from tests.llm_server import LlmServer

    with LlmServer(latency=latency) as server:
        sys.stdout.write(server.url + "\n")
        sys.stdout.flush()
        sys.stdin.read()
        sys.stdout.write(f"{server.max_in_flight} {len(server.chats())}\n")
        sys.stdout.flush()


@dataclass
class _ServerStats:
    max_in_flight: int = 0
    requests: int = 0


@contextmanager
def _server(latency: float) -> Iterator[tuple[str, _ServerStats]]:
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert child.stdin is not None and child.stdout is not None
    stats = _ServerStats()
    try:
        yield child.stdout.readline().strip(), stats
    finally:
        child.stdin.close()
        said = child.stdout.readline().split()
        if len(said) == 2:
            stats.max_in_flight, stats.requests = int(said[0]), int(said[1])
        child.wait(timeout=10)


# -- part 1: concurrency ---------------------------------------------------------------------


def _analysis_seconds(url: str, concurrency: int) -> tuple[float, AnalysisStats]:
    ai = AiConfig(backend="ollama", endpoint=url, max_concurrency=concurrency, drain_seconds=300)
    stats = AnalysisStats()
    flow = Dataflow("bench_concurrency")
    contexts = [make_context(i) for i in range(TRIGGERS)]
    source = op.input("in", flow, TestingSource(contexts, batch_size=TRIGGERS))
    out: list[object] = []
    op.output(
        "out", analyze_triggers("analysis", source, ai, ordered=True, stats=stats), TestingSink(out)
    )
    started = time.perf_counter()
    run_main(flow)
    return time.perf_counter() - started, stats


# -- part 2: the replay's pace -----------------------------------------------------------------


def _write_trace(path: Path, events: int) -> None:
    """Background logs, metrics and disk samples, with 40 crash lines from 40 processes."""
    crash_at = {int((k + 0.5) * events / TRIGGERS): k for k in range(TRIGGERS)}
    step = 0.005
    with path.open("wb") as handle:
        for i in range(events):
            ts = T0 + i * step
            if i in crash_at:
                k = crash_at[i]
                event = {
                    "kind": "log",
                    "ts": ts,
                    "host": "web-1",
                    "level": "info",
                    "process": f"app{k}",
                    "message": f"app{k}[{1000 + k}]: segfault at 0 ip 00007f3a2b1c4d10 error 4",
                }
            elif i % 1000 == 0:
                event = {
                    "kind": "metrics",
                    "ts": ts,
                    "host": "web-1",
                    "cpu_percent": 20.0,
                    "mem_used_percent": 50.0,
                    "mem_pressure": "normal",
                }
            elif i % 1000 == 500:
                event = {
                    "kind": "disk",
                    "ts": ts,
                    "host": "web-1",
                    "device": "nvme0n1",
                    "read_bytes_per_s": 1e6,
                    "write_bytes_per_s": 1e6,
                }
            else:
                event = {
                    "kind": "log",
                    "ts": ts,
                    "host": "web-1",
                    "level": "info",
                    "process": f"web{i % 7}",
                    "message": f"GET /item/{i} 200 in {i % 90} ms",
                }
            handle.write(orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE))


@dataclass
class _End:
    """When the replay's source ran out, and how many analyses had left the step by then."""

    wall: float
    cpu: float
    answered: int


class _TimedPartition(StatefulSourcePartition[Event, int]):
    """Delegates to the replay's partition and notes when it runs out."""

    def __init__(
        self, inner: StatefulSourcePartition[Event, int], out: list[object], ended: list[_End]
    ) -> None:
        self._inner = inner
        self._out = out
        self._ended = ended

    @override
    def next_batch(self) -> list[Event]:
        try:
            return self._inner.next_batch()
        except StopIteration:
            answered = sum(isinstance(item, AnalysedTrigger) for item in self._out)
            self._ended.append(_End(time.perf_counter(), time.process_time(), answered))
            raise

    @override
    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    @override
    def snapshot(self) -> int:
        return self._inner.snapshot()


class _TimedReplay(ReplaySource):
    def __init__(
        self, path: Path, stats: ReplayStats, out: list[object], ended: list[_End]
    ) -> None:
        super().__init__([path], stats=stats)
        self._out = out
        self._ended = ended

    @override
    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _TimedPartition:
        inner = super().build_part(step_id, for_part, resume_state)
        return _TimedPartition(inner, self._out, self._ended)


async def _loop_cpu() -> float:
    return time.thread_time()


def _loop_thread_cpu() -> float:
    """CPU seconds the process's event-loop thread (where every request runs) has used."""
    return AsyncRunner.get().submit(_loop_cpu()).result()


@dataclass
class _Run:
    rate: float  # events per wall second until the source ran out
    cpu_rate: float  # events per CPU second of this process (all threads) until then
    total: float  # wall seconds of the whole run, the end-of-replay drain included
    answered: int  # analyses out of the step when the source ran out
    loop_cpu: float  # CPU seconds of the event-loop thread over the whole run
    stats: AnalysisStats


def _replay(trace: Path, ai: AiConfig) -> _Run:
    """Replay `trace` through the rules and the LLM step and time it."""
    config = load_config(None, environ={})
    stats, replay_stats = AnalysisStats(), ReplayStats()
    ended: list[_End] = []
    out: list[object] = []
    flow = Dataflow("bench_replay")
    events = op.input("replay", flow, _TimedReplay(trace, replay_stats, out, ended))
    by_host = op.key_on("key_by_host", events, lambda event: event.host)
    triggers = detect_triggers("rules", by_host, config)
    analysed = analyze_triggers("analysis", triggers, ai, ordered=True, stats=stats)
    op.output("out", analysed, TestingSink(out))
    loop_started = _loop_thread_cpu()
    started, cpu_started = time.perf_counter(), time.process_time()
    run_main(flow)
    total = time.perf_counter() - started
    loop_cpu = _loop_thread_cpu() - loop_started
    end, events = ended[0], replay_stats.events
    return _Run(
        rate=events / (end.wall - started),
        cpu_rate=events / (end.cpu - cpu_started),
        total=total,
        answered=end.answered,
        loop_cpu=loop_cpu,
        stats=stats,
    )


def _slowdown(none: _Run, pending: _Run, field: str) -> float:
    """Percent by which `pending` is slower than `none` on `field` (a rate)."""
    return 100 * (1 - getattr(pending, field) / getattr(none, field))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the replay")
    parser.add_argument("--repeat", type=int, default=7, help="pairs of replays")
    parser.add_argument("--skip-serial", action="store_true", help="skip max_concurrency = 1")
    args = parser.parse_args(argv)
    if args.serve is not None:
        _serve(args.serve)
        return 0
    logging.basicConfig(level=logging.WARNING, format="bench: %(message)s")
    out = sys.stdout.write
    out(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")

    with _server(LATENCY) as (url, server_stats):
        out(f"\n1. {TRIGGERS} triggers, server answering in {LATENCY * 1000:.0f} ms\n")
        results = {}
        for concurrency in (8,) if args.skip_serial else (1, 8):
            seconds, stats = _analysis_seconds(url, concurrency)
            results[concurrency] = seconds
            analyzed, peak = stats.outcomes["analyzed"], stats.max_in_flight
            out(
                f"   max_concurrency = {concurrency}: {seconds:6.2f} s "
                f"({analyzed} analyzed, at most {peak} in flight)\n"
            )
        if 1 in results:
            out(f"   speed-up: {results[1] / results[8]:.1f}x (goal >= 6x)\n")

        with tempfile.TemporaryDirectory() as tmp:
            trace = Path(tmp) / "bench.jsonl"
            _write_trace(trace, args.events)
            out(f"\n2. replay of {args.events} events with {TRIGGERS} crash lines\n")
            kinds = {
                "none": AiConfig(backend="none"),
                "pending": AiConfig(backend="ollama", endpoint=url, max_concurrency=8),
            }
            pairs: list[dict[str, _Run]] = []
            for number in range(args.repeat):
                pair = {}
                for name in list(kinds)[:: 1 if number % 2 == 0 else -1]:
                    run = pair[name] = _replay(trace, kinds[name])
                    answered = f"{run.answered} answered by the end" if name == "pending" else ""
                    out(
                        f"   {name:8s} {run.rate:8.0f} events/s, {run.cpu_rate:8.0f} events per "
                        f"CPU-s; run {run.total:5.2f} s; {dict(run.stats.outcomes)} {answered}\n"
                    )
                pairs.append(pair)
            for label, field in (("events/s", "rate"), ("events per CPU-s", "cpu_rate")):
                slower = [_slowdown(pair["none"], pair["pending"], field) for pair in pairs]
                out(
                    f"   {label}, with requests pending: {statistics.median(slower):+.1f} % "
                    f"slower (median of {len(pairs)} pairs, {min(slower):+.1f} to "
                    f"{max(slower):+.1f}; goal <= 10 %)\n"
                )
            answered = statistics.median(pair["pending"].answered for pair in pairs)
            loop_ms = statistics.median(
                1000 * pair["pending"].loop_cpu / TRIGGERS for pair in pairs
            )
            out(
                f"   analyses answered before the replay ended: {answered:.0f} of {TRIGGERS}; "
                f"event-loop thread CPU per analysis: {loop_ms:.2f} ms\n"
            )
    requests, peak = server_stats.requests, server_stats.max_in_flight
    out(f"\nserver: {requests} requests, at most {peak} at once\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
