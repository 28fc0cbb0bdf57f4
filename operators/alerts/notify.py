"""The notifiers: how a delivered alert reaches a person (stdout, desktop, webhook).

In: an `AlertRecord` the policy chose to deliver. Out: nothing, or a `NotifyError` that says
which notifier failed and why. Each notifier bounds its own I/O by a timeout;
`operators.alerts.dispatch` runs them off the dataflow's worker thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, TextIO

import httpx
import orjson

from operators.errors import ConfigError, EyesError
from operators.records import AlertRecord

if TYPE_CHECKING:
    from flows.config import AlertsConfig

__all__ = [
    "DESKTOP_BODY_BYTES",
    "DESKTOP_TITLE_BYTES",
    "DesktopNotifier",
    "Notifier",
    "NotifyError",
    "ProgramNotFound",
    "StdoutNotifier",
    "WebhookNotifier",
    "build_notifiers",
    "truncate_utf8",
]

log = logging.getLogger(__name__)

DESKTOP_TITLE_BYTES = 256
DESKTOP_BODY_BYTES = 1024
_ELLIPSIS = "\u2026"
_RETRY_AFTER_CAP = 30.0


class NotifyError(EyesError):
    """One notifier could not deliver one alert; the message names the notifier and the reason."""


class ProgramNotFound(NotifyError):
    """The notifier's program is not on PATH: every alert fails the same way until it is."""


class Notifier(Protocol):
    """Sends one alert somewhere. `send` returns when it is delivered or raises `NotifyError`."""

    name: str

    def send(self, record: AlertRecord) -> None:
        """Deliver `record`, within this notifier's timeout."""
        ...

    def close(self) -> None:
        """Release connections and the like; the notifier is not used again."""
        ...


def truncate_utf8(text: str, max_bytes: int) -> str:
    """Return `text` cut to at most `max_bytes` bytes of UTF-8, on a character boundary.

    A cut text ends with an ellipsis (counted in the limit when there is room for it).
    """
    encoded = text.encode("utf-8", errors="replace")
    if len(encoded) <= max_bytes:
        return text
    mark = _ELLIPSIS.encode("utf-8")
    room = max_bytes - len(mark) if max_bytes >= len(mark) else max_bytes
    cut = encoded[:room].decode("utf-8", errors="ignore")
    return cut + _ELLIPSIS if room != max_bytes else cut


def _title(record: AlertRecord) -> str:
    trigger = record.analysed.context.trigger
    return f"[{trigger.severity}] {trigger.rule} on {trigger.host}: {trigger.key}"


def _body(record: AlertRecord) -> str:
    trigger = record.analysed.context.trigger
    insight = record.analysed.insight
    if insight is None:
        return trigger.reason
    return f"{insight.summary}\n{trigger.reason}"


class StdoutNotifier:
    """Writes each alert as one JSON line (the alert record) to standard output.

    Never: more than one line per alert. Not guaranteed: the line reaches a closed pipe.
    """

    name = "stdout"

    def __init__(self, stream: Callable[[], TextIO] | None = None) -> None:
        # The stream is looked up at each write, so a redirected sys.stdout is honoured.
        self._stream = stream or (lambda: sys.stdout)

    def send(self, record: AlertRecord) -> None:
        """Write the record's JSON line and flush.

        Raises:
            NotifyError: standard output cannot be written (a closed pipe, a full disk).
        """
        line = orjson.dumps(record.to_dict()).decode("utf-8") + "\n"
        stream = self._stream()
        try:
            stream.write(line)
            stream.flush()
        except (OSError, ValueError) as exc:
            msg = f"stdout: cannot write the alert: {exc}"
            raise NotifyError(msg) from exc

    def close(self) -> None:
        """Nothing to release."""


