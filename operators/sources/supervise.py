"""Run a log-printing program as a supervised child: read its lines, restart it when it exits.

In: a program (argv, rebuilt at each start). Out: each stdout line, at most `MAX_LINE_BYTES`
long, handed to a callback on the supervisor's own thread; stderr lines logged, rate-limited.

The child runs in its own session (so its whole process group can be signalled) and, on Linux,
with a parent-death signal, so it never outlives Eyes: not on `close`, not at interpreter exit
(an `atexit` hook), not when Eyes is killed outright (the kernel sends the child SIGTERM).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import IO

from operators.events import MAX_LINE_BYTES, MAX_LINE_TEXT

__all__ = ["RestartPolicy", "StderrLimiter", "SupervisedCommand"]

log = logging.getLogger(__name__)

_READ_CHUNK = 1 << 16
_PR_SET_PDEATHSIG = 1
_TERM_GRACE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When to start a child again after it exited: 1 s, doubling to 60 s, reset when healthy.

    Attributes:
        initial_seconds: the first delay, and the delay after a healthy run.
        max_seconds: the cap of the doubling.
        healthy_seconds: a run at least this long counts as healthy and resets the delay.
    """

    initial_seconds: float = 1.0
    max_seconds: float = 60.0
    healthy_seconds: float = 60.0

    def next_delay(self, previous: float | None, ran_for: float) -> float:
        """Return the delay before the next start.

        Args:
            previous: the delay used before the run that just ended; None after a first start.
            ran_for: how long that run lasted, in seconds.
        """
        if previous is None or ran_for >= self.healthy_seconds:
            return self.initial_seconds
        return min(previous * 2, self.max_seconds)


class StderrLimiter:
    """Decides which stderr lines of a child are logged: `per_minute` per window, then a count.

    `admit(now)` returns True for a line to log; when a new window opens after lines were held
    back, `take_suppressed()` returns how many, once.
    """

    def __init__(self, per_minute: int = 10, window_seconds: float = 60.0) -> None:
        self.per_minute = per_minute
        self.window_seconds = window_seconds
        self._window_start: float | None = None
        self._in_window = 0
        self._suppressed = 0
        self._report = 0

    def admit(self, now: float) -> bool:
        """Return True when the line seen at `now` may be logged."""
        if self._window_start is None or now - self._window_start >= self.window_seconds:
            self._window_start = now
            self._in_window = 0
            self._report += self._suppressed
            self._suppressed = 0
        if self._in_window < self.per_minute:
            self._in_window += 1
            return True
        self._suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """Return the lines held back in earlier windows not reported yet, and forget them."""
        count, self._report = self._report, 0
        return count


