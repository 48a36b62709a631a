"""Read kernel state for assertions: links, addresses, routes, sysctls, nftables.

Tests may read the kernel any way they like; these use the JSON output of `ip`, `bridge`
and `nft` so a test can compare what two plugins left behind. `ns=None` is the host.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from pyroute2 import NetNS
from pyroute2.ethtool import Ethtool
from pyroute2.netns import popns, pushns


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


# -- the kernel's own view, read with pyroute2 -------------------------------------------
#
# `snapshot` is what "restored exactly" means in tests: two snapshots of a namespace taken
# before an apply and after its rollback must be equal. It reads netlink directly, not the
# product's modules, so a defect in how multihome reads the node cannot hide itself.

# address flags the kernel sets and clears by itself (DAD, lifetimes)
_TRANSIENT_IFA = 0x04 | 0x08 | 0x20 | 0x40  # OPTIMISTIC, DADFAILED, DEPRECATED, TENTATIVE
_BRIDGE_OPTIONS = ("IFLA_BR_BRIDGE_ID", "IFLA_BR_STP_STATE", "IFLA_BR_FORWARD_DELAY",
                   "IFLA_BR_VLAN_FILTERING", "IFLA_BR_HELLO_TIME", "IFLA_BR_MAX_AGE",
                   "IFLA_BR_AGEING_TIME", "IFLA_BR_PRIORITY", "IFLA_BR_VLAN_DEFAULT_PVID",
                   "IFLA_BR_GROUP_FWD_MASK", "IFLA_BR_MCAST_SNOOPING")
# the settings of the other kinds a node policy creates, compared whole (IFLA_INFO_DATA),
# without what the kernel keeps changing (802.3ad partner state)
_KIND_DATA = ("vxlan", "vrf", "bond", "vlan", "macvlan", "ipvlan")
_VOLATILE_DATA = ("IFLA_BOND_AD_INFO", "IFLA_BOND_ACTIVE_SLAVE")
_BOND_PORT = ("IFLA_BOND_SLAVE_STATE", "IFLA_BOND_SLAVE_MII_STATUS",
              "IFLA_BOND_SLAVE_PERM_HWADDR", "IFLA_BOND_SLAVE_QUEUE_ID")
_PORT_TIMERS = ("IFLA_BRPORT_MESSAGE_AGE_TIMER", "IFLA_BRPORT_FORWARD_DELAY_TIMER",
                "IFLA_BRPORT_HOLD_TIMER", "IFLA_BRPORT_PAD",
                "IFLA_BRPORT_MCAST_N_GROUPS")  # counters and timers


def _nla_dict(nla: Any) -> dict[str, Any]:
    if nla is None or isinstance(nla, str | bytes):
        return {}
    return {k: v for k, v in nla["attrs"] if k != "UNKNOWN"}


def _link_entry(msg: Any, names: dict[int, str]) -> dict[str, Any]:
    info = _nla_dict(msg.get_attr("IFLA_LINKINFO"))
    kind = info.get("IFLA_INFO_KIND", "")
    entry: dict[str, Any] = {
        "kind": kind, "flags": msg["flags"], "operstate": msg.get_attr("IFLA_OPERSTATE"),
        "mtu": msg.get_attr("IFLA_MTU"), "address": msg.get_attr("IFLA_ADDRESS"),
        "master": names.get(msg.get_attr("IFLA_MASTER") or 0)}
    if kind == "bridge":
        data = _nla_dict(info.get("IFLA_INFO_DATA"))
        entry["bridge"] = {k: data.get(k) for k in _BRIDGE_OPTIONS}
    if kind in _KIND_DATA:
        data = _nla_dict(info.get("IFLA_INFO_DATA"))
        entry["data"] = {k: v for k, v in data.items() if k not in _VOLATILE_DATA}
    if info.get("IFLA_INFO_SLAVE_KIND") == "bridge":
        data = _nla_dict(info.get("IFLA_INFO_SLAVE_DATA"))
        entry["port"] = {k: v for k, v in data.items() if k not in _PORT_TIMERS}
    if info.get("IFLA_INFO_SLAVE_KIND") == "bond":
        data = _nla_dict(info.get("IFLA_INFO_SLAVE_DATA"))
        entry["bond_port"] = {k: data.get(k) for k in _BOND_PORT}
    return entry


def snapshot(ns: str) -> dict[str, Any]:
    """`read_snapshot` once no address is tentative any more (DAD done, bounded wait): a
    local route appears only then, so two snapshots compare the same phase."""
    deadline = time.monotonic() + 5
    while True:
        snap, tentative = _read_snapshot(ns)
        if not tentative or time.monotonic() > deadline:
            return snap
        time.sleep(0.1)


def _read_snapshot(ns: str) -> tuple[dict[str, Any], bool]:
    """Links (kind, flags, operstate, mtu, MAC, master, bridge and port options, the
    settings of vxlans, bonds, vrfs…), addresses (in the kernel's order, with prefix,
    broadcast, scope, label and flags minus transient ones, link-local included), routes
    of every table, policy-routing rules and every link's ethtool features, of namespace
    `ns`."""
    with NetNS(ns) as ipr:
        msgs = list(ipr.get_links())
        names = {m["index"]: m.get_attr("IFLA_IFNAME") for m in msgs}
        links_out = {names[m["index"]]: _link_entry(m, names) for m in msgs}
        addrs: dict[str, list[tuple[Any, ...]]] = {n: [] for n in links_out}
        tentative = False
        for a in ipr.get_addr():
            flags = a.get_attr("IFA_FLAGS") or a["flags"]
            tentative = tentative or bool(flags & 0x40)
            addrs[names[a["index"]]].append((
                a.get_attr("IFA_ADDRESS"), a.get_attr("IFA_LOCAL"), a["prefixlen"],
                a.get_attr("IFA_BROADCAST"), a["scope"], a.get_attr("IFA_LABEL"),
                flags & ~_TRANSIENT_IFA))
        routes_out = sorted(((
            r["family"], r.get_attr("RTA_DST"), r["dst_len"], r.get_attr("RTA_GATEWAY"),
            names.get(r.get_attr("RTA_OIF") or 0), r.get_attr("RTA_TABLE"),
            r.get_attr("RTA_PRIORITY"), r.get_attr("RTA_PREFSRC"), r["proto"], r["scope"],
            r["type"]) for r in ipr.get_routes()), key=str)
        # policy-routing rules but the kernel's own (protocol kernel: local/main/default,
        # and the l3mdev rule the first vrf adds, which stays for later vrfs)
        rules_out = sorted((
            (r["family"], r["action"], r["src_len"], r["dst_len"],
             {k: v for k, v in r["attrs"] if k != "UNKNOWN"})
            for family in (2, 10) for r in ipr.get_rules(family=family)
            if r.get_attr("FRA_PROTOCOL") != 2), key=str)
    pushns(ns)
    try:
        with Ethtool() as tool:
            for name, entry in links_out.items():
                entry["features"] = {
                    f: bool(v.enable) for f, v in tool.get_features(name).features.items() if f}
    finally:
        popns()
    return {"links": links_out, "addresses": addrs, "routes": routes_out,
            "rules": rules_out}, tentative


def snapshot_diff(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Readable differences between two snapshots, one line per differing item."""
    out: list[str] = []
    for name in sorted(set(before["links"]) | set(after["links"])):
        old, new = before["links"].get(name), after["links"].get(name)
        if old is None or new is None:
            out.append(f"link {name}: {old} -> {new}")
            continue
        for key in sorted(set(old) | set(new)):
            if isinstance(old.get(key), dict) and isinstance(new.get(key), dict):
                out += [f"link {name}.{key}.{k}: {old[key].get(k)} -> {new[key].get(k)}"
                        for k in sorted(set(old[key]) | set(new[key]))
                        if old[key].get(k) != new[key].get(k)]
            elif old.get(key) != new.get(key):
                out.append(f"link {name}.{key}: {old.get(key)} -> {new.get(key)}")
    for name in sorted(set(before["addresses"]) | set(after["addresses"])):
        old, new = before["addresses"].get(name), after["addresses"].get(name)
        if old != new:
            out.append(f"addresses of {name}: {old} -> {new}")
    gone = [r for r in before["routes"] if r not in after["routes"]]
    new = [r for r in after["routes"] if r not in before["routes"]]
    if gone or new:
        out.append(f"routes: lost {gone}, gained {new}")
    gone = [r for r in before.get("rules", []) if r not in after.get("rules", [])]
    new = [r for r in after.get("rules", []) if r not in before.get("rules", [])]
    if gone or new:
        out.append(f"rules: lost {gone}, gained {new}")
    return out
