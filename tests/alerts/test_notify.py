"""The notifiers: stdout lines, desktop programs on PATH, a webhook on a loopback server."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flows.config import AlertsConfig
from operators.alerts.dispatch import Dispatcher
from operators.alerts.notify import (
    DESKTOP_BODY_BYTES,
    DESKTOP_TITLE_BYTES,
    DesktopNotifier,
    NotifyError,
    ProgramNotFound,
    StdoutNotifier,
    WebhookNotifier,
    build_notifiers,
    truncate_utf8,
)
from operators.errors import ConfigError
from operators.records import AlertRecord
from tests.alerts.factory import alert, insight
from tests.alerts.loopback import Loopback, loopback_server


def _record(**kwargs: object) -> AlertRecord:
    return AlertRecord(alert(**kwargs), "delivered")  # type: ignore[arg-type]


# --- truncation --------------------------------------------------------------------------------


def test_truncation_cuts_on_a_character_boundary_with_an_ellipsis() -> None:
    text = "é" * 200  # 400 bytes
    cut = truncate_utf8(text, 256)
    assert cut == "é" * 126 + "\u2026"
    assert len(cut.encode()) == 255


def test_short_text_is_left_alone() -> None:
    assert truncate_utf8("disk full", 9) == "disk full"


@given(text=st.text(), limit=st.integers(0, 80))
def test_truncation_never_exceeds_the_limit_and_keeps_a_prefix(text: str, limit: int) -> None:
    cut = truncate_utf8(text, limit)
    assert len(cut.encode("utf-8", errors="replace")) <= limit
    kept = cut.removesuffix("\u2026") if cut != text else cut
    assert text.startswith(kept)


# --- stdout ------------------------------------------------------------------------------------


def test_stdout_writes_one_json_line_per_alert(capsys: pytest.CaptureFixture[str]) -> None:
    record = _record(with_insight=insight())
    StdoutNotifier().send(record)
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert orjson.loads(out) == record.to_dict()


def test_stdout_that_cannot_be_written_fails_the_notifier() -> None:
    class Closed:
        def write(self, text: str) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    with pytest.raises(NotifyError, match=r"stdout: cannot write the alert: .*Broken pipe"):
        StdoutNotifier(stream=Closed).send(_record())


# --- desktop -----------------------------------------------------------------------------------


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder first on PATH for fake programs; FAKE_NOTIFY_LOG names where they write."""
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_NOTIFY_LOG", str(tmp_path / "calls.jsonl"))
    yield folder


def _fake_program(folder: Path, name: str, body: str) -> None:
    script = folder / name
    script.write_text(f"#!{sys.executable}\nimport json, os, sys, time\n{body}\n")
    script.chmod(0o755)


_RECORDING = (
    "with open(os.environ['FAKE_NOTIFY_LOG'], 'a', encoding='utf-8') as f:\n"
    "    f.write(json.dumps(sys.argv[1:]) + '\\n')"
)


def _calls(tmp_path: Path) -> list[list[str]]:
    lines = (tmp_path / "calls.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


def test_desktop_runs_notify_send_with_title_and_body(fake_bin: Path, tmp_path: Path) -> None:
    _fake_program(fake_bin, "notify-send", _RECORDING)
    DesktopNotifier(platform="linux").send(_record(with_insight=insight(summary="nginx died")))
    [args] = _calls(tmp_path)
    assert args[:3] == ["--app-name=eyes", "--urgency=critical", "--"]
    assert args[3] == "[critical] crash on web-1: nginx/-"
    assert args[4].startswith("nginx died\n")


def test_desktop_cuts_title_and_body_to_their_byte_limits(fake_bin: Path, tmp_path: Path) -> None:
    _fake_program(fake_bin, "notify-send", _RECORDING)
    long_key = "ü" * 400
    DesktopNotifier(platform="linux").send(_record(key=long_key, reason="€" * 1000))
    [args] = _calls(tmp_path)
    title, body = args[3], args[4]
    assert len(title.encode()) <= DESKTOP_TITLE_BYTES
    assert len(body.encode()) <= DESKTOP_BODY_BYTES
    assert title.endswith("ü\u2026")
    assert body.endswith("€\u2026")


def test_desktop_on_macos_passes_the_text_as_arguments_not_script(
    fake_bin: Path, tmp_path: Path
) -> None:
    _fake_program(fake_bin, "osascript", _RECORDING)
    record = _record(reason='say "hi" & do shell script "rm -rf ~"')
    DesktopNotifier(platform="darwin").send(record)
    [args] = _calls(tmp_path)
    script = " ".join(args[:-2])
    assert "do shell script" not in script
    assert args[-2] == "[critical] crash on web-1: nginx/-"
    assert args[-1] == 'say "hi" & do shell script "rm -rf ~"'


@pytest.mark.parametrize("alerts", [3, 12])
def test_a_missing_desktop_program_is_reported_once_and_fails_each_alert(
    alerts: int,
    fake_bin: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PATH", str(fake_bin))
    dispatcher = Dispatcher([DesktopNotifier(platform="linux")])
    with caplog.at_level(logging.INFO):
        outcomes = [dispatcher.submit(_record(key=f"p{i}/-")).result() for i in range(alerts)]
    dispatcher.close()
    for outcome in outcomes:
        assert outcome.failures == (("desktop", "desktop: 'notify-send' not found on PATH"),)
        assert outcome.delivery() == (
            "failed",
            "every notifier failed: desktop: desktop: 'notify-send' not found on PATH",
        )
    about_it = [r.getMessage() for r in caplog.records if "notify-send" in r.getMessage()]
    assert about_it == [
        "desktop notifier cannot run: desktop: 'notify-send' not found on PATH; its alerts are "
        "marked failed, and this is not logged again"
    ]
    assert dispatcher.failures["desktop"] == alerts


def test_a_missing_osascript_is_a_program_not_found(
    fake_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_bin))
    with pytest.raises(ProgramNotFound, match=r"desktop: 'osascript' not found on PATH"):
        DesktopNotifier(platform="darwin").send(_record())


def test_a_missing_desktop_program_raises_for_each_alert(
    fake_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_bin))
    notifier = DesktopNotifier(platform="linux")
    for _ in range(2):
        with pytest.raises(NotifyError, match=r"desktop: 'notify-send' not found on PATH"):
            notifier.send(_record())


