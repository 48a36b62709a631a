"""The attachment engine with real namespaces, bridges, IPAM and a store."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from multihome.attach import engine
from multihome.attach.status import NETWORK_STATUS_ANNOTATION
from multihome.cni.errors import CNIError, InvalidConfig
from multihome.store import NAD, POD
from support.engine_world import World, links_in
from support.netns import Netns

pytestmark = pytest.mark.netns


def _status(w: World, ns: str, name: str) -> list[dict[str, object]]:
    text = w.store.get(POD, ns, name).annotations[NETWORK_STATUS_ANNOTATION]
    return list(json.loads(text))


def test_comma_form_orders_and_names_interfaces(world: World, netns: Netns) -> None:
    world.bridge_nad("ns1", "net-a", "10.61.1.0/24")
    world.bridge_nad("ns1", "net-b")
    pod = world.pod("ns1", "p1", "net-a, net-b@custom, ns1/net-a")
    out = engine.add(world.conf(), world.store, world.request(netns, pod))

    assert [(a.network, a.ifname) for a in out.attachments] == [
        ("cluster", "eth0"), ("ns1/net-a", "net1"), ("ns1/net-b", "custom"), ("ns1/net-a", "net3")]
    assert set(links_in(netns)) == {"lo", "eth0", "net1", "custom", "net3"}
    status = _status(world, "ns1", "p1")
    assert [(s["name"], s["interface"], s.get("default", False)) for s in status] == [
        ("cluster", "eth0", True), ("ns1/net-a", "net1", False),
        ("ns1/net-b", "custom", False), ("ns1/net-a", "net3", False)]
    # the same NAD twice gives two attachments with two addresses
    assert status[1]["ips"] != status[3]["ips"]
    assert str(status[1]["ips"][0]).startswith("10.61.1.")  # type: ignore[index]
    # the engine returns the default network's result
    assert [i.name for i in out.result.interfaces if i.sandbox] == ["eth0"]
    assert str(out.result.ips[0].address).startswith("10.60.0.")
    engine.delete(world.conf(), world.store, world.request(netns, pod))
    assert links_in(netns) == ["lo"]
    assert world.ipam_allocations() == []
    assert NETWORK_STATUS_ANNOTATION not in world.store.get(POD, "ns1", "p1").annotations


def test_json_form_ips_go_to_plugins_with_the_capability(world: World, netns: Netns) -> None:
    br = world.bridge()
    world.nad("ns1", "static-net", {
        "cniVersion": "1.0.0", "type": "bridge", "bridge": br,
        "capabilities": {"ips": True}, "ipam": {"type": "static"}})
    pod = world.pod("ns1", "p2", json.dumps(
        [{"name": "static-net", "interface": "data0", "ips": ["10.62.0.5/24"]}]))
    engine.add(world.conf(), world.store, world.request(netns, pod))
    status = _status(world, "ns1", "p2")
    assert status[1]["interface"] == "data0"
    assert status[1]["ips"] == ["10.62.0.5"]
    assert "10.62.0.5/24" in netns.run("ip", "-o", "addr", "show", "data0").stdout
    engine.delete(world.conf(), world.store, world.request(netns, pod))


def test_requested_ips_reach_host_local_without_the_capability(world: World,
                                                               netns: Netns) -> None:
    # as with Multus: not refused, handed over as CNI_ARGS IP=, which host-local reads
    world.bridge_nad("ns1", "plain", "10.62.0.0/24")
    pod = world.pod("ns1", "p3", json.dumps([{"name": "plain", "ips": ["10.62.0.6/24"]}]))
    engine.add(world.conf(), world.store, world.request(netns, pod))
    assert _status(world, "ns1", "p3")[1]["ips"] == ["10.62.0.6"]
    engine.delete(world.conf(), world.store, world.request(netns, pod))
    assert world.ipam_allocations() == []


def test_cni_args_merge_into_args_cni(world: World, netns: Netns) -> None:
    world.bridge_nad("ns1", "argnet")
    pod = world.pod("ns1", "p4", json.dumps([{"name": "argnet", "cni-args": {"foo": "bar"}}]))
    out = engine.add(world.conf(), world.store, world.request(netns, pod))
    plugin = out.attachments[1].conflist["plugins"][0]
    assert plugin["args"]["cni"] == {"foo": "bar"}
    engine.delete(world.conf(), world.store, world.request(netns, pod))


def test_generated_name_collision_fails(world: World, netns: Netns) -> None:
    world.bridge_nad("default", "a")
    world.bridge_nad("default", "b")
    pod = world.pod("default", "vm-a", "b, a@net1")
    with pytest.raises(InvalidConfig,
                       match="interface name net1 already in use in pod default/vm-a"):
        engine.add(world.conf(), world.store, world.request(netns, pod))
    assert links_in(netns) == ["lo"]


def test_requested_eth0_collides_with_default(world: World, netns: Netns) -> None:
    world.bridge_nad("default", "a")
    pod = world.pod("default", "vm-b", "a@eth0")
    with pytest.raises(InvalidConfig, match="interface name eth0 already in use"):
        engine.add(world.conf(), world.store, world.request(netns, pod))


def test_failing_second_delegate_rolls_everything_back(world: World, netns: Netns) -> None:
    br = world.bridge_nad("ns1", "good", "10.61.2.0/24")
    world.fail_nad("ns1", "bad")
    pod = world.pod("ns1", "p5", "good, bad")
    with pytest.raises(CNIError) as info:
        engine.add(world.conf(), world.store, world.request(netns, pod))
    assert info.value.code == 11
    assert "network ns1/bad (interface net2) failed" in info.value.msg
    assert "deliberate failure of ADD" in info.value.msg
    assert links_in(netns) == ["lo"]
    assert world.bridge_ports(br) == []
    assert world.bridge_ports(world.cluster_bridge) == []
    assert world.ipam_allocations() == []
    assert engine.list_records(world.conf()) == []
    assert NETWORK_STATUS_ANNOTATION not in world.store.get(POD, "ns1", "p5").annotations


def test_delegates_of_a_pod_run_side_by_side(world: World, netns: Netns) -> None:
    """Each rendezvous delegate waits until the other has started: sequential ADDs fail."""
    for name in ("meet-a", "meet-b"):
        world.nad("ns1", name, {"cniVersion": "1.0.0", "type": "mh-rendezvous", "expect": 2})
    pod = world.pod("ns1", "p-meet", "meet-a, meet-b")
    out = engine.add(world.conf(), world.store, world.request(netns, pod))
    assert [a.ifname for a in out.attachments] == ["eth0", "net1", "net2"]
    assert [s.interface for s in out.status] == ["eth0", "net1", "net2"]
    engine.delete(world.conf(), world.store, world.request(netns, pod))
    assert list((world.tmp / "rendezvous").iterdir()) == []


def test_several_failing_delegates_report_the_first_and_undo_all(world: World,
                                                                 netns: Netns) -> None:
    br = world.bridge_nad("ns1", "fine", "10.61.5.0/24")
    world.fail_nad("ns1", "bad-1")
    world.fail_nad("ns1", "bad-2")
    pod = world.pod("ns1", "p-bad", "bad-1, fine, bad-2")
    with pytest.raises(CNIError) as info:
        engine.add(world.conf(), world.store, world.request(netns, pod))
    assert "network ns1/bad-1 (interface net1) failed" in info.value.msg
    assert links_in(netns) == ["lo"]
    assert world.bridge_ports(br) == [] and world.bridge_ports(world.cluster_bridge) == []
    assert world.ipam_allocations() == []
    assert engine.list_records(world.conf()) == []


def test_failing_default_network_runs_no_secondary(world: World, netns: Netns) -> None:
    world.nad("ns1", "rec", {"cniVersion": "1.0.0", "type": "mh-record"})
    pod = world.pod("ns1", "p-nodefault", "rec")
    conf = world.conf(delegates=[{"cniVersion": "1.0.0", "name": "cluster",
                                  "plugins": [{"type": "mh-fail"}]}])
    with pytest.raises(CNIError) as info:
        engine.add(conf, world.store, world.request(netns, pod))
    assert "interface eth0" in info.value.msg and "deliberate failure" in info.value.msg
    assert not (world.tmp / "records").exists(), "net1's delegate ran after eth0 failed"
    assert engine.list_records(conf) == []
    assert links_in(netns) == ["lo"]


def test_del_after_nad_and_pod_are_gone(world: World, netns: Netns) -> None:
    br = world.bridge_nad("ns1", "gone", "10.61.3.0/24")
    pod = world.pod("ns1", "p6", "gone")
    engine.add(world.conf(), world.store, world.request(netns, pod))
    world.store.delete(NAD, "ns1", "gone")
    world.store.delete(POD, "ns1", "p6")
    engine.delete(world.conf(), world.store, world.request(netns, pod))
    assert links_in(netns) == ["lo"]
    assert world.bridge_ports(br) == []
    assert world.ipam_allocations() == []
    # DEL is idempotent, also without any store
    engine.delete(world.conf(), None, world.request(netns, pod))


def test_del_after_cache_loss_frees_what_the_store_describes(world: World,
                                                             netns: Netns) -> None:
    br = world.bridge_nad("ns1", "lost", "10.61.4.0/24")
    pod = world.pod("ns1", "p7", "lost")
    engine.add(world.conf(), world.store, world.request(netns, pod))
    shutil.rmtree(world.tmp / "cache")
    engine.delete(world.conf(), world.store, world.request(netns, pod))
    assert links_in(netns) == ["lo"]
    assert world.bridge_ports(br) == []
    assert world.ipam_allocations() == []


def test_del_after_cache_and_store_loss_frees_the_default_network(world: World,
                                                                  netns: Netns) -> None:
    pod = world.pod("ns1", "p8")
    engine.add(world.conf(), world.store, world.request(netns, pod))
    shutil.rmtree(world.tmp / "cache")
    engine.delete(world.conf(), None, world.request(netns, pod))
    assert world.ipam_allocations() == []
    assert world.bridge_ports(world.cluster_bridge) == []


def test_del_failure_keeps_cache_only_with_retry_delete_on_error(world: World,
                                                               netns_factory: object) -> None:
    world.fail_nad("ns1", "sticky", fail_on="DEL")
    for retry in (True, False):
        ns = netns_factory()  # type: ignore[operator]
        pod = world.pod("ns1", f"p9-{retry}".lower(), "sticky")
        conf = world.conf(retryDeleteOnError=retry)
        req = world.request(ns, pod)
        engine.add(conf, world.store, req)
        with pytest.raises(CNIError, match="deliberate failure of DEL"):
            engine.delete(conf, world.store, req)
        assert (engine.load_record(conf, req.container_id) is not None) is retry
        # the default network was still torn down
        assert "eth0" not in links_in(ns)
        if retry:
            os.unlink(os.path.join(conf.cni_dir, "multihome", f"{req.container_id}.json"))


def test_namespace_isolation(world: World, netns_factory: object) -> None:
    world.bridge_nad("multus-test", "bridge-dev")
    world.bridge_nad("shared", "common")
    conf = world.conf(namespaceIsolation=True, globalNamespaces="shared")
    ns = netns_factory()  # type: ignore[operator]
    pod = world.pod("other", "p1", "multus-test/bridge-dev")
    with pytest.raises(InvalidConfig) as info:
        engine.add(conf, world.store, world.request(ns, pod))
    assert info.value.msg == (
        'pod other/p1 may not use network multus-test/bridge-dev: namespace isolation allows '
        'only NADs in "other" and global namespaces [default, shared]')
    assert links_in(ns) == ["lo"]
    # own namespace and global namespaces are fine
    ok = world.pod("multus-test", "p2", "bridge-dev, shared/common")
    ns2 = netns_factory()  # type: ignore[operator]
    engine.add(conf, world.store, world.request(ns2, ok))
    assert {"net1", "net2"} <= set(links_in(ns2))
    engine.delete(conf, world.store, world.request(ns2, ok))


def test_system_namespaces_get_no_default_networks(world: World,
                                                   netns_factory: object) -> None:
    world.bridge_nad("kube-system", "sidecar")
    conf = world.conf(defaultNetworks=["sidecar"])
    ns = netns_factory()  # type: ignore[operator]
    pod = world.pod("app", "p1")
    out = engine.add(conf, world.store, world.request(ns, pod))
    assert [(a.network, a.ifname) for a in out.attachments] == [
        ("cluster", "eth0"), ("kube-system/sidecar", "net1")]
    engine.delete(conf, world.store, world.request(ns, pod))
    ns2 = netns_factory()  # type: ignore[operator]
    sys_pod = world.pod("kube-system", "p2")
    out = engine.add(conf, world.store, world.request(ns2, sys_pod))
    assert [a.ifname for a in out.attachments] == ["eth0"]
    engine.delete(conf, world.store, world.request(ns2, sys_pod))


def test_default_network_annotation_overrides_cluster_network(world: World,
                                                              netns: Netns) -> None:
    world.bridge_nad("kube-system", "alt-default", "10.61.5.0/24")
    pod = world.pod("ns1", "p1",
                    annotations={"v1.multus-cni.io/default-network": "alt-default"})
    out = engine.add(world.conf(), world.store, world.request(netns, pod))
    assert out.attachments[0].network == "kube-system/alt-default"
    assert str(out.result.ips[0].address).startswith("10.61.5.")
    assert _status(world, "ns1", "p1")[0]["default"] is True
    engine.delete(world.conf(), world.store, world.request(netns, pod))


def test_default_route_moves_to_the_selected_network(world: World, netns: Netns) -> None:
    world.bridge_nad("ns1", "uplink", "10.61.6.0/24")
    pod = world.pod("ns1", "p1", json.dumps(
        [{"name": "uplink", "default-route": ["10.61.6.1"]}]))
    engine.add(world.conf(), world.store, world.request(netns, pod))
    routes = netns.run("ip", "-4", "route", "show", "default").stdout.strip().splitlines()
    assert len(routes) == 1
    assert routes[0].startswith("default via 10.61.6.1 dev net1")
    status = _status(world, "ns1", "p1")
    assert status[1]["gateway"] == ["10.61.6.1"]
    engine.delete(world.conf(), world.store, world.request(netns, pod))


def test_network_status_content(world: World, netns: Netns) -> None:
    world.bridge_nad("ns1", "withip", "10.61.7.0/24")
    pod = world.pod("ns1", "p1", "withip")
    engine.add(world.conf(), world.store, world.request(netns, pod))
    eth0, net1 = _status(world, "ns1", "p1")
    mac = netns.run("cat", "/sys/class/net/net1/address").stdout.strip()
    assert net1["mac"] == mac
    assert net1["ips"] == [netns.run("ip", "-4", "-o", "addr", "show", "net1")
                           .stdout.split()[3].split("/")[0]]
    assert eth0["default"] is True and "default" not in net1  # Multus omits false
    # the world's default network has no default route: Multus records no gateway then
    assert "gateway" not in eth0
    assert "dns" in net1
    engine.delete(world.conf(), world.store, world.request(netns, pod))


def test_check_and_status(world: World, netns: Netns) -> None:
    pod = world.pod("ns1", "p1")
    conf = world.conf(readinessindicatorfile=str(world.tmp / "ready"))
    with pytest.raises(CNIError) as info:
        engine.status(conf, world.store)
    assert info.value.code == 50 and "readiness indicator" in info.value.msg
    (world.tmp / "ready").write_text("")
    engine.status(conf, world.store)
    engine.add(conf, world.store, world.request(netns, pod))
    engine.check(conf, world.request(netns, pod))
    netns.run("ip", "link", "del", "eth0")
    with pytest.raises(CNIError, match="network cluster"):
        engine.check(conf, world.request(netns, pod))
    engine.delete(conf, world.store, world.request(netns, pod))


def test_gc_removes_attachments_not_in_the_valid_list(world: World,
                                                      netns_factory: object) -> None:
    br = world.bridge_nad("ns1", "gcnet", "10.61.8.0/24")
    keep_ns, drop_ns = netns_factory(), netns_factory()  # type: ignore[operator]
    keep = world.request(keep_ns, world.pod("ns1", "keep", "gcnet"))
    drop = world.request(drop_ns, world.pod("ns1", "drop", "gcnet"))
    conf = world.conf()
    engine.add(conf, world.store, keep)
    engine.add(conf, world.store, drop)
    engine.gc(conf, world.store, [{"containerID": keep.container_id, "ifname": "eth0"}])
    assert links_in(drop_ns) == ["lo"]
    assert set(links_in(keep_ns)) == {"lo", "eth0", "net1"}
    assert len(world.bridge_ports(br)) == 1
    assert len(world.ipam_allocations()) == 2
    assert [r.container_id for r in engine.list_records(conf)] == [keep.container_id]
    engine.delete(conf, world.store, keep)


def test_engine_as_cni_plugin_type_multihome(world: World, netns: Netns) -> None:
    """A runtime calling `multihome` with a 00-multihome.conf, pod from CNI_ARGS."""
    from multihome.cni.skel import dispatch
    from multihome.plugins import registry

    world.bridge_nad("ns1", "extra", "10.61.9.0/24")
    world.pod("ns1", "cp", "extra")
    conf = dict(world.conf().raw, store=str(world.tmp / "s.db"), cniVersion="1.0.0")
    plugin = registry.lookup("multihome")
    assert plugin is not None
    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "cid-plugin", "CNI_NETNS": netns.path,
           "CNI_IFNAME": "eth0", "CNI_PATH": world.bin_dir,
           "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=cp"}
    rc, out = dispatch(plugin, env, json.dumps(conf).encode())
    assert rc == 0, out
    result = json.loads(out)
    assert result["cniVersion"] == "1.0.0"
    assert [i["name"] for i in result["interfaces"] if i.get("sandbox")] == ["eth0"]
    assert set(links_in(netns)) == {"lo", "eth0", "net1"}
    assert _status(world, "ns1", "cp")[1]["name"] == "ns1/extra"
    rc, out = dispatch(plugin, {**env, "CNI_COMMAND": "DEL"}, json.dumps(conf).encode())
    assert rc == 0, out
    assert links_in(netns) == ["lo"]
    rc, out = dispatch(plugin, {**env, "CNI_COMMAND": "DEL"}, json.dumps(conf).encode())
    assert rc == 0, out


def test_plugin_reports_config_errors_as_code_7(world: World, netns: Netns) -> None:
    from multihome import engine_plugin as plugin
    from multihome.cni.skel import dispatch

    env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "cid-bad", "CNI_NETNS": netns.path,
           "CNI_IFNAME": "eth0", "CNI_PATH": world.bin_dir}
    rc, out = dispatch(plugin, env, json.dumps(  # type: ignore[arg-type]
        {"cniVersion": "1.0.0", "name": "m", "type": "multihome"}).encode())
    assert rc == 1
    err = json.loads(out)
    assert err["code"] == 7 and "clusterNetwork" in err["msg"]


def _plugin_call(world: World, netns: Netns, command: str, **conf_keys: object) -> int:
    from multihome import engine_plugin as plugin
    from multihome.cni.skel import dispatch

    conf = dict(world.conf().raw, store=str(world.tmp / "s.db"), **conf_keys)
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "cid-log", "CNI_NETNS": netns.path,
           "CNI_IFNAME": "eth0", "CNI_PATH": world.bin_dir,
           "CNI_ARGS": "K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=lp"}
    rc, _ = dispatch(plugin, env, json.dumps(conf).encode())  # type: ignore[arg-type]
    return rc


def test_log_file_at_verbose_records_each_delegate_call(world: World, netns: Netns) -> None:
    world.bridge_nad("ns1", "logged", "10.61.10.0/24")
    world.pod("ns1", "lp", "logged")
    log_file = world.tmp / "multus.log"
    assert _plugin_call(world, netns, "ADD", logLevel="verbose", logFile=str(log_file)) == 0
    assert _plugin_call(world, netns, "DEL", logLevel="verbose", logFile=str(log_file)) == 0
    lines = log_file.read_text().splitlines()
    assert any(" [verbose] Add: ns1:lp:cid-log:ns1/logged:net1: {" in line for line in lines)
    assert any(" [verbose] Del: ns1:lp:cid-log:ns1/logged:net1" in line for line in lines)
    assert not any("[debug]" in line for line in lines)  # below the configured level
    assert all(line[:4].isdigit() and line[19] == "Z" for line in lines)  # RFC 3339 UTC


def test_log_level_error_keeps_only_the_failure(world: World, netns: Netns,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    world.bridge_nad("ns1", "fine", "10.61.11.0/24")
    world.fail_nad("ns1", "broken")
    world.pod("ns1", "lp", "fine,broken")
    log_file = world.tmp / "multus.log"
    rc = _plugin_call(world, netns, "ADD", logLevel="error", logFile=str(log_file),
                      logToStderr=True)
    assert rc == 1
    lines = log_file.read_text().splitlines()
    assert len(lines) == 1 and "[error] network ns1/broken (interface net2) failed" in lines[0]
    assert "[error] network ns1/broken" in capsys.readouterr().err
    assert links_in(netns) == ["lo"]


def test_no_log_settings_write_nothing_to_stderr(world: World, netns: Netns,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    world.fail_nad("ns1", "broken")
    world.pod("ns1", "lp", "broken")
    assert _plugin_call(world, netns, "ADD") == 1
    assert capsys.readouterr().err == ""


def test_resource_devices_go_to_delegates_and_device_info_to_status(
        world: World, netns: Netns) -> None:
    """Multus' device flow: kubelet checkpoint → deviceID per attachment → device-info."""
    from multihome.attach import devices
    from multihome.store import Object

    resource = "example.com/sriov_net"
    pod = world.pod("ns1", "dp", "vf,vf")
    uid = world.store.get(POD, "ns1", "dp").uid
    checkpoint = world.tmp / "kubelet_internal_checkpoint"
    checkpoint.write_text(json.dumps({"Data": {"PodDeviceEntries": [
        {"PodUID": "someone-else", "ResourceName": resource, "DeviceIDs": {"0": ["0000:99"]}},
        {"PodUID": uid, "ContainerName": "c", "ResourceName": resource,
         "DeviceIDs": {"0": ["0000:03:00.2", "0000:03:00.3"]}}]}, "Checksum": 1}))
    info_root = world.tmp / "devinfo"
    dp_info = {"type": "pci", "version": "1.1.0", "pci": {"pci-address": "0000:03:00.2"}}
    dp_path = devices.dp_info_path(str(info_root), resource, "0000:03:00.2")
    os.makedirs(os.path.dirname(dp_path))
    with open(dp_path, "w") as f:
        json.dump(dp_info, f)
    world.store.apply(Object.from_manifest({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD,
        "metadata": {"name": "vf", "namespace": "ns1",
                     "annotations": {"k8s.v1.cni.cncf.io/resourceName": resource}},
        "spec": {"config": json.dumps({"cniVersion": "1.0.0", "type": "mh-record",
                                       "capabilities": {"CNIDeviceInfoFile": True}})}}))
    conf = world.conf(kubeletCheckpointFile=str(checkpoint), deviceInfoDir=str(info_root))
    req = world.request(netns, pod)
    engine.add(conf, world.store, req)
    net1 = json.loads((world.tmp / "records" / "net1.json").read_text())
    net2 = json.loads((world.tmp / "records" / "net2.json").read_text())
    assert (net1["deviceID"], net2["deviceID"]) == ("0000:03:00.2", "0000:03:00.3")
    handed = net1["runtimeConfig"]["CNIDeviceInfoFile"]
    with open(handed) as f:
        assert json.load(f) == dp_info
    status = {e["interface"]: e for e in _status(world, "ns1", "dp")}
    assert status["net1"]["device-info"] == dp_info
    assert "device-info" not in status["net2"]  # its device plugin wrote no info
    engine.delete(conf, world.store, req)
    assert not os.path.exists(handed)
    assert links_in(netns) == ["lo"]


