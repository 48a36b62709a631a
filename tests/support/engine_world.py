"""A small world for engine tests: a store, tmp state dirs, unique bridges, helper NADs."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from multihome.attach import engine
from multihome.attach.multus_config import MultusConfig, parse_multus_config
from multihome.attach.plan import NETWORKS_ANNOTATION, PodRef
from multihome.store import NAD, POD, Object, Store
from multihome.stores import open_store
from support.netns import Netns, unique

FAIL_PLUGIN = """#!/bin/sh
# A delegate that fails on purpose: ADD (or DEL, with FAIL_ON=DEL in its config) errors.
conf=$(cat)
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}'; exit 0;;
esac
want=ADD
echo "$conf" | grep -q '"failOn": *"DEL"' && want=DEL
if [ "$CNI_COMMAND" = "$want" ]; then
  echo '{"cniVersion":"1.0.0","code":11,"msg":"deliberate failure of '"$CNI_COMMAND"'"}'
  exit 1
fi
if [ "$CNI_COMMAND" = ADD ]; then
  iface='{"name":"'"$CNI_IFNAME"'","sandbox":"'"$CNI_NETNS"'"}'
  echo '{"cniVersion":"1.0.0","interfaces":['"$iface"'],"ips":[]}'
fi
exit 0
"""

RECORD_PLUGIN = """#!/bin/sh
# A delegate that keeps the config of each ADD in <world>/records/<ifname>.json.
conf=$(cat)
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}'; exit 0;;
ADD)
  mkdir -p "$(dirname "$0")/../records"
  echo "$conf" > "$(dirname "$0")/../records/$CNI_IFNAME.json"
  iface='{"name":"'"$CNI_IFNAME"'","sandbox":"'"$CNI_NETNS"'"}'
  echo '{"cniVersion":"1.0.0","interfaces":['"$iface"'],"ips":[]}';;
esac
exit 0
"""

RENDEZVOUS_PLUGIN = """#!/bin/sh
# A delegate whose ADD waits (up to 10 s) until "expect" delegates have started their ADD:
# it succeeds only when the pod's delegates run at the same time.
conf=$(cat)
dir="$(dirname "$0")/../rendezvous"
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0;;
ADD)
  expect=$(echo "$conf" | sed -n 's/.*"expect": *\\([0-9]*\\).*/\\1/p')
  mkdir -p "$dir"; touch "$dir/$CNI_CONTAINERID-$CNI_IFNAME"
  i=0
  while [ "$(ls "$dir" | grep -c "^$CNI_CONTAINERID-")" -lt "$expect" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ]; then
      echo '{"cniVersion":"1.0.0","code":11,"msg":"the other delegates never started"}'
      exit 1
    fi
    sleep 0.1
  done
  iface='{"name":"'"$CNI_IFNAME"'","sandbox":"'"$CNI_NETNS"'"}'
  echo '{"cniVersion":"1.0.0","interfaces":['"$iface"'],"ips":[]}';;
DEL) rm -f "$dir/$CNI_CONTAINERID-$CNI_IFNAME";;
esac
exit 0
"""


@dataclass
class World:
    tmp: Path
    store: Store
    cluster_bridge: str
    bridges: list[str] = field(default_factory=list)
    overrides: dict[str, Any] = field(default_factory=dict)

    @property
    def ipam_dir(self) -> str:
        return str(self.tmp / "ipam")

    @property
    def bin_dir(self) -> str:
        return str(self.tmp / "bin")

    def conf(self, **overrides: Any) -> MultusConfig:
        raw: dict[str, Any] = {
            "cniVersion": "1.0.0", "name": "engine-test", "type": "multihome",
            "delegates": [{
                "cniVersion": "1.0.0", "name": "cluster",
                "plugins": [{"type": "bridge", "bridge": self.cluster_bridge,
                             "ipam": {"type": "host-local",
                                      "ranges": [[{"subnet": "10.60.0.0/24"}]],
                                      "routes": [{"dst": "0.0.0.0/0"}],
                                      "dataDir": self.ipam_dir}}],
            }],
            "cniDir": str(self.tmp / "cache"), "confDir": str(self.tmp / "net.d"),
            "binDir": self.bin_dir,
        }
        raw.update(self.overrides)
        raw.update(overrides)
        return parse_multus_config(raw)

    def bridge(self) -> str:
        name = unique("mhe")
        self.bridges.append(name)
        return name

    def nad(self, namespace: str, name: str, config: dict[str, Any] | str) -> None:
        text = config if isinstance(config, str) else json.dumps(config)
        self.store.apply(Object.from_manifest({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD,
            "metadata": {"name": name, "namespace": namespace}, "spec": {"config": text}}))

    def bridge_nad(self, namespace: str, name: str, subnet: str | None = None,
                   bridge: str | None = None, **extra: Any) -> str:
        br = bridge or self.bridge()
        conf: dict[str, Any] = {"cniVersion": "1.0.0", "type": "bridge", "bridge": br, **extra}
        if subnet:
            conf["ipam"] = {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                            "dataDir": self.ipam_dir}
        self.nad(namespace, name, conf)
        return br

    def fail_nad(self, namespace: str, name: str, fail_on: str = "ADD") -> None:
        self.nad(namespace, name, {"cniVersion": "1.0.0", "type": "mh-fail", "failOn": fail_on})

    def pod(self, namespace: str, name: str, networks: str = "",
            annotations: dict[str, str] | None = None) -> PodRef:
        ann = dict(annotations or {})
        if networks:
            ann[NETWORKS_ANNOTATION] = networks
        self.store.apply(Object.from_manifest({
            "apiVersion": "v1", "kind": POD,
            "metadata": {"name": name, "namespace": namespace, "annotations": ann}}))
        return PodRef(namespace, name)

    def request(self, ns: Netns, pod: PodRef | None) -> engine.PodRequest:
        return engine.PodRequest(f"cid-{ns.name}", ns.path, pod)

    def ipam_allocations(self) -> list[str]:
        """Allocated addresses left in every host-local data dir of the test."""
        out = []
        for root, _, files in os.walk(self.ipam_dir):
            out += [f for f in files if f[0].isdigit() or ":" in f]
            _ = root
        return out

    def bridge_ports(self, bridge: str) -> list[str]:
        from pyroute2 import IPRoute

        with IPRoute() as ipr:
            idx = ipr.link_lookup(ifname=bridge)
            if not idx:
                return []
            return [link.get_attr("IFLA_IFNAME") for link in ipr.get_links()
                    if link.get_attr("IFLA_MASTER") == idx[0]]


def links_in(ns: Netns) -> list[str]:
    out = ns.run("ip", "-o", "link", "show").stdout
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]


@contextmanager
def engine_world(tmp_path: Path) -> Iterator[World]:
    """A World whose store is closed and whose bridges are deleted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create namespaces and bridges")
    (tmp_path / "bin").mkdir()
    for name, text in (("mh-fail", FAIL_PLUGIN), ("mh-record", RECORD_PLUGIN),
                       ("mh-rendezvous", RENDEZVOUS_PLUGIN)):
        script = tmp_path / "bin" / name
        script.write_text(text)
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
    store = open_store(str(tmp_path / "s.db"))
    w = World(tmp_path, store, unique("mhc"))
    w.bridges.append(w.cluster_bridge)
    try:
        yield w
    finally:
        store.close()
        for br in w.bridges:
            subprocess.run(["ip", "link", "del", br], capture_output=True, check=False)
