"""The console through Flask's test client: every page renders, form errors sit beside their
field with the CLI's words, the form makes the seed NAD, and the token rules."""

from __future__ import annotations

import json
import os
import re
import subprocess
from html import unescape
from pathlib import Path

import yaml
from flask.testing import FlaskClient

from multihome.console import topology
from multihome.console.app import create_app
from multihome.store import NAD, POD, Object, Store
from multihome.stores import open_store
from support.console_client import NODE_STATE, fixed_topology, post

ROOT = Path(__file__).resolve().parents[2]
MULTIHOME = str(ROOT / ".venv" / "bin" / "multihome")
SEED = yaml.safe_load((ROOT / "examples" / "linux-bridge-dev.yml").read_text())
SEED_FORM = {"type": "linux-bridge", "name": "bridge-dev", "namespace": "multus-test",
             "bridge": "dev-bridge", "resource": "bridge-dev", "vlan": "",
             "macspoofchk": "on"}

def _store(path: str) -> Store:
    return open_store(path)


def _pod_with_status(path: str) -> None:
    status = [{"name": "mh-cluster", "interface": "eth0", "ips": ["10.244.0.5"],
               "mac": "0a:58:0a:f4:00:05", "default": True},
              {"name": "multus-test/bridge-dev", "interface": "net1", "ips": ["10.9.0.20"],
               "mac": "02:00:00:00:00:20"}]
    db = _store(path)
    try:
        db.apply(Object.from_manifest(
            {"apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD, "metadata": {
                "name": "bridge-dev", "namespace": "multus-test"},
             "spec": {"config": json.dumps({"cniVersion": "0.3.1", "type": "cnv-bridge",
                                            "bridge": "br-test", "vlan": 0})}}))
        db.apply(Object.from_manifest(
            {"apiVersion": "v1", "kind": POD, "metadata": {
                "name": "pod-a", "namespace": "multus-test", "annotations": {
                    topology.NETWORK_STATUS: json.dumps(status)}}}))
    finally:
        db.close()


def test_seed_form_makes_the_seed_nad(client: FlaskClient, store_file: str) -> None:
    resp = post(client, "/nads/new", data=SEED_FORM)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    db = _store(store_file)
    try:
        obj = db.get(NAD, "multus-test", "bridge-dev")
    finally:
        db.close()
    assert obj.annotations == SEED["metadata"]["annotations"]
    assert json.loads(obj.spec["config"]) == json.loads(SEED["spec"]["config"])
    assert obj.spec["config"] == " ".join(SEED["spec"]["config"].split())


def test_resource_name_defaults_to_the_bridge(client: FlaskClient, store_file: str) -> None:
    form = {**SEED_FORM, "name": "br-a", "resource": "", "vlan": "100"}
    assert post(client, "/nads/new", data=form).status_code == 302
    db = _store(store_file)
    try:
        obj = db.get(NAD, "multus-test", "br-a")
    finally:
        db.close()
    assert obj.annotations["k8s.v1.cni.cncf.io/resourceName"] == \
        "bridge.network.kubevirt.io/dev-bridge"
    assert json.loads(obj.spec["config"])["vlan"] == 100


def test_bad_vlan_is_shown_beside_the_field_and_nothing_is_made(
        client: FlaskClient, store_file: str) -> None:
    resp = post(client, "/nads/new", data={**SEED_FORM, "vlan": "5000"})
    html = resp.get_data(as_text=True)
    assert resp.status_code == 422
    assert 'id="vlan-error"' in html
    assert "invalid VLAN ID 5000 (must be between 0 and 4094)" in html
    db = _store(store_file)
    try:
        assert db.list(NAD, None) == []
    finally:
        db.close()


