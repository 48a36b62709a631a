"""Hot-plug and unplug of a running lab pod's interfaces, as a user types it.

`multihome annotate pod NAME k8s.v1.cni.cncf.io/networks=… --overwrite` (kubectl's verb)
and re-applying an edited pod manifest both make the running pod follow its selection:
new elements get their interface at once, dropped ones lose it, network-status and the
pod's events say so, and a hot-plug that cannot be done leaves the pod as it was.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.cli_lab import MULTIHOME, CLILab, lab_down, lab_up, new_lab
from support.netns import unique

pytestmark = pytest.mark.netns

NETWORKS = "k8s.v1.cni.cncf.io/networks"


class HotplugLab(CLILab):
    """The CLI lab with a namespace of its own and the NADs these tests plug."""

    ns = ""

    def pod_links(self, pod: str) -> list[str]:
        out = self.ok("pod", "exec", pod, "-n", self.ns, "--", "ip", "-br", "address")
        return [line.split()[0].split("@")[0] for line in out.splitlines()]

    def pod_ips(self, pod: str, ifname: str) -> list[str]:
        out = self.ok("pod", "exec", pod, "-n", self.ns, "--", "ip", "-br", "address",
                      "show", "dev", ifname)
        return [a.split("/")[0] for a in out.split()[2:] if "." in a]

    def annotations(self, pod: str) -> dict[str, str]:
        body = json.loads(self.ok("get", "pod", pod, "-n", self.ns, "-o", "json"))
        return dict(body["metadata"].get("annotations", {}))

    def status(self, pod: str) -> list[tuple[str, str]]:
        entries = json.loads(self.annotations(pod)["k8s.v1.cni.cncf.io/network-status"])
        return [(e["interface"], e["name"]) for e in entries]

    def annotate(self, pod: str, value: str | None, *flags: str) -> str:
        change = f"{NETWORKS}-" if value is None else f"{NETWORKS}={value}"
        return self.ok("annotate", "pod", pod, "-n", self.ns, change, *flags)

    def ipam_files(self, network: str) -> list[str]:
        """The host-local allocations of a network (one file per address in use)."""
        folder = self.tmp / "ipam" / network
        return sorted(f.name for f in folder.iterdir() if f.name[0].isdigit()) \
            if folder.exists() else []

    def result_caches(self) -> list[str]:
        folder = self.state / "cni" / "results"
        return sorted(f.name for f in folder.iterdir()) if folder.exists() else []

    def record(self, pod: str) -> dict[str, object] | None:
        for f in (self.state / "cni" / "multihome").glob("*.json"):
            data = json.loads(f.read_text())
            if data.get("pod") == {"namespace": self.ns, "name": pod}:
                return dict(data)
        return None


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[HotplugLab]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create namespaces and bridges")
    lab = new_lab(HotplugLab, tmp_path, "hp")
    lab.ns = unique("hp")
    lab_up(lab, "10.71.0.1/24", "10.70.0.0/24")
    try:
        # net-a: L2 only; net-b: its own subnet on the same bridge, addresses by host-local
        for name, ipam in (("net-a", {}),
                           ("net-b", {"ipam": {"type": "host-local", "subnet": "10.72.0.0/24",
                                               "dataDir": str(tmp_path / "ipam")}})):
            lab.ok("apply", "-n", lab.ns, "-f", lab.nad_file(name, {
                "cniVersion": "0.3.1", "name": name, "type": "cnv-bridge",
                "bridge": lab.dev_bridge, **ipam}))
        yield lab
    finally:
        lab.mh("pod", "delete", "p1", "p2", "-n", lab.ns)
        lab_down(lab)


def test_plug_net2_into_a_running_pod_ping_over_it_and_unplug_it(lab: HotplugLab) -> None:
    lab.ok("pod", "run", "p2", "-n", lab.ns, "--networks", "net-b")
    peer = lab.pod_ips("p2", "net1")[0]
    lab.ok("pod", "run", "p1", "-n", lab.ns, "--networks", "net-a")
    assert lab.pod_links("p1") == ["lo", "eth0", "net1"]

    out = lab.annotate("p1", "net-a,net-b", "--overwrite")
    assert f"pod/p1: net2 attached to {lab.ns}/net-b" in out
    assert out.rstrip().endswith("pod/p1 annotated")
    assert lab.pod_links("p1") == ["lo", "eth0", "net1", "net2"]
    mine = lab.pod_ips("p1", "net2")[0]
    assert mine.startswith("10.72.0.") and mine != peer
    lab.ok("pod", "exec", "p1", "-n", lab.ns, "--", "ping", "-c", "1", "-W", "3", "-I",
           "net2", peer)
    assert lab.status("p1") == [("eth0", "mh-cluster"), ("net1", f"{lab.ns}/net-a"),
                                ("net2", f"{lab.ns}/net-b")]
    described = lab.ok("pod", "describe", "p1", "-n", lab.ns)
    assert f"pod [{lab.ns}/p1]: added interface net2 to network: net-b" in described
    assert len(lab.ipam_files("net-b")) == 2  # p2's address and p1's
    caches = lab.result_caches()
    assert any(c.startswith("net-b-") and c.endswith("-net2") for c in caches)

    out = lab.annotate("p1", "net-a", "--overwrite")
    assert f"pod/p1: net2 detached from {lab.ns}/net-b" in out
    assert lab.pod_links("p1") == ["lo", "eth0", "net1"]
    assert lab.ipam_files("net-b") == [peer]  # p1's address released, p2's kept
    assert not any(c.endswith("-net2") for c in lab.result_caches())
    record = lab.record("p1")
    assert record is not None
    assert [a["ifname"] for a in record["attachments"]] == ["eth0", "net1"]  # type: ignore[attr-defined]
    assert lab.status("p1") == [("eth0", "mh-cluster"), ("net1", f"{lab.ns}/net-a")]
    assert f"pod [{lab.ns}/p1]: removed interface net2 from network: net-b" in lab.ok(
        "pod", "describe", "p1", "-n", lab.ns)

    # the whole annotation removed (`key-`): every secondary interface goes
    lab.annotate("p1", None)
    assert lab.pod_links("p1") == ["lo", "eth0"]
    assert NETWORKS not in lab.annotations("p1")


def test_without_overwrite_an_existing_key_is_refused_as_kubectl_does(
        lab: HotplugLab) -> None:
    lab.ok("pod", "run", "p1", "-n", lab.ns, "--networks", "net-a")
    refused = lab.mh("annotate", "pod", "p1", "-n", lab.ns, f"{NETWORKS}=net-a,net-b")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "error: --overwrite is false but found the following declared annotation(s): "
        f"'{NETWORKS}' already has a value (net-a)")
    assert lab.pod_links("p1") == ["lo", "eth0", "net1"]
    assert lab.annotations("p1")[NETWORKS] == "net-a"
    # a new key needs no --overwrite; `pod/NAME` works like `pod NAME`
    assert lab.ok("annotate", "pod/p1", "-n", lab.ns, "example.com/owner=me").strip() == \
        "pod/p1 annotated"
    bad = lab.mh("annotate", "pod", "p1", "-n", lab.ns, "no-equals-sign")
    assert bad.returncode == 1
    assert bad.stderr.strip() == "error: invalid annotation format: no-equals-sign"
    missing = lab.mh("annotate", "pod", "nope", "-n", lab.ns, "a=b")
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'


def test_unnamed_elements_keep_their_netn_and_unplug_by_element(lab: HotplugLab) -> None:
    lab.ok("pod", "run", "p1", "-n", lab.ns, "--networks", "net-a,net-b")
    assert lab.status("p1")[1:] == [("net1", f"{lab.ns}/net-a"), ("net2", f"{lab.ns}/net-b")]
    net2_ip = lab.pod_ips("p1", "net2")

    # dropping the first unnamed element unplugs net1; net-b keeps net2 (and its address)
    out = lab.annotate("p1", "net-b", "--overwrite")
    assert f"pod/p1: net1 detached from {lab.ns}/net-a" in out
    assert lab.pod_links("p1") == ["lo", "eth0", "net2"]
    assert lab.pod_ips("p1", "net2") == net2_ip

    # net-a again, second in the list: Multus' index 2 is net-b's, so the next free name
    out = lab.annotate("p1", "net-b,net-a", "--overwrite")
    assert f"pod/p1: net3 attached to {lab.ns}/net-a" in out
    assert lab.status("p1")[1:] == [("net2", f"{lab.ns}/net-b"), ("net3", f"{lab.ns}/net-a")]

    # the same network twice, neither named: unplugging one leaves the other as it was
    lab.annotate("p1", "net-b,net-a,net-a", "--overwrite")
    assert lab.pod_links("p1") == ["lo", "eth0", "net2", "net3", "net4"]
    lab.annotate("p1", "net-b,net-a", "--overwrite")
    assert lab.pod_links("p1") == ["lo", "eth0", "net2", "net3"]


def test_hotplug_of_a_missing_nad_leaves_the_pod_untouched_with_error_and_event(
        lab: HotplugLab) -> None:
    lab.ok("pod", "run", "p1", "-n", lab.ns, "--networks", "net-a")
    before = lab.annotations("p1")
    failed = lab.mh("annotate", "pod", "p1", "-n", lab.ns, f"{NETWORKS}=net-a,nope",
                    "--overwrite")
    assert failed.returncode == 1
    assert f"NAD {lab.ns}/nope not found" in failed.stderr
    assert "left as it was" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    assert lab.pod_links("p1") == ["lo", "eth0", "net1"]
    assert lab.annotations("p1") == before  # the selection is set back: the pod has net-a
    described = lab.ok("pod", "describe", "p1", "-n", lab.ns)
    kinds = [line.split()[:2] for line in described.split("Events:")[1].splitlines()[2:]]
    assert ["Warning", "NoNetworkFound"] in kinds
    assert ["Warning", "FailedAddingInterface"] in kinds
    assert f"pod [{lab.ns}/p1]: failed adding interface net2 to network: nope" in described


@pytest.mark.parametrize("selection, why", [
    ('[{"name": "net-b", "interface": "eth0"}]', "interface name eth0 is in use"),
    ('[{"name": "net-b", "ips": "10.1.1.1"}]', "ips"),
    ("net-a,net-b@net1", "interface name net1 is in use"),
    ("other-ns/net-b", "namespace isolation"),
    ("net-a, ,net-b", "is empty"),
])
def test_a_selection_that_cannot_be_plugged_is_refused_before_anything_changes(
        lab: HotplugLab, selection: str, why: str) -> None:
    lab.ok("pod", "run", "p1", "-n", lab.ns, "--networks", "net-a")
    failed = lab.mh("annotate", "pod", "p1", "-n", lab.ns, f"{NETWORKS}={selection}",
                    "--overwrite")
    assert failed.returncode == 1
    assert why in failed.stderr and "left as it was" in failed.stderr
    assert failed.stderr.startswith("error: ") and len(failed.stderr.splitlines()) == 1
    assert lab.pod_links("p1") == ["lo", "eth0", "net1"]
    assert lab.annotations("p1")[NETWORKS] == "net-a"


def test_a_delegate_that_fails_undoes_the_others_added_by_the_same_edit(
        lab: HotplugLab) -> None:
    lab.ok("apply", "-n", lab.ns, "-f", lab.nad_file("broken", {
        "cniVersion": "0.3.1", "name": "broken", "type": "no-such-plugin"}))
    lab.ok("pod", "run", "p1", "-n", lab.ns, "--networks", "net-a")
    caches = lab.result_caches()
    failed = lab.mh("annotate", "pod", "p1", "-n", lab.ns, f"{NETWORKS}=net-a,net-b,broken",
                    "--overwrite")
    assert failed.returncode == 1
    assert "network " in failed.stderr and "broken" in failed.stderr
    assert "failed to find plugin" in failed.stderr
    assert lab.pod_links("p1") == ["lo", "eth0", "net1"]
    assert lab.ipam_files("net-b") == []  # net-b's address, allocated then released
    assert lab.result_caches() == caches
    assert lab.annotations("p1")[NETWORKS] == "net-a"
    record = lab.record("p1")
    assert record is not None
    assert [a["ifname"] for a in record["attachments"]] == ["eth0", "net1"]  # type: ignore[attr-defined]


def test_reapplying_an_edited_pod_manifest_hotplugs(lab: HotplugLab) -> None:
    lab.ok("pod", "run", "p1", "-n", lab.ns, "--networks", "net-a")
    manifest = lab.tmp / "p1.yml"

    def apply(selection: str) -> str:
        manifest.write_text(
            f"apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\n  namespace: {lab.ns}\n"
            f"  annotations:\n    {NETWORKS}: '{selection}'\n"
            "spec:\n  containers:\n  - name: p1\n")
        return lab.ok("apply", "-f", str(manifest))

    out = apply('[{"name": "net-a"}, {"name": "net-b", "interface": "data0"}]')
    assert f"pod/p1: data0 attached to {lab.ns}/net-b" in out
    assert "pod/p1 configured" in out
    assert lab.pod_links("p1") == ["lo", "eth0", "net1", "data0"]
    out = apply("net-a")
    assert f"pod/p1: data0 detached from {lab.ns}/net-b" in out
    assert lab.pod_links("p1") == ["lo", "eth0", "net1"]
    manifest.write_text(manifest.read_text().replace("'net-a'", "'net-a,nope'"))
    failed = lab.mh("apply", "-f", str(manifest))
    assert failed.returncode == 1
    assert failed.stderr.startswith(f'error: when applying "{manifest}": hot-plug refused')
    assert f"NAD {lab.ns}/nope not found" in failed.stderr
    assert lab.pod_links("p1") == ["lo", "eth0", "net1"]
    assert lab.annotations("p1")[NETWORKS] == "net-a"


def test_a_name_freed_by_the_same_edit_goes_to_the_new_element(lab: HotplugLab) -> None:
    lab.ok("pod", "run", "p1", "-n", lab.ns, "--networks", "net-a")
    out = lab.annotate("p1", "net-b@net1", "--overwrite")
    assert out.index(f"net1 detached from {lab.ns}/net-a") < out.index(
        f"net1 attached to {lab.ns}/net-b")
    assert lab.status("p1") == [("eth0", "mh-cluster"), ("net1", f"{lab.ns}/net-b")]
    assert lab.pod_ips("p1", "net1")[0].startswith("10.72.0.")
    # a changed attribute is another element: the interface is made again with it
    lab.annotate("p1", '[{"name": "net-b", "interface": "net1", "mac": "02:00:00:00:00:0b"}]',
                 "--overwrite")
    link = lab.ok("pod", "exec", "p1", "-n", lab.ns, "--", "ip", "-br", "link", "show", "net1")
    assert "02:00:00:00:00:0b" in link
    assert len(lab.ipam_files("net-b")) == 1  # the first address went with the first net1


def test_a_pod_delete_waits_for_a_hot_plug_in_progress(lab: HotplugLab) -> None:
    lab.ok("pod", "run", "p1", "-n", lab.ns, "--networks", "net-a")
    records = os.open(lab.state / "cni" / "multihome", os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(records, fcntl.LOCK_EX)  # what a hot-plug holds while it runs
        deleting = subprocess.Popen(
            [MULTIHOME, "--store", str(lab.tmp / "s.db"), "pod", "delete", "p1", "-n", lab.ns],
            env=lab.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        with pytest.raises(subprocess.TimeoutExpired):
            deleting.wait(timeout=3)
        assert lab.record("p1") is not None
    finally:
        os.close(records)  # the hot-plug ends
    out, err = deleting.communicate(timeout=60)
    assert deleting.returncode == 0, err
    assert 'pod "p1" deleted' in out
    assert lab.record("p1") is None


def test_a_pod_that_could_not_start_leaves_no_events_behind(lab: HotplugLab) -> None:
    failed = lab.mh("pod", "run", "p1", "-n", lab.ns, "--networks", "nope")
    assert failed.returncode == 1
    assert lab.ok("get", "events", "-n", lab.ns) == ""
    lab.ok("pod", "run", "p1", "-n", lab.ns, "--networks", "net-a")
    assert lab.ok("get", "events", "-n", lab.ns).count("p1.") == 2  # eth0, net1 added
    lab.ok("pod", "delete", "p1", "-n", lab.ns)
    assert lab.ok("get", "events", "-n", lab.ns) == ""


def test_unplugging_the_element_that_took_the_default_route_gives_it_back(
        lab: HotplugLab) -> None:
    lab.ok("pod", "run", "p1", "-n", lab.ns, "--networks", "net-a")

    def default_route() -> str:
        return lab.ok("pod", "exec", "p1", "-n", lab.ns, "--", "ip", "route", "show",
                      "default").strip()

    before = default_route()
    assert "dev eth0" in before
    lab.annotate("p1", '[{"name": "net-a"}, {"name": "net-b", "default-route": ["10.72.0.1"]}]',
                 "--overwrite")
    assert default_route().startswith("default via 10.72.0.1 dev net2")
    lab.annotate("p1", "net-a", "--overwrite")
    assert default_route().startswith(before)  # via eth0 again