class DesktopNotifier:
    """Shows each alert as a desktop notification: `notify-send` on Linux, `osascript` on macOS.

    The title is cut to 256 bytes and the body to 1,024 bytes of UTF-8, on a character boundary.
    The alert's text goes to the program as arguments, never through a shell or a script, so a
    log line cannot run anything. A missing program fails each alert with `ProgramNotFound` and
    the flow goes on; the `Dispatcher` reports it in the log once and counts the rest.

    Never: waits longer than `timeout` (the program's whole session is killed then).
    Not guaranteed: the desktop shows it (no session bus, do-not-disturb).

    Args:
        program: the program to run; default `osascript` on macOS, else `notify-send`.
        platform: `sys.platform` (a parameter for tests).
        timeout: seconds to wait for the program.
    """

    name = "desktop"

    def __init__(
        self, *, program: str | None = None, platform: str = sys.platform, timeout: float = 5.0
    ) -> None:
        self._macos = platform == "darwin"
        self._program = program or ("osascript" if self._macos else "notify-send")
        self._timeout = timeout

    def command(self, record: AlertRecord) -> list[str]:
        """Return the argument list that shows `record`."""
        title = truncate_utf8(_title(record).replace("\x00", "\ufffd"), DESKTOP_TITLE_BYTES)
        body = truncate_utf8(_body(record).replace("\x00", "\ufffd"), DESKTOP_BODY_BYTES)
        if self._macos:
            script = [
                "on run argv",
                "display notification (item 2 of argv) with title (item 1 of argv)",
                "end run",
            ]
            lines = [arg for line in script for arg in ("-e", line)]
            return [self._program, *lines, title, body]
        urgency = {"critical": "critical", "warning": "normal"}.get(
            record.analysed.context.trigger.severity, "low"
        )
        return [self._program, "--app-name=eyes", f"--urgency={urgency}", "--", title, body]

    def send(self, record: AlertRecord) -> None:
        """Run the program and wait for it, at most `timeout` seconds.

        Raises:
            ProgramNotFound: the program is not on PATH.
            NotifyError: the program cannot be run, failed or did not finish in time.
        """
        command = self.command(record)
        try:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
            )
        except FileNotFoundError as exc:
            msg = f"desktop: {self._program!r} not found on PATH"
            raise ProgramNotFound(msg) from exc
        except OSError as exc:
            msg = f"desktop: cannot run {self._program!r}: {exc.strerror or exc}"
            raise NotifyError(msg) from exc
        with proc:
            try:
                _, err = proc.communicate(timeout=self._timeout)
            except subprocess.TimeoutExpired as exc:
                _kill_session(proc)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.communicate(timeout=1.0)  # a child that left the session may hold a pipe
                msg = f"desktop: {self._program!r} did not finish within {self._timeout:g}s"
                raise NotifyError(msg) from exc
        if proc.returncode != 0:
            detail = err.decode("utf-8", errors="replace").strip()[:200]
            msg = f"desktop: {self._program!r} exited with status {proc.returncode}: {detail!r}"
            raise NotifyError(msg)

    def close(self) -> None:
        """Nothing to release."""


def _kill_session(proc: subprocess.Popen[bytes]) -> None:
    """Kill the program and whatever it started in its session."""
    killpg = getattr(os, "killpg", None)
    try:
        if killpg is not None:
            killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - not POSIX
            proc.kill()
    except ProcessLookupError:
        pass  # it exited between the timeout and the kill


