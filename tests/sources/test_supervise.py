"""The child process supervisor: restarts with backoff, gives up on missing programs, cleans up."""

from __future__ import annotations

import itertools
import logging
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from operators.events import MAX_LINE_BYTES
from operators.sources.supervise import RestartPolicy, StderrLimiter, SupervisedCommand
from tests.sources.conftest import pid_alive, wait_for

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


class _Lines:
    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, line: bytes) -> None:
        with self.lock:
            self.lines.append(line)


def _stop_after(command: list[SupervisedCommand], sleeps: int, delays: list[float]):
    """A fake restart wait: records the delay; closes the command after `sleeps` waits."""

    def sleep(delay: float) -> None:
        delays.append(delay)
        if len(delays) >= sleeps:
            command[0].close()

    return sleep


def test_restart_delays_double_up_to_the_cap_and_reset_after_a_healthy_run() -> None:
    policy = RestartPolicy()
    delays = []
    delay = None
    for _ in range(9):
        delay = policy.next_delay(delay, ran_for=0.5)
        delays.append(delay)
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert policy.next_delay(60, ran_for=60.0) == 1
    assert policy.next_delay(8, ran_for=59.9) == 16


def test_a_child_that_exits_is_restarted_with_doubling_delays() -> None:
    lines = _Lines()
    delays: list[float] = []
    holder: list[SupervisedCommand] = []
    command = SupervisedCommand(
        "test",
        lambda: _python("print('hello')"),
        lines,
        clock=lambda: 0.0,  # every run lasts 0 s: never healthy
        sleep=_stop_after(holder, 8, delays),
    )
    holder.append(command)
    command.start()
    wait_for(lambda: not command.running, what="the supervisor to stop")
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert command.starts == 8
    assert lines.lines == [b"hello"] * 8
    assert command.unavailable is None


def test_a_run_of_a_minute_resets_the_delay() -> None:
    delays: list[float] = []
    holder: list[SupervisedCommand] = []
    ticks = itertools.count(step=61)  # every run lasts 61 s: healthy
    command = SupervisedCommand(
        "test",
        lambda: _python("pass"),
        lambda line: None,
        clock=lambda: next(ticks),
        sleep=_stop_after(holder, 4, delays),
    )
    holder.append(command)
    command.start()
    wait_for(lambda: not command.running, what="the supervisor to stop")
    assert delays == [1, 1, 1, 1]


def test_a_missing_program_is_reported_once_and_not_restarted() -> None:
    reasons: list[str] = []
    command = SupervisedCommand(
        "test", lambda: ["eyes-no-such-program"], lambda line: None, on_unavailable=reasons.append
    )
    command.start()
    wait_for(lambda: not command.running, what="the supervisor to give up")
    assert reasons == ["cannot run 'eyes-no-such-program': No such file or directory"]
    assert command.starts == 0 and command.unavailable == reasons[0]


def test_without_a_callback_giving_up_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    command = SupervisedCommand("test", lambda: ["eyes-no-such-program"], lambda line: None)
    with caplog.at_level(logging.WARNING):
        command.start()
        wait_for(lambda: not command.running, what="the supervisor to give up")
    assert "test: cannot run 'eyes-no-such-program'" in caplog.text


def test_a_probe_reason_gives_up_before_any_start() -> None:
    reasons: list[str] = []
    command = SupervisedCommand(
        "test",
        lambda: _python("pass"),
        lambda line: None,
        probe=lambda: "not here",
        on_unavailable=reasons.append,
    )
    command.start()
    wait_for(lambda: not command.running, what="the supervisor to give up")
    assert reasons == ["not here"] and command.starts == 0


def test_an_unavailable_marker_on_stderr_stops_the_child_for_good() -> None:
    reasons: list[str] = []
    child = """
        import sys, time
        sys.stderr.write("No journal files were found.\\n"); sys.stderr.flush()
        time.sleep(300)
    """
    command = SupervisedCommand(
        "test",
        lambda: _python(child),
        lambda line: None,
        unavailable_markers=("No journal files were found",),
        on_unavailable=reasons.append,
    )
    command.start()
    wait_for(lambda: not command.running, what="the supervisor to give up")
    assert len(reasons) == 1 and "No journal files were found." in reasons[0]
    assert command.starts == 1 and command.pid is None


def test_stderr_lines_are_logged_rate_limited(caplog: pytest.LogCaptureFixture) -> None:
    holder: list[SupervisedCommand] = []
    child = "import sys\nfor n in range(50): sys.stderr.write(f'oops {n}\\n')"
    command = SupervisedCommand(
        "test",
        lambda: _python(child),
        lambda line: None,
        sleep=_stop_after(holder, 1, []),
        stderr_per_minute=3,
    )
    holder.append(command)
    with caplog.at_level(logging.WARNING):
        command.start()
        wait_for(lambda: not command.running, what="the supervisor to stop")
    shown = [r.getMessage() for r in caplog.records if "stderr:" in r.getMessage()]
    assert shown == ["test: stderr: oops 0", "test: stderr: oops 1", "test: stderr: oops 2"]
    assert command.counts["stderr"] == 50


