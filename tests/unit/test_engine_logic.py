"""The engine's logic with an injected executor (libcni's `Exec`, Multus' fake exec in its
own tests): naming, ordering, capability arguments, rollback and network-status, with no
root and no kernel. What touches the kernel is tested in tests/integration/test_engine.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multihome.attach import engine
from multihome.attach.multus_config import MultusConfig, parse_multus_config
from multihome.attach.plan import NETWORKS_ANNOTATION, PodRef
from multihome.cni.errors import CNIError, InvalidConfig
from multihome.cni.result import Result
from multihome.cni.types import CmdArgs
from multihome.store import NAD, POD, Object, Store
from multihome.stores import open_store


@dataclasses.dataclass
class FakeExec:
    """Records every delegate call; ADD answers with one sandbox interface per call."""

    fail_on: set[tuple[str, str]] = dataclasses.field(default_factory=set)  # (type, ifname)
    calls: list[tuple[str, str, str, dict[str, Any]]] = dataclasses.field(default_factory=list)

    def run(self, plugin_type: str, cmd: CmdArgs, conf: dict[str, Any]) -> Result | None:
        self.calls.append((cmd.command, plugin_type, cmd.ifname, conf))
        if (plugin_type, cmd.ifname) in self.fail_on and cmd.command == "ADD":
            raise InvalidConfig(f"{plugin_type} refused {cmd.ifname}")
        if cmd.command != "ADD":
            return None
        n = len(self.calls)
        return Result.from_dict({
            "cniVersion": "1.0.0",
            "interfaces": [{"name": cmd.ifname, "mac": f"02:00:00:00:00:{n:02x}",
                            "sandbox": cmd.netns}],
            "ips": [{"address": f"10.9.{n}.2/24", "interface": 0}],
        })

    def commands(self) -> list[tuple[str, str, str]]:
        return [(c, t, i) for c, t, i, _ in self.calls]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    db = open_store(str(tmp_path / "store.db"))
    yield db
    db.close()


def _conf(tmp_path: Path, fake: FakeExec) -> MultusConfig:
    raw = {"cniVersion": "1.0.0", "name": "t", "type": "multihome",
           "delegates": [{"cniVersion": "1.0.0", "name": "cluster", "type": "fake-default"}],
           "cniDir": str(tmp_path / "cache"), "binDir": str(tmp_path / "bin")}
    return dataclasses.replace(parse_multus_config(raw), executor=fake)


def _nad(store: Store, ns: str, name: str, plugin: str, **extra: Any) -> None:
    config = json.dumps({"cniVersion": "1.0.0", "name": name, "type": plugin, **extra})
    store.apply(Object.from_manifest({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD,
        "metadata": {"name": name, "namespace": ns}, "spec": {"config": config}}))


def _pod(store: Store, ns: str, name: str, networks: str) -> PodRef:
    store.apply(Object.from_manifest({
        "apiVersion": "v1", "kind": POD,
        "metadata": {"name": name, "namespace": ns,
                     "annotations": {NETWORKS_ANNOTATION: networks}}}))
    return PodRef(ns, name)


def _request(pod: PodRef) -> engine.PodRequest:
    return engine.PodRequest("c0ffee", "/var/run/netns/not-touched", pod)


def test_interfaces_are_named_in_selection_order_after_eth0(tmp_path: Path,
                                                            store: Store) -> None:
    fake = FakeExec()
    for name in ("a", "b", "c"):
        _nad(store, "ns", name, f"fake-{name}")
    pod = _pod(store, "ns", "p", "a, b@data0, c")
    out = engine.add(_conf(tmp_path, fake), store, _request(pod))
    calls = [(t, i) for c, t, i in fake.commands()]
    assert calls[0] == ("fake-default", "eth0")  # the default network alone, first
    # the secondaries then run side by side; names follow the selection's order
    assert sorted(calls[1:]) == [("fake-a", "net1"), ("fake-b", "data0"), ("fake-c", "net3")]
    assert [(s.name, s.interface, s.default) for s in out.status] == [
        ("cluster", "eth0", True), ("ns/a", "net1", False), ("ns/b", "data0", False),
        ("ns/c", "net3", False)]


def test_a_failed_delegate_undoes_every_delegate_that_ran(tmp_path: Path,
                                                          store: Store) -> None:
    fake = FakeExec(fail_on={("fake-b", "net2")})
    for name in ("a", "b"):
        _nad(store, "ns", name, f"fake-{name}")
    pod = _pod(store, "ns", "p", "a, b")
    with pytest.raises(CNIError, match=r"network ns/b \(interface net2\) failed"):
        engine.add(_conf(tmp_path, fake), store, _request(pod))
    dels = [(t, i) for c, t, i in fake.commands() if c == "DEL"]
    # every attempted delegate is undone (the failing one too: it may have allocated)
    # (they are undone side by side, as they were added: no order among them)
    assert sorted(dels) == [("fake-a", "net1"), ("fake-b", "net2"), ("fake-default", "eth0")]
    assert (store.get(POD, "ns", "p").annotations
            .get("k8s.v1.cni.cncf.io/network-status")) is None


def test_requested_mac_and_ips_reach_delegates_as_runtime_config_and_cni_args(
        tmp_path: Path, store: Store) -> None:
    fake = FakeExec()
    _nad(store, "ns", "capable", "fake-cap", capabilities={"mac": True, "ips": True})
    _nad(store, "ns", "plain", "fake-plain")
    pod = _pod(store, "ns", "p", json.dumps([
        {"name": "capable", "mac": "02:11:22:33:44:55", "ips": ["10.1.0.5/24"]},
        {"name": "plain", "mac": "02:11:22:33:44:66"}]))
    engine.add(_conf(tmp_path, fake), store, _request(pod))
    confs = {t: (conf, i) for c, t, i, conf in fake.calls if c == "ADD"}
    capable, _ = confs["fake-cap"]
    assert capable["runtimeConfig"] == {"mac": "02:11:22:33:44:55", "ips": ["10.1.0.5/24"]}
    plain, _ = confs["fake-plain"]
    assert "runtimeConfig" not in plain  # not declared: libcni passes no runtimeConfig


def test_the_same_nad_twice_gives_two_attachments_and_duplicate_names_fail(
        tmp_path: Path, store: Store) -> None:
    fake = FakeExec()
    _nad(store, "ns", "a", "fake-a")
    twice = _pod(store, "ns", "twice", "a, a")
    out = engine.add(_conf(tmp_path, fake), store, _request(twice))
    assert [s.interface for s in out.status] == ["eth0", "net1", "net2"]
    clash = _pod(store, "ns", "clash", "a@x1, a@x1")
    fake.calls.clear()
    with pytest.raises(CNIError, match="x1"):
        engine.add(_conf(tmp_path, fake), store,
                   engine.PodRequest("c0ffee2", "/var/run/netns/x", clash))
    assert fake.calls == []  # refused before any delegate ran


def test_network_status_records_the_results_as_multus_does(tmp_path: Path,
                                                           store: Store) -> None:
    fake = FakeExec()
    _nad(store, "ns", "a", "fake-a")
    pod = _pod(store, "ns", "p", "a")
    engine.add(_conf(tmp_path, fake), store, _request(pod))
    status = json.loads(store.get(POD, "ns", "p").annotations[
        "k8s.v1.cni.cncf.io/network-status"])
    assert status == [
        {"name": "cluster", "interface": "eth0", "ips": ["10.9.1.2"],
         "mac": "02:00:00:00:00:01", "default": True, "dns": {}},
        {"name": "ns/a", "interface": "net1", "ips": ["10.9.2.2"],
         "mac": "02:00:00:00:00:02", "dns": {}},
    ]
