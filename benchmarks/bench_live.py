"""Measure the live flow's cost: CPU (% of one core) and peak RSS of `eyes run` on this machine.

The live flow runs with the default intervals (metrics and disk every 5 s) while the fake
`journalctl` of `fixtures/bin` prints `--rate` journald entries per second; the AI step is off
and alerts go to the history only. CPU is the process's user + system time over the wall time
(the start-up included, and without the first 5 s as "steady"); peak RSS is the kernel's
high-water mark (`VmHWM`). The fake journalctl's own CPU is shown apart: the real one's is not
Eyes' either. Goals: at most 5 % of one core and 150 MB.

    python benchmarks/bench_live.py --seconds 60 --rate 100
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

__all__ = ["main", "measure"]

ROOT = Path(__file__).resolve().parents[1]
FAKE_BIN = ROOT / "fixtures" / "bin"
WARM_UP_SECONDS = 5.0
CPU_GOAL_PERCENT = 5.0
RSS_GOAL_MB = 150.0

# A plausible mix: mostly info, a few warnings and errors, one crash now and then.
_ENTRIES = [
    {"PRIORITY": "6", "SYSLOG_IDENTIFIER": "nginx", "_SYSTEMD_UNIT": "nginx.service",
     "MESSAGE": "GET /api/items/{n} 200 12ms"},
    {"PRIORITY": "6", "SYSLOG_IDENTIFIER": "sshd", "_SYSTEMD_UNIT": "ssh.service",
     "MESSAGE": "Accepted publickey for deploy from 10.0.0.{n} port 52144"},
    {"PRIORITY": "5", "SYSLOG_IDENTIFIER": "systemd", "_SYSTEMD_UNIT": "init.scope",
     "MESSAGE": "Started Session {n} of user deploy."},
    {"PRIORITY": "4", "SYSLOG_IDENTIFIER": "app", "_SYSTEMD_UNIT": "app.service",
     "MESSAGE": "slow query took 1200 ms (request {n})"},
    {"PRIORITY": "6", "SYSLOG_IDENTIFIER": "cron", "_SYSTEMD_UNIT": "cron.service",
     "MESSAGE": "(root) CMD (run-parts /etc/cron.hourly) {n}"},
    {"PRIORITY": "3", "SYSLOG_IDENTIFIER": "app", "_SYSTEMD_UNIT": "app.service",
     "MESSAGE": "upstream timed out (110: Connection timed out) request {n}"},
    {"PRIORITY": "6", "SYSLOG_IDENTIFIER": "nginx", "_SYSTEMD_UNIT": "nginx.service",
     "MESSAGE": "POST /api/orders 201 30ms"},
    {"PRIORITY": "6", "SYSLOG_IDENTIFIER": "kernel", "_SYSTEMD_UNIT": None, "_PID": None,
     "MESSAGE": "eth0: link up, 1000 Mbps, full duplex"},
]  # fmt: skip


def _cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def _peak_rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return psutil.Process(pid).memory_info().rss / (1 << 20)


def _consumed(cursor_file: Path) -> int | None:
    """Return the sequence number of the last entry Eyes saw (from the saved cursor)."""
    try:
        text = cursor_file.read_text()
    except OSError:
        return None
    for part in text.strip().split(";"):
        if part.startswith("i="):
            return int(part[2:], 16)
    return None


def measure(seconds: float, rate: float, workers: int) -> dict[str, float | int | None]:
    """Run `eyes run` for `seconds` under a fake journal of `rate` lines/s; return the figures."""
    with tempfile.TemporaryDirectory(prefix="eyes-bench-live-") as tmp:
        folder = Path(tmp)
        entries = folder / "entries.jsonl"
        entries.write_text("".join(json.dumps(e) + "\n" for e in _ENTRIES))
        config = folder / "eyes.toml"
        config.write_text(
            f'[ai]\nbackend = "none"\n\n[alerts]\ndatabase = "{folder / "eyes.db"}"\nnotify = []\n'
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EYES", "FAKE_"))}
        env.update(
            PATH=f"{FAKE_BIN}{os.pathsep}{env.get('PATH', '')}",
            XDG_DATA_HOME=str(folder / "xdg"),
            FAKE_JOURNALCTL_RATE=str(rate),
            FAKE_JOURNALCTL_LINES=str(int(rate * (seconds + 60))),
            FAKE_JOURNALCTL_ENTRIES=str(entries),
            FAKE_PID_FILE=str(folder / "journalctl.pid"),
        )
        argv = [sys.executable, "-m", "flows.cli", "run", "--config", str(config)]
        argv += ["-w", str(workers)]
        started = time.monotonic()
        eyes = subprocess.Popen(
            argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        process = psutil.Process(eyes.pid)
        time.sleep(WARM_UP_SECONDS)
        warm_cpu, warm_at = _cpu_seconds(process), time.monotonic()
        time.sleep(max(seconds - WARM_UP_SECONDS, 0.0))
        end_cpu, end_at = _cpu_seconds(process), time.monotonic()
        peak = _peak_rss_mb(eyes.pid)
        fake_cpu = None
        pid_file = folder / "journalctl.pid"
        if pid_file.exists():
            try:
                fake = psutil.Process(int(pid_file.read_text().split()[0]))
                fake_cpu = 100.0 * _cpu_seconds(fake) / (end_at - started)
            except psutil.NoSuchProcess:
                fake_cpu = None
        eyes.send_signal(signal.SIGTERM)
        status = eyes.wait(60)
        consumed = _consumed(folder / "xdg" / "eyes" / "journald.cursor")
    return {
        "seconds": end_at - started,
        "cpu_percent": 100.0 * end_cpu / (end_at - started),
        "steady_cpu_percent": 100.0 * (end_cpu - warm_cpu) / (end_at - warm_at),
        "peak_rss_mb": peak,
        "journalctl_cpu_percent": fake_cpu,
        "lines_consumed": consumed,
        "lines_expected": int(rate * (end_at - started)),
        "exit_status": status,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures; exit 1 when a goal is missed."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=100.0, help="journal lines per second")
    parser.add_argument("-w", "--workers", type=int, default=1)
    args = parser.parse_args(argv)
    result = measure(args.seconds, args.rate, args.workers)
    cpu, steady, rss = result["cpu_percent"], result["steady_cpu_percent"], result["peak_rss_mb"]
    assert isinstance(cpu, float) and isinstance(steady, float) and isinstance(rss, float)
    print(
        f"eyes run, {result['seconds']:.0f} s, fake journalctl at {args.rate:g} lines/s, "
        f"{args.workers} worker(s), default intervals"
    )
    warm = f"{WARM_UP_SECONDS:.0f} s"
    print(f"  CPU      {cpu:.1f} % of one core (steady, after {warm}: {steady:.1f} %)")
    print(f"  peak RSS {rss:.0f} MB")
    fake = result["journalctl_cpu_percent"]
    print(f"  (fake journalctl itself: {'n/a' if fake is None else f'{fake:.1f} %'} of one core)")
    print(f"  journal lines consumed: {result['lines_consumed']} of ~{result['lines_expected']}")
    print(f"  exit status after SIGTERM: {result['exit_status']}")
    ok = cpu <= CPU_GOAL_PERCENT and rss <= RSS_GOAL_MB
    goals = f"<= {CPU_GOAL_PERCENT:g} % CPU, <= {RSS_GOAL_MB:g} MB"
    print(f"  goals ({goals}): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
