"""host-local through the skel: allocation order, exhaustion, requested IPs, v4+v6,
routes/DNS, the on-disk layout, DEL/CHECK/GC/STATUS and concurrent allocation."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from multihome.cni import skel
from multihome.ipam import host_local


def run(command: str, conf: dict[str, Any], cid: str = "c1", ifname: str = "eth0",
        args: str = "") -> tuple[int, Any]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/var/run/netns/none",
           "CNI_IFNAME": ifname, "CNI_PATH": "/usr/lib/cni"}
    if args:
        env["CNI_ARGS"] = args
    rc, out = skel.dispatch(host_local, env, json.dumps(conf).encode())
    return rc, json.loads(out) if out else None


def make_conf(data_dir: Path, version: str = "1.0.0", name: str = "net1",
              **ipam: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": name, "type": "bridge",
            "ipam": {"type": "host-local", "dataDir": str(data_dir), **ipam}}


def addresses(result: dict[str, Any]) -> list[str]:
    return [ip["address"] for ip in result["ips"]]


def files(data_dir: Path, name: str = "net1") -> dict[str, str]:
    d = data_dir / name
    return {p.name: p.read_bytes().decode() for p in sorted(d.iterdir())}


def test_sequential_allocation_and_layout(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, subnet="10.1.2.0/24")
    rc, res = run("ADD", conf, "c1")
    assert rc == 0
    assert res["ips"] == [{"address": "10.1.2.2/24", "gateway": "10.1.2.1"}]
    assert "interface" not in res["ips"][0]
    rc, res = run("ADD", conf, "c2", "net1")
    assert addresses(res) == ["10.1.2.3/24"]
    assert files(tmp_path) == {
        "10.1.2.2": "c1\r\neth0",
        "10.1.2.3": "c2\r\nnet1",
        "last_reserved_ip.0": "10.1.2.3",
        "lock": "",
    }


def test_round_robin_does_not_reuse_freed_address(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, subnet="10.1.2.0/29")  # .2 .. .6
    for cid in ("a", "b", "c"):
        assert run("ADD", conf, cid)[0] == 0
    assert run("DEL", conf, "a") == (0, None)
    _, res = run("ADD", conf, "d")
    assert addresses(res) == ["10.1.2.5/29"]  # after last_reserved .4, not the freed .2


def test_exhaustion_names_the_range(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, subnet="10.1.2.0/29")
    for i in range(5):
        assert run("ADD", conf, f"c{i}")[0] == 0
    rc, err = run("ADD", conf, "c9")
    assert rc == 1
    assert err["msg"] == "no IP addresses available in range set 10.1.2.0/29"
    assert err["code"] == 999  # same as the reference
    assert "10.1.2.1" not in files(tmp_path)  # the gateway was never handed out


def test_exhaustion_with_window_names_window(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, subnet="10.1.0.0/16", rangeStart="10.1.5.1",
                     rangeEnd="10.1.5.2")
    assert run("ADD", conf, "a")[0] == 0
    assert run("ADD", conf, "b")[0] == 0
    rc, err = run("ADD", conf, "c")
    assert rc == 1
    assert err["msg"] == "no IP addresses available in range set 10.1.0.0/16 (10.1.5.1-10.1.5.2)"


def test_dual_stack_and_routes_and_resolv_conf(tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\n; other comment\nnameserver 10.0.0.53\nnameserver fd00::53\n"
                      "domain example.org\nsearch a.example b.example\noptions ndots:2 rotate\n"
                      "nameserver\n")
    conf = make_conf(tmp_path, ranges=[[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00:1::/64"}]],
                     routes=[{"dst": "0.0.0.0/0"}, {"dst": "fd00:9::/64", "gw": "fd00:1::9"}],
                     resolvConf=str(resolv))
    rc, res = run("ADD", conf)
    assert rc == 0, res
    assert res["ips"] == [{"address": "10.1.2.2/24", "gateway": "10.1.2.1"},
                          {"address": "fd00:1::2/64", "gateway": "fd00:1::1"}]
    assert res["routes"] == [{"dst": "0.0.0.0/0"}, {"dst": "fd00:9::/64", "gw": "fd00:1::9"}]
    assert res["dns"] == {"nameservers": ["10.0.0.53", "fd00::53"], "domain": "example.org",
                          "search": ["a.example", "b.example"], "options": ["ndots:2", "rotate"]}
    assert sorted(files(tmp_path)) == ["10.1.2.2", "fd00:1::2", "last_reserved_ip.0",
                                       "last_reserved_ip.1", "lock"]


def test_old_result_versions(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, "0.3.1", ranges=[[{"subnet": "10.1.2.0/24"}],
                                                 [{"subnet": "fd00:1::/64"}]])
    _, res = run("ADD", conf)
    assert res["ips"][0] == {"version": "4", "address": "10.1.2.2/24", "gateway": "10.1.2.1"}
    conf = make_conf(tmp_path, "0.2.0", name="net2", subnet="10.1.3.0/24",
                     routes=[{"dst": "0.0.0.0/0"}])
    _, res = run("ADD", conf)
    assert res["ip4"] == {"ip": "10.1.3.2/24", "gateway": "10.1.3.1",
                          "routes": [{"dst": "0.0.0.0/0"}]}
    conf = make_conf(tmp_path, "0.2.0", name="net3", ranges=[[{"subnet": "10.1.4.0/24"}],
                                                              [{"subnet": "10.1.5.0/24"}]])
    rc, err = run("ADD", conf)
    assert (rc, err["code"]) == (1, 7)
    assert "more than 1 address per family" in err["msg"]


def test_multiple_ranges_in_a_set_continue_in_next_range(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, ranges=[[{"subnet": "10.1.0.0/30"}, {"subnet": "10.2.0.0/30"}]])
    assert addresses(run("ADD", conf, "a")[1]) == ["10.1.0.2/30"]
    _, res = run("ADD", conf, "b")
    assert res["ips"] == [{"address": "10.2.0.2/30", "gateway": "10.2.0.1"}]
    assert run("ADD", conf, "c")[0] == 1


@pytest.mark.parametrize("where", ["cni_args", "args", "runtime"])
def test_requested_ip(tmp_path: Path, where: str) -> None:
    conf = make_conf(tmp_path, ranges=[[{"subnet": "10.1.2.0/24"}], [{"subnet": "fd00:1::/64"}]])
    args = ""
    if where == "cni_args":
        args = "IgnoreUnknown=1;IP=10.1.2.77;K8S_POD_NAME=p"
    elif where == "args":
        conf["args"] = {"cni": {"ips": ["10.1.2.77", "fd00:1::77"]}}
    else:
        conf["runtimeConfig"] = {"ips": ["10.1.2.77/24", "fd00:1::77/64"]}
    rc, res = run("ADD", conf, "a", args=args)
    assert rc == 0, res
    want_v6 = "fd00:1::2/64" if where == "cni_args" else "fd00:1::77/64"
    assert addresses(res) == ["10.1.2.77/24", want_v6]
    assert files(tmp_path)["last_reserved_ip.0"] == "10.1.2.77"
    # Next dynamic allocation follows the requested one (reference behaviour).
    conf.pop("args", None)
    conf.pop("runtimeConfig", None)
    assert addresses(run("ADD", conf, "b")[1])[0] == "10.1.2.78/24"


def test_requested_ip_errors(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, subnet="10.1.2.0/24")
    conf["args"] = {"cni": {"ips": ["10.1.2.9"]}}
    assert run("ADD", conf, "a")[0] == 0
    rc, err = run("ADD", conf, "b")
    assert rc == 1
    assert err["msg"].startswith("requested IP address 10.1.2.9 is not available in range set "
                                 "10.1.2.0/24")
    assert "held by container a eth0" in err["msg"]
    conf["args"] = {"cni": {"ips": ["10.1.2.1"]}}
    rc, err = run("ADD", conf, "b")
    assert (rc, err["code"]) == (1, 7)
    assert "gateway" in err["msg"]
    conf["args"] = {"cni": {"ips": ["10.9.9.9"]}}
    rc, err = run("ADD", conf, "b")
    assert (rc, err["code"]) == (1, 7)
    assert "not inside any range set" in err["msg"] and "10.9.9.9" in err["msg"]
    conf["args"] = {"cni": {"ips": ["nonsense"]}}
    rc, err = run("ADD", conf, "b")
    assert (rc, err["code"]) == (1, 7)
    assert "args.cni 'ips' entry 'nonsense'" in err["msg"]
    # Nothing of "b" was left behind by the failures.
    assert sorted(f for f in files(tmp_path) if f[0].isdigit() and "." in f) == ["10.1.2.9"]


def test_failure_in_second_set_rolls_back_first(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, ranges=[[{"subnet": "10.1.2.0/24"}], [{"subnet": "10.3.0.0/30"}]])
    assert run("ADD", conf, "a")[0] == 0  # takes 10.3.0.2, the only v4 address of set 1
    conf["cniVersion"] = "1.0.0"
    rc, err = run("ADD", conf, "b")
    assert rc == 1 and "10.3.0.0/30" in err["msg"]
    assert [f for f in files(tmp_path) if f.startswith("10.")] == ["10.1.2.2", "10.3.0.2"]


def test_duplicate_add_is_refused(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, subnet="10.1.2.0/24")
    assert run("ADD", conf, "a")[0] == 0
    rc, err = run("ADD", conf, "a")
    assert rc == 1 and "duplicate allocation" in err["msg"]
    # Another interface of the same container is a different attachment.
    assert addresses(run("ADD", conf, "a", "net1")[1]) == ["10.1.2.3/24"]


def test_del_is_idempotent_and_per_ifname(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, subnet="10.1.2.0/24")
    run("ADD", conf, "a", "eth0")
    run("ADD", conf, "a", "net1")
    assert run("DEL", conf, "a", "eth0") == (0, None)
    assert run("DEL", conf, "a", "eth0") == (0, None)
    assert [f for f in files(tmp_path) if f.startswith("10.")] == ["10.1.2.3"]
    # DEL with a config whose ranges are now broken still releases (only dataDir matters).
    broken = make_conf(tmp_path, subnet="not-a-subnet")
    assert run("DEL", broken, "a", "net1") == (0, None)
    assert [f for f in files(tmp_path) if f.startswith("10.")] == []
    # DEL of a network that never allocated anything does not create its directory.
    assert run("DEL", make_conf(tmp_path, name="never"), "a") == (0, None)
    assert not (tmp_path / "never").exists()


def test_old_format_files_are_released_and_found(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, subnet="10.1.2.0/24")
    d = tmp_path / "net1"
    d.mkdir()
    (d / "10.1.2.50").write_text("oldc")
    (d / "10.1.2.51").write_text("other\n")
    assert run("CHECK", conf, "oldc", "eth0") == (0, None)
    _, res = run("ADD", conf, "new")
    assert addresses(res) == ["10.1.2.2/24"]
    assert run("DEL", conf, "oldc", "eth0") == (0, None)
    assert sorted(f for f in files(tmp_path) if f.startswith("10.")) == ["10.1.2.2", "10.1.2.51"]


def test_check(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, subnet="10.1.2.0/24")
    rc, err = run("CHECK", conf, "a")
    assert rc == 1 and "no address is allocated to container a" in err["msg"]
    _, res = run("ADD", conf, "a")
    assert run("CHECK", conf, "a") == (0, None)
    conf["prevResult"] = res
    assert run("CHECK", conf, "a") == (0, None)
    conf["prevResult"] = {"cniVersion": "1.0.0", "ips": [{"address": "10.1.2.99/24"}]}
    rc, err = run("CHECK", conf, "a")
    assert rc == 1 and "10.1.2.99" in err["msg"]


def test_gc_frees_only_invalid_attachments(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, "1.1.0", ranges=[[{"subnet": "10.1.2.0/24"}],
                                                 [{"subnet": "fd00:1::/64"}]])
    for cid, ifname in (("keep", "eth0"), ("keep", "net1"), ("gone", "eth0"), ("x", "net1")):
        assert run("ADD", conf, cid, ifname)[0] == 0
    d = tmp_path / "net1"
    (d / "10.1.2.200").write_text("keep")       # old format, container still alive
    (d / "10.1.2.201").write_text("dead")       # old format, container gone
    gc_conf = dict(conf)
    gc_conf["cni.dev/valid-attachments"] = [{"containerID": "keep", "ifname": "eth0"},
                                            {"containerID": "x", "ifname": "eth0"}]
    assert run("GC", gc_conf) == (0, None)
    left = {k: v for k, v in files(tmp_path).items() if k[0] in "1f" and k != "lock"}
    assert left == {"10.1.2.2": "keep\r\neth0", "fd00:1::2": "keep\r\neth0",
                    "10.1.2.200": "keep"}
    # The older key works too, and an empty list frees everything.
    gc_conf = dict(conf)
    gc_conf["cni.dev/attachments"] = []
    assert run("GC", gc_conf) == (0, None)
    assert sorted(files(tmp_path)) == ["last_reserved_ip.0", "last_reserved_ip.1", "lock"]


def test_gc_without_list_frees_nothing_and_validates(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, "1.1.0", subnet="10.1.2.0/24")
    run("ADD", conf, "a")
    assert run("GC", conf) == (0, None)
    assert "10.1.2.2" in files(tmp_path)
    conf["cni.dev/valid-attachments"] = [{"containerID": 5}]
    rc, err = run("GC", conf)
    assert (rc, err["code"]) == (1, 7)
    assert "cni.dev/valid-attachments" in err["msg"]


def test_gc_needs_1_1_0(tmp_path: Path) -> None:
    rc, err = run("GC", make_conf(tmp_path, "1.0.0", subnet="10.1.2.0/24"))
    assert (rc, err["code"]) == (1, 1)


def test_status(tmp_path: Path) -> None:
    conf = make_conf(tmp_path / "sub", "1.1.0", subnet="10.1.2.0/24")
    assert run("STATUS", conf) == (0, None)
    assert (tmp_path / "sub").is_dir()
    blocker = tmp_path / "file"
    blocker.write_text("")
    rc, err = run("STATUS", make_conf(blocker / "x", "1.1.0", subnet="10.1.2.0/24"))
    assert (rc, err["code"]) == (1, 50)
    rc, err = run("STATUS", make_conf(tmp_path, "1.1.0"))
    assert (rc, err["code"]) == (1, 7)


@pytest.mark.parametrize(
    ("ipam", "fragment"),
    [
        ({}, "no IP ranges"),
        ({"ranges": []}, "no IP ranges"),
        ({"ranges": [[]]}, "ipam 'ranges' set 0 is empty"),
        ({"ranges": {"subnet": "10.0.0.0/24"}}, "'ranges' must be a list"),
        ({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/16"}]]},
         "range set 0 (10.0.0.0/24) overlaps with range set 1 (10.0.0.0/16)"),
        ({"subnet": "10.0.0.0/24", "routes": [{"gw": "10.0.0.1"}]}, "needs 'dst'"),
        ({"subnet": "10.0.0.0/24", "routes": [{"dst": "10.0.0.0/8", "gw": "x"}]}, "'gw'"),
        ({"subnet": "10.0.0.0/24", "dataDir": 3}, "ipam 'dataDir' must be a string"),
        ({"subnet": "10.0.0.0/24", "resolvConf": "/nonexistent/resolv"}, "resolvConf"),
    ],
)
def test_config_errors(tmp_path: Path, ipam: dict[str, Any], fragment: str) -> None:
    conf = {"cniVersion": "1.0.0", "name": "n", "type": "x",
            "ipam": {"type": "host-local", "dataDir": str(tmp_path), **ipam}}
    rc, err = run("ADD", conf)
    assert (rc, err["code"]) == (1, 7), err
    assert fragment in err["msg"]


def test_missing_ipam_key(tmp_path: Path) -> None:
    rc, err = run("ADD", {"cniVersion": "1.0.0", "name": "n", "type": "x"})
    assert (rc, err["code"]) == (1, 7)
    assert "'ipam'" in err["msg"]


def test_runtime_ip_ranges_come_first(tmp_path: Path) -> None:
    conf = make_conf(tmp_path, "0.4.0", subnet="10.1.2.0/24")
    conf["runtimeConfig"] = {"ipRanges": [[{"subnet": "10.9.0.0/24"}]]}
    _, res = run("ADD", conf)
    assert addresses(res) == ["10.9.0.2/24", "10.1.2.2/24"]
    assert files(tmp_path)["last_reserved_ip.0"] == "10.9.0.2"


def _allocate_one(args: tuple[str, str]) -> tuple[int, str]:
    data_dir, cid = args
    rc, res = run("ADD", make_conf(Path(data_dir), subnet="10.5.0.0/24"), cid)
    return rc, res["ips"][0]["address"] if rc == 0 else json.dumps(res)


def test_concurrent_allocation_from_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        results = pool.map(_allocate_one, [(str(tmp_path), f"c{i}") for i in range(32)])
    assert all(rc == 0 for rc, _ in results), results
    got = [addr for _, addr in results]
    assert len(set(got)) == 32
    ip_files = [f for f in os.listdir(tmp_path / "net1") if f.startswith("10.")]
    assert len(ip_files) == 32


def test_concurrent_allocation_from_threads(tmp_path: Path) -> None:
    """The daemon runs plugins in-process: flock on separate opens must serialize threads."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(_allocate_one, [(str(tmp_path), f"t{i}") for i in range(32)]))
    assert all(rc == 0 for rc, _ in results), results
    assert len({addr for _, addr in results}) == 32


