"""Probes beyond ping, run from the namespace playing the node: a DNS name through the
node's resolver (dnsmasq in the external namespace) and the API server's TCP port. A probe
that fails after the change rolls it back, to exactly the kernel state before."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multihome.node import probes, schema, transaction
from support import kstate
from support.node_world import NodeWorld, make_world
from support.probe_world import NETNS_ETC, dns_server, resolv_conf, tcp_listener

pytestmark = pytest.mark.netns

NAME = "probe.test"
API_PORT = 6443


@pytest.fixture
def world(netns_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
          ) -> Iterator[NodeWorld]:
    """The node reaches the LAN through up0; the LAN runs a DNS server and an "API server";
    the node's resolv.conf names that DNS server."""
    monkeypatch.setenv("MULTIHOME_NODE_DIR", str(tmp_path / "node"))
    w = make_world(netns_factory, tmp_path, random.randint(100, 199))
    w.node.run("ip", "addr", "add", f"{w.net}.0.2/24", "dev", "up0")
    with dns_server(w.ext, w.host, {NAME: w.host}), resolv_conf(w.node, w.host), \
            tcp_listener(w.ext, w.host, API_PORT):
        yield w


def _uplink_down(**probe: Any) -> dict[str, Any]:
    """Takes the node off the LAN: every probe through up0 stops passing."""
    return {"interfaces": [{"name": "up0", "state": "down"}],
            "probes": {"default-gateway": False, **probe}}


def _harmless(**probe: Any) -> dict[str, Any]:
    return {"routes": {"config": [{"destination": "10.99.0.0/16",
                                   "next-hop-interface": "up0"}]},
            "probes": {"default-gateway": False, **probe}}


def _rolled_back(w: NodeWorld, desired: dict[str, Any], failed_probe: str,
                 defaults: probes.Defaults | None = None) -> None:
    before = kstate.snapshot(w.node.name)
    with pytest.raises(transaction.ApplyFailed) as failed:
        transaction.apply_state(desired, netns_path=w.node.path, probe_defaults=defaults)
    assert "probe failed after the change" in str(failed.value)
    assert f"{failed_probe} stopped answering" in failed.value.details
    assert failed.value.report.changes and failed.value.report.rolled_back
    diff = kstate.snapshot_diff(before, kstate.snapshot(w.node.name))
    assert not diff, "\n".join(diff)


def test_a_dns_probe_that_keeps_resolving_lets_the_change_commit(world: NodeWorld) -> None:
    report = transaction.apply_state(_harmless(dns=[NAME]), netns_path=world.node.path)
    assert report.committed and report.probes == [f"dns {NAME}"]
    assert any(r["dst"] == "10.99.0.0/16" for r in kstate.routes(world.node.name))


def test_a_dns_probe_that_stops_resolving_rolls_back(world: NodeWorld) -> None:
    _rolled_back(world, _uplink_down(dns=[NAME]), f"dns {NAME}")


def test_a_name_that_did_not_resolve_before_is_not_probed(world: NodeWorld) -> None:
    report = transaction.apply_state(_uplink_down(dns=["missing.test"]),
                                     netns_path=world.node.path)
    assert report.committed and report.probes == []
    assert "UP" not in kstate.link(world.node.name, "up0")["flags"]


def test_an_api_server_that_stops_answering_rolls_back(world: NodeWorld) -> None:
    target = f"{world.host}:{API_PORT}"
    _rolled_back(world, _uplink_down(**{"api-server": target}), f"api-server {target}")


def test_the_daemons_api_server_is_probed_for_every_policy(world: NodeWorld) -> None:
    """Kubernetes mode: the daemon passes its API server (an https URL) as a default."""
    url = f"https://{world.host}:{API_PORT}"
    defaults = probes.Defaults(api_server=url)
    ok = transaction.apply_state(_harmless(), netns_path=world.node.path,
                                 probe_defaults=defaults)
    assert ok.probes == [f"api-server {url}"]
    _rolled_back(world, _uplink_down(), f"api-server {url}", defaults)


@pytest.mark.parametrize(("section", "message"), [
    ({"dns": ["bad name"]}, "probes.dns[0]: 'bad name' is not a DNS name"),
    ({"dns": ["a" * 64 + ".test"]}, "is not a DNS name"),
    ({"api-server": "10.0.0.1"}, "probes.api-server: '10.0.0.1': needs an address and a port"),
    ({"api-server": "api.example:6443"}, "api.example is not an IP address"),
    ({"api-server": "ftp://10.0.0.1:21"}, "only https:// URLs or ADDRESS:PORT"),
    ({"api-server": "10.0.0.1:99999"}, "probes.api-server: '10.0.0.1:99999'"),
    ({"dns": "probe.test"}, "probes.dns: expected a list, got string"),
])
def test_bad_probe_targets_are_refused_before_any_change(world: NodeWorld,
                                                         section: dict[str, Any],
                                                         message: str) -> None:
    before = kstate.snapshot(world.node.name)
    with pytest.raises(schema.InvalidDesiredState) as failed:
        transaction.apply_state(_uplink_down(**section), netns_path=world.node.path)
    assert message in str(failed.value)
    assert kstate.snapshot(world.node.name) == before


def test_cli_probe_options_roll_back_a_change_that_breaks_them(world: NodeWorld) -> None:
    before = kstate.snapshot(world.node.name)
    path = world.write("down.yml", _uplink_down())
    proc = world.node_cmd("apply", "-f", path, "--probe-dns", NAME,
                          "--probe-api-server", f"{world.host}:{API_PORT}")
    assert proc.returncode == 1
    assert f"dns {NAME}, api-server {world.host}:{API_PORT} stopped answering" in proc.stderr
    diff = kstate.snapshot_diff(before, kstate.snapshot(world.node.name))
    assert not diff, "\n".join(diff)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--probe", "gateway", "Invalid value for --probe: 'gateway' is not an IP address"),
    ("--probe-dns", "no such", "Invalid value for --probe-dns: 'no such' is not a DNS name"),
    ("--probe-api-server", "10.0.0.1", "Invalid value for --probe-api-server: '10.0.0.1': "
                                       "needs an address and a port"),
])
def test_cli_bad_probe_options_are_one_line(world: NodeWorld, option: str, value: str,
                                            message: str) -> None:
    proc = world.node_cmd("apply", "-f", world.write("h.yml", _harmless()), option, value)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert not any(r["dst"] == "10.99.0.0/16" for r in kstate.routes(world.node.name))


def test_a_silent_first_nameserver_leaves_time_for_the_next(world: NodeWorld) -> None:
    """Nameservers are asked in resolv.conf order within one bound: one that never answers
    (no host at its address) does not fail the probe while the next one answers."""
    conf = NETNS_ETC / world.node.name / "resolv.conf"
    conf.write_text(f"nameserver {world.net}.0.77\nnameserver {world.host}\n")
    report = transaction.apply_state(_harmless(dns=[NAME], timeout=4),
                                     netns_path=world.node.path)
    assert report.committed and report.probes == [f"dns {NAME}"]
