"""Read kernel state for assertions: links, addresses, routes, sysctls, nftables.

Tests may read the kernel any way they like; these use the JSON output of `ip`, `bridge`
and `nft` so a test can compare what two plugins left behind. `ns=None` is the host.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any


def _in_ns(ns: str | None, argv: list[str]) -> list[str]:
    return ["ip", "netns", "exec", ns, *argv] if ns else argv


def run_json(ns: str | None, argv: list[str]) -> Any:
    out = subprocess.run(_in_ns(ns, argv), capture_output=True, text=True, check=True,
                         timeout=30)
    return json.loads(out.stdout) if out.stdout.strip() else []


def links(ns: str | None) -> dict[str, dict[str, Any]]:
    """name -> `ip -d -j link` object."""
    return {link["ifname"]: link for link in run_json(ns, ["ip", "-d", "-j", "link", "show"])}


def link(ns: str | None, name: str) -> Any:
    """The link as `ip -j link` shows it (JSON), None when there is no such link."""
    return links(ns).get(name)


def ports_of(ns: str | None, bridge: str) -> dict[str, dict[str, Any]]:
    """Links enslaved to `bridge`, with their bridge-port attributes (hairpin, isolated…)."""
    return {name: lk for name, lk in links(ns).items() if lk.get("master") == bridge}


def port_info(port: dict[str, Any]) -> dict[str, Any]:
    info: dict[str, Any] = port.get("linkinfo", {}).get("info_slave_data", {})
    return info


def addresses(ns: str | None, dev: str, family: int = 4) -> list[str]:
    """CIDRs on `dev` (IPv6 link-local left out: the kernel makes those by itself)."""
    out = run_json(ns, ["ip", f"-{family}", "-j", "addr", "show", "dev", dev])
    cidrs = []
    for entry in out:
        for a in entry.get("addr_info", []):
            if a.get("scope") == "link" and family == 6:
                continue
            cidrs.append(f"{a['local']}/{a['prefixlen']}")
    return sorted(cidrs)


def routes(ns: str | None, family: int = 4) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = run_json(
        ns, ["ip", f"-{family}", "-j", "route", "show", "table", "main"])
    return result


def sysctl(ns: str | None, key: str) -> str:
    path = "/proc/sys/" + key.replace(".", "/")
    out = subprocess.run(_in_ns(ns, ["cat", path]), capture_output=True, text=True,
                         check=True, timeout=30)
    return out.stdout.strip()


def nft(ns: str | None) -> list[dict[str, Any]]:
    """`nft -j list ruleset` objects (without metainfo)."""
    out = run_json(ns, ["nft", "-j", "list", "ruleset"])
    items = out.get("nftables", []) if isinstance(out, dict) else []
    return [i for i in items if "metainfo" not in i]


def nft_tables(ns: str | None) -> set[str]:
    return {f"{i['table']['family']} {i['table']['name']}" for i in nft(ns) if "table" in i}


def nft_chains(ns: str | None, family: str = "bridge", table: str = "nat") -> dict[str, Any]:
    return {i["chain"]["name"]: i["chain"] for i in nft(ns)
            if "chain" in i and i["chain"]["family"] == family and i["chain"]["table"] == table}


def nft_rules(ns: str | None, family: str = "bridge", table: str = "nat") -> list[dict[str, Any]]:
    return [i["rule"] for i in nft(ns)
            if "rule" in i and i["rule"]["family"] == family and i["rule"]["table"] == table]


def macspoof_state(ns: str | None, container_id: str, ifname: str) -> dict[str, Any]:
    """The macspoofchk chains and rule comments of one attachment (reference naming)."""
    uid = f"{container_id}-{ifname}"
    chains = sorted(c for c in nft_chains(ns) if uid in c)
    comments = [r.get("comment") for r in nft_rules(ns) if uid in str(r.get("comment", ""))]
    return {"chains": chains, "comments": comments}


def has_masquerade(ns: str | None) -> bool:
    """Any masquerade rule in any table (nft native or iptables-nft's xt target)."""
    for item in nft(ns):
        text = json.dumps(item.get("rule", {}))
        if '"masquerade"' in text or '"MASQUERADE"' in text:
            return True
    return False


def ping(ns: str, address: str, count: int = 1, timeout: float = 5) -> bool:
    proc = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c", str(count), "-W", "1",
                           "-w", str(int(timeout)), address],
                          capture_output=True, text=True, timeout=timeout + 10)
    return proc.returncode == 0
