"""The live flow: its sources, `eyes record`, `eyes run`, shutdown, and record-then-replay."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from bytewax.inputs import DynamicSource, StatelessSourcePartition
from bytewax.testing import run_main
from typing_extensions import override

from flows.config import Config, data_dir, load_config
from flows.eyes import build_flow
from flows.live import RecordStats, StopSignal, TraceFileSink, live_flow, record
from operators.errors import ConfigError, InputFileError
from operators.events import Event, LogEvent, event_to_json
from operators.outputs import RecordFileSink, RunSummary
from operators.sources.disk import DiskSource
from operators.sources.live import CURSOR_FILE, live_sources
from operators.sources.logs import LogsSource
from operators.sources.metrics import MetricsSource
from operators.sources.replay import ReplaySource, ReplayStats, read_trace
from tests.conftest import FIXTURES
from tests.sources.conftest import pid_alive, pids_in, wait_for

ROOT = FIXTURES.parent


def _config(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "eyes.toml"
    path.write_text(
        f"""
[host]
name = "live-host"

[ai]
backend = "none"

[alerts]
database = "{tmp_path / "eyes.db"}"
notify = []
{extra}
"""
    )
    return path


ONLY_LOGS = """
[sources.metrics]
enabled = false

[sources.disk]
enabled = false
"""


def test_every_enabled_source_is_built_by_step_id() -> None:
    sources = live_sources(Config(), "web-1")
    assert list(sources) == ["logs", "metrics", "disk"]
    logs = sources["logs"]
    assert isinstance(logs, LogsSource)
    assert isinstance(sources["metrics"], MetricsSource)
    assert isinstance(sources["disk"], DiskSource)
    assert logs.host == "web-1" and logs.cursor_path == data_dir() / CURSOR_FILE


def test_turned_off_sources_are_left_out_and_a_custom_command_keeps_no_cursor(
    tmp_path: Path,
) -> None:
    extra = '[sources.logs]\ncommand = ["my-logger", "--json"]\n[sources.disk]\nenabled = false\n'
    config = load_config(_config(tmp_path, extra))
    sources = live_sources(config, "h")
    assert list(sources) == ["logs", "metrics"]
    logs = sources["logs"]
    assert isinstance(logs, LogsSource) and logs.cursor_path is None
    assert logs.command == ["my-logger", "--json"]


def test_a_flow_with_every_source_turned_off_is_refused(tmp_path: Path) -> None:
    extra = ONLY_LOGS + "[sources.logs]\nenabled = false\n"
    config = load_config(_config(tmp_path, extra))
    with pytest.raises(ConfigError, match=r"\[sources\] logs, metrics and disk are all turned off"):
        live_flow(config)


def test_a_trace_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "missing-folder" / "trace.jsonl"
    written = r"missing-folder/trace\.jsonl: cannot write the trace"
    with pytest.raises(InputFileError, match=written):
        record(Config(), out, 0)
    sink = TraceFileSink(out, RecordStats(out))
    with pytest.raises(InputFileError, match="cannot write the trace: No such file or directory"):
        sink.build("trace", 0, 1)


# --- end to end, as separate processes -------------------------------------------------------


def _env(tmp_path: Path, bin_dir: Path | None, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EYES", "FAKE_")) and k != "EYES_CONFIG"
    }
    if bin_dir is not None:
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")
    env["HOME"] = str(tmp_path / "home")
    env.update(extra)
    return env


def _eyes(args: list[str], env: dict[str, str], stderr: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=stderr,
    )


def test_eyes_record_writes_the_live_events_as_a_trace(fake_bin: Path, tmp_path: Path) -> None:
    extra = "[sources.metrics]\ninterval_seconds = 0.2\n[sources.disk]\ninterval_seconds = 0.2\n"
    env = _env(tmp_path, fake_bin, FAKE_JOURNALCTL_LINES="5")
    out = tmp_path / "trace.jsonl"
    args = ["record", "--config", str(_config(tmp_path, extra)), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", *args, "--duration", "3"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()
    stats = ReplayStats()
    events = list(read_trace(out, "replay", stats))
    assert stats.bad_total == 0
    kinds = {e.kind for e in events}
    assert kinds == {"log", "metrics", "disk"}
    logs = [e for e in events if isinstance(e, LogEvent)]
    assert [e.message for e in logs] == [f"fake journal line {n}" for n in range(1, 6)]
    assert {e.host for e in events} == {"live-host"}
    summary = done.stdout.decode()
    assert summary.startswith(f"eyes record: {len(events)} events (5 log, ")
    assert summary.rstrip().endswith(f"to {out}")


def _wait_and_stop(process: subprocess.Popen[bytes], signum: int) -> int:
    process.send_signal(signum)
    try:
        return process.wait(60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("the process did not stop within 60 s of the signal")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_first_signal_asks_to_finish_and_the_second_stops_at_once(signum: int) -> None:
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        requested = StopSignal().install()
        assert not requested()
        signal.raise_signal(signum)
        assert requested()
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signum)
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


@pytest.mark.parametrize("entry", ["eyes run", "bytewax.run"])
def test_sigterm_stops_the_flow_and_leaves_no_child_behind(
    fake_bin: Path, tmp_path: Path, entry: str
) -> None:
    pid_file = tmp_path / "pids"
    config = _config(tmp_path)
    env = _env(tmp_path, fake_bin, FAKE_PID_FILE=str(pid_file), FAKE_JOURNALCTL_RATE="50")
    env["FAKE_JOURNALCTL_LINES"] = "1000000"
    errors = open(tmp_path / "stderr", "wb")  # noqa: SIM115 - closed below
    if entry == "eyes run":
        process = _eyes(["run", "--config", str(config)], env, errors)
    else:
        env["EYES_CONFIG"] = str(config)
        process = subprocess.Popen(
            [sys.executable, "-m", "bytewax.run", "flows.eyes"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
        )
    try:
        child = wait_for(lambda: pids_in(pid_file), timeout=60, what="journalctl to start")[0]
        assert pid_alive(child)
    finally:
        status = _wait_and_stop(process, signal.SIGTERM)
        errors.close()
    log = (tmp_path / "stderr").read_text()
    assert status == 0, log
    assert "SIGTERM: finishing what is in flight" in log
    assert "panicked" not in log and "Traceback" not in log, log
    if entry == "eyes run":
        assert "eyes run: stopped\n" in log
    wait_for(lambda: not pid_alive(child), what="journalctl to be gone")
    assert "following the systemd journal" in log


def test_on_a_fresh_machine_eyes_run_says_what_it_cannot_use_and_watches_the_rest(
    fake_bin: Path, tmp_path: Path
) -> None:
    # No configuration file, no journal, nothing answering for the AI.
    env = _env(tmp_path, fake_bin, FAKE_JOURNALCTL_NO_JOURNAL="hold")
    env["EYES__AI__ENDPOINT"] = "http://127.0.0.1:9"
    errors_path = tmp_path / "stderr"
    errors = open(errors_path, "wb")  # noqa: SIM115 - closed below
    process = _eyes(["run"], env, errors)
    try:
        wait_for(
            lambda: (
                "disk: watching" in errors_path.read_text()
                and "journal is unavailable" in errors_path.read_text()
            ),
            timeout=60,
            what="the start-up messages",
        )
        assert process.poll() is None, errors_path.read_text()
    finally:
        status = _wait_and_stop(process, signal.SIGINT)
        errors.close()
    text = errors_path.read_text()
    assert status == 0, text
    assert "configuration from built-in defaults" in text
    assert (
        "logs: the systemd journal is unavailable (journalctl: No journal files were found.)"
        in text
    )
    assert text.count("journal is unavailable") == 1


# --- record, then replay: the same triggers --------------------------------------------------


class _TeePartition(StatelessSourcePartition[Event]):
    def __init__(self, inner: StatelessSourcePartition[Event], seen: list[Event]) -> None:
        self._inner = inner
        self._seen = seen

    @override
    def next_batch(self) -> Iterable[Event]:
        batch = list(self._inner.next_batch())
        self._seen.extend(batch)
        return batch

    @override
    def next_awake(self) -> datetime | None:
        return self._inner.next_awake()

    @override
    def close(self) -> None:
        self._inner.close()


class _Tee(DynamicSource[Event]):
    """A live source that also keeps every event it hands out: what `eyes record` writes."""

    def __init__(self, inner: DynamicSource[Event], seen: list[Event]) -> None:
        self._inner = inner
        self._seen = seen

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _TeePartition:
        return _TeePartition(self._inner.build(step_id, worker_index, worker_count), self._seen)


def _triggers(path: Path) -> list[tuple[str, str, str, str]]:
    records = [json.loads(line) for line in path.read_text().splitlines()]
    return sorted((r["id"], r["rule"], r["key"], r["ts"]) for r in records)


CRASHES = [
    {
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": "kernel",
        "_SYSTEMD_UNIT": None,
        "_PID": None,
        "MESSAGE": "app-a[811]: segfault at 0 ip 00007f3a sp 00007ffd error 4 in libc.so.6",
    },
    {
        "PRIORITY": "6",
        "SYSLOG_IDENTIFIER": "app-b",
        "_PID": "812",
        "_SYSTEMD_UNIT": "app-b.service",
        "MESSAGE": "app-b: segfault at 10 ip 000055d1 error 6",
    },
    {"PRIORITY": "6", "MESSAGE": "healthy line {n}"},
    {
        "PRIORITY": "2",
        "SYSLOG_IDENTIFIER": "app-c",
        "_PID": "813",
        "_SYSTEMD_UNIT": "app-c.service",
        "MESSAGE": "Process 813 (app-c) of user 1000 dumped core.",
    },
    {"PRIORITY": "6", "MESSAGE": "another healthy line {n}"},
]


def test_record_then_replay_gives_the_same_triggers_as_the_live_run(
    fake_bin: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    entries = tmp_path / "entries.jsonl"
    entries.write_text("".join(json.dumps(e) + "\n" for e in CRASHES))
    total = 40
    monkeypatch.setenv("FAKE_JOURNALCTL_ENTRIES", str(entries))
    monkeypatch.setenv("FAKE_JOURNALCTL_LINES", str(total))
    monkeypatch.setenv("FAKE_JOURNALCTL_START_US", "1796292001250000")
    monkeypatch.setenv("FAKE_JOURNALCTL_STEP_US", "250000")
    config = load_config(_config(tmp_path, ONLY_LOGS))

    seen: list[Event] = []
    sources = live_sources(config, "live-host", stop=lambda: len(seen) >= total)
    live = build_flow(
        config,
        {name: _Tee(source, seen) for name, source in sources.items()},  # type: ignore[arg-type]
        live=True,
        records_sink=RecordFileSink(tmp_path / "live.jsonl", RunSummary()),
    )
    run_main(live)
    assert len(seen) == total

    trace = tmp_path / "trace.jsonl"
    trace.write_bytes(b"".join(event_to_json(e) + b"\n" for e in seen))
    replay = build_flow(
        config,
        {"replay": ReplaySource([trace])},
        live=False,
        records_sink=RecordFileSink(tmp_path / "replay.jsonl", RunSummary()),
    )
    run_main(replay)

    live_triggers = _triggers(tmp_path / "live.jsonl")
    assert live_triggers == _triggers(tmp_path / "replay.jsonl")
    crash_keys = sorted(key for _, rule, key, _ in live_triggers if rule == "crash")
    assert crash_keys == ["app-b/app-b.service", "app-c/app-c.service", "kernel/-"]