def test_checkpoint_shapes_and_missing_file() -> None:
    import tempfile

    from multihome.attach import devices

    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump({"Data": {"PodDeviceEntries": [
            {"PodUID": "u1", "ResourceName": "r/a", "DeviceIDs": ["d1", "d2"]},  # before 1.20
            {"PodUID": "u1", "ResourceName": "r/b", "DeviceIDs": {"1": ["d4"], "0": ["d3"]}},
        ]}}, f)
        f.flush()
        assert devices.allocated(f.name, "u1") == {"r/a": ["d1", "d2"], "r/b": ["d3", "d4"]}
        assert devices.allocated(f.name, "u2") == {}
    assert devices.allocated("/nonexistent/checkpoint", "u1") == {}


def test_a_requested_mac_reaches_a_plugin_without_the_capability_as_multus_does(
        world: World, netns: Netns) -> None:
    # Multus refuses nothing here: it hands the MAC over as CNI_ARGS MAC= as well, and
    # the bridge plugin (like the reference one) reads it from there
    world.bridge_nad("ns1", "nocap")
    pod = world.pod("ns1", "p1", json.dumps([{"name": "nocap", "mac": "02:aa:bb:cc:dd:01"}]))
    engine.add(world.conf(), world.store, world.request(netns, pod))
    mac = netns.run("cat", "/sys/class/net/net1/address").stdout.strip()
    assert mac == "02:aa:bb:cc:dd:01"
    assert _status(world, "ns1", "p1")[1]["mac"] == "02:aa:bb:cc:dd:01"
    engine.delete(world.conf(), world.store, world.request(netns, pod))
