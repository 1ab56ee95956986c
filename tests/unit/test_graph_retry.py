"""graph_store.retry: bounded backoff so an outage slows callers and then fails loudly."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import structlog

from graph_store import GraphStore, RetryPolicy
from graph_store.retry import GraphStoreUnavailable, call_with_retry


class Outage(Exception):
    pass


def flaky(failures: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def operation() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise Outage("down")
        return "done"

    return calls, operation


def test_delays_grow_geometrically_up_to_the_cap() -> None:
    policy = RetryPolicy(attempts=6, initial_delay_s=0.5, multiplier=2, max_delay_s=3, jitter=0)
    assert policy.delays() == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_recovers_when_the_outage_ends_within_the_budget() -> None:
    calls, operation = flaky(failures=2)
    slept: list[float] = []
    policy = RetryPolicy(attempts=4, initial_delay_s=1, multiplier=2, jitter=0)
    result = call_with_retry(
        operation,
        policy=policy,
        retry_on=(Outage,),
        what="t",
        sleep=slept.append,
    )
    assert result == "done"
    assert len(calls) == 3
    assert slept == [1, 2]


def test_gives_up_after_the_bound_with_a_clear_error() -> None:
    calls, operation = flaky(failures=10)
    slept: list[float] = []
    policy = RetryPolicy(attempts=3, initial_delay_s=0.1, jitter=0)
    with pytest.raises(GraphStoreUnavailable, match=r"add_saves.*3 attempts") as info:
        call_with_retry(
            operation,
            policy=policy,
            retry_on=(Outage,),
            what="add_saves",
            sleep=slept.append,
        )
    assert isinstance(info.value.__cause__, Outage)
    assert len(calls) == 3 and len(slept) == 2


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise KeyError("bug")

    with pytest.raises(KeyError):
        call_with_retry(
            broken, policy=RetryPolicy(), retry_on=(Outage,), what="t", sleep=lambda s: None
        )
    assert len(calls) == 1


def test_unreachable_server_raises_after_the_retry_budget() -> None:
    """A real driver against a closed port: the write is retried, then refused loudly."""
    store = GraphStore(
        "bolt://127.0.0.1:9",
        retry=RetryPolicy(attempts=3, initial_delay_s=0.01, jitter=0),
        transaction_retry_s=0.2,
        connection_timeout_s=0.5,
    )
    try:
        with structlog.testing.capture_logs() as logs, pytest.raises(GraphStoreUnavailable):
            store.count_pins()
    finally:
        store.close()
    assert [e["attempt"] for e in logs if e["event"] == "graph_store.retry"] == [1, 2]
