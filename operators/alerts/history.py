"""The SQLite alert history. PLACEHOLDER until the alert stage lands: writes nothing."""

from __future__ import annotations

from pathlib import Path

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from operators.records import AlertRecord

__all__ = ["HistorySink"]


class _NullPartition(StatelessSinkPartition[AlertRecord]):
    def write_batch(self, items: list[AlertRecord]) -> None:
        return None


class HistorySink(DynamicSink[AlertRecord]):
    """Writes alert records to the SQLite history at `path`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _NullPartition:
        return _NullPartition()
