"""The run's own record of alert records: the `--out` JSON Lines file and the summary counts.

In: `AlertRecord`s. Out: one JSON line per record in the order they were finalised (when a path
is given), and `RunSummary` counts of triggers and alerts by delivery.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
from bytewax.outputs import DynamicSink, StatelessSinkPartition
from typing_extensions import override

from operators.errors import InputFileError
from operators.records import DELIVERIES, AlertRecord

__all__ = ["RecordFileSink", "RunSummary", "check_writable"]


def check_writable(path: Path, what: str) -> None:
    """Fail before the run when an output file cannot be created (its folder is missing, say).

    Args:
        path: the file; created empty when missing, left as it is otherwise.
        what: what the file would hold, for the message (`alert records`, `the trace`).

    Raises:
        InputFileError: naming the file and why.
    """
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise InputFileError(f"{path}: cannot write {what}: {exc.strerror or exc}") from None


@dataclass
class RunSummary:
    """Counts of the records a run finalised: triggers in all, and by delivery."""

    triggers: int = 0
    deliveries: Counter[str] = field(default_factory=Counter)
    analyses: Counter[str] = field(default_factory=Counter)

    def add(self, record: AlertRecord) -> None:
        """Count one finalised record."""
        self.triggers += 1
        self.deliveries[record.delivery] += 1
        self.analyses[record.analysed.analysis] += 1

    def describe(self) -> str:
        """Return `5 triggers, alerts: 3 delivered, 1 suppressed, ...` with every delivery named."""
        fates = ", ".join(f"{self.deliveries[name]} {name}" for name in DELIVERIES)
        return f"{self.triggers} triggers, alerts: {fates}"


class _RecordFilePartition(StatelessSinkPartition[AlertRecord]):
    def __init__(self, handle: IO[bytes] | None, summary: RunSummary) -> None:
        self._handle = handle
        self._summary = summary

    @override
    def write_batch(self, items: list[AlertRecord]) -> None:
        for record in items:
            self._summary.add(record)
        if self._handle is not None and items:
            self._handle.write(
                b"".join(orjson.dumps(r.to_dict(), option=orjson.OPT_APPEND_NEWLINE) for r in items)
            )
            self._handle.flush()

    @override
    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()


class RecordFileSink(DynamicSink[AlertRecord]):
    """Counts every record into `summary` and, with a `path`, writes it as a JSON line.

    The file is truncated when the run starts. Delivery is at-least-once: after a resume, records
    since the last snapshot are written again. `close` runs on EOF and Ctrl-C, not on SIGKILL.
    """

    def __init__(self, path: Path | None, summary: RunSummary) -> None:
        self.path = path
        self.summary = summary

    @override
    def build(self, step_id: str, worker_index: int, worker_count: int) -> _RecordFilePartition:
        handle = None
        if self.path is not None:
            name = (
                self.path if worker_count == 1 else self.path.with_suffix(f".{worker_index}.jsonl")
            )
            handle = open(name, "wb")  # noqa: SIM115 - closed by the partition's close()
        return _RecordFilePartition(handle, self.summary)
