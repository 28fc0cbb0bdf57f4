"""Generate a synthetic trace for the rules benchmark (TRACE_FORMAT.md section 1).

In: a number of events, a host count and a seed. Out: a JSON Lines trace whose mix is 80 % log
lines over 50 processes, 15 % metrics samples and 5 % disk samples, 100 events per second of event
time, with about 1 % of the events up to two seconds out of order, a steady background of errors
(two kinds per process) and, every 100,000 events, a few incidents (an error burst, CPU and disk
spikes; crash lines are rare and random) so that every rule has work to do. The same arguments
always give the same file.

    python benchmarks/gen_trace.py --events 1000000 --out /tmp/eyes-bench.jsonl
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

__all__ = ["generate", "main"]

T0 = 1_796_292_000.0  # 2026-12-03T08:00:00Z
_STEP = 0.01
_PROCESSES = 50
_LEVELS = (
    ("info", 0.74),
    ("notice", 0.10),
    ("debug", 0.06),
    ("warning", 0.084),
    ("error", 0.015),
    ("fault", 0.001),
)
_INFO_TEMPLATES = (
    "request {n} served in {ms} ms",
    "session opened for user u{n} by (uid={small})",
    "connection from {ip} port {port} accepted",
    "cache hit ratio {pct}% over {n} lookups",
    "worker {small} heartbeat ok, queue depth {small}",
    "loaded object {hex} ({n} bytes) from /var/lib/app/{small}.db",
    "job {uuid} finished in {ms} ms",
)
_ERROR_TEMPLATES = (
    "timeout after {ms} ms talking to {ip}:{port}",
    "request {uuid} failed: upstream returned {code}",
    "cannot allocate {n} bytes at {hex}",
)
_CRASH_LINES = (
    ("error", "worker {small} crashed with signal 11"),
    ("info", "{proc}[{n}]: segfault at {hex} ip {hex} sp {hex} error 4 in libc.so.6"),
)


def _pick_level(rng: random.Random) -> str:
    draw = rng.random()
    for name, share in _LEVELS:
        draw -= share
        if draw < 0:
            return name
    return "info"


def _fill(template: str, rng: random.Random, proc: str) -> str:
    return template.format(
        n=rng.randrange(1, 10_000_000),
        ms=rng.randrange(1, 5000),
        small=rng.randrange(0, 64),
        pct=rng.randrange(0, 100),
        ip=f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
        port=rng.randrange(1024, 65535),
        hex=f"0x{rng.getrandbits(48):012x}",
        uuid=f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-4{rng.getrandbits(12):03x}-"
        f"a{rng.getrandbits(12):03x}-{rng.getrandbits(48):012x}",
        code=rng.choice((500, 502, 503, 504)),
        proc=proc,
    )


def _log(rng: random.Random, ts: float, host: str, index: int, burst: bool) -> dict[str, Any]:
    proc_no = 7 if burst else rng.randrange(_PROCESSES)
    proc = f"svc{proc_no:02d}"
    if burst:
        level, message = "error", _fill(_ERROR_TEMPLATES[0], rng, proc)
    elif rng.random() < 0.0002:
        level, template = rng.choice(_CRASH_LINES)
        message = _fill(template, rng, proc)
    else:
        level = _pick_level(rng)
        if level in ("error", "fault"):
            # Each process has two kinds of error (four signatures with the level): a steady
            # background that no rule fires on, whatever the window.
            template = _ERROR_TEMPLATES[(proc_no + rng.randrange(2)) % len(_ERROR_TEMPLATES)]
        else:
            template = rng.choice(_INFO_TEMPLATES)
        message = _fill(template, rng, proc)
    return {
        "kind": "log",
        "ts": ts,
        "host": host,
        "id": index,
        "level": level,
        "process": proc,
        "pid": 1000 + proc_no,
        "subsystem": f"{proc}.service",
        "message": message,
    }


def _metrics(rng: random.Random, ts: float, host: str, index: int, spike: bool) -> dict[str, Any]:
    cpu = 95.0 + rng.random() * 4 if spike else 20.0 + rng.random() * 15
    used = 55.0 + rng.random() * 10
    pressure = "warning" if used > 64.9 else "normal"
    return {
        "kind": "metrics",
        "ts": ts,
        "host": host,
        "id": index,
        "cpu_percent": round(cpu, 2),
        "mem_used_percent": round(used, 2),
        "mem_pressure": pressure,
        "load1": round(cpu / 25, 2),
        "cpu_power_mw": round(4000 + cpu * 60 + rng.random() * 300, 1),
    }


def _disk(rng: random.Random, ts: float, host: str, index: int, spike: bool) -> dict[str, Any]:
    write = 900_000_000 if spike else rng.randrange(1_000_000, 40_000_000)
    return {
        "kind": "disk",
        "ts": ts,
        "host": host,
        "id": index,
        "device": rng.choice(("nvme0n1", "sda")),
        "read_bytes_per_s": rng.randrange(0, 80_000_000),
        "write_bytes_per_s": write,
        "util_percent": round(rng.random() * 60, 1),
    }


def generate(events: int, hosts: int = 1, seed: int = 7) -> Iterator[dict[str, Any]]:
    """Yield `events` trace records in file order (a few of them slightly out of order).

    Args:
        events: how many records.
        hosts: how many hosts share them, round robin.
        seed: the random seed; the same arguments give the same records.
    """
    rng = random.Random(seed)
    for index in range(events):
        ts = T0 + index * _STEP
        if rng.random() < 0.01:
            ts -= rng.random() * 2.0
        host = f"host-{index % hosts}"
        phase = index % 100_000
        burst = 50_000 <= phase < 50_300
        spike = 70_000 <= phase < 70_400
        slot = index % 20
        if slot < 3:
            record = _metrics(rng, ts, host, index, spike)
        elif slot == 3:
            record = _disk(rng, ts, host, index, spike)
        else:
            record = _log(rng, ts, host, index, burst and slot % 2 == 0)
        record["ts"] = round(ts, 3)
        yield record


def main() -> None:
    """Write the trace named by `--out`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--hosts", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    option = orjson.OPT_APPEND_NEWLINE
    with open(args.out, "wb") as handle:
        chunk: list[bytes] = []
        for record in generate(args.events, args.hosts, args.seed):
            chunk.append(orjson.dumps(record, option=option))
            if len(chunk) >= 10_000:
                handle.write(b"".join(chunk))
                chunk.clear()
        handle.write(b"".join(chunk))


if __name__ == "__main__":
    main()
