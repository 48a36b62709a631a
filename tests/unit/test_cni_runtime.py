"""The libcni network-list API over a tiny exec'ed test plugin (no kernel needed)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multihome.cni import cache
from multihome.cni.errors import (
    CNIError,
    DecodingFailure,
    IncompatibleVersion,
    InvalidConfig,
    InvalidEnvironment,
    TryAgainLater,
)
from multihome.cni.result import Result
from multihome.cni.runtime import (
    NetworkConfigList,
    RuntimeConf,
    add_network_list,
    build_plugin_conf,
    cached_result,
    check_network_list,
    del_network_list,
    gc_network_list,
    load_from_dir,
    parse_network_config,
    plugin_capabilities,
    status_network_list,
)

TEST_PLUGIN = '''#!{python}
import json, os, sys
cmd = os.environ.get("CNI_COMMAND", "")
typ = os.path.basename(sys.argv[0])
if cmd == "VERSION":
    print(json.dumps({{"cniVersion": "1.1.0", "supportedVersions": ["0.3.1", "0.4.0", "1.0.0",
                                                                    "1.1.0"]}}))
    sys.exit(0)
conf = json.load(sys.stdin)
with open(conf["log"], "a") as f:
    f.write(json.dumps({{"type": typ, "cmd": cmd, "conf": conf,
                        "env": {{k: v for k, v in os.environ.items() if k.startswith("CNI_")}}}})
            + "\\n")
if conf.get("failOn") == cmd:
    print(json.dumps({{"cniVersion": conf["cniVersion"], "code": 11,
                      "msg": typ + " refuses " + cmd}}))
    sys.exit(1)
if cmd == "ADD":
    res = conf.get("prevResult") or {{}}
    res["cniVersion"] = conf["cniVersion"]
    ifs = res.setdefault("interfaces", [])
    ifs.append({{"name": typ + "-" + os.environ["CNI_IFNAME"]}})
    if conf.get("ip"):
        ip = {{"address": conf["ip"], "interface": len(ifs) - 1}}
        if conf["cniVersion"] < "1.0.0":
            ip["version"] = "4"
        res.setdefault("ips", []).append(ip)
    print(json.dumps(res))
'''


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Any]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("tp-a", "tp-b"):
        exe = bin_dir / name
        exe.write_text(TEST_PLUGIN.format(python=sys.executable))
        exe.chmod(0o755)
    return {"bin": [str(bin_dir)], "log": tmp_path / "calls.log", "cache": str(tmp_path / "c")}


def calls(env: dict[str, Any]) -> list[dict[str, Any]]:
    path: Path = env["log"]
    if not path.exists():
        return []
    out = [json.loads(line) for line in path.read_text().splitlines()]
    path.unlink()
    return out


def netlist(env: dict[str, Any], version: str = "1.1.0", **top: Any) -> NetworkConfigList:
    log = str(env["log"])
    return parse_network_config({
        "cniVersion": version, "name": "testnet", **top,
        "plugins": [
            {"type": "tp-a", "ip": "10.5.0.2/24", "log": log},
            {"type": "tp-b", "log": log,
             "capabilities": {"mac": True, "portMappings": False},
             "runtimeConfig": {"keep": 1}},
        ],
    })


def rt(env: dict[str, Any], cid: str = "ctr1", ifname: str = "net1") -> RuntimeConf:
    return RuntimeConf(container_id=cid, netns="/var/run/netns/pod", ifname=ifname,
                       args=[("IgnoreUnknown", "1"), ("K8S_POD_NAME", "p")],
                       capability_args={"mac": "02:00:00:00:00:09", "portMappings": [{"a": 1}],
                                        "ips": ["10.5.0.9/24"]},
                       cache_dir=env["cache"])


# -- ADD / CHECK / DEL ------------------------------------------------------------

@pytest.mark.parametrize("version", ["0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_add_chains_injects_and_caches(env: dict[str, Any], version: str) -> None:
    net = netlist(env, version)
    result = add_network_list(net, rt(env), env["bin"])
    assert result.cni_version == version
    assert [i.name for i in result.interfaces] == ["tp-a-net1", "tp-b-net1"]
    assert [str(ip.address) for ip in result.ips] == ["10.5.0.2/24"]
    a, b = calls(env)
    assert (a["type"], a["cmd"], b["type"], b["cmd"]) == ("tp-a", "ADD", "tp-b", "ADD")
    for c in (a, b):
        assert c["conf"]["name"] == "testnet" and c["conf"]["cniVersion"] == version
        assert "capabilities" not in c["conf"]
        assert c["env"] == {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "ctr1",
                            "CNI_NETNS": "/var/run/netns/pod", "CNI_IFNAME": "net1",
                            "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=p",
                            "CNI_PATH": env["bin"][0]}
    assert "prevResult" not in a["conf"] and "runtimeConfig" not in a["conf"]
    assert b["conf"]["prevResult"]["interfaces"] == [{"name": "tp-a-net1"}]
    assert b["conf"]["prevResult"]["cniVersion"] == version
    # only the declared, true capability; the config's own runtimeConfig keys stay
    assert b["conf"]["runtimeConfig"] == {"keep": 1, "mac": "02:00:00:00:00:09"}
    entry = cache.load(env["cache"], "testnet", "ctr1", "net1")
    assert entry is not None and entry.config == net.raw
    assert entry.result == result.to_dict(version)
    assert entry.cni_args == [("IgnoreUnknown", "1"), ("K8S_POD_NAME", "p")]
    assert entry.capability_args["mac"] == "02:00:00:00:00:09"
    assert entry.netns == "/var/run/netns/pod"


def test_add_failure_names_the_plugin_keeps_code_and_caches_nothing(env: dict[str, Any]) -> None:
    net = netlist(env)
    net.plugins[1]["failOn"] = "ADD"
    with pytest.raises(TryAgainLater) as info:
        add_network_list(net, rt(env), env["bin"])
    assert info.value.code == 11
    assert "tp-b" in info.value.msg and "(add)" in info.value.msg
    assert cache.load(env["cache"], "testnet", "ctr1", "net1") is None


def test_add_missing_plugin(env: dict[str, Any]) -> None:
    net = parse_network_config({"cniVersion": "1.0.0", "name": "n", "type": "tp-none",
                                "log": str(env["log"])})
    with pytest.raises(InvalidConfig, match="tp-none"):
        add_network_list(net, rt(env), env["bin"])


@pytest.mark.parametrize(("cid", "ifname"), [("-bad", "eth0"), ("", "eth0"), ("ok", ""),
                                             ("ok", "a" * 16), ("ok", "a/b")])
def test_runtime_conf_is_validated(env: dict[str, Any], cid: str, ifname: str) -> None:
    with pytest.raises(InvalidEnvironment):
        add_network_list(netlist(env), rt(env, cid, ifname), env["bin"])
    assert calls(env) == []


def test_check_uses_the_cached_result(env: dict[str, Any]) -> None:
    net = netlist(env, "1.0.0")
    result = add_network_list(net, rt(env), env["bin"])
    calls(env)
    check_network_list(net, rt(env), env["bin"])
    a, b = calls(env)
    assert (a["cmd"], b["cmd"]) == ("CHECK", "CHECK")
    assert a["conf"]["prevResult"] == b["conf"]["prevResult"] == result.to_dict("1.0.0")
    net.plugins[0]["failOn"] = "CHECK"
    with pytest.raises(TryAgainLater, match="check"):
        check_network_list(net, rt(env), env["bin"])


def test_check_is_skipped_when_disabled_or_too_old(env: dict[str, Any]) -> None:
    for net in (netlist(env, "1.0.0", disableCheck=True), netlist(env, "0.3.1")):
        check_network_list(net, rt(env), env["bin"])
    assert calls(env) == []


def test_del_runs_in_reverse_with_cache_then_without(env: dict[str, Any]) -> None:
    net = netlist(env)
    result = add_network_list(net, rt(env), env["bin"])
    calls(env)
    del_network_list(net, rt(env), env["bin"])
    b, a = calls(env)
    assert (b["type"], a["type"]) == ("tp-b", "tp-a")
    assert a["cmd"] == b["cmd"] == "DEL"
    assert a["conf"]["prevResult"] == result.to_dict("1.1.0")
    assert b["conf"]["runtimeConfig"]["mac"] == "02:00:00:00:00:09"
    assert cache.load(env["cache"], "testnet", "ctr1", "net1") is None
    # again, with no cache and no netns: still calls every plugin and succeeds
    gone = rt(env)
    gone.netns = ""
    del_network_list(net, gone, env["bin"])
    b, a = calls(env)
    assert "prevResult" not in a["conf"] and a["env"]["CNI_NETNS"] == ""


def test_del_without_prev_result_below_040(env: dict[str, Any]) -> None:
    net = netlist(env, "0.3.1")
    add_network_list(net, rt(env), env["bin"])
    calls(env)
    del_network_list(net, rt(env), env["bin"])
    assert all("prevResult" not in c["conf"] for c in calls(env))
    assert cache.load(env["cache"], "testnet", "ctr1", "net1") is None


def test_del_tries_every_plugin_and_keeps_cache_on_failure(env: dict[str, Any]) -> None:
    net = netlist(env)
    add_network_list(net, rt(env), env["bin"])
    calls(env)
    net.plugins[1]["failOn"] = "DEL"
    with pytest.raises(TryAgainLater, match="delete"):
        del_network_list(net, rt(env), env["bin"])
    assert [c["type"] for c in calls(env)] == ["tp-b", "tp-a"]
    assert cache.load(env["cache"], "testnet", "ctr1", "net1") is not None
    net.plugins[1].pop("failOn")
    del_network_list(net, rt(env), env["bin"])
    assert cache.load(env["cache"], "testnet", "ctr1", "net1") is None


def test_del_survives_a_corrupt_cache(env: dict[str, Any]) -> None:
    path = Path(cache.cache_path(env["cache"], "testnet", "ctr1", "net1"))
    path.parent.mkdir(parents=True)
    path.write_text("{corrupt")
    del_network_list(netlist(env), rt(env), env["bin"])
    assert len(calls(env)) == 2 and not path.exists()
    with pytest.raises(DecodingFailure):
        path.write_text("{corrupt")
        cached_result(netlist(env), rt(env))


# -- GC / STATUS ---------------------------------------------------------------------

def test_gc_deletes_stale_attachments_then_gcs_each_plugin(env: dict[str, Any]) -> None:
    net = netlist(env)
    add_network_list(net, rt(env, "keep1"), env["bin"])
    add_network_list(net, rt(env, "stale2"), env["bin"])
    other = parse_network_config({"cniVersion": "1.1.0", "name": "othernet", "type": "tp-a",
                                  "log": str(env["log"])})
    add_network_list(other, rt(env, "stale3"), env["bin"])
    calls(env)
    valid = [{"containerID": "keep1", "ifname": "net1"}]
    gc_network_list(net, valid, env["bin"], cache_dir=env["cache"])
    got = calls(env)
    dels = [(c["type"], c["env"]["CNI_CONTAINERID"]) for c in got if c["cmd"] == "DEL"]
    assert dels == [("tp-b", "stale2"), ("tp-a", "stale2")]
    stale_del = next(c for c in got if c["cmd"] == "DEL")
    assert stale_del["env"]["CNI_NETNS"] == "/var/run/netns/pod"  # restored from the cache
    assert stale_del["env"]["CNI_ARGS"] == "IgnoreUnknown=1;K8S_POD_NAME=p"
    gcs = [c for c in got if c["cmd"] == "GC"]
    assert [c["type"] for c in gcs] == ["tp-a", "tp-b"]
    for c in gcs:
        assert c["conf"]["cni.dev/valid-attachments"] == valid
        assert c["conf"]["cni.dev/attachments"] == valid
        assert c["conf"]["name"] == "testnet" and "capabilities" not in c["conf"]
        assert c["env"]["CNI_CONTAINERID"] == "" and c["env"]["CNI_PATH"] == env["bin"][0]
    left = sorted((e.network_name, e.container_id) for e in cache.list_entries(env["cache"]))
    assert left == [("othernet", "stale3"), ("testnet", "keep1")]


def test_gc_disabled_does_nothing(env: dict[str, Any]) -> None:
    net = netlist(env, disableGC=True)
    add_network_list(net, rt(env, "stale"), env["bin"])
    calls(env)
    gc_network_list(net, [], env["bin"], cache_dir=env["cache"])
    assert calls(env) == []
    assert len(cache.list_entries(env["cache"])) == 1


def test_gc_before_110_only_deletes_stale(env: dict[str, Any]) -> None:
    net = netlist(env, "1.0.0")
    add_network_list(net, rt(env, "stale"), env["bin"])
    calls(env)
    gc_network_list(net, [], env["bin"], cache_dir=env["cache"])
    assert [c["cmd"] for c in calls(env)] == ["DEL", "DEL"]
    assert cache.list_entries(env["cache"]) == []


def test_gc_collects_errors(env: dict[str, Any]) -> None:
    net = netlist(env)
    net.plugins[0]["failOn"] = "GC"
    with pytest.raises(TryAgainLater, match="gc"):
        gc_network_list(net, [], env["bin"], cache_dir=env["cache"])
    assert [c["type"] for c in calls(env)] == ["tp-a", "tp-b"]  # tp-b still got its GC


def test_status(env: dict[str, Any]) -> None:
    status_network_list(netlist(env), env["bin"])
    got = calls(env)
    assert [(c["type"], c["cmd"]) for c in got] == [("tp-a", "STATUS"), ("tp-b", "STATUS")]
    status_network_list(netlist(env, "1.0.0"), env["bin"])
    assert calls(env) == []
    net = netlist(env)
    net.plugins[0]["failOn"] = "STATUS"
    with pytest.raises(TryAgainLater):
        status_network_list(net, env["bin"])
    assert len(calls(env)) == 1  # stops at the first plugin that is not ready


# -- parsing and building configs ------------------------------------------------

def test_single_conf_is_wrapped() -> None:
    raw = b'{"cniVersion":"0.3.1","name":"bridge-dev","type":"cnv-bridge","bridge":"dev-bridge"}'
    net = parse_network_config(raw)
    assert (net.name, net.cni_version, net.raw) == ("bridge-dev", "0.3.1", raw)
    assert net.plugins == [json.loads(raw)]
    assert not net.disable_check and not net.disable_gc
    assert parse_network_config(raw.decode()).plugins == net.plugins


def test_conflist_keys() -> None:
    net = parse_network_config({"cniVersion": "1.1.0", "name": "n", "disableCheck": "true",
                                "disableGC": True, "plugins": [{"type": "a"}, {"type": "b"}]})
    assert net.disable_check and net.disable_gc and [p["type"] for p in net.plugins] == ["a", "b"]
    assert json.loads(net.raw)["name"] == "n"


@pytest.mark.parametrize(("conf", "expected"), [
    ({"cniVersion": "0.4.0", "cniVersions": ["1.0.0", "0.3.1"]}, "1.0.0"),
    ({"cniVersions": ["0.3.1", "1.1.0", "7.0.0"]}, "1.1.0"),
    ({"cniVersion": "1.1.0", "cniVersions": ["0.4.0"]}, "1.1.0"),
    ({"cniVersion": "9.0.0", "cniVersions": ["1.0.0"]}, "1.0.0"),
    ({}, "0.1.0"),
])
def test_cni_versions_pick_highest_supported(conf: dict[str, Any], expected: str) -> None:
    net = parse_network_config({**conf, "name": "n", "plugins": [{"type": "a"}]})
    assert net.cni_version == expected


@pytest.mark.parametrize(("conf", "err", "text"), [
    ({"plugins": [{"type": "a"}]}, InvalidConfig, "name"),
    ({"name": "a b", "plugins": [{"type": "a"}]}, InvalidConfig, "name"),
    ({"name": "n", "plugins": []}, InvalidConfig, "empty"),
    ({"name": "n", "plugins": {}}, InvalidConfig, "list"),
    ({"name": "n", "plugins": [{"type": "a"}, {"x": 1}]}, InvalidConfig, "plugin 1"),
    ({"name": "n", "plugins": [{"type": ""}]}, InvalidConfig, "type"),
    ({"name": "n", "plugins": ["a"]}, InvalidConfig, "plugin 0"),
    ({"name": "n"}, InvalidConfig, "neither"),
    ({"name": "n", "type": "a", "capabilities": {"mac": "yes"}}, InvalidConfig, "capabilities"),
    ({"name": "n", "disableCheck": "maybe", "plugins": [{"type": "a"}]}, InvalidConfig,
     "disableCheck"),
    ({"name": "n", "disableGC": 1, "plugins": [{"type": "a"}]}, InvalidConfig, "disableGC"),
    ({"name": "n", "cniVersion": "1.0", "type": "a"}, InvalidConfig, "cniVersion"),
    ({"name": "n", "cniVersion": 1, "type": "a"}, InvalidConfig, "cniVersion"),
    ({"name": "n", "cniVersions": "1.0.0", "type": "a"}, InvalidConfig, "cniVersions"),
    ({"name": "n", "cniVersions": [1], "type": "a"}, InvalidConfig, "cniVersions"),
    ({"name": "n", "cniVersions": ["x.y"], "type": "a"}, InvalidConfig, "x.y"),
    ({"name": "n", "cniVersions": ["5.0.0"], "type": "a"}, IncompatibleVersion, "5.0.0"),
    ({"name": "n", "cniVersion": "5.0.0", "type": "a"}, IncompatibleVersion, "5.0.0"),
])
def test_parse_errors(conf: dict[str, Any], err: type[CNIError], text: str) -> None:
    with pytest.raises(err, match=text):
        parse_network_config(conf)


@pytest.mark.parametrize(("raw", "code"), [(b"{", 6), (b"[]", 7), (b"\xff", 6), (b"null", 7)])
def test_parse_bytes_errors(raw: bytes, code: int) -> None:
    with pytest.raises(CNIError) as info:
        parse_network_config(raw)
    assert info.value.code == code


def test_plugin_capabilities() -> None:
    net = parse_network_config({"name": "n", "cniVersion": "1.0.0", "plugins": [
        {"type": "a", "capabilities": {"ips": True, "mac": False}},
        {"type": "b", "capabilities": {"portMappings": True, "bandwidth": True}},
        {"type": "c"}]})
    assert plugin_capabilities(net) == {"ips", "portMappings", "bandwidth"}


def test_build_plugin_conf_capabilities() -> None:
    caps = ["portMappings", "ipRanges", "bandwidth", "dns", "ips", "mac", "infinibandGUID",
            "deviceID", "aliases", "cgroupPath", "io.kubernetes.cri.pod-annotations"]
    plugin = {"type": "x", "name": "ignored", "cniVersion": "0.1.0",
              "capabilities": {c: True for c in caps} | {"other": False},
              "prevResult": {"stale": 1}}
    net = parse_network_config({"name": "n", "cniVersion": "1.0.0", "plugins": [plugin]})
    args = {c: f"value-{c}" for c in caps} | {"other": 1, "undeclared": 2}
    r = RuntimeConf("c", "/ns", "eth0", capability_args=args)
    out = build_plugin_conf(net.plugins[0], net, None, r)
    assert out["runtimeConfig"] == {c: f"value-{c}" for c in caps}
    assert "capabilities" not in out and "prevResult" not in out
    assert (out["name"], out["cniVersion"]) == ("n", "1.0.0")
    assert "capabilities" in net.plugins[0]  # the list itself is not modified
    prev = Result.from_dict({"cniVersion": "0.3.1", "ips": [{"version": "4",
                                                             "address": "10.0.0.2/24"}]})
    out = build_plugin_conf(net.plugins[0], net, prev, None)
    assert out["prevResult"] == {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}],
                                 "dns": {}}
    assert "runtimeConfig" not in out


# -- conf dir ---------------------------------------------------------------------

def test_load_from_dir(tmp_path: Path) -> None:
    def write(fname: str, obj: Any) -> None:
        (tmp_path / fname).write_text(obj if isinstance(obj, str) else json.dumps(obj))

    write("10-a.conf", {"cniVersion": "1.0.0", "name": "alpha", "type": "from-conf"})
    write("20-a.conflist", {"cniVersion": "1.0.0", "name": "alpha",
                            "plugins": [{"type": "from-conflist"}]})
    write("05-broken.conf", "{nope")
    write("30-b.json", {"cniVersion": "1.0.0", "name": "beta", "type": "b"})
    write("40-single.conflist", {"cniVersion": "1.0.0", "name": "gamma", "type": "c"})
    write("zz.txt", {"cniVersion": "1.0.0", "name": "delta", "type": "d"})
    assert load_from_dir(str(tmp_path), "alpha").plugins[0]["type"] == "from-conflist"
    assert load_from_dir(str(tmp_path), "beta").plugins[0]["type"] == "b"
    assert load_from_dir(str(tmp_path)).plugins[0]["type"] == "from-conf"  # first valid file
    for missing in ("gamma", "delta", "nope"):
        with pytest.raises(InvalidConfig, match=missing) as info:
            load_from_dir(str(tmp_path), missing)
        assert "05-broken.conf" in info.value.details
    with pytest.raises(InvalidConfig, match="cannot read"):
        load_from_dir(str(tmp_path / "nodir"))


# -- fuzz: parsing never fails with anything but a CNI error ---------------------

_leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
_value = st.recursive(_leaf, lambda c: st.lists(c, max_size=3)
                      | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=8)
_plugin = st.fixed_dictionaries({}, optional={"type": st.sampled_from(["a", ""]) | _leaf,
                                              "capabilities": _value})
_conf = st.fixed_dictionaries({}, optional={
    "name": st.sampled_from(["n", "", "a b"]) | _leaf,
    "cniVersion": st.sampled_from(["1.0.0", "0.3.1", "1.0", "9.0.0", ""]) | _leaf,
    "cniVersions": st.lists(st.sampled_from(["1.1.0", "0.4.0", "x", "8.0.0"]) | _leaf,
                            max_size=3) | _leaf,
    "disableCheck": _leaf, "disableGC": _leaf, "type": _leaf,
    "plugins": st.lists(_plugin | _leaf, max_size=3) | _leaf,
})


@settings(max_examples=300, deadline=None)
@given(conf=_conf)
def test_fuzz_parse_network_config(conf: dict[str, Any]) -> None:
    try:
        net = parse_network_config(conf)
    except CNIError as e:
        assert e.code in (1, 6, 7) and e.msg
        return
    assert net.plugins and all(isinstance(p.get("type"), str) and p["type"]
                               for p in net.plugins)
