from __future__ import annotations

import gzip
import sqlite3
import subprocess
import sys
from pathlib import Path

import bytewax.operators as op
import orjson
import pytest
from bytewax.dataflow import Dataflow
from bytewax.testing import TestingSink, run_main

from flows.cli import main
from operators.errors import InputFileError
from operators.events import MAX_LINE_BYTES, Event, LogEvent
from operators.sources.replay import ReplaySource, ReplayStats, check_readable

from .conftest import FIXTURES

BAD_LINES = FIXTURES / "traces" / "bad_lines.jsonl"
ROOT = FIXTURES.parent


def _log(ts: float, message: str, **extra: object) -> bytes:
    event = {"kind": "log", "ts": ts, "level": "info", "message": message, **extra}
    return orjson.dumps(event) + b"\n"


def _replay(source: ReplaySource) -> list[Event]:
    flow = Dataflow("replay_test")
    out: list[Event] = []
    op.output("out", op.input("replay", flow, source), TestingSink(out))
    run_main(flow)
    return out


def test_several_files_are_merged_by_time_and_gzip_is_read(tmp_path: Path) -> None:
    plain = tmp_path / "a.jsonl"
    plain.write_bytes(_log(1, "a1") + _log(4, "a4") + _log(5, "a5"))
    packed = tmp_path / "b.jsonl.gz"
    with gzip.open(packed, "wb") as handle:
        handle.write(_log(2, "b2") + _log(3, "b3") + _log(6, "b6"))
    events = _replay(ReplaySource([plain, packed], batch_size=2))
    assert [e.message for e in events if isinstance(e, LogEvent)] == [
        "a1",
        "b2",
        "b3",
        "a4",
        "a5",
        "b6",
    ]
    assert {e.host for e in events} == {"replay"}


def test_bad_lines_are_skipped_counted_and_the_rest_replayed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stats = ReplayStats()
    events = _replay(ReplaySource([BAD_LINES], stats=stats))
    assert len(events) == 4
    assert stats.events == 4
    assert stats.bad_lines == {str(BAD_LINES): 8}
    assert stats.bad_reasons == {
        "invalid_json": 1,
        "missing_field": 1,
        "invalid_field": 3,
        "unknown_kind": 1,
        "not_an_object": 1,
        "not_utf8": 1,
    }
    assert f"{BAD_LINES}:6: skipped: invalid JSON" in caplog.text
    assert f"{BAD_LINES}:13: skipped: not UTF-8" in caplog.text
    assert "8 bad lines skipped (lines 6, 7, 8, 9, 10, 11, 13, 14)" in caplog.text


