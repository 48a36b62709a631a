"""MultiNetworkPolicy in the lab, with real traffic between pods.

Two secondary networks on the lab's dev bridge: `br-net` (bridge plugin: rules on the
bridge port, on the node) and `mv-net` (macvlan on the bridge as master: rules in the
pod's namespace). Pods carry labels (`pod run --labels`) and a named port; policies are
applied and deleted with `multihome apply/delete -f`, and the rules follow at once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from multihome.attach.policy.cleanup import tables
from multihome.attach.policy.rules import container_prefix
from multihome.lab.pods import container_id, netns_name, netns_path
from multihome.store import POD
from multihome.store.sqlite import SQLiteStore
from support.cli_lab import CLILab, lab_down, lab_up, new_lab
from support.flows import listening, ping_ok, still_talks, tcp_connect, tcp_ok, udp_ok
from support.host_state import host_netns
from support.netns import unique

pytestmark = pytest.mark.netns


class PolicyLab(CLILab):
    ns: str = ""

    def ip(self, pod: str, network: str) -> str:
        body = json.loads(self.ok("pod", "get", pod, "-n", self.ns, "-o", "json"))
        status = json.loads(body["metadata"]["annotations"]["k8s.v1.cni.cncf.io/network-status"])
        return next(str(s["ips"][0]) for s in status if s["name"] == f"{self.ns}/{network}")

    def path(self, pod: str) -> str:
        return netns_path(self.ns, pod)

    def netns(self, pod: str) -> str:
        return netns_name(self.ns, pod)

    def tables(self) -> set[str]:
        """This lab's policy tables on the node."""
        return {t for pod in ("db", "web", "cli")
                for t in tables(container_prefix(container_id(self.ns, pod)))}

    def policy(self, name: str, networks: str, spec: dict[str, object]) -> str:
        path = self.tmp / f"{name}.yml"
        path.write_text(json.dumps({
            "apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy",
            "metadata": {"name": name, "namespace": self.ns, "annotations": {
                "k8s.v1.cni.cncf.io/policy-for": networks}}, "spec": spec}))
        return str(path)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[PolicyLab]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create namespaces and bridges")
    lab = new_lab(PolicyLab, tmp_path, "mp")
    lab.ns = unique("mp")
    lab_up(lab, "10.173.0.1/24", "10.174.0.0/24")
    ipam_dir = str(tmp_path / "ipam")  # the allocations stay the test's, never /var/lib/cni's
    try:
        nads: tuple[tuple[str, dict[str, object]], ...] = (
            ("br-net", {"cniVersion": "0.3.1", "name": "br-net", "type": "bridge",
                        "bridge": lab.dev_bridge,
                        "ipam": {"type": "host-local", "subnet": "10.173.0.0/24",
                                 "rangeStart": "10.173.0.10", "rangeEnd": "10.173.0.99",
                                 "dataDir": ipam_dir}}),
            ("mv-net", {"cniVersion": "0.3.1", "name": "mv-net", "type": "macvlan",
                        "master": lab.dev_bridge, "mode": "bridge",
                        "ipam": {"type": "host-local", "subnet": "10.175.0.0/24",
                                 "dataDir": ipam_dir}}),
        )
        for name, config in nads:
            lab.ok("apply", "-f", lab.nad_file(name, config), "-n", lab.ns)
        for pod, labels in (("db", "app=db,tier=data"), ("web", "app=web"), ("cli", "app=cli")):
            lab.ok("pod", "run", pod, "-n", lab.ns, "--networks", "br-net,mv-net",
                   "--labels", labels, "--port", "postgres=5432/TCP")
        yield lab
    finally:
        lab_down(lab)
    assert not any(n.startswith(f"mh-{lab.ns}-") for n in host_netns())


