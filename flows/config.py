"""The configuration: one TOML file, environment overrides, validation that names the key.

In: a TOML file (`--config FILE` or `EYES_CONFIG`), `EYES__SECTION__KEY=value` variables.
Out: a frozen `Config` tree with every key of CONFIG.md, or a `ConfigError` naming the key.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import socket
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

from operators.errors import ConfigError
from operators.events import LEVELS
from operators.triggers import SEVERITIES

__all__ = [
    "AiConfig",
    "AlertsConfig",
    "Config",
    "CrashConfig",
    "DiskSourceConfig",
    "DiskSpikeConfig",
    "ErrorFrequencyConfig",
    "HostConfig",
    "LogsSourceConfig",
    "MemoryPressureConfig",
    "MetricsSourceConfig",
    "ResourceSpikeConfig",
    "RulesConfig",
    "SourcesConfig",
    "StateConfig",
    "config_to_toml",
    "data_dir",
    "database_path",
    "load_config",
    "resolve_host_name",
]

CONFIG_ENV = "EYES_CONFIG"
OVERRIDE_PREFIX = "EYES__"

# A check takes the value and returns an error text, or None when the value is fine.
Check = Callable[[Any], "str | None"]


def _key(default: Any, kind: str, check: Check | None = None) -> Any:
    """Declare a configuration key: its default, its TOML type and an optional range check."""
    meta = {"kind": kind, "check": check}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


def _one_of(*names: str) -> Check:
    return lambda v: None if v in names else f"must be one of {', '.join(names)}"


def _positive(v: float) -> str | None:
    return None if v > 0 else "must be greater than 0"


def _non_negative(v: float) -> str | None:
    return None if v >= 0 else "must be 0 or more"


def _at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be at least {low}"


def _non_empty(v: str) -> str | None:
    return None if v.strip() else "must not be empty"


def _regexes(patterns: list[str]) -> str | None:
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            return f"has an invalid regular expression {pattern!r}: {exc}"
    return None


def _positive_values(mapping: dict[str, float]) -> str | None:
    for name, value in mapping.items():
        if value <= 0:
            return f"must map metric names to rises greater than 0 ({name} = {value!r})"
    return None


def _command(v: str | list[str]) -> str | None:
    if isinstance(v, list) and not v:
        return "must name a program"
    return _non_empty(v) if isinstance(v, str) else None


def _http_url(v: str) -> str | None:
    return None if v.startswith(("http://", "https://")) else "must start with http:// or https://"


def _webhook_url(v: str) -> str | None:
    return None if not v else _http_url(v)


def _notifiers(v: list[str]) -> str | None:
    unknown = [name for name in v if name not in ("stdout", "desktop", "webhook")]
    return f"has unknown notifiers {unknown!r}; use stdout, desktop, webhook" if unknown else None


# Crash signatures, matched as whole tokens or phrases, ignoring case.
# `keywords` count on error and fault lines only: on their own they also appear in ordinary
# messages ("crash recovery enabled"). `strong_keywords` count on every level, because Linux logs
# kernel segfaults at info, systemd-coredump logs at crit and macOS logs crash reports at default.
DEFAULT_CRASH_KEYWORDS = [
    "crash",
    "crashed",
    "crashing",
    "fatal error",
    "fatal exception",
    "fatal signal",
    "terminated unexpectedly",
    "quit unexpectedly",  # macOS: "<app> quit unexpectedly"
    "abort trap",  # macOS: "Abort trap: 6"
    "assertion failed",
    "unhandled exception",
    "uncaught exception",  # macOS: "*** Terminating app due to uncaught exception"
    "stack overflow",
    "panic",  # Go and Rust runtime panics
]
DEFAULT_STRONG_CRASH_KEYWORDS = [
    # Linux kernel
    "segfault",  # "nginx[811]: segfault at 0 ip ... error 4 in libc.so.6" (info)
    "segmentation fault",
    "general protection fault",
    "kernel panic",
    "kernel BUG at",
    "BUG: unable to handle",
    "soft lockup",
    "hard LOCKUP",
    "Out of memory: Killed process",
    "oom-kill",
    "invoked oom-killer",
    # systemd and systemd-coredump
    "dumped core",  # "Process 811 (nginx) of user 0 dumped core." (crit)
    "core dumped",
    "code=dumped",  # "Main process exited, code=dumped, status=11/SEGV"
    "core-dump",  # "Failed with result 'core-dump'."
    # signals named in crash lines
    "SIGSEGV",
    "SIGABRT",
    "SIGBUS",
    "SIGILL",
    # macOS
    "panic(cpu",  # kernel panic string
    "EXC_BAD_ACCESS",
    "EXC_CRASH",
    "EXC_BAD_INSTRUCTION",
    "Saved crash report",  # ReportCrash
]


@dataclass(frozen=True, slots=True)
class HostConfig:
    """`[host]`: the name events get when they carry none."""

    name: str = _key("auto", "str", _non_empty)


@dataclass(frozen=True, slots=True)
class LogsSourceConfig:
    """`[sources.logs]`: the system log follower."""

    enabled: bool = _key(True, "bool")
    command: str | list[str] = _key("auto", "command", _command)
    min_level: str = _key("info", "str", _one_of(*LEVELS))


@dataclass(frozen=True, slots=True)
class MetricsSourceConfig:
    """`[sources.metrics]`: the machine-wide sampler."""

    enabled: bool = _key(True, "bool")
    interval_seconds: float = _key(5.0, "float", _positive)
    pressure_warning_psi: float = _key(10.0, "float", _non_negative)
    pressure_critical_psi: float = _key(10.0, "float", _non_negative)


@dataclass(frozen=True, slots=True)
class DiskSourceConfig:
    """`[sources.disk]`: per-device throughput from the kernel's counters."""

    enabled: bool = _key(True, "bool")
    interval_seconds: float = _key(5.0, "float", _positive)
    devices: list[str] = _key([], "list[str]")


