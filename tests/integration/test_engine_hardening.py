"""The engine when configs are hostile, calls repeat, caches or the store are damaged."""


from __future__ import annotations

import json
import os
import shutil
import stat
import threading
from pathlib import Path
from typing import Any

import pytest

from multihome import engine_plugin
from multihome.attach import engine
from multihome.attach.nad import NODE_SETTINGS
from multihome.attach.plan import PodRef
from multihome.cni.errors import CNIError, InvalidConfig, InvalidEnvironment, UnknownContainer
from multihome.cni.skel import dispatch
from support.engine_world import World, links_in
from support.netns import Netns

pytestmark = pytest.mark.netns


def _bounded(fn: Any, timeout: float = 60) -> Any:
    """Run `fn` in a thread; fail (instead of hanging the suite) when it does not return."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(("ok", fn()))
        except BaseException as e:  # handed to the test thread
            box.append(("err", e))

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(timeout)
    assert box, f"no answer within {timeout} s: deadlocked"
    kind, value = box[0]
    if kind == "err":
        raise value
    return value


def _plugin(world: World, netns: Netns, command: str, cid: str, pod: PodRef | None,
            **conf_keys: Any) -> tuple[int, dict[str, Any] | None]:
    """The engine as the `multihome` plugin type, with the store named in its config."""

    conf = dict(world.conf().raw, store=str(world.tmp / "s.db"), cniVersion="1.1.0",
                **conf_keys)
    args = f"K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name}" if pod else ""
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns.path,
           "CNI_IFNAME": "eth0" if command != "GC" else "", "CNI_PATH": world.bin_dir,
           "CNI_ARGS": args}
    rc, out = dispatch(engine_plugin, env, json.dumps(conf).encode())  # type: ignore[arg-type]
    return rc, json.loads(out) if out else None


def _break_store(world: World, how: str) -> None:
    """Make the store file garbage, or a directory: no open_store of it can read it."""
    world.store.close()
    db = world.tmp / "s.db"
    for extra in (db.with_name("s.db-wal"), db.with_name("s.db-shm")):
        extra.unlink(missing_ok=True)
    if how == "corrupt":
        db.write_bytes(b"this is not a database " * 400)
    else:
        db.unlink()
        db.mkdir()


def test_nested_engine_nad_is_refused_and_never_starves_the_pool(world: World,
                                                                 netns: Netns) -> None:
    inner_bridges = [world.bridge(), world.bridge()]
    world.nad("ns1", "nested", {
        "cniVersion": "1.0.0", "type": "multihome",
        "delegates": [{"cniVersion": "1.0.0", "name": f"in{i}", "type": "bridge",
                       "bridge": br} for i, br in enumerate(inner_bridges)]})
    pod = world.pod("ns1", "nest", ", ".join(["nested"] * 6))
    with pytest.raises(InvalidConfig, match=r"type 'multihome' .* is not supported") as err:
        _bounded(lambda: engine.add(world.conf(), world.store, world.request(netns, pod)))
    assert err.value.code == 7 and "ns1/nested" in err.value.msg
    assert links_in(netns) == ["lo"]
    assert engine.list_records(world.conf()) == []
    # the engine still serves a pod of many networks
    for i in range(6):
        world.bridge_nad("ns1", f"plain{i}")
    ok = world.pod("ns1", "many", ", ".join(f"plain{i}" for i in range(6)))
    _bounded(lambda: engine.add(world.conf(), world.store, world.request(netns, ok)))
    assert len(links_in(netns)) == 8
    engine.delete(world.conf(), world.store, world.request(netns, ok))


@pytest.mark.parametrize("key", ["logFile", "cniDir", "store", "socketPath", "kubeconfig",
                                 "readinessindicatorfile", "binDir", "confDir"])
def test_node_settings_in_a_nad_are_refused_and_nothing_is_written(world: World,
                                                                   netns: Netns,
                                                                   key: str) -> None:
    assert key in NODE_SETTINGS
    target = world.tmp / "elsewhere" / "written-by-nad"
    world.nad("ns1", "pathy", {"cniVersion": "1.0.0", "type": "bridge",
                               "bridge": world.bridge(), key: str(target)})
    pod = world.pod("ns1", "pp", "pathy")
    rc, err = _plugin(world, netns, "ADD", "cid-pathy", pod)
    assert rc == 1 and err is not None
    assert err["code"] == 7 and f"key '{key}' is a node setting" in err["msg"]
    assert not (world.tmp / "elsewhere").exists()
    assert links_in(netns) == ["lo"]


def test_duplicate_add_keeps_the_existing_attachment(world: World, netns: Netns) -> None:
    br = world.bridge_nad("ns1", "dup", "10.61.20.0/24")
    pod = world.pod("ns1", "dp", "dup")
    conf, req = world.conf(), world.request(netns, pod)
    first = engine.add(conf, world.store, req)
    before = set(links_in(netns))
    again = engine.add(conf, world.store, req)  # a runtime retrying after a lost reply
    assert again.result.to_dict() == first.result.to_dict()
    assert set(links_in(netns)) == before == {"lo", "eth0", "net1"}
    other = engine.PodRequest(req.container_id, req.netns, pod, "eth1")
    with pytest.raises(InvalidEnvironment, match="already has multihome attachments"):
        engine.add(conf, world.store, other)
    assert set(links_in(netns)) == before
    record = engine.load_record(conf, req.container_id)
    assert record is not None and [a.ifname for a in record.attachments] == ["eth0", "net1"]
    assert len(world.ipam_allocations()) == 2
    engine.delete(conf, world.store, req)
    assert links_in(netns) == ["lo"] and world.bridge_ports(br) == []
    assert world.ipam_allocations() == []


def test_add_over_an_incomplete_record_is_refused_untouched(world: World,
                                                            netns: Netns) -> None:
    pod = world.pod("ns1", "inc")
    conf, req = world.conf(), world.request(netns, pod)
    engine.add(conf, world.store, req)
    shutil.rmtree(world.tmp / "cache" / "results")  # as if the ADD had not finished
    with pytest.raises(InvalidEnvironment, match="DEL it before adding it again"):
        engine.add(conf, world.store, req)
    assert "eth0" in links_in(netns)
    engine.delete(conf, world.store, req)
    assert links_in(netns) == ["lo"]


@pytest.mark.parametrize("how", ["corrupt", "unreadable"])
def test_del_and_gc_work_from_the_caches_with_a_broken_store(world: World,
                                                             netns_factory: Any,
                                                             how: str) -> None:
    br = world.bridge_nad("ns1", "cs", "10.61.21.0/24")
    pods = {name: (netns_factory(), world.pod("ns1", name, "cs")) for name in ("a", "b", "c")}
    for name, (ns, pod) in pods.items():
        rc, out = _plugin(world, ns, "ADD", f"cid-{name}", pod)
        assert rc == 0, out
    _break_store(world, how)
    rc, out = _plugin(world, pods["a"][0], "DEL", "cid-a", pods["a"][1])
    assert rc == 0, out
    assert links_in(pods["a"][0]) == ["lo"]
    # b: the engine's record is lost too; the plugin result caches still name its networks
    os.unlink(world.tmp / "cache" / "multihome" / "cid-b.json")
    rc, out = _plugin(world, pods["b"][0], "DEL", "cid-b", pods["b"][1])
    assert rc == 0, out
    assert links_in(pods["b"][0]) == ["lo"]
    # c: GC with nothing valid
    rc, out = _plugin(world, pods["c"][0], "GC", "", None, **{"cni.dev/valid-attachments": []})
    assert rc == 0, out
    assert links_in(pods["c"][0]) == ["lo"]
    assert world.bridge_ports(br) == [] and world.ipam_allocations() == []


def test_gc_reclaims_secondaries_whose_engine_record_was_lost(world: World,
                                                              netns: Netns) -> None:
    br = world.bridge_nad("ns1", "orphan", "10.61.22.0/24")
    pod = world.pod("ns1", "op", "orphan, orphan")
    conf, req = world.conf(), world.request(netns, pod)
    engine.add(conf, world.store, req)
    os.unlink(world.tmp / "cache" / "multihome" / f"{req.container_id}.json")
    engine.gc(conf, world.store, [])
    assert links_in(netns) == ["lo"]
    assert world.bridge_ports(br) == [] and world.bridge_ports(world.cluster_bridge) == []
    assert world.ipam_allocations() == []
    assert not list((world.tmp / "cache" / "results").iterdir())


def test_del_after_add_failed_for_a_missing_executable(world: World, netns: Netns) -> None:
    world.nad("ns1", "nowhere", {"cniVersion": "1.0.0", "type": "mh-not-installed"})
    pod = world.pod("ns1", "np", "nowhere")
    conf, req = world.conf(), world.request(netns, pod)
    with pytest.raises(InvalidConfig, match="failed to find plugin 'mh-not-installed'"):
        engine.add(conf, world.store, req)
    assert links_in(netns) == ["lo"]
    engine.delete(conf, world.store, req)  # what the runtime does next
    engine.delete(conf, None, req)  # also with nothing but the caches
    assert world.ipam_allocations() == []


def _delegates_conf(world: World, second_bridge: str) -> Any:
    first = world.conf().raw["delegates"][0]
    return world.conf(delegates=[first, {"cniVersion": "1.0.0", "name": "second",
                                         "type": "bridge", "bridge": second_bridge}])


@pytest.mark.parametrize("pod", [None, PodRef("ns1", "not-in-store")],
                         ids=["no-pod-args", "pod-unknown"])
def test_delegates_mode_attaches_every_delegate(world: World, netns: Netns,
                                                pod: PodRef | None) -> None:
    conf = _delegates_conf(world, world.bridge())
    req = world.request(netns, pod)
    out = engine.add(conf, world.store, req)
    assert [(a.network, a.ifname) for a in out.attachments] == [("cluster", "eth0"),
                                                                ("second", "net1")]
    assert set(links_in(netns)) == {"lo", "eth0", "net1"}
    engine.delete(conf, world.store, req)
    assert links_in(netns) == ["lo"]


def test_cluster_network_mode_still_needs_a_known_pod(world: World, netns: Netns,
                                                      tmp_path: Path) -> None:
    default = tmp_path / "default.conflist"
    default.write_text(json.dumps(world.conf().raw["delegates"][0]))
    conf = world.conf(clusterNetwork=str(default), delegates=None)
    with pytest.raises(UnknownContainer, match="not found in the store"):
        engine.add(conf, world.store, world.request(netns, PodRef("ns1", "ghost")))
    assert links_in(netns) == ["lo"]


def test_config_nested_beyond_any_cni_config_is_a_decoding_error(world: World,
                                                                 netns: Netns) -> None:
    for i, depth in enumerate((100, 100000)):
        world.nad("ns1", f"deep{i}", '{"cniVersion": "1.0.0", "type": "bridge", "x": ' +
                  "[" * depth + "]" * depth + "}")
        pod = world.pod("ns1", f"deep{i}", f"deep{i}")
        with pytest.raises(CNIError, match="deeper than") as err:
            engine.add(world.conf(), world.store, world.request(netns, pod))
        assert err.value.code in (6, 7)
    assert links_in(netns) == ["lo"]


def test_caches_are_root_only(world: World, netns: Netns) -> None:
    (world.tmp / "cache").mkdir(mode=0o755)  # even a looser dir made by someone else
    world.bridge_nad("ns1", "priv", "10.61.23.0/24")
    pod = world.pod("ns1", "pr", "priv")
    conf, req = world.conf(), world.request(netns, pod)
    engine.add(conf, world.store, req)
    try:
        for sub in ("multihome", "results"):
            directory = world.tmp / "cache" / sub
            assert stat.S_IMODE(directory.stat().st_mode) == 0o700
            files = list(directory.iterdir())
            assert files and all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    finally:
        engine.delete(conf, world.store, req)


def test_gc_leaves_an_engine_attachment_in_a_shared_cache_dir_alone(world: World) -> None:
    """cniDir shared with the runtime's own cache: the runtime's entry for the engine
    itself is not a delegate; deleting it from the engine would run the engine again."""
    from multihome.cni import cache

    conf = world.conf()
    engine_conf = dict(conf.raw, name="multihome-cni-network", cniVersion="1.0.0")
    cache.save(conf.cni_dir, cache.CacheEntry(
        "multihome-cni-network", "cid-runtime", "eth0", json.dumps(engine_conf).encode(),
        result={"cniVersion": "1.0.0"}))
    _bounded(lambda: engine.gc(conf, world.store, []))
    assert cache.load(conf.cni_dir, "multihome-cni-network", "cid-runtime", "eth0")
