"""The cooldown of one rule on one host: at most one trigger per key per `seconds` of event time.

In: a candidate trigger's key, event time and severity. Out: whether it may fire. A key that
fired stays quiet for `seconds` unless the new severity is higher than the last one it fired
with (an escalation from warning to critical is always reported). The state is plain data,
kept in the rules step's snapshot.
"""

from __future__ import annotations

from collections import OrderedDict

from operators.rules.limits import Drops
from operators.triggers import severity_rank

__all__ = ["Cooldown"]


class Cooldown:
    """Decides whether a rule may fire for a key again, in event time.

    In: `admit(key, ts, severity)` for each candidate. Out: True (fire; the key's cooldown
    restarts at `ts` with that severity) or False (suppressed). Keys whose cooldown has
    passed are forgotten as time moves on; at most `max_keys` are kept, the oldest evicted
    and counted in `drops` under `cooldown_keys`.

    Args:
        seconds: the cooldown; 0 never suppresses.
        max_keys: the bound on remembered keys.
        drops: where evictions are counted.
    """

    def __init__(self, seconds: float, max_keys: int, drops: Drops) -> None:
        self.seconds = seconds
        self.max_keys = max_keys
        self.drops = drops
        self._last: OrderedDict[str, tuple[float, int]] = OrderedDict()

    def admit(self, key: str, ts: float, severity: str) -> bool:
        """Return True when `key` may fire at `ts` with `severity`, and remember it."""
        rank = severity_rank(severity)
        last = self._last.get(key)
        if last is not None:
            last_ts, last_rank = last
            if abs(ts - last_ts) < self.seconds and rank <= last_rank:
                return False
            del self._last[key]
        self._expire(ts)
        self._last[key] = (ts, rank)
        if len(self._last) > self.max_keys:
            self._last.popitem(last=False)
            self.drops.add("cooldown_keys")
        return True

    def _expire(self, now: float) -> None:
        # Keys are in the order they last fired, so the expired ones are at the front.
        last = self._last
        horizon = now - self.seconds
        while last:
            key, (ts, _) = next(iter(last.items()))
            if ts > horizon:
                return
            del last[key]

    def __len__(self) -> int:
        return len(self._last)

    def snapshot(self) -> list[tuple[str, float, int]]:
        """Return the remembered keys as plain data, oldest first."""
        return [(key, ts, rank) for key, (ts, rank) in self._last.items()]

    def restore(self, state: list[tuple[str, float, int]]) -> None:
        """Load what `snapshot` returned."""
        self._last = OrderedDict((key, (ts, rank)) for key, ts, rank in state)