@dataclass(frozen=True, slots=True)
class SourcesConfig:
    """`[sources.*]`: the three live sources."""

    logs: LogsSourceConfig = field(default_factory=LogsSourceConfig)
    metrics: MetricsSourceConfig = field(default_factory=MetricsSourceConfig)
    disk: DiskSourceConfig = field(default_factory=DiskSourceConfig)


@dataclass(frozen=True, slots=True)
class StateConfig:
    """`[state]`: how much recent history per host a trigger context carries.

    `reorder_seconds` is the bounded lateness of the rules step: events are held that long
    (in event time) and released in `ts` order, so disorder within it does not change what
    fires; a later event is still processed, at once, and counted as late.
    """

    context_seconds: float = _key(60.0, "float", _positive)
    max_events: int = _key(1000, "int", _at_least(1))
    reorder_seconds: float = _key(5.0, "float", _non_negative)


@dataclass(frozen=True, slots=True)
class ErrorFrequencyConfig:
    """`[rules.error_frequency]`: bursts of error lines per `process/subsystem`."""

    enabled: bool = _key(True, "bool")
    threshold: int = _key(5, "int", _at_least(1))
    window_seconds: float = _key(60.0, "float", _positive)
    burst_ratio: float = _key(2.0, "float", _at_least(1.0))
    severity: str = _key("warning", "str", _one_of(*SEVERITIES))
    ignore: list[str] = _key([], "list[str]", _regexes)
    max_signatures: int = _key(200, "int", _at_least(1))  # per source; least recent evicted


@dataclass(frozen=True, slots=True)
class CrashConfig:
    """`[rules.crash]`: crash signatures in log lines, as whole tokens or phrases."""

    enabled: bool = _key(True, "bool")
    severity: str = _key("critical", "str", _one_of(*SEVERITIES))
    keywords: list[str] = _key(DEFAULT_CRASH_KEYWORDS, "list[str]")
    strong_keywords: list[str] = _key(DEFAULT_STRONG_CRASH_KEYWORDS, "list[str]")


@dataclass(frozen=True, slots=True)
class MemoryPressureConfig:
    """`[rules.memory_pressure]`: the measured pressure level at or above `threshold`."""

    enabled: bool = _key(True, "bool")
    threshold: str = _key("warning", "str", _one_of("warning", "critical"))


@dataclass(frozen=True, slots=True)
class ResourceSpikeConfig:
    """`[rules.resource_spike]`: a metric rising above its running minimum by a threshold."""

    enabled: bool = _key(True, "bool")
    window_seconds: float = _key(30.0, "float", _positive)
    severity: str = _key("warning", "str", _one_of(*SEVERITIES))
    thresholds: dict[str, float] = _key(
        {"cpu_power_mw": 1000.0, "gpu_power_mw": 2000.0, "cpu_percent": 50.0},
        "dict[str,float]",
        _positive_values,
    )


@dataclass(frozen=True, slots=True)
class DiskSpikeConfig:
    """`[rules.disk_spike]`: a device's throughput rising above its running minimum."""

    enabled: bool = _key(True, "bool")
    window_seconds: float = _key(30.0, "float", _positive)
    severity: str = _key("warning", "str", _one_of(*SEVERITIES))
    read_bytes_per_s: float = _key(536870912.0, "float", _positive)
    write_bytes_per_s: float = _key(268435456.0, "float", _positive)