def test_bad_name_has_the_cli_message(client: FlaskClient, store_file: str,
                                      tmp_path: Path) -> None:
    resp = post(client, "/nads/new", data={**SEED_FORM, "name": "Bad_Name"})
    html = resp.get_data(as_text=True)
    manifest = tmp_path / "bad.yml"
    manifest.write_text(yaml.safe_dump({**SEED, "metadata": {"name": "Bad_Name"}}))
    cli = subprocess.run([MULTIHOME, "--store", store_file, "apply", "-f", str(manifest),
                          "-n", "multus-test"], capture_output=True, text=True, timeout=60)
    assert cli.returncode == 1
    shown = re.search(r'id="name-error">([^<]*)<', html)
    assert shown is not None
    assert unescape(shown.group(1)) == cli.stderr.strip()


def test_other_network_type_forms(client: FlaskClient) -> None:
    for kind, field in (("macvlan", "master"), ("ipvlan", "master"),
                        ("host-device", "device"), ("sriov", "vlan")):
        html = client.get(f"/nads/new?type={kind}").get_data(as_text=True)
        assert f'id="{field}"' in html, kind
    resp = post(client, "/nads/new", data={"type": "macvlan", "name": "mv", "namespace": "ns1",
                                          "master": "eth0", "mode": "nonsense"})
    assert resp.status_code == 422
    assert 'id="mode-error"' in resp.get_data(as_text=True)


def test_yaml_editor_list_detail_delete(client: FlaskClient) -> None:
    text = (ROOT / "examples" / "linux-bridge-dev.yml").read_text()
    resp = post(client, "/nads/yaml", data={"yaml": text, "namespace": "multus-test"})
    assert resp.status_code == 302
    listing = client.get("/nads?namespace=multus-test").get_data(as_text=True)
    assert "bridge-dev" in listing and "cnv-bridge" in listing and "dev-bridge" in listing
    detail = unescape(client.get("/nads/multus-test/bridge-dev").get_data(as_text=True))
    assert '"macspoofchk": true' in detail
    assert post(client, "/nads/multus-test/bridge-dev/delete").status_code == 302
    assert client.get("/nads/multus-test/bridge-dev").status_code == 404


def test_yaml_editor_error(client: FlaskClient) -> None:
    bad = yaml.safe_dump({**SEED, "spec": {"config": "{not json"}})
    resp = post(client, "/nads/yaml", data={"yaml": bad, "namespace": "multus-test"})
    assert resp.status_code == 422
    assert "spec.config is not valid JSON" in resp.get_data(as_text=True)


def test_pods_vms_topology_policies_render(client: FlaskClient, store_file: str) -> None:
    _pod_with_status(store_file)
    pods = client.get("/pods").get_data(as_text=True)
    assert "pod-a" in pods and "net1" in pods and "10.9.0.20" in pods
    assert "multus-test/bridge-dev" in pods
    assert "No VMs." in client.get("/vms").get_data(as_text=True)
    topo = client.get("/topology").get_data(as_text=True)
    assert 'data-name="br-test"' in topo and 'data-owner="pod multus-test/pod-a"' in topo
    assert "uplink br-test-up" in topo and "ext 10.9.0.1/24" in topo
    svg = client.get("/topology.svg")
    assert svg.mimetype == "image/svg+xml"
    assert "No NodeNetworkConfigurationPolicies" in client.get("/policies").get_data(
        as_text=True)
    assert client.get("/").status_code == 302


def test_policy_with_a_bad_key_is_refused(client: FlaskClient) -> None:
    policy = {"apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
              "metadata": {"name": "p1"},
              "spec": {"desiredState": {"interfaces": [{"name": "x", "type": "linux-bridge",
                                                        "nonsense": 1}]}}}
    resp = post(client, "/policies/apply", data={"yaml": yaml.safe_dump(policy)})
    assert resp.status_code == 422
    assert "nonsense" in resp.get_data(as_text=True)
    assert "No NodeNetworkConfigurationPolicies" in client.get("/policies").get_data(
        as_text=True)


def test_token_required_when_set(store_file: str) -> None:
    app = create_app(store_file, token="s3cret", topology_source=fixed_topology)
    with app.test_client() as c:
        assert c.get("/nads").status_code == 401
        assert c.get("/nads", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/nads", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/nads").status_code == 401  # a header lets one request in, no more


