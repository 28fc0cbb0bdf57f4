"""Counting what a bound evicted: one counter per component, keyed by reason, logged sparingly.

In: `add(reason)` each time a bound drops or evicts something. Out: the counts in `counts`,
a warning the first time a reason occurs and a summary line at 10, 100, 1000, ... of them.
"""

from __future__ import annotations

import logging
from collections import Counter

__all__ = ["Drops"]

log = logging.getLogger(__name__)


class Drops:
    """The evictions of one component (a rule, a host's window), counted by reason.

    In: `add(reason, n)`. Out: `counts[reason]`, and log lines that name `where`: the first
    occurrence of each reason, then every power of ten. Never raises, never blocks.

    Args:
        where: what the log lines name, e.g. `rules error_frequency`.
    """

    def __init__(self, where: str) -> None:
        self.where = where
        self.counts: Counter[str] = Counter()
        self._report_at: dict[str, int] = {}

    def add(self, reason: str, n: int = 1) -> None:
        """Count `n` evictions for `reason`."""
        count = self.counts[reason] + n
        self.counts[reason] = count
        report_at = self._report_at.get(reason, 1)
        if count < report_at:
            return
        if report_at == 1:
            log.warning("%s: evicting (%s); counted from now on", self.where, reason)
        else:
            log.info("%s: %d evicted so far (%s)", self.where, count, reason)
        while report_at <= count:
            report_at *= 10
        self._report_at[reason] = report_at