def _slack_escape(text: str) -> str:
    # Slack reads <...> as links and mentions (<!channel>); a log line must not ping anyone.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class WebhookNotifier:
    """POSTs each alert as JSON to a webhook, Slack-compatible.

    The body has `text` (one line, for Slack-compatible receivers) and `alert` (the record).
    Retries timeouts, connection errors, 429 and 5xx with exponential backoff (honouring a
    numeric `Retry-After`); other statuses fail at once. `timeout` bounds one alert's whole
    delivery, retries included, so a slow server never holds an alert longer than that.
    The URL may hold a secret: messages name only its host.

    Never: follows redirects; waits past `timeout`. Not guaranteed: exactly-once (a request that
    timed out may have been received, and is sent again).

    Args:
        url: the webhook's address.
        timeout: seconds for one alert, all attempts together.
        attempts: at most this many requests per alert.
        backoff: the first retry's delay in seconds; it doubles each time, capped at 5 s.
        transport: an httpx transport (for tests); default the network.
        clock, sleep: monotonic time and a sleep (parameters for tests).
    """

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        attempts: int = 3,
        backoff: float = 0.5,
        transport: httpx.BaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = url
        self._where = f"webhook {httpx.URL(url).host or '(no host)'}"
        self._timeout = timeout
        self._attempts = max(1, attempts)
        self._backoff = backoff
        self._transport = transport
        self._clock = clock
        self._sleep = sleep
        self._client: httpx.Client | None = None
        self._lock = threading.Lock()

    def payload(self, record: AlertRecord) -> dict[str, object]:
        """Return the JSON body sent for `record`."""
        trigger = record.analysed.context.trigger
        summary = record.analysed.insight.summary if record.analysed.insight else trigger.reason
        text = f"*[{trigger.severity}] {trigger.rule}* on {trigger.host} ({trigger.key}): {summary}"
        return {"text": _slack_escape(text), "alert": record.to_dict()}

    def _client_for_use(self) -> httpx.Client:
        with self._lock:
            if self._client is None:
                self._client = httpx.Client(transport=self._transport, follow_redirects=False)
            return self._client

    def send(self, record: AlertRecord) -> None:
        """POST the alert, retrying transient failures within `timeout`.

        Raises:
            NotifyError: a permanent status, or no success within the attempts and the timeout.
        """
        body = orjson.dumps(self.payload(record))
        headers = {"content-type": "application/json"}
        client = self._client_for_use()
        deadline = self._clock() + self._timeout
        last = "no attempt made"
        for attempt in range(1, self._attempts + 1):
            remaining = deadline - self._clock()
            if remaining <= 0:
                break
            retry_after: float | None = None
            try:
                response = client.post(self._url, content=body, headers=headers, timeout=remaining)
            except httpx.TimeoutException:
                last = f"no answer within {remaining:.1f}s"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return
                status = response.status_code
                last = f"HTTP {status}"
                if status != 429 and status < 500:
                    msg = f"{self._where}: HTTP {status}, not retried"
                    raise NotifyError(msg)
                retry_after = _retry_after(response.headers.get("retry-after"))
            if attempt == self._attempts:
                break
            delay = min(self._backoff * 2 ** (attempt - 1), 5.0)
            if retry_after is not None:
                delay = max(delay, retry_after)
            if self._clock() + delay >= deadline:
                break
            log.debug("%s: %s, retry %d in %.2fs", self._where, last, attempt, delay)
            self._sleep(delay)
        msg = f"{self._where}: {last} ({attempt} attempt(s) within {self._timeout:g}s)"
        raise NotifyError(msg)

    def close(self) -> None:
        """Close the HTTP connections."""
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def _retry_after(value: str | None) -> float | None:
    """Return a numeric `Retry-After` in seconds (capped), or None (absent or an HTTP date)."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), _RETRY_AFTER_CAP)


def build_notifiers(alerts: AlertsConfig) -> list[Notifier]:
    """Return the notifiers `[alerts] notify` names, in its order, each once.

    Raises:
        ConfigError: `webhook` is chosen but `webhook_url` is empty.
    """
    chosen: list[Notifier] = []
    for name in dict.fromkeys(alerts.notify):
        if name == "stdout":
            chosen.append(StdoutNotifier())
        elif name == "desktop":
            chosen.append(DesktopNotifier())
        elif name == "webhook":
            if not alerts.webhook_url:
                msg = "[alerts] notify includes 'webhook' but webhook_url is empty"
                raise ConfigError(msg)
            chosen.append(
                WebhookNotifier(alerts.webhook_url, timeout=alerts.webhook_timeout_seconds)
            )
        else:
            msg = f"[alerts] notify has an unknown notifier {name!r}; use stdout, desktop, webhook"
            raise ConfigError(msg)
    return chosen
