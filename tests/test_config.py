from __future__ import annotations

from pathlib import Path

import pytest

from flows.cli import main
from flows.config import (
    Config,
    config_to_toml,
    data_dir,
    database_path,
    load_config,
    resolve_host_name,
)
from operators.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "eyes.toml"
    path.write_text(text)
    return path


def test_without_a_file_the_built_in_defaults_run() -> None:
    config = load_config(environ={})
    assert config == Config()
    assert config.source == "built-in defaults"
    assert config.rules.error_frequency.threshold == 5
    assert config.ai.backend == "auto"
    assert config.alerts.notify == ["stdout"]
    assert config.rules.resource_spike.thresholds == {
        "cpu_power_mw": 1000.0,
        "gpu_power_mw": 2000.0,
        "cpu_percent": 50.0,
    }


def test_a_file_overrides_only_the_keys_it_names(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "[rules.error_frequency]\nthreshold = 9\nignore = ['^ok']\n"
        "[alerts]\nnotify = []\n[sources.logs]\ncommand = ['my-tool', '--json']\n",
    )
    config = load_config(path, environ={})
    assert config.rules.error_frequency.threshold == 9
    assert config.rules.error_frequency.ignore == ["^ok"]
    assert config.rules.error_frequency.window_seconds == 60.0
    assert config.alerts.notify == []
    assert config.sources.logs.command == ["my-tool", "--json"]
    assert config.source == str(path)


def test_eyes_config_names_the_file_and_an_explicit_path_wins(tmp_path: Path) -> None:
    from_env = _write(tmp_path, "[state]\nmax_events = 7\n")
    explicit = tmp_path / "other.toml"
    explicit.write_text("[state]\nmax_events = 8\n")
    assert load_config(environ={"EYES_CONFIG": str(from_env)}).state.max_events == 7
    assert load_config(explicit, environ={"EYES_CONFIG": str(from_env)}).state.max_events == 8


def test_environment_overrides_win_over_the_file_and_are_typed(tmp_path: Path) -> None:
    path = _write(tmp_path, "[ai]\nbackend = 'ollama'\n")
    env = {
        "EYES__AI__BACKEND": "mock",
        "EYES__AI__MAX_CONCURRENCY": "8",
        "EYES__RULES__CRASH__ENABLED": "false",
        "EYES__ALERTS__NOTIFY": '["stdout", "webhook"]',
        "EYES__ALERTS__WEBHOOK_URL": "http://127.0.0.1:9/hook",
    }
    config = load_config(path, environ=env)
    assert config.ai.backend == "mock"
    assert config.ai.max_concurrency == 8
    assert config.rules.crash.enabled is False
    assert config.alerts.notify == ["stdout", "webhook"]
    assert config.alerts.webhook_url == "http://127.0.0.1:9/hook"
    assert "EYES__AI__BACKEND" in config.source


def test_an_override_of_a_string_key_keeps_its_text() -> None:
    env = {"EYES__AI__MODEL": "7", "EYES__HOST__NAME": "true", "EYES__AI__MAX_ATTEMPTS": "5"}
    config = load_config(environ=env)
    assert config.ai.model == "7"
    assert config.host.name == "true"
    assert config.ai.max_attempts == 5
    with pytest.raises(ConfigError, match=r"\[ai\] max_attempts must be an integer, got 'x'"):
        load_config(environ={"EYES__AI__MAX_ATTEMPTS": "x"})


def test_a_file_that_is_not_utf8_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "eyes.toml"
    path.write_bytes(b"[host]\nname = '\xff'\n")
    with pytest.raises(ConfigError, match=r"eyes\.toml: not UTF-8 text \(byte 15\)"):
        load_config(path, environ={})
    assert main(["check-config", "--config", str(path)]) == 2


