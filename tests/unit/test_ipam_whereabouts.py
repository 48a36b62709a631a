"""The cluster-wide IPAM (type whereabouts) through the skel, pools in a real SQLite store:
whereabouts' config keys as users write them, the IPPool layout whereabouts writes,
lowest-free allocation with excludes, idempotency, DEL, GC, overlapping ranges, slices."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multihome.ipam import whereabouts
from multihome.plugins.registry import DEFAULT_TYPES
from multihome.store.objects import IPPOOL, NODE_SLICE_POOL, OVERLAPPING_RESERVATION
from multihome.store.pools import ObjectPools
from multihome.store.sqlite import SQLiteStore
from support.wb import addresses, conf, pool_allocations, run


@pytest.fixture
def pools(tmp_path: Path) -> Iterator[ObjectPools]:
    store = SQLiteStore(tmp_path / "store.db")
    try:
        yield ObjectPools(store)
    finally:
        store.close()


def test_a_nad_written_for_whereabouts_allocates_lowest_free(pools: ObjectPools) -> None:
    c = conf(range="192.168.2.0/24", exclude=["192.168.2.0/30"], gateway="192.168.2.1")
    rc, res = run(pools, "ADD", c, "c1", pod=("ns1", "p1"))
    assert rc == 0, res
    assert res["ips"] == [{"address": "192.168.2.4/24", "gateway": "192.168.2.1"}]
    rc, res = run(pools, "ADD", c, "c2", pod=("ns1", "p2"))
    assert addresses(res) == ["192.168.2.5/24"]
    # whereabouts' own layout: pool named after the range, offsets from the network
    assert pool_allocations(pools, "192.168.2.0-24") == {
        "4": {"id": "c1", "podref": "ns1/p1", "ifname": "net1"},
        "5": {"id": "c2", "podref": "ns1/p2", "ifname": "net1"},
    }
    doc = pools.read(IPPOOL, "192.168.2.0-24")
    assert doc is not None and doc.spec["range"] == "192.168.2.0/24"
    assert pools.read(OVERLAPPING_RESERVATION, "192.168.2.4") is not None


def test_repeated_add_returns_the_held_address(pools: ObjectPools) -> None:
    c = conf(range="10.9.0.0/29")
    first = run(pools, "ADD", c, "c1")[1]
    again = run(pools, "ADD", c, "c1")[1]
    assert addresses(first) == addresses(again) == ["10.9.0.1/29"]
    assert list(pool_allocations(pools, "10.9.0.0-29")) == ["1"]


def test_del_frees_only_that_attachment_and_is_idempotent(pools: ObjectPools) -> None:
    c = conf(range="10.9.0.0/29")
    run(pools, "ADD", c, "c1", "net1")
    run(pools, "ADD", c, "c1", "net2")
    assert run(pools, "DEL", c, "c1", "net1") == (0, None)
    assert run(pools, "DEL", c, "c1", "net1") == (0, None)
    assert pool_allocations(pools, "10.9.0.0-29") == {
        "2": {"id": "c1", "podref": "default/p1", "ifname": "net2"}}
    assert pools.read(OVERLAPPING_RESERVATION, "10.9.0.1") is None
    # the freed address is the lowest free again
    assert addresses(run(pools, "ADD", c, "c3")[1]) == ["10.9.0.1/29"]


def test_range_forms_and_bounds(pools: ObjectPools) -> None:
    dashed = conf(range="10.20.0.10-10.20.0.11/24", network_name="dash")
    assert addresses(run(pools, "ADD", dashed, "a")[1]) == ["10.20.0.10/24"]
    assert addresses(run(pools, "ADD", dashed, "b")[1]) == ["10.20.0.11/24"]
    rc, err = run(pools, "ADD", dashed, "c")
    assert rc == 1 and "no free address" in err["msg"]
    keys = conf(range="10.21.0.0/24", range_start="10.21.0.100", range_end="10.21.0.200")
    assert addresses(run(pools, "ADD", keys, "a")[1]) == ["10.21.0.100/24"]
    host_bits = conf(range="10.22.0.50/24")  # whereabouts: start at the given address
    assert addresses(run(pools, "ADD", host_bits, "a")[1]) == ["10.22.0.50/24"]


def test_ip_ranges_give_one_address_per_range_v4_and_v6(pools: ObjectPools) -> None:
    c = conf(ipRanges=[{"range": "10.30.0.0/24", "exclude": ["10.30.0.1/32"]},
                       {"range": "fd00:30::/64"}])
    rc, res = run(pools, "ADD", c)
    assert rc == 0, res
    assert addresses(res) == ["10.30.0.2/24", "fd00:30::1/64"]
    assert pool_allocations(pools, "fd00-30---64") == {
        "1": {"id": "c1", "podref": "default/p1", "ifname": "net1"}}


def test_network_name_prefixes_pool_and_reservation_names(pools: ObjectPools) -> None:
    c = conf(range="10.40.0.0/24", network_name="blue")
    run(pools, "ADD", c)
    assert pools.read(IPPOOL, "blue-10.40.0.0-24") is not None
    assert pools.read(OVERLAPPING_RESERVATION, "blue-10.40.0.1") is not None


def test_overlapping_ranges_never_share_an_address(pools: ObjectPools) -> None:
    wide = conf(range="10.50.0.0/16", network_name="")
    narrow = conf(range="10.50.0.0/24", range_start="10.50.0.1")
    a = addresses(run(pools, "ADD", wide, "a")[1])
    b = addresses(run(pools, "ADD", narrow, "b")[1])
    assert a == ["10.50.0.1/16"]
    assert b == ["10.50.0.2/24"]  # .1 is reserved cluster-wide by the other pool


def test_overlapping_ranges_off_writes_no_reservation(pools: ObjectPools) -> None:
    c = conf(range="10.51.0.0/24", enable_overlapping_ranges=False)
    run(pools, "ADD", c)
    assert pools.list(OVERLAPPING_RESERVATION) == []


def test_gc_releases_what_is_not_a_valid_attachment(pools: ObjectPools) -> None:
    c = conf(range="10.60.0.0/24")
    for cid in ("keep", "leak1", "leak2"):
        run(pools, "ADD", c, cid)
    gc = dict(c, cniVersion="1.1.0", **{
        "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "net1"}]})
    assert run(pools, "GC", gc) == (0, None)
    assert [a["id"] for a in pool_allocations(pools, "10.60.0.0-24").values()] == ["keep"]
    assert [d.name for d in pools.list(OVERLAPPING_RESERVATION)] == ["10.60.0.1"]


def test_check_finds_the_allocation(pools: ObjectPools) -> None:
    c = conf(version="1.0.0", range="10.70.0.0/24")
    rc, res = run(pools, "ADD", c)
    assert run(pools, "CHECK", dict(c, prevResult=res)) == (0, None)
    rc, err = run(pools, "CHECK", dict(c, prevResult=res), "other")
    assert rc == 1 and "no address" in err["msg"]


def test_exhaustion_is_an_error_and_leaves_no_partial_allocation(pools: ObjectPools) -> None:
    c = conf(ipRanges=[{"range": "10.80.0.0/24"}, {"range": "10.81.0.0/30"}])
    assert run(pools, "ADD", c, "a")[0] == 0
    assert run(pools, "ADD", c, "b")[0] == 0
    rc, err = run(pools, "ADD", c, "c")
    assert rc == 1 and "10.81.0.0/30" in err["msg"]
    held = [a["id"] for a in pool_allocations(pools, "10.80.0.0-24").values()]
    assert held == ["a", "b"]  # c's address of the first range was given back


def test_node_slices_give_each_node_its_own_slice(pools: ObjectPools,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    c = conf(range="10.90.0.0/24", node_slice_size="/28", network_name="sliced",
             exclude=["10.90.0.0/29"])
    monkeypatch.setenv("NODE_NAME", "node-a")
    assert addresses(run(pools, "ADD", c, "a1")[1]) == ["10.90.0.8/24"]
    monkeypatch.setenv("NODE_NAME", "node-b")
    assert addresses(run(pools, "ADD", c, "b1")[1]) == ["10.90.0.16/24"]
    nsp = pools.read(NODE_SLICE_POOL, "sliced")
    assert nsp is not None and nsp.spec == {"range": "10.90.0.0/24", "sliceSize": "/28"}
    assert nsp.status is not None
    assert nsp.status["allocations"][:3] == [
        {"nodeName": "node-a", "sliceRange": "10.90.0.0/28"},
        {"nodeName": "node-b", "sliceRange": "10.90.0.16/28"},
        {"nodeName": "", "sliceRange": "10.90.0.32/28"},
    ]
    assert pool_allocations(pools, "sliced-node-b-10.90.0.16-28") == {
        "0": {"id": "b1", "podref": "default/p1", "ifname": "net1"}}
    assert run(pools, "DEL", c, "b1") == (0, None)
    assert pool_allocations(pools, "sliced-node-b-10.90.0.16-28") == {}


def test_default_store_is_the_nodes_sqlite_file(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MULTIHOME_STORE", str(tmp_path / "node.db"))
    rc, res = run(None, "ADD", conf(range="10.95.0.0/24"))
    assert rc == 0, res
    with SQLiteStore(tmp_path / "node.db") as s:
        assert ObjectPools(s).read(IPPOOL, "10.95.0.0-24") is not None


BAD: list[tuple[dict[str, Any], str]] = [
    ({}, "no range"),
    ({"range": 5}, "'range'"),
    ({"range": "10.0.0.0"}, "prefix length"),
    ({"range": "10.0.0.0/33"}, "not a valid CIDR"),
    ({"range": "banana/24"}, "not a valid CIDR"),
    ({"range": "10.0.0.9-10.0.0.2/24"}, "after"),
    ({"range": "10.0.0.1-10.0.1.2/24"}, "not inside"),
    ({"range": "10.0.0.1-10.0.0.9"}, "prefix length"),
    ({"range": "10.0.0.0/24", "range_start": "10.0.1.1"}, "not inside"),
    ({"range": "10.0.0.0/24", "range_end": "fd00::1"}, "family"),
    ({"range": "10.0.0.0/24", "range_start": 7}, "range_start"),
    ({"range": "10.0.0.0/24", "exclude": "10.0.0.0/30"}, "'exclude' must be a list"),
    ({"range": "10.0.0.0/24", "exclude": ["nope"]}, "exclude' entry 0"),
    ({"range": "10.0.0.0/24", "exclude": ["fd00::/64"]}, "family"),
    ({"range": "10.0.0.0/30", "exclude": ["10.0.0.0/30"]}, "nothing could ever"),
    ({"range": "10.0.0.0/32"}, "too small"),
    ({"range": "10.0.0.0/24", "gateway": "gw"}, "'gateway'"),
    ({"ipRanges": "10.0.0.0/24"}, "'ipRanges' must be a list"),
    ({"ipRanges": [{"range_start": "10.0.0.1"}]}, "ipRanges' entry 0"),
    ({"ipRanges": [{"range": "10.0.0.0/24"}, {"range": "10.0.0.128/25"}]}, "overlap"),
    ({"range": "10.0.0.0/24", "enable_overlapping_ranges": "yes"}, "true or false"),
    ({"range": "10.0.0.0/24", "node_slice_size": "abc"}, "prefix length"),
    ({"range": "10.0.0.0/24", "node_slice_size": "/16"}, "longer than"),
    ({"range": "10.0.0.0/8", "node_slice_size": "/28"}, "slices"),
    ({"range": "10.0.0.0/24", "node_slice_size": ["/28"]}, "node_slice_size"),
    ({"range": "10.0.0.0/24", "network_name": "Bad Name"}, "network_name"),
    ({"range": "10.0.0.0/24", "network_name": 3}, "network_name"),
    ({"range": "10.0.0.0/24", "routes": [{"dst": "x"}]}, "routes"),
    ({"range": "10.0.0.0/24", "dns": ["8.8.8.8"]}, "dns"),
]


@pytest.mark.parametrize(("ipam", "words"), BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_values_are_invalid_config(pools: ObjectPools, ipam: dict[str, Any],
                                       words: str) -> None:
    rc, err = run(pools, "ADD", conf(**ipam))
    assert rc == 1
    assert err["code"] == 7, err
    assert words in err["msg"]
    assert pools.list(IPPOOL) == []


def test_whereabouts_only_keys_are_accepted_and_do_not_choose_the_store(
        pools: ObjectPools, tmp_path: Path) -> None:
    c = conf(range="10.99.0.0/24", datastore="kubernetes", log_level="debug",
             log_file=str(tmp_path / "never.log"),
             kubernetes={"kubeconfig": str(tmp_path / "never.kubeconfig")},
             configuration_path=str(tmp_path / "never.conf"))
    rc, res = run(pools, "ADD", c)
    assert rc == 0, res
    assert not (tmp_path / "never.log").exists()
    assert pools.read(IPPOOL, "10.99.0.0-24") is not None


def test_spec_0_2_0_refuses_two_addresses_of_one_family(pools: ObjectPools) -> None:
    c = conf(version="0.2.0", ipRanges=[{"range": "10.1.0.0/24"}, {"range": "10.2.0.0/24"}])
    rc, err = run(pools, "ADD", c)
    assert rc == 1 and err["code"] == 7


def test_a_process_default_serves_calls_nobody_bound(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # the daemon serving the plugin directly: its store, never the node's default file
    monkeypatch.setenv("MULTIHOME_STORE", str(tmp_path / "never.db"))
    whereabouts.use_store(lambda: SQLiteStore(tmp_path / "daemon.db"))
    try:
        rc, res = run(None, "ADD", conf(range="10.96.0.0/24"))
    finally:
        whereabouts.use_store(None)
    assert rc == 0, res
    assert not (tmp_path / "never.db").exists()
    with SQLiteStore(tmp_path / "daemon.db") as s:
        assert ObjectPools(s).read(IPPOOL, "10.96.0.0-24") is not None


def test_whereabouts_is_not_installed_over_the_nodes_by_default() -> None:
    assert "whereabouts" not in DEFAULT_TYPES
    assert "multihome-ipam" in DEFAULT_TYPES


def test_a_range_whose_pool_name_is_no_object_name_is_invalid_config(
        pools: ObjectPools) -> None:
    rc, err = run(pools, "ADD", conf(range="::/64"))  # whereabouts would name it "---64"
    assert rc == 1 and err["code"] == 7 and "network_name" in err["msg"]
    rc, res = run(pools, "ADD", conf(range="::/64", network_name="v6"))
    assert rc == 0, res
    assert pools.read(IPPOOL, "v6----64") is not None


def test_an_unusable_store_is_try_again_later(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("MULTIHOME_STORE", str(broken))
    rc, err = run(None, "ADD", conf(range="10.97.0.0/24"))
    assert rc == 1 and err["code"] in (11, 50), err
    c = dict(conf(range="10.97.0.0/24"), cniVersion="1.1.0")
    rc, err = run(None, "STATUS", c)
    assert rc == 1 and err["code"] == 50, err


def test_teardown_never_makes_a_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "never" / "store.db"
    monkeypatch.setenv("MULTIHOME_STORE", str(missing))
    c = dict(conf(range="10.98.0.0/24"), cniVersion="1.1.0")
    assert run(None, "DEL", c) == (0, None)
    gc = dict(c, **{"cni.dev/valid-attachments": []})
    assert run(None, "GC", gc) == (0, None)
    rc, err = run(None, "CHECK", dict(c, prevResult={"cniVersion": "1.1.0", "ips": []}))
    assert rc == 1 and err["code"] == 50
    rc, err = run(None, "STATUS", c)
    assert rc == 1 and err["code"] == 50
    assert not missing.exists() and not missing.parent.exists()
