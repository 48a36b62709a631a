"""The node network as a picture: bridges, their ports and uplinks, VLANs, the pods and VMs
attached (from their network-status and NADs), and the external network.

Drawn as plain SVG text so the CLI and the console share it with no drawing dependency;
PNG export renders this SVG with cairosvg.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from html import escape
from typing import Any

from multihome.attach.policy.enforce import World, isolation_of, pod_info
from multihome.store import NAD, POD, NotFound, Store

NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"


@dataclass
class Attachment:
    owner: str  # "pod ns/name" or "vm ns/name"
    interface: str
    ips: list[str]
    mac: str
    network: str
    vlan: int = 0
    isolated: str = ""  # "ingress", "egress", "ingress+egress": MultiNetworkPolicies apply


@dataclass
class BridgeView:
    name: str
    ports: list[str]
    uplinks: list[str] = field(default_factory=list)
    vlans: list[int] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)


@dataclass
class Topology:
    bridges: list[BridgeView]
    external: str = ""  # the network outside the cluster, when the lab knows it
    unplaced: list[Attachment] = field(default_factory=list)


def network_status(pod: Any) -> list[dict[str, Any]]:
    """The pod's network-status entries, each reduced to the keys the pages show with the
    types they expect. The annotation is anyone's text: not JSON, not a list, entries that
    are not objects or fields of the wrong type are skipped or shown as text, never a 500."""
    annotations = pod.metadata.get("annotations")  # not .annotations: that asserts a dict
    text = annotations.get(NETWORK_STATUS, "") if isinstance(annotations, dict) else ""
    try:
        entries = json.loads(text) if isinstance(text, str) and text else []
    except (ValueError, RecursionError):
        return []
    if not isinstance(entries, list):
        return []
    return [_status_entry(e) for e in entries if isinstance(e, dict)]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ("" if value is None else json.dumps(value))


def _status_entry(entry: dict[str, Any]) -> dict[str, Any]:
    ips = entry.get("ips")
    ips = ips if isinstance(ips, list) else ([] if ips is None else [ips])
    return {"name": _text(entry.get("name")), "interface": _text(entry.get("interface")),
            "ips": [_text(i) for i in ips], "mac": _text(entry.get("mac")),
            "default": entry.get("default") is True}


def _nad_config(store: Store, network: str) -> dict[str, Any]:
    ns, _, name = network.rpartition("/")
    try:
        nad = store.get(NAD, ns or "default", name)
    except (NotFound, ValueError):  # ValueError: the name is not one a NAD can have
        return {}
    try:
        conf = json.loads(nad.spec.get("config") or "{}")
    except (ValueError, TypeError, RecursionError):
        return {}
    if isinstance(conf, dict) and isinstance(conf.get("plugins"), list) and conf["plugins"]:
        first = conf["plugins"][0]
        return first if isinstance(first, dict) else {}
    return conf if isinstance(conf, dict) else {}


def build(store: Store, node_state: dict[str, Any], *, uplinks: set[str] | None = None,
          external: str = "", vm_pods: dict[str, str] | None = None) -> Topology:
    """``vm_pods`` maps a launcher pod "ns/name" to its VM "ns/name"."""
    vm_pods = vm_pods or {}
    bridges: dict[str, BridgeView] = {}
    for iface in node_state.get("interfaces", []):
        if iface.get("type") != "linux-bridge":
            continue
        ports = [p.get("name", "") for p in (iface.get("bridge") or {}).get("port") or []]
        view = BridgeView(iface["name"], ports)
        view.uplinks = [p for p in ports if p in (uplinks or set())]
        for p in (iface.get("bridge") or {}).get("port") or []:
            vlan = p.get("vlan") or {}
            if vlan.get("tag"):
                view.vlans.append(int(vlan["tag"]))
        bridges[view.name] = view
    topo = Topology(list(bridges.values()), external)
    world = World.read(store)
    for pod in store.list(POD, None):
        key = f"{pod.namespace}/{pod.name}"
        owner = f"vm {vm_pods[key]}" if key in vm_pods else f"pod {key}"
        info = pod_info(pod)
        for entry in network_status(pod):
            if entry.get("default"):
                continue
            network = entry["name"]
            conf = _nad_config(store, network) if network else {}
            vlan = conf.get("vlan")
            vlan = vlan if isinstance(vlan, int) and not isinstance(vlan, bool) else 0
            att = Attachment(owner, entry["interface"], entry["ips"], entry["mac"], network,
                             vlan, isolation_of(world, info, network) if network else "")
            bridge = bridges.get(_text(conf.get("bridge")))
            if bridge is None:
                topo.unplaced.append(att)
                continue
            bridge.attachments.append(att)
            if att.vlan and att.vlan not in bridge.vlans:
                bridge.vlans.append(att.vlan)
    return topo


_W_BRIDGE, _W_ATT, _ROW = 260, 300, 70


def to_svg(topo: Topology) -> str:
    """One column per bridge: the external network on top, the bridge, its attachments below."""
    cols = max(1, len(topo.bridges))
    width = 40 + cols * (_W_ATT + 40)
    depth = max([len(b.attachments) for b in topo.bridges] + [len(topo.unplaced), 1])
    height = 330 + depth * _ROW
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
           f'<rect width="{width}" height="{height}" fill="white"/>']
    if topo.external:
        out.append(f'<g class="external"><rect x="20" y="10" width="{width - 40}" height="40" '
                   'rx="8" fill="#e8f4ff" stroke="#3a7bd5"/>'
                   f'<text x="{width // 2}" y="35" text-anchor="middle">external network: '
                   f'{escape(topo.external)}</text></g>')
    for i, bridge in enumerate(topo.bridges):
        x = 40 + i * (_W_ATT + 40)
        cx = x + _W_BRIDGE // 2
        out.append(f'<g class="bridge" data-name="{escape(bridge.name)}">')
        if topo.external and bridge.uplinks:
            out.append(f'<line x1="{cx}" y1="50" x2="{cx}" y2="110" stroke="#3a7bd5" '
                       'stroke-width="3"/>'
                       f'<text x="{cx + 6}" y="85">uplink {escape(", ".join(bridge.uplinks))}'
                       '</text>')
        vlans = ("VLANs " + ", ".join(map(str, sorted(bridge.vlans)))) if bridge.vlans else \
            "untagged"
        out.append(f'<rect x="{x}" y="110" width="{_W_BRIDGE}" height="56" rx="6" '
                   'fill="#fff4d6" stroke="#c98a00" stroke-width="2"/>'
                   f'<text x="{cx}" y="132" text-anchor="middle" font-weight="bold">'
                   f'bridge {escape(bridge.name)}</text>'
                   f'<text x="{cx}" y="152" text-anchor="middle">{len(bridge.ports)} ports · '
                   f'{escape(vlans)}</text>')
        for j, att in enumerate(bridge.attachments):
            out.append(_attachment(att, x, 200 + j * _ROW))
        out.append("</g>")
    if topo.unplaced:
        y = 200 + depth * _ROW - 20
        out.append(f'<text x="20" y="{y}">not on a node bridge: ' + escape(", ".join(
            f"{a.owner} {a.interface}" for a in topo.unplaced)) + "</text>")
    out.append("</svg>")
    return "\n".join(out)


def _attachment(att: Attachment, x: int, y: int) -> str:
    colour = "#e0f5e0" if att.owner.startswith("pod") else "#f3e0f5"
    vlan = f" vlan {att.vlan}" if att.vlan else ""
    # an isolated port: a red dashed border and a lock line naming the directions
    border = ('stroke="#c0392b" stroke-width="2" stroke-dasharray="5,3"' if att.isolated
              else 'stroke="#555"')
    lock = (f'<text class="isolated" x="{x + _W_ATT - 8}" y="{y + 18}" text-anchor="end" '
            f'fill="#c0392b">isolated: {escape(att.isolated)}</text>' if att.isolated else "")
    return (f'<g class="attachment" data-owner="{escape(att.owner)}" '
            f'data-isolated="{escape(att.isolated)}">'
            f'<path d="M{x + 10} 166 V{y + 27} H{x + 20}" fill="none" stroke="#888"/>'
            f'<rect x="{x + 20}" y="{y}" width="{_W_ATT - 20}" height="54" rx="6" '
            f'fill="{colour}" {border}/>{lock}'
            f'<text x="{x + 30}" y="{y + 18}" font-weight="bold">{escape(att.owner)}</text>'
            f'<text x="{x + 30}" y="{y + 33}">{escape(att.interface)} '
            f'{escape(" ".join(att.ips))}{escape(vlan)}</text>'
            f'<text x="{x + 30}" y="{y + 47}">{escape(att.mac)} · {escape(att.network)}</text>'
            "</g>")


def svg_to_png(svg: str) -> bytes:
    import cairosvg  # type: ignore[import-untyped]

    png = cairosvg.svg2png(bytestring=svg.encode())
    assert isinstance(png, bytes)
    return png


def current(store: Store, netns_path: str | None = None) -> Topology:
    """The picture of this node now: its bridges (netlink), the lab's uplink and external
    network, and the pods and VMs in the store."""
    from multihome.lab import settings as labsettings
    from multihome.node import current as node_current
    from multihome.vm import state as vmstate

    lab = labsettings.load()
    vm_pods = {f"{r.namespace}/{r.pod}": f"{r.namespace}/{r.name}"
               for r in vmstate.load_all(lab.state_dir, None)}
    external = f"{lab.external_netns} {lab.external_address}"
    return build(store, node_current.show(netns_path), uplinks={lab.uplink},
                 external=external, vm_pods=vm_pods)