def test_cli_refuses_non_loopback_without_token(store_file: str, tmp_path: Path) -> None:
    proc = subprocess.run([MULTIHOME, "--store", store_file, "console", "--listen",
                           "0.0.0.0:0"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("Error: refusing to serve on 0.0.0.0 without --token-file: "
                                   "only loopback may go without a token")


def test_topology_cli_svg_and_png(store_file: str, tmp_path: Path) -> None:
    env = {**os.environ, "MULTIHOME_STATE_DIR": str(tmp_path / "state")}
    svg = subprocess.run([MULTIHOME, "--store", store_file, "topology", "-o", "svg"],
                         capture_output=True, text=True, timeout=60, env=env)
    assert svg.returncode == 0, svg.stderr
    assert svg.stdout.startswith("<svg") and "external network" in svg.stdout
    png = tmp_path / "t.png"
    proc = subprocess.run([MULTIHOME, "--store", store_file, "topology", "-o", "png", "-f",
                           str(png)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_names_are_escaped(client: FlaskClient) -> None:
    resp = post(client, "/nads/new", data={**SEED_FORM, "name": "<script>x</script>"})
    html = resp.get_data(as_text=True)
    assert "<script>x</script>" not in html
    assert "&lt;script&gt;" in html


def test_vm_page_and_vm_in_topology(client: FlaskClient, store_file: str,
                                    tmp_path: Path) -> None:
    from multihome.vm import state as vmstate

    _pod_with_status(store_file)
    rec = vmstate.VMRecord(name="vm1", namespace="multus-test", memory=256,
                           networks="bridge-dev", accel="tcg", nics=[vmstate.Nic(
                               ifname="net1", network="multus-test/bridge-dev",
                               binding="bridge", mac="02:00:00:00:00:20",
                               addresses=["10.9.0.20/24"], guest_ifname="eth0")])
    vmstate.save(str(tmp_path / "state"), rec)
    html = client.get("/vms").get_data(as_text=True)
    assert "multus-test/vm1" in html and "02:00:00:00:00:20" in html and "10.9.0.20/24" in html
    db = _store(store_file)
    try:
        db.apply(Object.from_manifest({"apiVersion": "v1", "kind": POD, "metadata": {
            "name": rec.pod, "namespace": "multus-test", "annotations": {
                topology.NETWORK_STATUS: json.dumps([{"name": "multus-test/bridge-dev",
                                                      "interface": "net1"}])}}}))
        topo = topology.build(db, NODE_STATE, vm_pods={f"multus-test/{rec.pod}":
                                                       "multus-test/vm1"})
    finally:
        db.close()
    owners = [a.owner for b in topo.bridges for a in b.attachments]
    assert owners == ["pod multus-test/pod-a", "vm multus-test/vm1"]
    assert 'data-owner="vm multus-test/vm1"' in topology.to_svg(topo)


def test_pods_page_names_the_policies_and_the_picture_marks_isolated_ports(
        client: FlaskClient, store_file: str) -> None:
    _pod_with_status(store_file)
    pods = client.get("/pods").get_data(as_text=True)
    assert "none (open)" in pods
    assert 'data-isolated=""' in client.get("/topology").get_data(as_text=True)
    db = _store(store_file)
    try:
        db.apply(Object.from_manifest(
            {"apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy",
             "metadata": {"name": "deny-in", "namespace": "multus-test", "annotations": {
                 "k8s.v1.cni.cncf.io/policy-for": "bridge-dev"}},
             "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}}))
    finally:
        db.close()
    pods = client.get("/pods").get_data(as_text=True)
    assert '<td class="policies" rowspan="2">multus-test/deny-in</td>' in pods
    assert '<td class="isolated">ingress+egress</td>' in pods
    topo = client.get("/topology").get_data(as_text=True)
    assert 'data-isolated="ingress+egress"' in topo and "isolated: ingress+egress" in topo