@dataclass(frozen=True, slots=True)
class RulesConfig:
    """`[rules]` and `[rules.*]`: the shared cooldown and the five rules."""

    cooldown_seconds: float = _key(300.0, "float", _non_negative)
    error_frequency: ErrorFrequencyConfig = field(default_factory=ErrorFrequencyConfig)
    crash: CrashConfig = field(default_factory=CrashConfig)
    memory_pressure: MemoryPressureConfig = field(default_factory=MemoryPressureConfig)
    resource_spike: ResourceSpikeConfig = field(default_factory=ResourceSpikeConfig)
    disk_spike: DiskSpikeConfig = field(default_factory=DiskSpikeConfig)


@dataclass(frozen=True, slots=True)
class AiConfig:
    """`[ai]`: the model that explains each trigger, and how it is called."""

    backend: str = _key(
        "auto", "str", _one_of("auto", "ollama", "openai", "mock", "recorded", "none")
    )
    endpoint: str = _key("http://localhost:11434", "str", _http_url)
    model: str = _key("llama3", "str", _non_empty)
    api_key_env: str = _key("OPENAI_API_KEY", "str")
    timeout_seconds: float = _key(60.0, "float", _positive)
    max_concurrency: int = _key(4, "int", _at_least(1))
    max_attempts: int = _key(3, "int", _at_least(1))
    retry_base_seconds: float = _key(1.0, "float", _non_negative)
    retry_max_seconds: float = _key(60.0, "float", _non_negative)
    retry_queue_size: int = _key(100, "int", _at_least(1))
    redact: bool = _key(True, "bool")
    max_tokens: int = _key(1024, "int", _at_least(16))
    recordings: str = _key("fixtures/llm/llm_demo.jsonl", "str")
    drain_seconds: float = _key(120.0, "float", _non_negative)


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """`[alerts]`: the rate limit, the queue, the history and the notifiers."""

    rate_limit_per_minute: int = _key(3, "int", _at_least(1))
    queue_size: int = _key(100, "int", _at_least(1))
    min_severity: str = _key("warning", "str", _one_of(*SEVERITIES))
    database: str = _key("eyes.db", "str", _non_empty)
    notify: list[str] = _key(["stdout"], "list[str]", _notifiers)
    webhook_url: str = _key("", "str", _webhook_url)
    webhook_timeout_seconds: float = _key(10.0, "float", _positive)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration, every key of CONFIG.md with its effective value."""

    host: HostConfig = field(default_factory=HostConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    state: StateConfig = field(default_factory=StateConfig)
    rules: RulesConfig = field(default_factory=RulesConfig)
    ai: AiConfig = field(default_factory=AiConfig)
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    source: str = field(default="built-in defaults", compare=False)


def _type_error(kind: str, value: Any) -> str | None:
    """Return why `value` is not of the TOML `kind`, or None when it is."""
    is_bool = isinstance(value, bool)
    is_number = isinstance(value, (int, float)) and not is_bool
    ok = {
        "bool": is_bool,
        "int": isinstance(value, int) and not is_bool,
        "float": is_number and math.isfinite(value),
        "str": isinstance(value, str),
        "list[str]": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "dict[str,float]": isinstance(value, dict)
        and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            for v in value.values()
        ),
        "command": isinstance(value, str)
        or (isinstance(value, list) and all(isinstance(v, str) for v in value)),
    }[kind]
    if ok:
        return None
    wanted = {
        "bool": "a boolean (true or false)",
        "int": "an integer",
        "float": "a number",
        "str": "a string",
        "list[str]": "a list of strings",
        "dict[str,float]": "a table of numbers",
        "command": "a string or a list of strings",
    }[kind]
    return f"must be {wanted}, got {value!r}"


def _coerce(kind: str, value: Any) -> Any:
    if kind == "float":
        return float(value)
    if kind == "dict[str,float]":
        return {k: float(v) for k, v in value.items()}
    return value


def _build(cls: type, data: Mapping[str, Any], section: str, origin: str) -> Any:
    """Build the dataclass `cls` of `[section]` from `data`, checking every key."""
    known = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    values: dict[str, Any] = {}
    for name, given in data.items():
        where = f"[{section}] {name}" if section else name
        spec = known.get(name)
        kind = None if spec is None else spec.metadata.get("kind")
        raw = given.read_as(kind) if isinstance(given, _Override) else given
        if spec is None:
            hint = ", ".join(sorted(known))
            raise ConfigError(f"{origin}: unknown key {where} (known here: {hint})")
        if kind is None:
            if not isinstance(raw, dict):
                raise ConfigError(f"{origin}: {where} must be a table, got {raw!r}")
            sub = f"{section}.{name}" if section else name
            values[name] = _build(_section_type(cls, name), raw, sub, origin)
            continue
        check = spec.metadata["check"]
        problem = _type_error(kind, raw)
        value = None if problem else _coerce(kind, raw)
        if problem is None and check is not None and (problem := check(value)):
            problem = f"{problem}, got {raw!r}"
        if problem:
            raise ConfigError(f"{origin}: {where} {problem}")
        values[name] = value
    return cls(**values)


def _section_type(cls: type, name: str) -> type:
    return type(getattr(cls(), name))


@dataclass(frozen=True, slots=True)
class _Override:
    """An `EYES__SECTION__KEY` value: its text, read as the key's kind once the key is known."""

    text: str

    def read_as(self, kind: str | None) -> Any:
        """Return the text for a string key (`EYES__AI__MODEL=7` is the model "7"), else the
        TOML value it spells (`5`, `true`, `["a"]`), else the text itself."""
        if kind == "str":
            return self.text
        try:
            return tomllib.loads(f"v = {self.text}")["v"]
        except tomllib.TOMLDecodeError:
            return self.text


