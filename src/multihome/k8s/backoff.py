"""Exponential backoff with jitter for the Kubernetes mode's retry loops.

A fixed 1 s retry makes every node of a cluster hit a recovering API server in the same
second, again and again; doubling the wait spreads the load out over time and the jitter
(each wait drawn from its upper half) spreads the nodes apart. Every wait is capped, so a
loop that must keep going (a watch) still comes back within `maximum` seconds.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0,
                 rng: random.Random | None = None) -> None:
        self.initial, self.maximum, self.factor = initial, maximum, factor
        self.failures = 0
        self._rng = rng or random.Random()

    def next(self) -> float:
        """The wait before the next attempt after one more failure."""
        ceiling = min(self.maximum, self.initial * self.factor ** min(self.failures, 64))
        self.failures += 1
        return self._rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
