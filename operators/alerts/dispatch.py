"""Running the notifiers off the worker thread, and what they made of each alert.

In: alert records to notify. Out: futures of `NotifyOutcome` (who delivered, who failed and
why), completed in submission order on one background thread, so the dataflow's worker never
waits for a slow program or server.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import math
from collections import Counter
from collections.abc import Sequence, Set
from dataclasses import dataclass

from operators.alerts.notify import Notifier, NotifyError, ProgramNotFound
from operators.records import AlertRecord, Delivery

__all__ = ["Dispatcher", "NotifyOutcome", "notify_all"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NotifyOutcome:
    """What the notifiers did with one alert: who delivered it, who failed and why."""

    sent: tuple[str, ...] = ()
    failures: tuple[tuple[str, str], ...] = ()

    def delivery(self, policy_reason: str = "") -> tuple[Delivery, str]:
        """Return the alert's delivery and its reason, given the policy's own reason.

        `delivered` when any notifier delivered it, or when no notifier is configured
        (recorded in the history only); `failed` when every one of them failed.
        """
        failed = "; ".join(f"{name}: {why}" for name, why in self.failures)
        if not self.sent and not self.failures:
            parts = ["no notifier configured: recorded in the history only", policy_reason]
            return "delivered", "; ".join(p for p in parts if p)
        if not self.sent:
            parts = [f"every notifier failed: {failed}", policy_reason]
            return "failed", "; ".join(p for p in parts if p)
        parts = [f"notified via {', '.join(self.sent)}", policy_reason]
        if failed:
            parts.append(f"failed: {failed}")
        return "delivered", "; ".join(p for p in parts if p)


def notify_all(notifiers: Sequence[Notifier], record: AlertRecord) -> NotifyOutcome:
    """Send `record` through every notifier in turn; never raises.

    A `NotifyError` is the alert's outcome, not a log line (the `Dispatcher` logs a summary).
    A notifier that raises something else has a bug: it is logged with its traceback and
    counts as failed for this alert.
    """
    return _notify_each(notifiers, record)[0]


def _notify_each(
    notifiers: Sequence[Notifier], record: AlertRecord
) -> tuple[NotifyOutcome, Set[str]]:
    """Return `notify_all`'s outcome and the names of the notifiers whose program is missing."""
    sent: list[str] = []
    failures: list[tuple[str, str]] = []
    missing: set[str] = set()
    for notifier in notifiers:
        try:
            notifier.send(record)
        except NotifyError as exc:
            log.debug("alert %s: %s", record.id, exc)
            failures.append((notifier.name, str(exc)))
            if isinstance(exc, ProgramNotFound):
                missing.add(notifier.name)
        except Exception as exc:
            log.exception("alert %s: notifier %s crashed", record.id, notifier.name)
            failures.append((notifier.name, f"{type(exc).__name__}: {exc}"))
        else:
            sent.append(notifier.name)
    return NotifyOutcome(tuple(sent), tuple(failures)), missing


class Dispatcher:
    """Runs the notifiers for each submitted alert on one background thread, in order.

    In: `submit(record)`. Out: a future of its `NotifyOutcome`; futures complete in submission
    order, so stdout lines come out in the order the alerts were decided.

    Failures are counted by notifier in `failures` and logged at the 1st, 10th, 100th, ...
    failure of each notifier, with the latest reason. A missing program (`ProgramNotFound`)
    is logged once per notifier and then only counted: it fails every alert the same way.

    Never: raises from a notifier into the caller; runs two alerts at once. Not guaranteed:
    a submitted alert is notified if the process dies first (the alert stage snapshots what is
    in flight and submits it again on resume: at-least-once). Each alert takes at most the sum
    of its notifiers' timeouts.
    """

    def __init__(self, notifiers: Sequence[Notifier]) -> None:
        self.notifiers = tuple(notifiers)
        self.failures: Counter[str] = Counter()
        self._missing_reported: set[str] = set()
        self._pool: cf.ThreadPoolExecutor | None = None

    def submit(self, record: AlertRecord) -> cf.Future[NotifyOutcome]:
        """Queue `record` for notification; return its future outcome."""
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(max_workers=1, thread_name_prefix="eyes-notify")
        return self._pool.submit(self._notify, record)

    def _notify(self, record: AlertRecord) -> NotifyOutcome:
        outcome, missing = _notify_each(self.notifiers, record)
        for name, reason in outcome.failures:
            self.failures[name] += 1
            count = self.failures[name]
            if name in missing:
                if name not in self._missing_reported:
                    self._missing_reported.add(name)
                    log.warning(
                        "%s notifier cannot run: %s; its alerts are marked failed, "
                        "and this is not logged again",
                        name,
                        reason,
                    )
            elif math.log10(count).is_integer():
                log.warning("%s notifier failed %d time(s) so far; latest: %s", name, count, reason)
        return outcome

    def close(self) -> None:
        """Stop the thread once the submitted alerts are done; close the notifiers."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        for notifier in self.notifiers:
            notifier.close()