@pytest.mark.parametrize("key, value", [("dataDir", "/etc"), ("dataDir", "/root/x"),
                                        ("resolvConf", "/etc/shadow")])
def test_host_local_paths_outside_the_nodes_roots_are_refused(tmp_path: Path, key: str,
                                                              value: str) -> None:
    conf = make_conf(tmp_path, subnet="10.9.0.0/24", **{key: value})
    rc, out = run("ADD", conf)
    assert rc != 0 and out["code"] == 7
    assert key in out["msg"] and "MULTIHOME_CONFIG_PATH_ROOTS" in out["msg"]
    assert not os.path.exists("/etc/net1") and not os.path.exists("/root/x")


def test_a_fifo_or_directory_in_the_data_dir_is_skipped_not_waited_on(tmp_path: Path) -> None:
    # every ADD and DEL reads all address files: one that would block a reader (a FIFO
    # someone left there) must not hang the daemon, nor a directory break it
    (tmp_path / "net1").mkdir()
    os.mkfifo(tmp_path / "net1" / "10.1.2.2")
    (tmp_path / "net1" / "10.1.2.3").mkdir()
    os.mkfifo(tmp_path / "net1" / "last_reserved_ip.0")
    conf = make_conf(tmp_path, subnet="10.1.2.0/24")
    rc, res = run("ADD", conf, "c1")
    assert rc == 0 and addresses(res) == ["10.1.2.4/24"]  # .2 and .3 are taken names
    assert run("DEL", conf, "c1")[0] == 0
    assert "10.1.2.4" not in os.listdir(tmp_path / "net1")
    os.unlink(tmp_path / "net1" / "last_reserved_ip.0")