def test_an_empty_file_is_reported_and_the_others_replayed(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    good = tmp_path / "good.jsonl"
    good.write_bytes(_log(1, "one"))
    stats = ReplayStats()
    assert len(_replay(ReplaySource([empty, good], stats=stats))) == 1
    assert stats.empty_files == [str(empty)]
    assert "empty.jsonl: the trace is empty" in caplog.text


def test_a_line_over_one_mebibyte_is_cut_counted_and_the_next_line_read(tmp_path: Path) -> None:
    trace = tmp_path / "long.jsonl"
    trace.write_bytes(_log(1, "x" * (2 * MAX_LINE_BYTES)) + _log(2, "after"))
    stats = ReplayStats()
    events = _replay(ReplaySource([trace], stats=stats))
    assert [e.message for e in events if isinstance(e, LogEvent)] == ["after"]
    assert stats.bad_reasons == {"too_long": 1}


def test_a_truncated_gzip_file_keeps_what_was_read(tmp_path: Path) -> None:
    packed = tmp_path / "cut.jsonl.gz"
    data = gzip.compress(b"".join(_log(i, f"m{i}") for i in range(2000)))
    packed.write_bytes(data[: len(data) // 2])
    stats = ReplayStats()
    events = _replay(ReplaySource([packed], stats=stats))
    assert 0 < len(events) < 2000
    assert stats.bad_reasons == {"unreadable": 1}


def test_a_resumed_replay_continues_after_the_last_emitted_event(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_bytes(b"".join(_log(i, f"m{i}") for i in range(10)))
    part = ReplaySource([trace], batch_size=4).build_part("replay", "replay", 6)
    assert [e.message for e in part.next_batch()] == ["m6", "m7", "m8", "m9"]
    assert part.snapshot() == 10
    with pytest.raises(StopIteration):
        part.next_batch()


def test_a_paced_replay_emits_each_event_when_it_is_due(tmp_path: Path) -> None:
    trace = tmp_path / "t.jsonl"
    trace.write_bytes(_log(100, "first") + _log(110, "second") + _log(110.5, "third"))
    now = [1000.0]
    part = ReplaySource([trace], speed=2.0, clock=lambda: now[0]).build_part("r", "replay", None)
    assert [e.message for e in part.next_batch()] == ["first"]
    assert part.next_awake() is not None
    now[0] += 4.9
    assert part.next_batch() == []
    now[0] += 0.1
    assert [e.message for e in part.next_batch()] == ["second"]
    now[0] += 0.25
    assert [e.message for e in part.next_batch()] == ["third"]
    with pytest.raises(StopIteration):
        part.next_batch()


def test_a_missing_trace_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nope\.jsonl: cannot read trace"):
        check_readable([BAD_LINES, tmp_path / "nope.jsonl"])


@pytest.mark.parametrize(
    ("content", "why"),
    [(b"plain text, not gzip\n", "Not a gzipped file"), (b"\x1f\x8b\x08", "ended before")],
)
def test_a_gz_trace_that_is_not_gzip_is_an_input_error(
    tmp_path: Path, content: bytes, why: str
) -> None:
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(content)
    with pytest.raises(InputFileError, match=rf"broken\.jsonl\.gz: cannot read trace: .*{why}"):
        check_readable([broken])
    assert main(["replay", str(broken)]) == 2


def test_eyes_replay_exits_2_when_the_out_file_cannot_be_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "no-such-folder" / "a.jsonl"
    assert main(["replay", str(BAD_LINES), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{out}: cannot write alert records: No such file or directory" in err
    assert err.count("\n") == 1


def test_eyes_replay_counts_bad_lines_and_writes_the_records_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "a.jsonl"
    env_db = tmp_path / "h.db"
    config = tmp_path / "eyes.toml"
    config.write_text(f'[ai]\nbackend = "none"\n[alerts]\nnotify = []\ndatabase = "{env_db}"\n')
    code = main(["replay", str(BAD_LINES), "--config", str(config), "--out", str(out)])
    assert code == 0
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("eyes replay: 4 events read, 8 bad lines, ")
    assert out.exists()


def test_eyes_replay_exits_2_naming_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["replay", str(tmp_path / "gone.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "gone.jsonl" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("args", [["replay"], ["replay", "t.jsonl", "--speed", "-1"], ["nope"]])
def test_bad_arguments_exit_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(args)
    assert caught.value.code == 2


def test_the_installed_command_replays_a_trace_in_a_real_process(tmp_path: Path) -> None:
    config = tmp_path / "eyes.toml"
    config.write_text(f'[ai]\nbackend = "none"\n[alerts]\ndatabase = "{tmp_path / "h.db"}"\n')
    result = subprocess.run(
        [sys.executable, "-m", "flows.cli", "replay", str(BAD_LINES), "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "eyes replay: 4 events read, 8 bad lines" in result.stdout
    assert "bad_lines.jsonl:7: skipped: log event has no 'message'" in result.stderr


def test_with_no_cooldown_every_trigger_of_the_same_second_is_a_row_of_the_history(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "crashes.jsonl"
    crash = "app[812]: segfault at 0 ip 00007f3a2b1c4d10 error 4"
    lines = [_log(1796292000.0 + n, "GET / 200", host="web-1") for n in range(5)]
    lines += [_log(1796292005.0, crash, host="web-1", process="app") for _ in range(3)]
    trace.write_bytes(b"".join(lines))
    out, db = tmp_path / "a.jsonl", tmp_path / "h.db"
    config = tmp_path / "eyes.toml"
    config.write_text(
        f'[ai]\nbackend = "none"\n[rules]\ncooldown_seconds = 0\n'
        f'[alerts]\nnotify = []\nrate_limit_per_minute = 100\ndatabase = "{db}"\n'
    )
    assert main(["replay", str(trace), "--config", str(config), "--out", str(out)]) == 0
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert [r["rule"] for r in records] == ["crash"] * 3
    with sqlite3.connect(db) as history:
        rows = history.execute("SELECT id FROM alerts ORDER BY id").fetchall()
    assert sorted(r["id"] for r in records) == [row[0] for row in rows]
    assert len(rows) == 3