def test_integers_are_accepted_where_numbers_are_expected(tmp_path: Path) -> None:
    config = load_config(_write(tmp_path, "[rules]\ncooldown_seconds = 10\n"), environ={})
    assert config.rules.cooldown_seconds == 10.0
    assert isinstance(config.rules.cooldown_seconds, float)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("[ai]\nbakend = 'none'\n", r"unknown key \[ai\] bakend"),
        ("[nosuch]\nx = 1\n", "unknown key nosuch"),
        ("[ai]\nmax_concurrency = 'four'\n", r"\[ai\] max_concurrency must be an integer"),
        ("[state]\nmax_events = 2.5\n", r"\[state\] max_events must be an integer, got 2.5"),
        ("[alerts]\nnotify = 'stdout'\n", r"\[alerts\] notify must be a list of strings"),
        ("[rules.crash]\nenabled = 1\n", r"\[rules.crash\] enabled must be a boolean"),
        ("[ai]\nmax_concurrency = 0\n", r"\[ai\] max_concurrency must be at least 1, got 0"),
        ("[rules.error_frequency]\nseverity = 'loud'\n", r"severity must be one of .* 'loud'"),
        ("[rules.error_frequency]\nignore = ['(']\n", "invalid regular expression"),
        ("[rules.resource_spike]\nthresholds = { cpu_percent = -5 }\n", "cpu_percent = -5"),
        ("[alerts]\nnotify = ['pager']\n", "unknown notifiers"),
        ("[ai]\nendpoint = 'localhost:11434'\n", r"\[ai\] endpoint must start with http"),
        ("[sources.logs]\nmin_level = 'verbose'\n", r"\[sources.logs\] min_level"),
        ("[rules]\nerror_frequency = 3\n", r"\[rules\] error_frequency must be a table"),
        ("ai = [", "not valid TOML"),
    ],
)
def test_a_bad_key_stops_start_up_naming_the_key(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(_write(tmp_path, text), environ={})


def test_a_bad_override_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="EYES__AI: an override is named EYES__SECTION__KEY"):
        load_config(environ={"EYES__AI": "x"})
    with pytest.raises(ConfigError, match=r"unknown key \[ai\] nope"):
        load_config(environ={"EYES__AI__NOPE": "1"})


def test_a_missing_file_named_explicitly_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: configuration file not found"):
        load_config(tmp_path / "missing.toml", environ={})


def test_the_printed_configuration_reads_back_to_the_same_values(tmp_path: Path) -> None:
    config = load_config(environ={"EYES__RULES__DISK_SPIKE__WINDOW_SECONDS": "45"})
    path = _write(tmp_path, config_to_toml(config))
    assert load_config(path, environ={}) == config


def test_host_auto_is_this_machine_and_a_name_is_kept() -> None:
    import socket

    assert resolve_host_name(Config()) == socket.gethostname()
    named = load_config(environ={"EYES__HOST__NAME": "web-1"})
    assert resolve_host_name(named) == "web-1"


def test_a_relative_database_lives_in_the_data_directory(tmp_path: Path) -> None:
    env = {"XDG_DATA_HOME": str(tmp_path)}
    assert database_path(Config(), env) == data_dir(env) / "eyes.db"
    absolute = load_config(environ={"EYES__ALERTS__DATABASE": str(tmp_path / "h.db")})
    assert database_path(absolute, env) == tmp_path / "h.db"


def test_check_config_prints_the_effective_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "[alerts]\nrate_limit_per_minute = 9\n")
    assert main(["check-config", "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"from {path}" in out
    assert "[alerts]\nrate_limit_per_minute = 9\n" in out


@pytest.mark.parametrize(
    ("text", "key"),
    [("[alerts]\nsurprise = 1\n", "[alerts] surprise"), ("[ai]\nredact = 'yes'\n", "redact")],
)
def test_check_config_exits_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, key: str
) -> None:
    assert main(["check-config", "--config", str(_write(tmp_path, text))]) == 2
    err = capsys.readouterr().err
    assert key in err
    assert err.count("\n") == 1


def test_check_config_reads_eyes_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EYES_CONFIG", str(_write(tmp_path, "[state]\nmax_events = 3\n")))
    assert main(["check-config"]) == 0
    assert "max_events = 3" in capsys.readouterr().out