def test_ingress_by_pod_label_and_named_port_on_a_bridge_network(lab: PolicyLab) -> None:
    db = lab.ip("db", "br-net")
    with listening(lab.path("db"), db, 5432), listening(lab.path("db"), db, 8080):
        assert tcp_ok(lab.path("cli"), db, 5432)  # no policy: open

        out = lab.ok("apply", "-f", lab.policy("db-from-web", "br-net", {
            "podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                         "ports": [{"port": "postgres"}]}]}))
        assert "multinetworkpolicy.k8s.cni.cncf.io/db-from-web created" in out

        assert tcp_ok(lab.path("web"), db, 5432)
        assert not tcp_ok(lab.path("cli"), db, 5432)  # other label
        assert not tcp_ok(lab.path("web"), db, 8080)  # port not named by the policy
        assert not ping_ok(lab.netns("web"), db)  # a rule with ports: no ICMP
        assert ping_ok(lab.netns("db"), lab.ip("web", "br-net"))  # db's egress is open
        # the other network of the same pods is not covered
        assert ping_ok(lab.netns("cli"), lab.ip("db", "mv-net"))

        lab.ok("delete", "-f", str(lab.tmp / "db-from-web.yml"))
        assert tcp_ok(lab.path("cli"), db, 5432)
        assert ping_ok(lab.netns("web"), db)
    assert not lab.tables()  # nothing isolated: no table left


def test_policy_changed_while_traffic_flows(lab: PolicyLab) -> None:
    """A connection the rules admitted keeps working when the policy is replaced by a
    deny-all (its replies and later packets are established); new ones are refused; once
    the policy goes everything passes again. (A connection that began before the node
    tracked connections at all cannot be told from a new one and is cut.)"""
    db = lab.ip("db", "br-net")
    allow_web: dict[str, object] = {"podSelector": {"matchLabels": {"app": "db"}},
                 "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}
    lab.ok("apply", "-f", lab.policy("db", "br-net", allow_web))
    with listening(lab.path("db"), db, 5432) as server:
        conn = tcp_connect(lab.path("web"), db, 5432)
        assert conn is not None
        with conn:
            out = lab.ok("apply", "-f", lab.policy("db", "br-net", {
                "podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"]}))
            assert "multinetworkpolicy.k8s.cni.cncf.io/db configured" in out
            assert still_talks(conn, server)
            assert not tcp_ok(lab.path("web"), db, 5432)
            assert not ping_ok(lab.netns("web"), db)
        lab.ok("delete", "multi-policy", "db", "-n", lab.ns)
        assert tcp_ok(lab.path("cli"), db, 5432)
        assert ping_ok(lab.netns("web"), db)


def test_ip_block_with_except_and_udp_ports(lab: PolicyLab) -> None:
    db, cli = lab.ip("db", "br-net"), lab.ip("cli", "br-net")
    lab.ok("apply", "-f", lab.policy("block", "br-net", {
        "podSelector": {"matchLabels": {"tier": "data"}},
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.173.0.0/24", "except": [f"{cli}/32"]}}],
                     "ports": [{"protocol": "UDP", "port": 5000, "endPort": 5010}]}]}))
    assert udp_ok(lab.path("web"), lab.path("db"), db, 5005)
    assert not udp_ok(lab.path("cli"), lab.path("db"), db, 5005)  # except
    assert not udp_ok(lab.path("web"), lab.path("db"), db, 5011)  # outside the range
    with listening(lab.path("db"), db, 5005):
        assert not tcp_ok(lab.path("web"), db, 5005)  # TCP is not UDP


def test_macvlan_network_is_enforced_in_the_pod_and_leaves_the_bridge_network_alone(
        lab: PolicyLab) -> None:
    db_mv, db_br = lab.ip("db", "mv-net"), lab.ip("db", "br-net")
    lab.ok("apply", "-f", lab.policy("mv-only", "mv-net", {
        "podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}],
        "egress": [{"to": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}))
    assert ping_ok(lab.netns("web"), db_mv)  # no ports: ICMP allowed from web
    assert not ping_ok(lab.netns("cli"), db_mv)
    assert not ping_ok(lab.netns("db"), lab.ip("cli", "mv-net"))  # egress isolated too
    assert ping_ok(lab.netns("db"), lab.ip("web", "mv-net"))
    with listening(lab.path("db"), db_mv, 7000), listening(lab.path("db"), db_br, 7000):
        assert tcp_ok(lab.path("web"), db_mv, 7000)
        assert not tcp_ok(lab.path("cli"), db_mv, 7000)
        assert tcp_ok(lab.path("cli"), db_br, 7000)  # the bridge network is untouched
    # a label change moves the rules: cli becomes a web client
    lab.ok("label", "pod", "cli", "app=web", "--overwrite", "-n", lab.ns)
    assert ping_ok(lab.netns("cli"), db_mv)


def test_namespace_selector_follows_namespace_labels(lab: PolicyLab) -> None:
    ns_file = lab.tmp / "ns.yml"
    ns_file.write_text(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {lab.ns}\n")
    lab.ok("apply", "-f", str(ns_file))
    db = lab.ip("db", "br-net")
    lab.ok("apply", "-f", lab.policy("from-trusted", "br-net", {
        "podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"trust": "yes"}}}]}]}))
    assert not ping_ok(lab.netns("cli"), db)
    assert "labeled" in lab.ok("label", "namespace", lab.ns, "trust=yes")
    assert ping_ok(lab.netns("cli"), db)
    lab.ok("label", "namespace", lab.ns, "trust-")
    assert not ping_ok(lab.netns("cli"), db)


def test_rules_go_with_the_pod(lab: PolicyLab) -> None:
    lab.ok("apply", "-f", lab.policy("deny-all", "br-net,mv-net", {
        "podSelector": {}, "policyTypes": ["Ingress", "Egress"]}))
    before = lab.tables()
    assert len(before) == 3  # one node table per pod on br-net
    lab.ok("pod", "delete", "db", "-n", lab.ns)
    after = lab.tables()
    assert len(after) == 2 and after < before


def test_the_demo_flow_seed_nad_guest_addresses_and_the_external_host(lab: PolicyLab) -> None:
    """The demo's step on the seed's shape: cnv-bridge with macspoofchk and no IPAM
    (addresses set in the pods, as a VM guest would), so ingress is told by the pod's MAC;
    the external host behind the bridge's uplink is the except entry."""
    lab.ok("apply", "-n", lab.ns, "-f", lab.nad_file("seed", {
        "cniVersion": "0.3.1", "name": "seed", "type": "cnv-bridge", "bridge": lab.dev_bridge,
        "macspoofchk": True, "vlan": 0}))
    for pod, ip in (("sa", "10.173.0.150"), ("sb", "10.173.0.151")):
        lab.ok("pod", "run", pod, "-n", lab.ns, "--networks", "seed",
               "--address", f"net1={ip}/24")
    lab.ok("label", "pod", "sb", "app=db", "--overwrite", "-n", lab.ns)
    assert ping_ok(lab.external, "10.173.0.151")
    lab.ok("apply", "-f", lab.policy("seed-db", "seed", {
        "podSelector": {"matchLabels": {"app": "db"}}, "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"ipBlock": {"cidr": "10.173.0.0/24",
                                           "except": ["10.173.0.1/32"]}}]}]}))
    assert ping_ok(lab.netns("sa"), "10.173.0.151")  # allowed: a pod of the range
    assert not ping_ok(lab.external, "10.173.0.151")  # denied: the external host
    assert ping_ok(lab.external, "10.173.0.150")  # sa is not selected: open
    lab.ok("delete", "multi-policy", "seed-db", "-n", lab.ns)
    assert ping_ok(lab.external, "10.173.0.151")


def test_a_junk_mac_in_network_status_still_isolates_by_address(lab: PolicyLab) -> None:
    """network-status is anyone's text: a MAC nftables would refuse must not fail the
    pass (or open the port); the pod is then matched by its addresses."""
    db = lab.ip("db", "br-net")
    store = SQLiteStore(lab.tmp / "s.db")
    try:
        obj = store.get(POD, lab.ns, "db")
        status = json.loads(obj.annotations["k8s.v1.cni.cncf.io/network-status"])
        for entry in status:
            entry["mac"] = "not-a-mac\"; drop"
        store.patch_annotations(POD, lab.ns, "db", {
            "k8s.v1.cni.cncf.io/network-status": json.dumps(status)})
    finally:
        store.close()
    out = lab.mh("apply", "-f", lab.policy("db", "br-net", {
        "podSelector": {"matchLabels": {"app": "db"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]}))
    assert out.returncode == 0 and "warning" not in out.stderr, out.stderr
    assert ping_ok(lab.netns("web"), db)
    assert not ping_ok(lab.netns("cli"), db)
