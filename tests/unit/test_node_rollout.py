"""maxUnavailable scaling and validation, retry settings (kubernetes-nmstate's rules)."""

from __future__ import annotations

import pytest

from multihome.node import rollout
from multihome.store import Object


@pytest.mark.parametrize(("value", "nodes", "expected"), [
    (None, 1, 1), (None, 4, 2), (None, 3, 2), ("50%", 1, 1), ("10%", 5, 1), ("100%", 3, 3),
    (0, 5, 1), (3, 2, 3), ("0%", 4, 1),
])
def test_scaled(value: object, nodes: int, expected: int) -> None:
    assert rollout.scaled(value, nodes) == expected


@pytest.mark.parametrize("value", ["half", "150%", "%", -1, True, 1.5, "5"])
def test_invalid_max_unavailable(value: object) -> None:
    with pytest.raises(ValueError, match="maxUnavailable"):
        rollout.validate_max_unavailable(value)


def test_max_retries_from_annotation() -> None:
    def policy(ann: dict[str, str]) -> Object:
        return Object("NodeNetworkConfigurationPolicy", "p", "", {
            "metadata": {"name": "p", "annotations": ann}, "spec": {}})

    assert rollout.max_retries(policy({})) == 0
    assert rollout.max_retries(policy({rollout.MAX_RETRIES_ANNOTATION: "4"})) == 4
    with pytest.raises(ValueError, match="whole number"):
        rollout.max_retries(policy({rollout.MAX_RETRIES_ANNOTATION: "-1"}))
    assert [rollout.backoff(n) for n in (1, 2, 3, 6, 9)] == [1.0, 2.0, 4.0, 30.0, 30.0]
