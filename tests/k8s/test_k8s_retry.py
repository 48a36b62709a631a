"""Retry loops of the Kubernetes mode back off exponentially with jitter, capped, and a
watch that keeps failing (or keeps ending at once, or keeps answering 410) never spins."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from typing import Any

from multihome.k8s.backoff import Backoff
from multihome.k8s.cache import RETRY_MAX_S, WatchCache
from multihome.k8s.client import ApiError, ApiUnreachable


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    b = Backoff(initial=0.5, maximum=8.0, rng=random.Random(1))
    waits = [b.next() for _ in range(10)]
    ceilings = [min(8.0, 0.5 * 2 ** i) for i in range(10)]
    assert all(c / 2 <= w <= c for w, c in zip(waits, ceilings, strict=True))
    assert max(waits) <= 8.0
    b.reset()
    assert b.next() <= 0.5


def test_nodes_draw_different_waits() -> None:
    waits = {Backoff(rng=random.Random(seed)).next() for seed in range(20)}
    assert len(waits) > 10  # a fixed delay would put every node on the same second


class FailingApi:
    """An API whose list works and whose watch fails as `mode` says."""

    def __init__(self, mode: str) -> None:
        self.mode, self.watches, self.lists = mode, 0, 0

    def request(self, method: str, path: str, params: Any = None) -> dict[str, Any]:
        self.lists += 1
        return {"items": [], "metadata": {"resourceVersion": "1"}}

    def watch(self, path: str, params: Any, timeout: float) -> Iterator[dict[str, Any]]:
        self.watches += 1
        if self.mode == "unreachable":
            raise ApiUnreachable("connection refused")
        if self.mode == "gone":
            raise ApiError(410, {"message": "too old"})
        return iter(())  # "empty": the server ends the watch at once


class RecordingCache(WatchCache):
    """Records each wait the loop asks for instead of sleeping; stops after `limit`."""

    def __init__(self, api: Any, limit: int) -> None:
        super().__init__(api, "/api/v1/nodes")
        self.waits: list[float] = []
        self.limit = limit
        self._stop = _RecordingEvent(self)


class _RecordingEvent(threading.Event):
    def __init__(self, cache: RecordingCache) -> None:
        super().__init__()
        self.cache = cache

    def wait(self, timeout: float | None = None) -> bool:
        assert timeout is not None
        self.cache.waits.append(timeout)
        if len(self.cache.waits) >= self.cache.limit:
            self.set()
        return self.is_set()


def _run(mode: str, limit: int = 12) -> tuple[FailingApi, list[float]]:
    api = FailingApi(mode)
    cache = RecordingCache(api, limit)
    thread = threading.Thread(target=cache._run)
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive()
    return api, cache.waits


def test_an_unreachable_api_is_retried_with_growing_jittered_waits() -> None:
    api, waits = _run("unreachable")
    assert api.watches == len(waits)  # one wait before every retry
    assert waits[-1] > waits[0] * 8
    assert max(waits) <= RETRY_MAX_S
    assert len(set(waits)) == len(waits)


def test_a_watch_that_ends_at_once_does_not_spin() -> None:
    api, waits = _run("empty")
    assert api.watches == len(waits) and waits[-1] > waits[0]


def test_repeated_410_relists_back_off() -> None:
    api, waits = _run("gone")
    # the first 410 relists at once; the ones after it wait, longer each time
    assert api.lists >= len(waits) and waits[-1] > waits[0] * 8
