"""The rules step: per-host windowed state and the trigger rules, wired into the dataflow.

In: events keyed by host. Out: after each batch of a host, the `TriggerContext`s it fired (in
event-time order), then one `Watermark` when the host's frontier advanced: the event time up
to which every event has been handled (the newest minus `reorder_seconds`; the newest once the
reorder buffer is flushed). The logic lives in `operators.state.HostState`; this module only
adapts it to `op.stateful_batch`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic
from typing_extensions import override

from flows.config import Config
from operators.events import Event
from operators.state import HostState
from operators.triggers import TriggerContext, Watermark

__all__ = ["detect_triggers"]

log = logging.getLogger(__name__)

# Wall-clock seconds a quiet host's reorder buffer waits before it is flushed anyway (beyond
# `reorder_seconds`), so a live host that falls silent still gets its last triggers.
_FLUSH_GRACE = 10.0

_Out = TriggerContext | Watermark


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _idle_seconds(config: Config) -> float:
    """Wall-clock seconds after which a silent host's state can hold nothing that matters."""
    rules = config.rules
    longest = max(
        rules.cooldown_seconds,
        2 * rules.error_frequency.window_seconds,
        rules.resource_spike.window_seconds,
        rules.disk_spike.window_seconds,
        config.state.context_seconds,
    )
    return longest + config.state.reorder_seconds + _FLUSH_GRACE


class _DetectLogic(StatefulBatchLogic[Event, _Out, bytes]):
    """Runs one host's `HostState` inside `stateful_batch`.

    Never: blocks, or returns a `notify_at` in the past twice (each deadline moves on or the
    logic is discarded). Timers are coarse and wall-clock: a host silent for
    `reorder_seconds` + 10 s has its reorder buffer flushed; one silent for longer than its
    cooldown and windows is discarded (its state would have expired anyway). At EOF every
    waiting event is released. Snapshots are the pickled `HostState`: resumed runs continue
    with the same windows and cooldowns. Delivery: at-least-once (after a resume, triggers
    since the snapshot are emitted again, with the same ids).
    """

    def __init__(self, config: Config, resume: bytes | None, clock: Callable[[], datetime]) -> None:
        self._state = HostState(config, resume)
        self._clock = clock
        self._reorder = config.state.reorder_seconds
        newest = self._state.max_ts
        self._watermark = None if newest is None else newest - self._reorder
        self._flush_after = timedelta(seconds=config.state.reorder_seconds + _FLUSH_GRACE)
        self._idle_after = timedelta(seconds=_idle_seconds(config))
        self._last_batch = clock()

    def _advance(self, out: list[_Out], *, flushed: bool) -> list[_Out]:
        """Append a `Watermark` to `out` when the host's frontier moved on; return `out`."""
        newest = self._state.max_ts
        if newest is None:
            return out
        frontier = newest if flushed else newest - self._reorder
        if self._watermark is None or frontier > self._watermark:
            self._watermark = frontier
            out.append(Watermark(frontier))
        return out

    @override
    def on_batch(self, values: list[Event]) -> tuple[list[_Out], bool]:
        out: list[_Out] = list(self._state.push(values))
        self._last_batch = self._clock()
        return self._advance(out, flushed=False), StatefulBatchLogic.RETAIN

    @override
    def on_notify(self) -> tuple[list[_Out], bool]:
        now = self._clock()
        out: list[_Out] = []
        if self._state.pending and now >= self._last_batch + self._flush_after:
            out.extend(self._state.flush())
            self._advance(out, flushed=True)
        if now >= self._last_batch + self._idle_after:
            log.debug("host %s: idle, state discarded", self._state.host)
            return out, StatefulBatchLogic.DISCARD
        return out, StatefulBatchLogic.RETAIN

    @override
    def on_eof(self) -> tuple[list[_Out], bool]:
        out = self._advance(list(self._state.flush()), flushed=True)
        state = self._state
        dropped = state.dropped
        if state.late or dropped:
            log.info(
                "host %s: %d late events handled out of order; evictions %s",
                state.host,
                state.late,
                dict(dropped),
            )
        return out, StatefulBatchLogic.RETAIN

    @override
    def notify_at(self) -> datetime | None:
        if self._state.pending:
            return self._last_batch + self._flush_after
        return self._last_batch + self._idle_after

    @override
    def snapshot(self) -> bytes:
        return self._state.snapshot()


def _value(keyed: tuple[str, _Out]) -> _Out:
    return keyed[1]


@operator
def detect_triggers(
    step_id: str,
    events: op.KeyedStream[Event],
    config: Config,
    clock: Callable[[], datetime] = _now,
) -> Stream[TriggerContext | Watermark]:
    """Run the windowed state and the enabled rules per host.

    Args:
        step_id: the step's id; its `state` sub-step keys the recovery state.
        events: events keyed by host.
        config: the configuration (`[state]` and `[rules]` are read).
        clock: wall-clock time for the coarse idle timers only (rules use event time).

    Returns:
        Per host batch, the trigger contexts fired in event-time order, then a `Watermark`
        with the host's frontier (every event up to it handled) when it advanced.
    """
    contexts = op.stateful_batch(
        "state", events, lambda resume: _DetectLogic(config, resume, clock)
    )  # (host, TriggerContext | Watermark)
    return op.map("values", contexts, _value)
