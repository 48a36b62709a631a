"""Probe targets: API-server endpoints as policies and the daemon name them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multihome.k8s.node_policies import api_server_target
from multihome.node import probes, schema
from multihome.node import state as models


@pytest.mark.parametrize(("target", "endpoint"), [
    ("10.0.0.1:6443", ("10.0.0.1", 6443)),
    ("https://10.0.0.1:6443", ("10.0.0.1", 6443)),
    ("https://10.0.0.1", ("10.0.0.1", 443)),
    ("https://10.0.0.1:6443/some/path", ("10.0.0.1", 6443)),
    ("[fd00::1]:6443", ("fd00::1", 6443)),
])
def test_api_endpoints(target: str, endpoint: tuple[str, int]) -> None:
    assert probes.api_endpoint(target) == endpoint


@pytest.mark.parametrize("target", ["", "10.0.0.1", "host:6443", "https://name.example",
                                    "ftp://10.0.0.1:21", "10.0.0.1:0", "10.0.0.1:x",
                                    "[fd00::1", "x" * 5000])
def test_unusable_api_endpoints_are_refused(target: str) -> None:
    with pytest.raises(probes.BadTarget):
        probes.api_endpoint(target)


def test_probe_targets_of_a_policy_and_of_the_daemon() -> None:
    desired = schema.parse({"probes": {"ping": ["10.0.0.1"], "dns": ["a.test"],
                                       "api-server": "10.0.0.9:6443", "timeout": 2}})
    got = probes.targets(desired, (), None, probes.Defaults(dns=("b.test", "a.test"),
                                                            api_server="10.0.0.7:6443"))
    assert [str(p) for p in got] == ["10.0.0.1", "dns a.test", "dns b.test",
                                     "api-server 10.0.0.9:6443"]
    assert desired.probes.timeout == 2
    daemon_only = probes.targets(models.NodeState(probes=models.Probes(
        default_gateway=False)), (), None, probes.Defaults(api_server="10.0.0.7:6443"))
    assert [str(p) for p in daemon_only] == ["api-server 10.0.0.7:6443"]


def test_the_daemons_api_server_as_a_probe_target() -> None:
    assert api_server_target("https://10.1.2.3:6443") == "https://10.1.2.3:6443"
    assert api_server_target("https://localhost:6443") in ("127.0.0.1:6443", "[::1]:6443")
    assert api_server_target("https://:6443") is None
    assert api_server_target("https://10.1.2.3:notaport") is None
    assert api_server_target("https://[fd00::1:6443") is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80) | st.from_regex(r"(https?://)?\[?[0-9a-f:.\[\]]{0,20}(:[0-9]{0,6})?",
                                            fullmatch=True))
def test_any_api_server_target_is_an_endpoint_or_refused(target: str) -> None:
    try:
        host, port = probes.api_endpoint(target)
    except probes.BadTarget as e:
        assert str(e)
    else:
        assert 0 < port < 65536 and host