def _apply_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> list[str]:
    """Fold `EYES__SECTION__KEY` variables into `data`; return the names applied."""
    applied = []
    for name in sorted(environ):
        if not name.startswith(OVERRIDE_PREFIX):
            continue
        path = [part.lower() for part in name[len(OVERRIDE_PREFIX) :].split("__")]
        if len(path) < 2 or not all(path):
            msg = f"{name}: an override is named EYES__SECTION__KEY, e.g. EYES__AI__BACKEND"
            raise ConfigError(msg)
        table = data
        for part in path[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise ConfigError(f"{name}: [{'.'.join(path[:-1])}] is not a table")
        table[path[-1]] = _Override(environ[name])
        applied.append(name)
    return applied


def load_config(
    path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None
) -> Config:
    """Load the configuration from `path`, else `EYES_CONFIG`, else the defaults, plus overrides.

    Raises:
        ConfigError: the file is missing or not TOML, or a key is unknown, mistyped or out of
            range; the message names the file and the key.
    """
    env = os.environ if environ is None else environ
    chosen = path if path is not None else env.get(CONFIG_ENV) or None
    data: dict[str, Any] = {}
    origin = "built-in defaults"
    if chosen is not None:
        origin = str(chosen)
        try:
            with open(chosen, "rb") as handle:
                data = tomllib.load(handle)
        except FileNotFoundError:
            raise ConfigError(f"{origin}: configuration file not found") from None
        except OSError as exc:
            raise ConfigError(f"{origin}: cannot read the configuration: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{origin}: not valid TOML: {exc}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{origin}: not UTF-8 text (byte {exc.start})") from None
    applied = _apply_overrides(data, env)
    if applied:
        origin = f"{origin} + {', '.join(applied)}"
    config = _build(Config, data, "", origin)
    return dataclasses.replace(config, source=origin)


def resolve_host_name(config: Config) -> str:
    """Return `[host] name`, or this machine's host name when it is "auto"."""
    return socket.gethostname() if config.host.name == "auto" else config.host.name


def data_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Return the user's data directory for Eyes (created on demand by the callers)."""
    env = os.environ if environ is None else environ
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "eyes"
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "eyes"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        inner = ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    return repr(value)


def config_to_toml(config: Config) -> str:
    """Return the effective configuration as TOML that `load_config` reads back unchanged."""
    lines: list[str] = []

    def emit(obj: Any, section: str) -> None:
        scalars = []
        tables = []
        for spec in dataclasses.fields(obj):
            if spec.name == "source":
                continue
            value = getattr(obj, spec.name)
            if dataclasses.is_dataclass(value):
                tables.append((spec.name, value))
            else:
                scalars.append(f"{spec.name} = {_toml_value(value)}")
        if scalars:
            lines.append(f"[{section}]")
            lines.extend(scalars)
            lines.append("")
        for name, value in tables:
            emit(value, f"{section}.{name}" if section else name)

    emit(config, "")
    return "\n".join(lines)


def database_path(config: Config, environ: Mapping[str, str] | None = None) -> Path:
    """Return `[alerts] database` as a path; a relative one lives in the user's data directory."""
    path = Path(config.alerts.database).expanduser()
    return path if path.is_absolute() else data_dir(environ) / path