def _load_prctl() -> Callable[..., int] | None:
    """Return libc's prctl on Linux, looked up before any fork; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        return None


_PRCTL = _load_prctl()


def _child_setup(parent_pid: int) -> Callable[[], None] | None:
    """Return the `preexec_fn` that makes the child die with Eyes (Linux), or None."""
    prctl = _PRCTL
    if prctl is None:
        return None

    def setup() -> None:
        # Runs in the child between fork and exec: only async-signal-safe work here.
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent_pid:  # Eyes died before the signal was armed
            os.kill(os.getpid(), signal.SIGTERM)

    return setup


_LIVE: weakref.WeakSet[SupervisedCommand] = weakref.WeakSet()


@atexit.register
def _stop_all_children() -> None:
    for command in list(_LIVE):
        command.close(timeout=1.0)


def _signal_group(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone
        os.killpg(pid, signum)


class SupervisedCommand:
    """Runs a program, hands each stdout line to `on_line`, restarts it when it exits.

    A thread of its own starts the child, reads its stdout in chunks, splits it into lines
    and, when the child exits, stops what the child left running in its process group, waits
    the `policy` delay and starts it again. A second thread per child logs its stderr through a
    `StderrLimiter`. Lines longer than `MAX_LINE_BYTES` are cut to that length (the rest is
    skipped) and counted in `cut`: the first cut is logged, the total is the owner's to report
    (`LogsSource` says it at close).

    The command gives up, for good, when the `probe` finds the program unusable, when the
    program cannot be started (missing, not executable) or when it writes one of
    `unavailable_markers` on stderr: it stops the child and calls `on_unavailable(reason)`
    (or, without one, logs the reason), once.

    Never: `on_line` runs on the supervisor's thread, never on the caller's; a child is never
    left running after `close`, after interpreter exit, or (Linux) after Eyes dies.
    Not guaranteed: lines the child printed but that were not read before it was stopped are
    lost; on macOS a SIGKILLed Eyes leaves the child until it next writes to its closed pipe.

    Args:
        name: how messages name this command (a step id).
        argv: returns the program and its arguments, called before every start.
        on_line: receives each raw stdout line (bytes, without its newline). It may block:
            that holds the reader, and the child, back.
        policy: the restart delays.
        unavailable_markers: stderr texts that mean the program can never work here.
        on_unavailable: called once, on the supervisor's thread, after giving up.
        probe: called on the supervisor's thread before the first start; a text it returns
            is a reason to give up at once.
        env: the child's environment (default: Eyes' own).
        clock: monotonic seconds, for run lengths and the stderr rate limit.
        sleep: waits the restart delay; the default returns early when `close` is called.
        stderr_per_minute: stderr lines logged per minute before they are only counted.
        read_interval: after draining the pipe, wait up to this long before reading again
            (lines gather meanwhile: fewer wake-ups; it adds at most this much latency).
    """

    def __init__(
        self,
        name: str,
        argv: Callable[[], Sequence[str]],
        on_line: Callable[[bytes], object],
        *,
        policy: RestartPolicy | None = None,
        unavailable_markers: Sequence[str] = (),
        on_unavailable: Callable[[str], object] | None = None,
        probe: Callable[[], str | None] | None = None,
        env: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] | None = None,
        stderr_per_minute: int = 10,
        read_interval: float = 0.25,
    ) -> None:
        self.name = name
        self._argv = argv
        self._on_line = on_line
        self.policy = policy if policy is not None else RestartPolicy()
        self._markers = tuple(unavailable_markers)
        self._on_unavailable = on_unavailable
        self._probe = probe
        self._env = None if env is None else dict(env)
        self._clock = clock
        self._stopping = threading.Event()
        self._sleep = sleep if sleep is not None else self._stopping.wait
        self._limiter = StderrLimiter(stderr_per_minute)
        self._read_interval = read_interval
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self._marker_seen: str | None = None
        self.starts = 0
        self.delays: list[float] = []
        self.counts: Counter[str] = Counter()
        self.unavailable: str | None = None
        self.last_argv: list[str] = []

    @property
    def pid(self) -> int | None:
        """The running child's pid, or None between runs."""
        proc = self._proc
        return None if proc is None or proc.returncode is not None else proc.pid

    @property
    def cut(self) -> int:
        """How many stdout lines were cut to `MAX_LINE_BYTES` so far."""
        return self.counts["cut"]

    @property
    def running(self) -> bool:
        """True while the supervisor thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the supervisor thread (and so the first child); once."""
        if self._thread is not None:
            return
        _LIVE.add(self)
        self._thread = threading.Thread(
            target=self._supervise, name=f"eyes-{self.name}", daemon=True
        )
        self._thread.start()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the child's process group (SIGTERM, then SIGKILL) and the supervisor thread."""
        self._stopping.set()
        self._stop_child()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        _LIVE.discard(self)

    def _stop_child(self) -> None:
        with self._lock:
            proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(_TERM_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            try:
                proc.wait(_TERM_GRACE_SECONDS)
            except subprocess.TimeoutExpired:  # pragma: no cover - unkillable child
                log.error("%s: child %d did not exit after SIGKILL", self.name, proc.pid)

    def _give_up(self, reason: str) -> None:
        self.unavailable = reason
        if self._on_unavailable is None:
            log.warning("%s: %s", self.name, reason)
        else:
            self._on_unavailable(reason)

    def _spawn(self, argv: list[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env,
            start_new_session=True,
            preexec_fn=_child_setup(os.getpid()),  # only prctl and getppid run there
        )

    def _supervise(self) -> None:
        if self._probe is not None and (reason := self._probe()) is not None:
            self._give_up(reason)
            return
        delay: float | None = None
        while not self._stopping.is_set():
            argv = [str(part) for part in self._argv()]
            self.last_argv = argv
            try:
                proc = self._spawn(argv)
            except OSError as exc:
                self._give_up(f"cannot run {argv[0]!r}: {exc.strerror or exc}")
                return
            with self._lock:
                self._proc = proc
            if self._stopping.is_set():  # closed while starting: close() may have missed it
                self._stop_child()
            self.starts += 1
            started = self._clock()
            log.debug("%s: started %s (pid %d)", self.name, argv, proc.pid)
            errors = threading.Thread(
                target=self._log_stderr,
                args=(proc.stderr,),
                name=f"eyes-{self.name}-stderr",
                daemon=True,
            )
            errors.start()
            self._read_stdout(proc.stdout)  # type: ignore[arg-type]
            status = proc.wait()
            _signal_group(proc.pid, signal.SIGTERM)  # what the child left behind, if anything
            errors.join(_TERM_GRACE_SECONDS)
            if self._stopping.is_set():
                return
            if self._marker_seen is not None:
                self._give_up(f"{argv[0]} is unavailable here: {self._marker_seen}")
                return
            ran_for = self._clock() - started
            delay = self.policy.next_delay(delay, ran_for)
            self.delays.append(delay)
            log.warning(
                "%s: %s exited with status %s after %.1f s; restarting in %.0f s",
                self.name,
                argv[0],
                status,
                ran_for,
                delay,
            )
            self._sleep(delay)

    def _read_stdout(self, stream: IO[bytes]) -> None:
        """Hand out the child's lines until EOF, reading in chunks at most every read interval.

        Waiting up to `read_interval` after a read that drained the pipe lets lines gather in
        it, so that a steady trickle costs one wake-up per interval, not one per line; the wait
        shrinks as the chunk read grows, so that a flood is not held back.
        """
        fd = stream.fileno()
        buffer = b""
        skipping = False  # inside a line already cut: drop the rest of it, up to its newline
        with stream:
            while True:
                chunk = os.read(fd, _READ_CHUNK)
                if not chunk:
                    if buffer and not skipping:
                        self._emit(buffer)
                    return
                buffer += chunk
                start = 0
                while (end := buffer.find(b"\n", start)) >= 0:
                    if skipping:
                        skipping = False
                    else:
                        self._emit(buffer[start:end])
                    start = end + 1
                buffer = buffer[start:]
                if skipping:
                    buffer = b""
                elif len(buffer) > MAX_LINE_BYTES:
                    self._emit(buffer)
                    buffer = b""
                    skipping = True
                if len(chunk) < _READ_CHUNK and self._read_interval > 0:
                    # The fuller the pipe was, the sooner it is read again: a trickle costs
                    # one wake-up per interval, a flood is read as fast as it comes.
                    self._stopping.wait(self._read_interval * (1.0 - len(chunk) / _READ_CHUNK))

    def _emit(self, line: bytes) -> None:
        if len(line) > MAX_LINE_BYTES:
            line = line[:MAX_LINE_BYTES]
            self.counts["cut"] += 1
            if self.counts["cut"] == 1:
                log.warning(
                    "%s: a stdout line longer than %s was cut to its first %s "
                    "(the rest is skipped); later cuts are only counted",
                    self.name,
                    MAX_LINE_TEXT,
                    MAX_LINE_TEXT,
                )
        self._on_line(line)

    def _log_stderr(self, stream: IO[bytes]) -> None:
        with stream:
            for raw in stream:
                text = raw[:1000].decode("utf-8", "replace").rstrip()
                if not text:
                    continue
                self.counts["stderr"] += 1
                marker = next((m for m in self._markers if m in text), None)
                if marker is not None and self._marker_seen is None:
                    self._marker_seen = text
                    self._stop_child_later()
                    continue
                with self._lock:
                    admitted = self._limiter.admit(self._clock())
                    held = self._limiter.take_suppressed()
                if held:
                    log.warning("%s: %d more stderr lines not shown", self.name, held)
                if admitted:
                    log.warning("%s: stderr: %s", self.name, text)

    def _stop_child_later(self) -> None:
        # Called from the stderr thread: signal the group; the supervisor thread reaps it.
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
