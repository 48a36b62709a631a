"""static IPAM against the Go reference plugin (/usr/lib/cni/static): same input, same output.

static touches no kernel state, so the comparison is of results and error codes alone,
for addresses from every source the reference reads: the config, CNI_ARGS `IP=`,
`args.cni.ips` and `runtimeConfig.ips`, with gateways, routes and DNS.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from multihome.cni import skel
from multihome.ipam import static

REF = Path("/usr/lib/cni/static")
VERSIONS = ["0.3.1", "0.4.0", "1.0.0"]  # the Go binary here stops at 1.0.0

pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(not os.access(REF, os.X_OK),
                       reason=f"{REF} is absent: install containernetworking-plugins"),
]


def _env(command: str, args: str) -> dict[str, str]:
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1",
           "CNI_NETNS": "/var/run/netns/none", "CNI_IFNAME": "eth0",
           "CNI_PATH": str(REF.parent)}
    if args:
        env["CNI_ARGS"] = args
    return env


def ref(command: str, conf: dict[str, Any], args: str = "") -> tuple[int, Any]:
    proc = subprocess.run([str(REF)], input=json.dumps(conf).encode(),
                          env=_env(command, args), capture_output=True, timeout=30,
                          check=False)
    out = proc.stdout.decode()
    return proc.returncode, json.loads(out) if out.strip() else None


def mine(command: str, conf: dict[str, Any], args: str = "") -> tuple[int, Any]:
    rc, out = skel.dispatch(static, _env(command, args), json.dumps(conf).encode())
    return rc, json.loads(out) if out else None


def _conf(version: str, ipam: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "static-conf", "type": "bridge",
            "ipam": {"type": "static", **ipam}, **top}


GOOD: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "v4 and v6 with gateways, routes, dns": ({
        "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"},
                      {"address": "fd00:10::5/64", "gateway": "fd00:10::1"}],
        "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.10.0.254"}],
        "dns": {"nameservers": ["10.10.0.53"], "domain": "lab", "search": ["lab", "x"],
                "options": ["ndots:2"]}}, {}, ""),
    "CNI_ARGS IP and GATEWAY": ({}, {}, "IP=10.11.0.7/24;GATEWAY=10.11.0.1"),
    "args.cni.ips": ({}, {"args": {"cni": {"ips": ["10.12.0.8/24"]}}}, ""),
    "runtimeConfig.ips with the capability": (
        {}, {"capabilities": {"ips": True}, "runtimeConfig": {"ips": ["10.13.0.9/24"]}}, ""),
    "no address at all: an empty result": ({}, {}, ""),
}

BAD: dict[str, tuple[dict[str, Any], dict[str, Any], str]] = {
    "address without a prefix": ({"addresses": [{"address": "10.10.0.5"}]}, {}, ""),
    "gateway that is not an IP": (
        {"addresses": [{"address": "10.10.0.5/24", "gateway": "nope"}]}, {}, ""),
}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("case", list(GOOD))
def test_same_result_as_the_reference(version: str, case: str) -> None:
    ipam, top, args = GOOD[case]
    conf = _conf(version, ipam, **top)
    ref_rc, ref_out = ref("ADD", conf, args)
    my_rc, my_out = mine("ADD", conf, args)
    assert (my_rc, ref_rc) == (0, 0), (my_out, ref_out)
    assert my_out == ref_out
    assert mine("DEL", conf, args)[0] == ref("DEL", conf, args)[0] == 0


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_fails_like_the_reference(case: str) -> None:
    ipam, top, args = BAD[case]
    conf = _conf("1.0.0", ipam, **top)
    ref_rc, ref_out = ref("ADD", conf, args)
    my_rc, my_out = mine("ADD", conf, args)
    assert ref_rc != 0 and my_rc != 0, (my_out, ref_out)
    assert isinstance(my_out["msg"], str) and my_out["msg"]
    # the Go plugin reports decode and validation failures as a generic error; ours names
    # the problem with a specific code, never the catch-all 999
    assert my_out["code"] in (ref_out["code"], 4, 6, 7), (my_out, ref_out)


def test_route_without_dst_is_refused_where_the_reference_emits_nil() -> None:
    """A deliberate difference: the Go plugin returns a route with dst "<nil>"."""
    conf = _conf("1.0.0", {"addresses": [{"address": "10.10.0.5/24"}],
                           "routes": [{"gw": "10.10.0.1"}]})
    ref_rc, ref_out = ref("ADD", conf)
    assert ref_rc == 0 and ref_out["routes"] == [{"dst": "<nil>", "gw": "10.10.0.1"}]
    my_rc, my_out = mine("ADD", conf)
    assert my_rc == 1 and my_out["code"] == 7 and "needs 'dst'" in my_out["msg"]
