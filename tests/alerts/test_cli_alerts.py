"""`eyes alerts list/show/resolve` against a real history file."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import orjson
import pytest

from flows.cli import main
from operators.alerts.history import AlertHistory
from operators.alerts.query import DurationError, UnknownAlertError, parse_duration, show_alert
from operators.records import AlertRecord
from tests.alerts.factory import alert, insight


@pytest.fixture
def database(tmp_path: Path) -> Path:
    return tmp_path / "history" / "eyes.db"


@pytest.fixture
def config(tmp_path: Path, database: Path) -> Path:
    path = tmp_path / "eyes.toml"
    path.write_text(f'[alerts]\ndatabase = "{database}"\n', encoding="utf-8")
    return path


@pytest.fixture
def ids(database: Path) -> dict[str, str]:
    """Three alerts: a crash 10 minutes ago, a warning 3 hours ago, an info one 2 days ago."""
    now = time.time()
    analysed = [
        alert("nginx/-", ts=now - 600, with_insight=insight(), analysis="analyzed"),
        alert("mem_pressure", ts=now - 3 * 3600, severity="warning", rule="memory_pressure"),
        alert("disk0", ts=now - 2 * 86400, severity="info", rule="disk_spike"),
    ]
    fates = ["delivered", "dropped", "suppressed"]
    history = AlertHistory(database)
    history.record(
        [AlertRecord(a, fate, f"because {fate}") for a, fate in zip(analysed, fates, strict=True)]
    )
    history.close()
    return {a.context.trigger.key: a.context.id for a in analysed}


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["alerts", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_list_shows_a_table_newest_first(
    capsys: pytest.CaptureFixture[str], config: Path, ids: dict[str, str]
) -> None:
    code, out, _ = _run(capsys, "list", "--config", str(config))
    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == [
        "ID",
        "TIME",
        "(UTC)",
        "SEVERITY",
        "RULE",
        "HOST",
        "KEY",
        "DELIVERY",
        "RESOLVED",
        "REASON",
    ]
    assert [row.split()[0] for row in rows] == [ids["nginx/-"], ids["mem_pressure"], ids["disk0"]]
    first = rows[0].split()
    assert first[3:9] == ["critical", "crash", "web-1", "nginx/-", "delivered", "no"]
    assert rows[0].endswith("nginx/- logged 'segfault' (1 line in 60s)")


def test_list_filters_by_age_rule_severity_and_open(
    capsys: pytest.CaptureFixture[str], config: Path, ids: dict[str, str]
) -> None:
    def listed(*options: str) -> list[str]:
        code, out, _ = _run(capsys, "list", "--config", str(config), "--json", *options)
        assert code == 0
        return [orjson.loads(line)["key"] for line in out.splitlines()]

    assert listed("--since", "1h") == ["nginx/-"]
    assert listed("--since", "1d") == ["nginx/-", "mem_pressure"]
    assert listed("--rule", "disk_spike") == ["disk0"]
    assert listed("--severity", "warning") == ["mem_pressure"]
    assert _run(capsys, "resolve", ids["nginx/-"], "--config", str(config))[0] == 0
    assert listed("--open") == ["mem_pressure", "disk0"]


def test_list_json_carries_the_record_and_its_lifecycle(
    capsys: pytest.CaptureFixture[str], config: Path, ids: dict[str, str]
) -> None:
    _, out, _ = _run(capsys, "list", "--json", "--config", str(config), "--rule", "crash")
    [line] = out.splitlines()
    data = orjson.loads(line)
    assert data["id"] == ids["nginx/-"]
    assert data["delivery"] == "delivered"
    assert data["insight"]["summary"] == "nginx crashed in libc"
    assert set(data["lifecycle"]) == {"admitted_at", "analysed_at", "decided_at", "resolved_at"}


def test_show_prints_reason_evidence_and_insight(
    capsys: pytest.CaptureFixture[str], config: Path, ids: dict[str, str]
) -> None:
    code, out, _ = _run(capsys, "show", ids["nginx/-"], "--config", str(config))
    assert code == 0
    assert out.startswith(f"alert {ids['nginx/-']}\n")
    assert "nginx/- logged 'segfault' (1 line in 60s)" in out
    assert "nginx/-: segfault at 0 ip 00007f" in out
    assert "nginx crashed in libc" in out
    assert "recommended: update nginx" in out
    assert "delivered: because delivered" in out


def test_resolve_marks_once_and_says_so_the_second_time(
    capsys: pytest.CaptureFixture[str], config: Path, ids: dict[str, str]
) -> None:
    alert_id = ids["mem_pressure"]
    code, out, _ = _run(capsys, "resolve", alert_id, "--config", str(config))
    assert (code, out.startswith(f"alert {alert_id} resolved at ")) == (0, True)
    code, out, _ = _run(capsys, "resolve", alert_id, "--config", str(config))
    assert (code, out.startswith(f"alert {alert_id} was already resolved at ")) == (0, True)


def test_an_unknown_id_exits_1_with_a_message(
    capsys: pytest.CaptureFixture[str], config: Path, ids: dict[str, str]
) -> None:
    for command in ("show", "resolve"):
        code, _, err = _run(capsys, command, "feedfacecafebeef", "--config", str(config))
        assert code == 1
        assert "UnknownAlertError: no alert with id 'feedfacecafebeef'" in err


def test_a_bad_duration_exits_2_with_the_value(
    capsys: pytest.CaptureFixture[str], config: Path
) -> None:
    code, _, err = _run(capsys, "list", "--since", "soon", "--config", str(config))
    assert code == 2
    assert "DurationError: --since: not a duration 'soon'" in err


@pytest.mark.parametrize(
    ("text", "seconds"), [("30s", 30), ("15m", 900), ("2h", 7200), ("7d", 604800), ("1h30m", 5400)]
)
def test_durations_read_as_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", r"not a duration ''"),
        ("15", r"not a duration '15'"),
        ("2 hours", r"not a duration '2 hours'"),
        ("-1h", r"not a duration '-1h'"),
        ("0m", r"the duration must be more than 0, got '0m'"),
    ],
)
def test_bad_durations_are_refused(text: str, match: str) -> None:
    with pytest.raises(DurationError, match=match):
        parse_duration(text)


def test_the_history_is_found_through_eyes_config(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: Path,
    ids: dict[str, str],
) -> None:
    monkeypatch.setenv("EYES_CONFIG", str(config))
    code, out, _ = _run(capsys, "show", ids["disk0"])
    assert code == 0
    assert "disk_spike (info) on web-1" in out


def test_without_a_history_list_says_so_and_show_fails(
    capsys: pytest.CaptureFixture[str], config: Path, database: Path
) -> None:
    code, out, _ = _run(capsys, "list", "--config", str(config))
    assert (code, out) == (0, f"no alerts recorded yet (no history at {database})\n")
    assert not database.exists()
    with pytest.raises(UnknownAlertError, match=r"no alert with id 'x' in .*eyes.db"):
        show_alert(database, "x")


def test_list_works_while_the_flow_holds_a_write_transaction(
    capsys: pytest.CaptureFixture[str], config: Path, database: Path, ids: dict[str, str]
) -> None:
    writer = sqlite3.connect(database, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("DELETE FROM alerts")
    code, out, _ = _run(capsys, "list", "--config", str(config))
    writer.execute("ROLLBACK")
    writer.close()
    assert code == 0
    assert len(out.splitlines()) == 4
