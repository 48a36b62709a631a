"""The result cache in libcni's layout."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from multihome.cni import cache
from multihome.cni.cache import CacheEntry
from multihome.cni.errors import DecodingFailure, InvalidConfig

CONFLIST = b'{"cniVersion":"1.0.0","name":"mynet","plugins":[{"type":"bridge"}]}'
RESULT = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/x"}],
          "ips": [{"interface": 0, "address": "10.1.0.2/24"}], "dns": {}}


def entry(**over: object) -> CacheEntry:
    base = CacheEntry(network_name="mynet", container_id="ctr1", ifname="eth0", config=CONFLIST,
                      result=RESULT, netns="/var/run/netns/a",
                      cni_args=[("IgnoreUnknown", "1"), ("K8S_POD_NAME", "p")],
                      capability_args={"mac": "02:00:00:00:00:01"})
    for k, v in over.items():
        setattr(base, k, v)
    return base


def test_round_trip_and_layout(tmp_path: Path) -> None:
    path = cache.save(str(tmp_path), entry())
    assert path == str(tmp_path / "results" / "mynet-ctr1-eth0")
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "results").st_mode) == 0o700
    raw = json.loads(Path(path).read_text())
    assert raw == {
        "kind": "cniCacheV1", "containerId": "ctr1",
        "config": base64.b64encode(CONFLIST).decode(), "ifName": "eth0",
        "networkName": "mynet", "netns": "/var/run/netns/a",
        "cniArgs": [["IgnoreUnknown", "1"], ["K8S_POD_NAME", "p"]],
        "capabilityArgs": {"mac": "02:00:00:00:00:01"}, "result": RESULT,
    }
    assert cache.load(str(tmp_path), "mynet", "ctr1", "eth0") == entry()
    assert [p.name for p in (tmp_path / "results").iterdir()] == ["mynet-ctr1-eth0"]


def test_empty_fields_are_omitted_like_go(tmp_path: Path) -> None:
    path = cache.save(str(tmp_path), entry(netns="", cni_args=[], capability_args={}))
    raw = json.loads(Path(path).read_text())
    assert set(raw) == {"kind", "containerId", "config", "ifName", "networkName", "result"}


def test_overwrite_replaces(tmp_path: Path) -> None:
    cache.save(str(tmp_path), entry())
    cache.save(str(tmp_path), entry(netns="/other"))
    loaded = cache.load(str(tmp_path), "mynet", "ctr1", "eth0")
    assert loaded is not None and loaded.netns == "/other"


def test_missing_and_delete(tmp_path: Path) -> None:
    assert cache.load(str(tmp_path), "mynet", "ctr1", "eth0") is None
    assert cache.delete(str(tmp_path), "mynet", "ctr1", "eth0") is False
    cache.save(str(tmp_path), entry())
    assert cache.delete(str(tmp_path), "mynet", "ctr1", "eth0") is True
    assert cache.load(str(tmp_path), "mynet", "ctr1", "eth0") is None


def test_reads_a_file_written_by_libcni(tmp_path: Path) -> None:
    # byte for byte what libcni v1.2 writes (Go field order, compact JSON, base64 config)
    conf = (b'{"cniVersion":"0.4.0","name":"podnet","plugins":[{"type":"bridge",'
            b'"bridge":"cni0","ipam":{"type":"host-local","subnet":"10.88.0.0/16"}},'
            b'{"type":"portmap","capabilities":{"portMappings":true}}]}')
    text = (
        '{"kind":"cniCacheV1","containerId":"cnitool-77383ca0a0715733ca6f","config":"'
        + base64.b64encode(conf).decode()
        + '","ifName":"eth0","networkName":"podnet","netns":"/var/run/netns/t",'
        '"cniArgs":[["IgnoreUnknown","1"]],"capabilityArgs":{"portMappings":[{"hostPort":8080,'
        '"containerPort":80,"protocol":"tcp"}]},"result":{"cniVersion":"0.4.0","interfaces":'
        '[{"name":"cni0","mac":"aa:bb:cc:dd:ee:ff"},{"name":"eth0","mac":"02:42:ac:11:00:02",'
        '"sandbox":"/var/run/netns/t"}],"ips":[{"version":"4","interface":1,'
        '"address":"10.88.0.2/16","gateway":"10.88.0.1"}],"dns":{}}}'
    )
    results = tmp_path / "results"
    results.mkdir()
    (results / "podnet-cnitool-77383ca0a0715733ca6f-eth0").write_text(text)
    got = cache.load(str(tmp_path), "podnet", "cnitool-77383ca0a0715733ca6f", "eth0")
    assert got is not None
    assert got.config == conf and got.netns == "/var/run/netns/t"
    assert got.cni_args == [("IgnoreUnknown", "1")]
    assert got.capability_args["portMappings"][0]["hostPort"] == 8080
    assert got.result is not None and got.result["ips"][0]["address"] == "10.88.0.2/16"
    # writing it back gives libcni the same document
    cache.save(str(tmp_path), got)
    again = json.loads((results / "podnet-cnitool-77383ca0a0715733ca6f-eth0").read_text())
    assert again == json.loads(text)


def test_legacy_bare_result_file(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "old-ctr-eth0").write_text(json.dumps(RESULT))
    got = cache.load(str(tmp_path), "old", "ctr", "eth0")
    assert got is not None and got.kind == "" and got.result == RESULT
    assert (got.network_name, got.container_id, got.ifname) == ("old", "ctr", "eth0")
    assert cache.list_entries(str(tmp_path)) == []  # libcni lists only cniCacheV1


@pytest.mark.parametrize("text", ["{", "[]", '{"kind":"cniCacheV1","config":"***"}',
                                  '{"kind":"cniCacheV1","cniArgs":[["a"]]}',
                                  '{"kind":"cniCacheV1","result":[1]}'])
def test_corrupt_files_are_decoding_failures(tmp_path: Path, text: str) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "n-c-eth0").write_text(text)
    with pytest.raises(DecodingFailure):
        cache.load(str(tmp_path), "n", "c", "eth0")
    assert cache.list_entries(str(tmp_path)) == []


def test_list_entries_filters_and_sorts(tmp_path: Path) -> None:
    d = str(tmp_path)
    assert cache.list_entries(d) == []
    cache.save(d, entry(network_name="b", container_id="c2"))
    cache.save(d, entry(network_name="a", container_id="c1", ifname="net1"))
    cache.save(d, entry(network_name="a", container_id="c1-x", ifname="net1"))
    (tmp_path / "results" / "junk").write_text("nope")
    (tmp_path / "results" / ".tmp-zzz").write_text("{}")
    names = [(e.network_name, e.container_id, e.ifname) for e in cache.list_entries(d)]
    assert names == [("a", "c1", "net1"), ("a", "c1-x", "net1"), ("b", "c2", "eth0")]
    only = [(e.network_name, e.container_id) for e in cache.list_entries(d, "c1")]
    assert only == [("a", "c1")]


@pytest.mark.parametrize(("net", "cid", "ifname"), [("", "c", "e"), ("n", "", "e"),
                                                    ("n", "c", ""), ("n", "../x", "e")])
def test_path_needs_all_three_parts(net: str, cid: str, ifname: str) -> None:
    with pytest.raises(InvalidConfig):
        cache.cache_path("/tmp", net, cid, ifname)
