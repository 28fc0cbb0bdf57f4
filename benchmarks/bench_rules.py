"""Throughput of the rules step: replay a generated trace through the real dataflow, AI stage off.

Prints, for a trace of `--events` events (80 % logs over 50 processes, 15 % metrics, 5 % disk;
see `gen_trace.py`):

- the ceiling: a plain loop that only parses the same lines with `orjson.loads`;
- events per second of `eyes replay`'s flow (`flows.eyes.build_flow` over a `ReplaySource`,
  `[ai] backend = "none"`, no notifiers, a throw-away history) with every rule window (and the
  trigger context) at 60 s, and again at 3600 s, with their ratio to the ceiling;
- the same for the rules step alone (replay -> key by host -> `detect_triggers`), which leaves
  out what the LLM and alert stages spend per trigger;
- the ratio of the 3600 s throughput to the 60 s one (1.0 = cost independent of the window).

Every measured run is a fresh process, as `eyes replay` is, timed in CPU time (what the code
costs when the machine is shared) and, last on each line, the best in wall-clock time; the runs
of all variants are interleaved `--repeat` times and the best and the median are printed.

    python benchmarks/bench_rules.py                  # 1,000,000 events, 3 rounds
    python benchmarks/bench_rules.py --events 200000 --repeat 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bytewax.operators as op
import orjson
from bytewax.dataflow import Dataflow
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from bytewax.testing import run_main
from typing_extensions import override

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.gen_trace import generate
from flows.config import Config, load_config
from flows.eyes import build_flow
from operators.detect import detect_triggers
from operators.events import Event
from operators.outputs import RecordFileSink, RunSummary
from operators.sources.replay import ReplaySource

__all__ = ["main"]

_WINDOW_KEYS = (
    "EYES__RULES__ERROR_FREQUENCY__WINDOW_SECONDS",
    "EYES__RULES__RESOURCE_SPIKE__WINDOW_SECONDS",
    "EYES__RULES__DISK_SPIKE__WINDOW_SECONDS",
    "EYES__STATE__CONTEXT_SECONDS",
)
_CEILING = "orjson-only loop"
_VARIANTS = (
    (_CEILING, "parse", 0.0),
    ("eyes replay flow, windows   60 s", "flow", 60.0),
    ("rules step alone, windows   60 s", "rules", 60.0),
    ("eyes replay flow, windows 3600 s", "flow", 3600.0),
    ("rules step alone, windows 3600 s", "rules", 3600.0),
)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def _write_trace(path: Path, events: int, hosts: int) -> None:
    option = orjson.OPT_APPEND_NEWLINE
    with open(path, "wb") as handle:
        chunk: list[bytes] = []
        for record in generate(events, hosts):
            chunk.append(orjson.dumps(record, option=option))
            if len(chunk) >= 10_000:
                handle.write(b"".join(chunk))
                chunk.clear()
        handle.write(b"".join(chunk))


def _config(window: float, workdir: Path) -> Config:
    environ = {
        "EYES__AI__BACKEND": "none",
        "EYES__ALERTS__NOTIFY": "[]",
        "EYES__ALERTS__DATABASE": str(workdir / "bench-history.db"),
    }
    environ.update({key: str(window) for key in _WINDOW_KEYS})
    return load_config(None, environ)


def _parse_only(trace: Path) -> tuple[int, str]:
    count = 0
    loads = orjson.loads
    with open(trace, "rb") as handle:
        for line in handle:
            loads(line)
            count += 1
    return count, ""


def _flow(trace: Path, config: Config, workdir: Path) -> tuple[int, str]:
    for stale in workdir.glob("bench-history.db*"):
        stale.unlink()
    source = ReplaySource([trace])
    records = RunSummary()
    flow = build_flow(
        config, {"replay": source}, live=False, records_sink=RecordFileSink(None, records)
    )
    run_main(flow)
    return source.stats.events, records.describe()


def _host_of(event: Event) -> str:
    return event.host


class _CountingPartition(StatelessSinkPartition[object]):
    def __init__(self) -> None:
        self.count = 0

    @override
    def write_batch(self, items: list[object]) -> None:
        self.count += len(items)


class _CountingSink(DynamicSink[object]):
    """Counts what reaches it and keeps nothing (a list would keep every context alive)."""

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CountingPartition:
        return _CountingPartition()


def _rules_only(trace: Path, config: Config) -> tuple[int, str]:
    source = ReplaySource([trace])
    flow = Dataflow("bench_rules")
    events = op.input("replay", flow, source)
    by_host = op.key_on("key_by_host", events, _host_of)
    op.output("out", detect_triggers("rules", by_host, config), _CountingSink())
    run_main(flow)
    return source.stats.events, ""


def _child(kind: str, trace: Path, window: float, workdir: Path) -> None:
    """Run one variant in this process and print its events/s (CPU time) as JSON."""
    config = _config(window, workdir) if kind != "parse" else None
    cpu, wall = time.process_time(), time.perf_counter()
    if config is None:
        events, summary = _parse_only(trace)
    elif kind == "flow":
        events, summary = _flow(trace, config, workdir)
    else:
        events, summary = _rules_only(trace, config)
    seconds, elapsed = time.process_time() - cpu, time.perf_counter() - wall
    _say(json.dumps({"rate": events / seconds, "wall": events / elapsed, "summary": summary}))


def _measure(kind: str, trace: Path, window: float, workdir: Path) -> tuple[float, float, str]:
    command = [sys.executable, __file__, "--child", kind, "--trace", str(trace)]
    command += ["--window", str(window), "--workdir", str(workdir)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["rate"], result["wall"], result["summary"]


def main() -> None:
    """Run the benchmark and print the figures (or, with `--child`, one measurement)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--trace", type=Path, help="replay this trace instead of generating one")
    parser.add_argument("--child", choices=("parse", "flow", "rules"), help=argparse.SUPPRESS)
    parser.add_argument("--window", type=float, default=60.0, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.child:
        _child(args.child, args.trace, args.window, args.workdir)
        return

    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eyes-bench-")))
        trace = args.trace
        if trace is None:
            trace = workdir / "trace.jsonl"
            _say(f"generating {args.events:,} events over {args.hosts} host(s) ...")
            _write_trace(trace, args.events, args.hosts)

        rates: dict[str, list[float]] = {name: [] for name, _, _ in _VARIANTS}
        walls: dict[str, list[float]] = {name: [] for name, _, _ in _VARIANTS}
        summaries: dict[float, str] = {}
        for _ in range(args.repeat):
            for name, kind, window in _VARIANTS:
                rate, wall, summary = _measure(kind, trace, window, workdir)
                rates[name].append(rate)
                walls[name].append(wall)
                if summary:
                    summaries[window] = summary

        best = {name: max(values) for name, values in rates.items()}
        ceiling = best[_CEILING]
        _say(f"events/s (CPU time, one process per run), best and median of {args.repeat}:")
        for name, values in rates.items():
            share = "" if name == _CEILING else f", {best[name] / ceiling:.3f} of the ceiling"
            _say(
                f"  {name:<34} {best[name]:>10,.0f}  (median {statistics.median(values):,.0f})"
                f"{share}; wall clock {max(walls[name]):,.0f}"
            )
        for window, summary in summaries.items():
            _say(f"  alerts with {window:.0f} s windows: {summary}")
        for name in ("eyes replay flow", "rules step alone"):
            ratio = best[f"{name}, windows 3600 s"] / best[f"{name}, windows   60 s"]
            _say(f"3600 s / 60 s throughput, {name}: {ratio:.2f} (best over best)")


if __name__ == "__main__":
    main()
