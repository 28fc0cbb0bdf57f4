"""The LLM step: each trigger context is explained by a model while the dataflow keeps flowing.

In: `TriggerContext`s and `Watermark`s. Out: one `AnalysedTrigger` per context (`analyzed`: the
model's insight; `skipped`: the rule's severity is below `skip_below` (the alert would only be
recorded, not notified), so no model is asked; `fallback`: no model configured, the rule-based
insight; `failed`: the model
failed permanently, retries ran out, the retry queue overflowed, the answer was unusable or the
run ended first, with the rule-based insight and the reason) and every watermark.

Requests run on the process-wide asyncio loop (`operators.async_runner`); the step submits at
most `[ai] max_concurrency` at a time, bounds each by `timeout_seconds`, harvests finished ones
on a short timer, and keeps transient failures in a `RetryQueue` until the `RetryPolicy` says
to try again. With `ordered` (replays) results and watermarks leave in input order, so the alert
stage sees the same sequence whatever the model's latency; live, each leaves when it is ready.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import bytewax.operators as op
from bytewax.dataflow import Stream, operator
from bytewax.operators import StatefulBatchLogic
from typing_extensions import override

from backends.base import Backend
from backends.errors import InvalidInsight, PermanentBackendError, TransientBackendError
from backends.insight import rule_based_insight
from backends.select import build_backend
from flows.config import AiConfig
from operators.async_runner import AsyncRunner
from operators.records import AnalysedTrigger, Insight
from operators.retry import RetryPolicy, RetryQueue
from operators.triggers import TriggerContext, Watermark, severity_rank

__all__ = ["AnalysisStats", "analyze_triggers"]

log = logging.getLogger(__name__)

_SHARD = "llm"
_MAX_LOG_KEYS = 256
_CLOSE_SECONDS = 1.0

_Item = TriggerContext | Watermark
_Out = AnalysedTrigger | Watermark
_Saved = tuple[TriggerContext | AnalysedTrigger | Watermark, ...]


@dataclass
class AnalysisStats:
    """What the LLM step did in this process: outcomes by `analysis`, failures by reason key
    (`permanent`, `invalid_answer`, `retries_exhausted`, `retry_queue_full`, `backlog_full`,
    `drain_deadline`, `unexpected`), retries scheduled and the most requests in flight."""

    outcomes: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    max_in_flight: int = 0


@dataclass(slots=True)
class _Job:
    seq: int
    context: TriggerContext
    attempts: int = 0
    last_error: str = ""


class _Stage:
    """What every logic of the step shares: the backend, the policy, the clocks, the stats."""

    def __init__(
        self,
        name: str,
        ai: AiConfig,
        backend: Backend,
        *,
        ordered: bool,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        rand: Callable[[], float],
        stats: AnalysisStats,
        poll_seconds: float,
        max_backlog: int,
        skip_below: str | None,
    ) -> None:
        self.name = name
        self.ai = ai
        self.backend = backend
        self.ordered = ordered
        self.clock = clock
        self.sleep = sleep
        self.stats = stats
        self.poll = timedelta(seconds=poll_seconds)
        self.max_backlog = max_backlog
        self.skip_rank = -1 if skip_below is None else severity_rank(skip_below)
        self.skip_reason = f"below [alerts] min_severity = {skip_below}: not sent to the model"
        self.policy = RetryPolicy(
            max_attempts=ai.max_attempts,
            base=ai.retry_base_seconds,
            cap=ai.retry_max_seconds,
            random=rand,
        )
        self.who = f"{backend.name} {backend.model}".strip()
        self._runner: AsyncRunner | None = None
        self._logged: set[str] = set()

    @property
    def runner(self) -> AsyncRunner:
        if self._runner is None:
            self._runner = AsyncRunner.get()
        return self._runner

    def log_first(
        self, key: str, message: str, *args: object, exc_info: BaseException | None = None
    ) -> None:
        """Log `message` as a warning the first time `key` is seen, at debug level after."""
        if key in self._logged:
            log.debug(message, *args)
            return
        if len(self._logged) < _MAX_LOG_KEYS:
            self._logged.add(key)
        log.warning(message, *args, exc_info=exc_info)

    async def attempt(self, context: TriggerContext) -> Insight | Exception:
        """Make one bounded attempt; return the insight or the error (never raise it)."""
        async with self.runner.semaphore(self.name, self.ai.max_concurrency):
            try:
                await self.backend.start()  # a helper's start-up is not the model's answer
                return await asyncio.wait_for(
                    self.backend.analyze(context), self.ai.timeout_seconds
                )
            except asyncio.TimeoutError:
                timeout = self.ai.timeout_seconds
                return TransientBackendError(
                    f"{self.who}: no answer within {timeout:g}s ([ai] timeout_seconds)"
                )
            except Exception as exc:  # returned as a value: callbacks must never raise
                return exc

    def build(self, resume: _Saved | None) -> _AnalysisLogic:
        return _AnalysisLogic(self, resume)


class _AnalysisLogic(StatefulBatchLogic[_Item, _Out, _Saved]):
    """The step's state for its one key: in flight, waiting, retrying and (ordered) finished.

    Never: blocks the worker while requests are pending (only `on_eof` waits, up to
    `[ai] drain_seconds`); lets an exception escape a callback; has more than `max_concurrency`
    requests in flight; returns a `notify_at` in the past. Not guaranteed: that a context
    pending at a crash is asked only once (it is asked again after the resume). Delivery:
    at-least-once; every context ends as exactly one `AnalysedTrigger` per run, and the
    snapshot holds every context not yet emitted (in flight, waiting, retrying) and, when
    ordered, every finished output still waiting for the ones before it, in input order.
    """

    def __init__(self, stage: _Stage, resume: _Saved | None) -> None:
        self._stage = stage
        self._seq = 0
        self._order: deque[int] = deque()
        self._done: dict[int, _Out] = {}
        self._out: list[_Out] = []
        self._backlog: deque[_Job] = deque()
        self._retries: RetryQueue[_Job] = RetryQueue(stage.ai.retry_queue_size)
        self._inflight: dict[cf.Future[Insight | Exception], _Job] = {}
        for item in resume or ():
            self._accept(item)

    @override
    def on_batch(self, values: list[_Item]) -> tuple[Iterable[_Out], bool]:
        try:
            for item in values:
                self._accept(item)
            self._step()
        except Exception:
            self._give_up_everything("internal error in on_batch")
        return self._emit(), StatefulBatchLogic.RETAIN

    @override
    def on_notify(self) -> tuple[Iterable[_Out], bool]:
        try:
            self._step()
        except Exception:
            self._give_up_everything("internal error in on_notify")
        return self._emit(), StatefulBatchLogic.RETAIN

    @override
    def on_eof(self) -> tuple[Iterable[_Out], bool]:
        try:
            self._drain()
        except Exception:
            self._give_up_everything("internal error in on_eof")
        self._close_backend()
        self._log_summary()
        return self._emit(), StatefulBatchLogic.DISCARD

    @override
    def notify_at(self) -> datetime | None:
        now = datetime.now(timezone.utc)
        if self._inflight or self._backlog:
            return now + self._stage.poll
        due = self._retries.next_due()
        if due is None:
            return None
        wait = timedelta(seconds=max(0.0, due - self._stage.clock()))
        return now + max(self._stage.poll, wait)

    @override
    def snapshot(self) -> _Saved:
        pending = {job.seq: job.context for job in self._inflight.values()}
        pending.update((job.seq, job.context) for job in self._backlog)
        pending.update((seq, job.context) for seq, job in self._retries.items())
        if not self._stage.ordered:
            return tuple(pending[seq] for seq in sorted(pending))
        saved = (self._done.get(seq, pending.get(seq)) for seq in self._order)
        return tuple(item for item in saved if item is not None)

    # -- input and output ------------------------------------------------------------------

    def _accept(self, item: _Item | AnalysedTrigger) -> None:
        seq = self._seq
        self._seq += 1
        if self._stage.ordered:
            self._order.append(seq)
        if not isinstance(item, TriggerContext):
            self._finish(seq, item)  # a watermark, or an output restored from a snapshot
            return
        if severity_rank(item.trigger.severity) < self._stage.skip_rank:
            insight = rule_based_insight(item)
            self._finish(seq, AnalysedTrigger(item, "skipped", insight, self._stage.skip_reason))
            return
        offline = self._stage.backend.offline_reason
        if offline is not None:
            self._finish(seq, AnalysedTrigger(item, "fallback", rule_based_insight(item), offline))
            return
        self._backlog.append(_Job(seq, item))
        if len(self._backlog) > self._stage.max_backlog:
            victim = min(
                self._backlog, key=lambda j: (severity_rank(j.context.trigger.severity), j.seq)
            )
            self._backlog.remove(victim)
            reason = f"{len(self._backlog)} contexts already waiting for a request slot"
            self._give_up(victim, reason, "backlog_full")

    def _finish(self, seq: int, out: _Out) -> None:
        if isinstance(out, AnalysedTrigger):
            self._stage.stats.outcomes[out.analysis] += 1
        if self._stage.ordered:
            self._done[seq] = out
        else:
            self._out.append(out)

    def _emit(self) -> list[_Out]:
        if self._stage.ordered:
            while self._order and self._order[0] in self._done:
                self._out.append(self._done.pop(self._order.popleft()))
        out, self._out = self._out, []
        return out

    # -- requests --------------------------------------------------------------------------

    def _step(self) -> None:
        self._harvest()
        self._pump()

    def _submit(self, job: _Job) -> None:
        job.attempts += 1
        future = self._stage.runner.submit(self._stage.attempt(job.context))
        self._inflight[future] = job
        stats = self._stage.stats
        stats.max_in_flight = max(stats.max_in_flight, len(self._inflight))

    def _pump(self) -> None:
        limit = self._stage.ai.max_concurrency
        free = limit - len(self._inflight)
        if free <= 0:
            return
        for job in self._retries.pop_due(self._stage.clock(), free):
            self._submit(job)
        while self._backlog and len(self._inflight) < limit:
            self._submit(self._backlog.popleft())

    def _harvest(self) -> None:
        finished = [future for future in self._inflight if future.done()]
        for future in finished:
            job = self._inflight.pop(future)
            try:
                outcome = future.result()
            except BaseException as exc:  # cancelled, or a loop failure: an error like others
                outcome = TransientBackendError(f"{self._stage.who}: {type(exc).__name__}")
            if isinstance(outcome, Insight):
                self._finish(job.seq, AnalysedTrigger(job.context, "analyzed", outcome))
            else:
                self._failed(job, outcome)

    def _failed(self, job: _Job, error: Exception) -> None:
        stage = self._stage
        job.last_error = str(error)
        due = stage.policy.next_attempt(job.attempts, error, stage.clock())
        if due is None:
            reason, key = self._why(job, error)
            self._give_up(job, reason, key)
            return
        stage.stats.retries += 1
        status = getattr(error, "status", None)
        stage.log_first(
            f"retry:{type(error).__name__}:{status}",
            "%s; attempt %d of %d in %.2fs",
            error,
            job.attempts + 1,
            stage.ai.max_attempts,
            due - stage.clock(),
        )
        rank = severity_rank(job.context.trigger.severity)
        if self._retries.offer(job, due=due, seq=job.seq, rank=rank):
            return
        victim = self._retries.displace(job, due=due, seq=job.seq, rank=rank)
        reason = (
            f"retry queue full ({self._retries.size} waiting): given up after "
            f"{victim.attempts} attempt(s); last error: {victim.last_error}"
        )
        self._give_up(victim, reason, "retry_queue_full")

    def _why(self, job: _Job, error: Exception) -> tuple[str, str]:
        stage = self._stage
        if isinstance(error, PermanentBackendError):
            stage.log_first(f"permanent:{error}", "%s (not retried)", error)
            return f"permanent error: {error}", "permanent"
        if isinstance(error, InvalidInsight):
            stage.log_first(f"invalid:{stage.who}", "%s: unusable answer: %s", stage.who, error)
            return f"unusable answer: {error}", "invalid_answer"
        if isinstance(error, TransientBackendError):
            stage.log_first(
                f"exhausted:{stage.who}", "%s: gave up after %d attempts", error, job.attempts
            )
            return f"gave up after {job.attempts} attempt(s): {error}", "retries_exhausted"
        stage.log_first(
            f"unexpected:{type(error).__name__}",
            "%s: unexpected error (not retried)",
            stage.who,
            exc_info=error,
        )
        return f"unexpected error: {type(error).__name__}: {error}", "unexpected"

    def _give_up(self, job: _Job, reason: str, key: str) -> None:
        self._stage.stats.failures[key] += 1
        context = job.context
        self._finish(
            job.seq, AnalysedTrigger(context, "failed", rule_based_insight(context), reason)
        )

    # -- the end ---------------------------------------------------------------------------

    def _pending(self) -> bool:
        return bool(self._inflight or self._backlog or len(self._retries))

    def _drain(self) -> None:
        """Wait for what is pending, up to `[ai] drain_seconds`; give up what is left."""
        stage = self._stage
        deadline = stage.clock() + stage.ai.drain_seconds
        self._step()
        while self._pending():
            remaining = deadline - stage.clock()
            if remaining <= 0:
                break
            due = self._retries.next_due()
            if self._inflight:
                wait = remaining
                if due is not None and len(self._inflight) < stage.ai.max_concurrency:
                    wait = min(wait, max(0.0, due - stage.clock()))
                cf.wait(list(self._inflight), timeout=wait, return_when=cf.FIRST_COMPLETED)
            elif due is not None:
                if due > deadline:
                    break
                stage.sleep(max(0.0, due - stage.clock()))
            self._step()
        if self._pending():
            self._give_up_everything(
                f"no answer before the end of the run ([ai] drain_seconds = "
                f"{stage.ai.drain_seconds:g})",
                key="drain_deadline",
            )

    def _give_up_everything(self, why: str, key: str = "unexpected") -> None:
        if key == "unexpected":
            log.exception(
                "%s: %s; every pending context gets the rule-based insight", self._stage.name, why
            )
        jobs = list(self._inflight.values()) + list(self._backlog) + self._retries.clear()
        for future in self._inflight:
            future.cancel()
        self._inflight.clear()
        self._backlog.clear()
        for job in sorted(jobs, key=lambda j: j.seq):
            last = f"; last error: {job.last_error}" if job.last_error else ""
            self._give_up(job, f"{why} after {job.attempts} attempt(s){last}", key)

    def _close_backend(self) -> None:
        if self._stage._runner is None:
            return
        future = self._stage.runner.submit(self._stage.backend.aclose())
        try:
            future.result(timeout=_CLOSE_SECONDS)
        except Exception as exc:
            log.debug("%s: closing the backend failed: %r", self._stage.who, exc)

    def _log_summary(self) -> None:
        stats = self._stage.stats
        if not stats.outcomes:
            return
        log.info(
            "%s: %s; failures: %s; %d retries; at most %d in flight",
            self._stage.who,
            ", ".join(f"{n} {name}" for name, n in sorted(stats.outcomes.items())),
            ", ".join(f"{n} {name}" for name, n in sorted(stats.failures.items())) or "none",
            stats.retries,
            stats.max_in_flight,
        )


def _shard(_item: _Item) -> str:
    return _SHARD


def _value(keyed: tuple[str, _Out]) -> _Out:
    return keyed[1]


@operator
def analyze_triggers(
    step_id: str,
    triggers: Stream[TriggerContext | Watermark],
    ai: AiConfig,
    *,
    ordered: bool,
    backend: Backend | None = None,
    stats: AnalysisStats | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    rand: Callable[[], float] = random.random,
    poll_seconds: float = 0.02,
    max_backlog: int = 10_000,
    skip_below: str | None = None,
) -> Stream[AnalysedTrigger | Watermark]:
    """Explain each trigger context with the model `ai` names, without blocking the flow.

    Args:
        step_id: the step's id (its recovery state is kept under it).
        triggers: trigger contexts and watermarks.
        ai: the `[ai]` section: backend, concurrency, timeout, retries, drain deadline.
        ordered: emit in input order (replays), else as soon as each is ready (live).
        backend: the backend to use instead of the one `ai` names (tests, recording).
        stats: filled in as the step runs.
        clock: monotonic seconds, for retry times and the drain deadline.
        sleep: how the end-of-run drain waits for a retry.
        rand: the retry jitter's random numbers in [0, 1).
        poll_seconds: how often finished requests are collected while some are pending.
        max_backlog: the most contexts waiting for a request slot; beyond it the oldest of the
            lowest severity is given up (`failed`).
        skip_below: ask no model about triggers whose rule severity is below this one (the
            alert stage's `min_severity`); they get the rule-based insight, `skipped`.

    Returns:
        One `AnalysedTrigger` per context, and every watermark.
    """
    stage = _Stage(
        step_id,
        ai,
        backend if backend is not None else build_backend(ai),
        ordered=ordered,
        clock=clock,
        sleep=sleep,
        rand=rand,
        stats=stats if stats is not None else AnalysisStats(),
        poll_seconds=poll_seconds,
        max_backlog=max_backlog,
        skip_below=skip_below,
    )
    keyed = op.key_on("shard", triggers, _shard)  # ("llm", TriggerContext | Watermark)
    analysed = op.stateful_batch("llm", keyed, stage.build)  # ("llm", AnalysedTrigger | Watermark)
    return op.map("unkey", analysed, _value)  # AnalysedTrigger | Watermark
