"""side_by_side.run_each: order, errors, context, and that the calls really overlap."""

from __future__ import annotations

import contextvars
import threading
import time

import pytest

from multihome.attach.side_by_side import run_each
from multihome.cni.errors import CNIError

TAG: contextvars.ContextVar[str] = contextvars.ContextVar("tag", default="")


def test_results_come_back_in_item_order() -> None:
    # later items finish first
    def slow_times_ten(n: int) -> int:
        time.sleep(0.01 * (4 - n))
        return n * 10

    assert run_each(slow_times_ten, [0, 1, 2, 3]) == [0, 10, 20, 30]


def test_calls_overlap() -> None:
    # every call waits for all the others: only possible when they run at once
    barrier = threading.Barrier(3, timeout=10)
    assert run_each(lambda n: (barrier.wait(), n)[1], [1, 2, 3]) == [1, 2, 3]


def test_cni_errors_are_returned_in_place_and_the_rest_still_run() -> None:
    ran: list[int] = []

    def fn(n: int) -> int:
        ran.append(n)
        if n % 2:
            raise CNIError(f"odd {n}", code=11)
        return n

    out = run_each(fn, [0, 1, 2, 3])
    assert sorted(ran) == [0, 1, 2, 3]
    assert out[0] == 0 and out[2] == 2
    assert [str(getattr(o, "msg", "")) for o in out[1::2]] == ["odd 1", "odd 3"]


def test_other_exceptions_are_raised_after_every_call_finished() -> None:
    finished: list[int] = []

    def fn(n: int) -> int:
        if n == 0:
            raise KeyError("boom")
        time.sleep(0.05)
        finished.append(n)
        return n

    with pytest.raises(KeyError, match="boom"):
        run_each(fn, [0, 1, 2])
    assert sorted(finished) == [1, 2]


def test_context_variables_follow_each_call() -> None:
    TAG.set("pod-a")
    assert run_each(lambda _: TAG.get(), [1, 2, 3]) == ["pod-a"] * 3


def test_no_items() -> None:
    assert run_each(lambda n: n, []) == []


def test_nested_calls_never_starve_the_fixed_pool() -> None:
    """An engine delegate that is itself an engine calls run_each from a pool thread; with
    every pool thread waiting on items queued behind it, the waiters run those items."""

    def engine(depth: int) -> int:
        if depth == 0:
            return 1
        return sum(r for r in run_each(engine, [depth - 1] * 6) if isinstance(r, int))

    done: list[int] = []
    worker = threading.Thread(target=lambda: done.append(engine(3)), daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert done == [6 ** 3]