def test_the_stderr_limiter_reports_held_back_lines_in_the_next_window() -> None:
    limiter = StderrLimiter(per_minute=2)
    assert [limiter.admit(t) for t in (0, 1, 2, 3)] == [True, True, False, False]
    assert limiter.take_suppressed() == 0
    assert limiter.admit(61) is True
    assert limiter.take_suppressed() == 2
    assert limiter.take_suppressed() == 0


def test_lines_over_one_mib_are_cut_and_counted() -> None:
    lines = _Lines()
    holder: list[SupervisedCommand] = []
    child = f"import sys\nsys.stdout.write('a' * {2 * MAX_LINE_BYTES + 5} + '\\nb\\n')"
    command = SupervisedCommand(
        "test", lambda: _python(child), lines, sleep=_stop_after(holder, 1, [])
    )
    holder.append(command)
    command.start()
    wait_for(lambda: not command.running, what="the supervisor to stop")
    assert [len(line) for line in lines.lines] == [MAX_LINE_BYTES, 1]
    assert lines.lines[1] == b"b"
    assert command.counts["cut"] == 1


def test_only_the_first_cut_line_is_said(caplog: pytest.LogCaptureFixture) -> None:
    lines = _Lines()
    holder: list[SupervisedCommand] = []
    child = f"import sys\nsys.stdout.write(('a' * {MAX_LINE_BYTES + 1} + '\\n') * 2 + 'b\\n')"
    command = SupervisedCommand(
        "logs (journalctl)", lambda: _python(child), lines, sleep=_stop_after(holder, 1, [])
    )
    holder.append(command)
    with caplog.at_level(logging.WARNING):
        command.start()
        wait_for(lambda: not command.running, what="the supervisor to stop")
    assert command.cut == 2 and len(lines.lines) == 3
    cuts = [r.getMessage() for r in caplog.records if "cut" in r.getMessage()]
    assert cuts == [
        "logs (journalctl): a stdout line longer than 1 MiB was cut to its first 1 MiB "
        "(the rest is skipped); later cuts are only counted"
    ]


def test_close_stops_the_child_and_everything_it_started() -> None:
    lines = _Lines()
    child = """
        import subprocess, sys, time
        grandchild = subprocess.Popen(["sleep", "300"])
        print(grandchild.pid, flush=True)
        time.sleep(300)
    """
    command = SupervisedCommand("test", lambda: _python(child), lines)
    command.start()
    wait_for(lambda: lines.lines, what="the grandchild's pid")
    child_pid, grandchild_pid = command.pid, int(lines.lines[0])
    assert child_pid is not None and pid_alive(grandchild_pid)
    command.close()
    assert not command.running
    wait_for(lambda: not pid_alive(child_pid), what="the child to exit")
    wait_for(lambda: not pid_alive(grandchild_pid), what="the grandchild to exit")


_HOST = """
import sys, time
from operators.sources.supervise import SupervisedCommand
lines = []
command = SupervisedCommand("host", lambda: ["sleep", "300"], lines.append)
command.start()
while command.pid is None:
    time.sleep(0.01)
print(command.pid, flush=True)
if sys.argv[1] == "exit":
    sys.exit(0)  # without close(): the atexit hook must stop the child
time.sleep(300)
"""


def _host(mode: str) -> tuple[subprocess.Popen[str], int]:
    host = subprocess.Popen([sys.executable, "-c", _HOST, mode], stdout=subprocess.PIPE, text=True)
    assert host.stdout is not None
    child = int(host.stdout.readline())
    return host, child


@linux_only
def test_a_child_dies_with_its_parent_even_on_sigkill() -> None:
    host, child = _host("wait")
    assert pid_alive(child)
    host.send_signal(signal.SIGKILL)
    host.wait(30)
    wait_for(lambda: not pid_alive(child), what="the orphaned child to die")


def test_children_are_stopped_at_interpreter_exit() -> None:
    host, child = _host("exit")
    assert host.wait(30) == 0
    wait_for(lambda: not pid_alive(child), what="the child to be stopped at exit")


def test_a_last_line_without_newline_is_handed_out_too() -> None:
    lines = _Lines()
    holder: list[SupervisedCommand] = []
    child = "import sys\nsys.stdout.write('one\\ntwo')"
    command = SupervisedCommand(
        "test", lambda: _python(child), lines, sleep=_stop_after(holder, 1, [])
    )
    holder.append(command)
    command.start()
    wait_for(lambda: not command.running, what="the supervisor to stop")
    assert lines.lines == [b"one", b"two"]
