"""The `eyes` command: run, replay, record, check-config, alerts.

Exit codes (TRACE_FORMAT.md section 4): 0 success; 2 bad arguments, configuration or unreadable
input file, with a one-line message naming the file, key or line; 1 anything else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from bytewax.testing import run_main

from flows.config import config_to_toml, load_config
from flows.eyes import build_flow
from operators.errors import EyesError
from operators.outputs import RecordFileSink, RunSummary, check_writable
from operators.sources.replay import ReplaySource, ReplayStats, check_readable

__all__ = ["main"]

log = logging.getLogger("eyes")


class _ArgumentParser(argparse.ArgumentParser):
    """Exits 2 with a one-line message on bad arguments, as argparse does, naming the command."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="TOML configuration file [env: EYES_CONFIG]; without either, the built-in defaults",
    )


def _config_path(args: argparse.Namespace) -> str | None:
    return getattr(args, "config", None)


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="eyes",
        description="Watch this machine's logs, metrics and disks; explain and alert on trouble.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_ArgumentParser)

    run = commands.add_parser("run", help="run the live dataflow on this machine")
    _add_config(run)
    run.add_argument("-w", "--workers", type=_positive_int, default=1, help="worker threads")

    replay = commands.add_parser("replay", help="replay recorded traces through the dataflow")
    replay.add_argument("traces", nargs="+", metavar="TRACE", help="JSON Lines trace (.gz too)")
    _add_config(replay)
    replay.add_argument("--out", metavar="FILE", type=Path, help="write alert records here")
    replay.add_argument(
        "--speed",
        type=_non_negative_float,
        default=0.0,
        help="0 (default): as fast as possible; X: X times the recorded pace",
    )

    record = commands.add_parser("record", help="capture the live sources into a trace")
    _add_config(record)
    record.add_argument("--out", metavar="FILE", type=Path, required=True)
    record.add_argument(
        "--duration", type=_non_negative_float, default=None, help="seconds (default: until ^C)"
    )

    check = commands.add_parser("check-config", help="validate and print the configuration")
    _add_config(check)

    alerts = commands.add_parser("alerts", help="read the alert history")
    _add_config(alerts)
    alert_commands = alerts.add_subparsers(
        dest="alerts_command", required=True, parser_class=_ArgumentParser
    )
    listing = alert_commands.add_parser("list", help="list alerts, newest first")
    _add_config(listing)
    listing.add_argument("--since", metavar="DURATION", help="e.g. 30m, 2h, 7d")
    listing.add_argument("--rule", help="only this rule")
    listing.add_argument("--severity", choices=("info", "warning", "critical"))
    listing.add_argument("--open", action="store_true", help="only alerts not resolved")
    listing.add_argument("--json", action="store_true", help="JSON Lines instead of a table")
    show = alert_commands.add_parser("show", help="one alert in full")
    _add_config(show)
    show.add_argument("id")
    resolve = alert_commands.add_parser("resolve", help="mark an alert resolved")
    _add_config(resolve)
    resolve.add_argument("id")
    return parser


def _cmd_replay(args: argparse.Namespace) -> int:
    check_readable(args.traces)
    if args.out is not None:
        check_writable(args.out, "alert records")
    config = load_config(_config_path(args))
    stats = ReplayStats()
    summary = RunSummary()
    source = ReplaySource(args.traces, speed=args.speed, stats=stats)
    flow = build_flow(
        config,
        {"replay": source},
        live=False,
        records_sink=RecordFileSink(args.out, summary),
    )
    run_main(flow)
    print(
        f"eyes replay: {stats.events} events read, {stats.bad_total} bad lines, "
        f"{summary.describe()}"
    )
    return 0


def _cmd_check_config(args: argparse.Namespace) -> int:
    config = load_config(_config_path(args))
    print(f"# effective configuration from {config.source}")
    print(config_to_toml(config), end="")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from flows import live

    config = load_config(_config_path(args))
    print(f"eyes run: configuration from {config.source}; Ctrl-C or SIGTERM stops", file=sys.stderr)
    try:
        live.run(config, args.workers)
    except KeyboardInterrupt:
        print("eyes run: stopped at once", file=sys.stderr)
    else:
        print("eyes run: stopped", file=sys.stderr)
    return 0


def _cmd_record(args: argparse.Namespace) -> int:
    from flows import live

    config = load_config(_config_path(args))
    until = "until Ctrl-C" if args.duration is None else f"for {args.duration:g} s"
    print(f"eyes record: recording to {args.out} {until}", file=sys.stderr)
    stats = live.record(config, args.out, args.duration)
    print(f"eyes record: {stats.describe()}")
    return 0


def _cmd_alerts(args: argparse.Namespace) -> int:
    import time

    from flows.config import database_path
    from operators.alerts import query

    path = database_path(load_config(_config_path(args)))
    now = time.time()
    if args.alerts_command == "list":
        text = query.list_alerts(
            path,
            now=now,
            since=args.since,
            rule=args.rule,
            severity=args.severity,
            open_only=args.open,
            as_json=args.json,
        )
    elif args.alerts_command == "show":
        text = query.show_alert(path, args.id)
    else:
        text = query.resolve_alert(path, args.id, now=now)
    print(text, end="")
    return 0


_COMMANDS = {
    "run": _cmd_run,
    "replay": _cmd_replay,
    "record": _cmd_record,
    "check-config": _cmd_check_config,
    "alerts": _cmd_alerts,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `eyes` command line and return its exit code."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="eyes: %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return _COMMANDS[args.command](args)
    except EyesError as exc:
        print(f"eyes: {type(exc).__name__}: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