def test_a_desktop_program_that_hangs_is_killed_at_the_timeout(fake_bin: Path) -> None:
    _fake_program(fake_bin, "notify-send", "time.sleep(30)")
    started = time.monotonic()
    with pytest.raises(NotifyError, match=r"'notify-send' did not finish within 0.3s"):
        DesktopNotifier(platform="linux", timeout=0.3).send(_record())
    assert time.monotonic() - started < 10


def test_a_desktop_program_that_fails_says_how(fake_bin: Path) -> None:
    _fake_program(fake_bin, "notify-send", "sys.stderr.write('no bus'); sys.exit(3)")
    with pytest.raises(NotifyError, match=r"'notify-send' exited with status 3: 'no bus'"):
        DesktopNotifier(platform="linux").send(_record())


# --- webhook -----------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[Loopback]:
    with loopback_server() as running:
        yield running


def test_the_webhook_retries_503_twice_then_delivers(server: Loopback) -> None:
    record = _record(with_insight=insight(summary="nginx crashed"))
    WebhookNotifier(f"{server.base}/flaky/2", timeout=5, backoff=0.01).send(record)
    assert server.hits["/flaky/2"] == 3
    body = orjson.loads(server.bodies[-1])
    assert body["alert"] == record.to_dict()
    assert body["text"] == "*[critical] crash* on web-1 (nginx/-): nginx crashed"


def test_the_webhook_gives_up_after_its_attempts(server: Loopback) -> None:
    notifier = WebhookNotifier(f"{server.base}/status/503", timeout=5, attempts=3, backoff=0.01)
    with pytest.raises(
        NotifyError, match=r"webhook 127.0.0.1: HTTP 503 \(3 attempt\(s\) within 5s\)"
    ):
        notifier.send(_record())
    assert server.hits["/status/503"] == 3


def test_the_webhook_does_not_retry_a_client_error(server: Loopback) -> None:
    notifier = WebhookNotifier(f"{server.base}/status/400", timeout=5, backoff=0.01)
    with pytest.raises(NotifyError, match=r"webhook 127.0.0.1: HTTP 400, not retried"):
        notifier.send(_record())
    assert server.hits["/status/400"] == 1


def test_the_webhook_honours_retry_after_on_429(server: Loopback) -> None:
    WebhookNotifier(f"{server.base}/retry-after", timeout=5, backoff=0.01).send(_record())
    assert server.hits["/retry-after"] == 2


def test_a_slow_webhook_is_bounded_by_its_timeout(server: Loopback) -> None:
    notifier = WebhookNotifier(f"{server.base}/slow", timeout=0.3, backoff=0.01)
    started = time.monotonic()
    with pytest.raises(
        NotifyError,
        match=r"webhook 127.0.0.1: no answer within 0.3s \(1 attempt\(s\) within 0.3s\)",
    ):
        notifier.send(_record())
    assert time.monotonic() - started < 3


def test_the_webhook_message_names_the_host_not_the_secret_path(server: Loopback) -> None:
    notifier = WebhookNotifier(f"{server.base}/status/500/T0KEN", timeout=5, attempts=1)
    with pytest.raises(NotifyError) as caught:
        notifier.send(_record())
    assert "T0KEN" not in str(caught.value)


def test_the_webhook_text_cannot_mention_a_slack_channel() -> None:
    notifier = WebhookNotifier("http://127.0.0.1:9/hook")
    payload = notifier.payload(_record(reason="<!channel> look & see"))
    assert payload["text"].endswith("&lt;!channel&gt; look &amp; see")


# --- choosing -----------------------------------------------------------


def test_notifiers_are_chosen_by_name_in_order_once() -> None:
    alerts = AlertsConfig(notify=["webhook", "stdout", "webhook"], webhook_url="http://h/x")
    assert [n.name for n in build_notifiers(alerts)] == ["webhook", "stdout"]
    assert build_notifiers(AlertsConfig(notify=[])) == []


def test_a_webhook_without_an_address_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"notify includes 'webhook' but webhook_url is empty"):
        build_notifiers(AlertsConfig(notify=["webhook"]))


def test_an_unknown_notifier_is_a_configuration_error() -> None:
    with pytest.raises(ConfigError, match=r"unknown notifier 'pager'"):
        build_notifiers(AlertsConfig(notify=["pager"]))
