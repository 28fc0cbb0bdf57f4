"""The dispatcher: notifiers run in order off the worker; outcomes become deliveries."""

from __future__ import annotations

import logging

import pytest

from operators.alerts.dispatch import Dispatcher, NotifyOutcome
from operators.alerts.notify import NotifyError
from operators.records import AlertRecord
from tests.alerts.factory import alert


def _record(key: str = "nginx/-") -> AlertRecord:
    return AlertRecord(alert(key), "delivered")


class _Failing:
    name = "pager"

    def send(self, record: AlertRecord) -> None:
        raise NotifyError("pager: HTTP 503 after 3 attempt(s)")

    def close(self) -> None:
        return None


class _Broken(_Failing):
    name = "broken"

    def send(self, record: AlertRecord) -> None:
        raise RuntimeError("a bug")


class _Keeping(_Failing):
    name = "keeper"

    def __init__(self) -> None:
        self.seen: list[str] = []

    def send(self, record: AlertRecord) -> None:
        self.seen.append(record.analysed.context.trigger.key)


def test_every_notifier_failing_makes_the_alert_failed_with_the_reasons() -> None:
    dispatcher = Dispatcher([_Failing(), _Broken()])
    outcome = dispatcher.submit(_record()).result()
    dispatcher.close()
    assert outcome.delivery("waited 3.0s") == (
        "failed",
        "every notifier failed: pager: pager: HTTP 503 after 3 attempt(s); "
        "broken: RuntimeError: a bug; waited 3.0s",
    )


def test_other_failures_are_logged_at_the_1st_and_10th_time_and_all_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dispatcher = Dispatcher([_Failing()])
    with caplog.at_level(logging.WARNING, logger="operators.alerts.dispatch"):
        for i in range(12):
            dispatcher.submit(_record(f"p{i}/-")).result()
    dispatcher.close()
    assert [r.getMessage() for r in caplog.records] == [
        f"pager notifier failed {n} time(s) so far; latest: pager: HTTP 503 after 3 attempt(s)"
        for n in (1, 10)
    ]
    assert dispatcher.failures["pager"] == 12


def test_one_notifier_delivering_is_enough() -> None:
    outcome = NotifyOutcome(sent=("stdout",), failures=(("webhook", "HTTP 503"),))
    assert outcome.delivery() == ("delivered", "notified via stdout; failed: webhook: HTTP 503")


def test_no_notifier_means_recorded_in_the_history_only() -> None:
    assert NotifyOutcome().delivery() == (
        "delivered",
        "no notifier configured: recorded in the history only",
    )


def test_the_dispatcher_notifies_in_submission_order() -> None:
    keeper = _Keeping()
    dispatcher = Dispatcher([keeper])
    futures = [dispatcher.submit(_record(f"p{i}/-")) for i in range(20)]
    assert all(f.result().sent == ("keeper",) for f in futures)
    dispatcher.close()
    assert keeper.seen == [f"p{i}/-" for i in range(20)]
