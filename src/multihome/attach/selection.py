"""The pod's network selection: `k8s.v1.cni.cncf.io/networks` and the default-network override.

Two forms, as Multus and the multi-network spec v1.3 define them:
- comma list: ``bridge-dev, other-ns/macvlan@net5``
- JSON list: ``[{"name": "bridge-dev", "interface": "net5", "ips": ["10.1.1.5/24"]}]``
The JSON form is used when the text contains ``[``, ``{`` or ``"`` (Multus' rule).
Unknown JSON keys are ignored, like Multus does. Everything else that is wrong becomes an
:class:`InvalidNetworkSelection` whose message names the pod, the element and the problem.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Any

from multihome.cni.errors import InvalidConfig
from multihome.store.names import subdomain_problem

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
DEFAULT_NETWORK_ANNOTATION = "v1.multus-cni.io/default-network"

DNS1123_LABEL_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_LABEL_MAX = 63
IFNAME_MAX = 15
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}$")
_GUID_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){7}$")
_BANDWIDTH_KEYS = ("ingressRate", "ingressBurst", "egressRate", "egressBurst")
_PROTOCOLS = ("tcp", "udp", "sctp")


class InvalidNetworkSelection(InvalidConfig):
    """A selection annotation that cannot be used; code 7 like any bad network config."""

    def __init__(self, pod: str, annotation: str, problem: str, *,
                 index: int | None = None, element: str | None = None) -> None:
        self.pod, self.annotation, self.problem = pod, annotation, problem
        self.index, self.element = index, element
        where = ""
        if index is not None:
            where = f" element {index}"
            if element is not None:
                where += f" ({_shorten(element)})"
        super().__init__(f"pod {pod}: {annotation}{where}: {problem}")


def _shorten(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass
class NetworkSelection:
    """One element of the selection, with the pod's namespace filled in."""

    name: str
    namespace: str
    interface: str | None = None
    ips: list[str] = field(default_factory=list)
    mac: str | None = None
    default_route: list[str] = field(default_factory=list)
    cni_args: dict[str, Any] | None = None
    infiniband_guid: str | None = None
    bandwidth: dict[str, int] | None = None
    port_mappings: list[dict[str, Any]] | None = None
    device_id: str | None = None
    # multi-network spec v1.3: the IPAMClaim (in the pod's namespace) the address belongs to
    ipam_claim_reference: str | None = None
    index: int = 0  # 1-based position in the annotation, for messages

    @property
    def qualified_name(self) -> str:
        """``namespace/name``, the form network-status uses."""
        return f"{self.namespace}/{self.name}"

    def to_dict(self) -> dict[str, Any]:
        """The element in the annotation's JSON form (only the keys that are set)."""
        out: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        optional: dict[str, Any] = {
            "interface": self.interface,
            "ips": self.ips or None,
            "mac": self.mac,
            "default-route": self.default_route or None,
            "cni-args": self.cni_args,
            "infiniband-guid": self.infiniband_guid,
            "bandwidth": self.bandwidth,
            "portMappings": self.port_mappings,
            "deviceID": self.device_id,
            "ipam-claim-reference": self.ipam_claim_reference,
        }
        out.update({k: v for k, v in optional.items() if v is not None})
        return out


class _Element:
    """Validation context for one element: every problem names the pod and the element."""

    def __init__(self, pod: str, annotation: str, index: int, text: str) -> None:
        self.pod, self.annotation, self.index, self.text = pod, annotation, index, text

    def fail(self, problem: str) -> InvalidNetworkSelection:
        return InvalidNetworkSelection(self.pod, self.annotation, problem,
                                       index=self.index, element=self.text)

    def label(self, what: str, value: str) -> str:
        if not value:
            raise self.fail(f"{what} is empty")
        if len(value) > DNS1123_LABEL_MAX:
            raise self.fail(f'{what} "{_shorten(value, 40)}" is longer than '
                            f"{DNS1123_LABEL_MAX} characters")
        if not DNS1123_LABEL_RE.match(value):
            raise self.fail(f'{what} "{value}" is not a DNS-1123 label (lower case letters, '
                            "digits and '-', starting and ending with a letter or digit)")
        return value

    def ifname(self, value: str) -> str:
        if not value:
            raise self.fail("interface name is empty")
        if len(value) > IFNAME_MAX:
            raise self.fail(f'interface name "{value}" is longer than {IFNAME_MAX} characters')
        if value in (".", "..") or any(c in value for c in "/:") or any(
            c.isspace() for c in value
        ):
            raise self.fail(f'interface name "{value}" is not a valid Linux interface name '
                            "(no '/', ':' or whitespace, not '.' or '..')")
        return value

    def string(self, raw: dict[str, Any], key: str) -> str | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(f'"{key}" must be a string, not {json.dumps(value)}')
        return value

    def strings(self, raw: dict[str, Any], key: str) -> list[str]:
        value = raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(f'"{key}" must be a list of strings, not {json.dumps(value)}')
        return list(value)

    def mapping(self, raw: dict[str, Any], key: str) -> dict[str, Any] | None:
        value = raw.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(f'"{key}" must be an object, not {json.dumps(value)}')
        return value


def _check_ips(el: _Element, ips: list[str]) -> list[str]:
    for text in ips:
        if "/" not in text:
            raise el.fail(f'IP "{text}" in "ips" has no prefix length: write it in CIDR '
                          'notation, like "10.10.0.5/24"')
        try:
            ipaddress.ip_interface(text)
        except ValueError:
            raise el.fail(f'"{text}" in "ips" is not an IP address in CIDR notation, '
                          'like "10.10.0.5/24"') from None
    return ips


def _check_mac(el: _Element, mac: str) -> str:
    if not _MAC_RE.match(mac):
        raise el.fail(f'MAC address "{mac}" is not six hex octets like "02:00:00:00:00:01"')
    octets = [int(x, 16) for x in re.split("[:-]", mac)]
    if octets[0] & 1:
        raise el.fail(f'MAC address "{mac}" is a multicast address and cannot be assigned '
                      "to an interface")
    if not any(octets):
        raise el.fail(f'MAC address "{mac}" is all zeros')
    return ":".join(f"{o:02x}" for o in octets)


def _check_gateways(el: _Element, gateways: list[str]) -> list[str]:
    for text in gateways:
        try:
            ipaddress.ip_address(text)
        except ValueError:
            raise el.fail(f'"{text}" in "default-route" is not an IP address (a gateway '
                          'address without prefix length, like "10.10.0.1")') from None
    return gateways


def _check_bandwidth(el: _Element, bw: dict[str, Any] | None) -> dict[str, int] | None:
    if bw is None:
        return None
    for key, value in bw.items():
        if key not in _BANDWIDTH_KEYS:
            raise el.fail(f'"bandwidth" has unknown key "{key}": expected '
                          f"{', '.join(_BANDWIDTH_KEYS)}")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise el.fail(f'"bandwidth.{key}" must be a non-negative integer, '
                          f"not {json.dumps(value)}")
    return dict(bw)


def _check_port_mappings(el: _Element, raw: Any) -> list[dict[str, Any]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
        raise el.fail(f'"portMappings" must be a list of objects, not {json.dumps(raw)}')
    for i, pm in enumerate(raw, 1):
        for key in ("hostPort", "containerPort"):
            port = pm.get(key)
            if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
                raise el.fail(f'"portMappings" entry {i} needs "{key}" between 1 and 65535, '
                              f"not {json.dumps(port)}")
        proto = pm.get("protocol", "tcp")
        if not isinstance(proto, str) or proto.lower() not in _PROTOCOLS:
            raise el.fail(f'"portMappings" entry {i} has protocol {json.dumps(proto)}: '
                          "expected tcp, udp or sctp")
        host_ip = pm.get("hostIP")
        if host_ip not in (None, ""):
            try:
                ipaddress.ip_address(str(host_ip))
            except ValueError:
                raise el.fail(f'"portMappings" entry {i} has hostIP {json.dumps(host_ip)}, '
                              "which is not an IP address") from None
    return [dict(p) for p in raw]


def _from_comma_item(el: _Element, item: str, pod_namespace: str) -> NetworkSelection:
    namespace = pod_namespace
    rest = item
    if "/" in item:
        parts = item.split("/")
        if len(parts) != 2:
            raise el.fail("has more than one '/': expected [namespace/]name[@interface]")
        namespace = parts[0].strip() or pod_namespace
        rest = parts[1]
    at = rest.split("@")
    if len(at) > 2:
        raise el.fail("has more than one '@': expected [namespace/]name[@interface]")
    name = at[0].strip()
    iface = at[1].strip() if len(at) == 2 else ""
    el.label("namespace", namespace)
    el.label("network name", name)
    if iface:
        # Multus holds the comma form's interface to the same lowercase label rule.
        el.label("interface name", iface)
        el.ifname(iface)
    return NetworkSelection(name=name, namespace=namespace, interface=iface or None,
                            index=el.index)


def _from_json_item(el: _Element, raw: Any, pod_namespace: str) -> NetworkSelection:
    if not isinstance(raw, dict):
        raise el.fail("must be a JSON object with at least \"name\"")
    name = el.string(raw, "name")
    if name is None:
        raise el.fail('has no "name"')
    el.label("network name", name)
    namespace = el.string(raw, "namespace") or pod_namespace
    el.label("namespace", namespace)
    iface = el.string(raw, "interface") or None
    if iface is not None:
        el.ifname(iface)
    mac = el.string(raw, "mac") or None
    guid = el.string(raw, "infiniband-guid") or None
    if guid is not None and not _GUID_RE.match(guid):
        raise el.fail(f'"infiniband-guid" "{guid}" is not eight hex octets like '
                      '"c2:11:22:33:44:55:66:77"')
    return NetworkSelection(
        name=name,
        namespace=namespace,
        interface=iface,
        ips=_check_ips(el, el.strings(raw, "ips")),
        mac=_check_mac(el, mac) if mac else None,
        default_route=_check_gateways(el, el.strings(raw, "default-route")),
        cni_args=el.mapping(raw, "cni-args"),
        infiniband_guid=guid,
        bandwidth=_check_bandwidth(el, el.mapping(raw, "bandwidth")),
        port_mappings=_check_port_mappings(el, raw.get("portMappings")),
        device_id=el.string(raw, "deviceID") or None,
        ipam_claim_reference=_check_claim(el, el.string(raw, "ipam-claim-reference")),
        index=el.index,
    )


def _check_claim(el: _Element, name: str | None) -> str | None:
    """An IPAMClaim's name: an object name (DNS-1123 subdomain)."""
    if not name:
        return None
    problem = subdomain_problem(name, "IPAMClaim name")
    if problem:
        raise el.fail(f'"ipam-claim-reference": {problem}')
    return name


def is_json_form(text: str) -> bool:
    return any(c in text for c in '[{"')


def _parse(text: str, pod_namespace: str, pod: str, annotation: str) -> list[NetworkSelection]:
    if not text.strip():
        return []
    selections: list[NetworkSelection] = []
    if is_json_form(text):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise InvalidNetworkSelection(pod, annotation, f"is not valid JSON ({e})") from None
        if isinstance(data, dict):
            # Multus wants a list; a lone object is the most common slip, so say so.
            raise InvalidNetworkSelection(
                pod, annotation, "must be a JSON list of objects; wrap the object in [ ]")
        if not isinstance(data, list):
            raise InvalidNetworkSelection(
                pod, annotation, f"must be a JSON list of objects, not {json.dumps(data)}")
        for i, raw in enumerate(data, 1):
            el = _Element(pod, annotation, i, json.dumps(raw, separators=(",", ":")))
            selections.append(_from_json_item(el, raw, pod_namespace))
    else:
        for i, item in enumerate(text.split(","), 1):
            el = _Element(pod, annotation, i, f'"{item.strip()}"')
            if not item.strip():
                raise el.fail("is empty (two commas in a row, or a trailing comma)")
            selections.append(_from_comma_item(el, item.strip(), pod_namespace))
    return selections


def _check_across(selections: list[NetworkSelection], pod: str, annotation: str) -> None:
    seen_if: dict[str, int] = {}
    gateway_owner: dict[int, int] = {}
    for sel in selections:
        if sel.interface is not None:
            first = seen_if.get(sel.interface)
            if first is not None:
                raise InvalidNetworkSelection(
                    pod, annotation,
                    f'interface name "{sel.interface}" is already requested by element {first}',
                    index=sel.index, element=sel.qualified_name)
            seen_if[sel.interface] = sel.index
        for gw in sel.default_route:
            family = ipaddress.ip_address(gw).version
            owner = gateway_owner.get(family)
            if owner is not None:
                other = "this element" if owner == sel.index else f"element {owner}"
                raise InvalidNetworkSelection(
                    pod, annotation,
                    f"asks for an IPv{family} default route, but {other} already does; "
                    "only one IPv4 and one IPv6 default route are allowed",
                    index=sel.index, element=sel.qualified_name)
            gateway_owner[family] = sel.index


def parse_networks_annotation(
    text: str, pod_namespace: str, pod_name: str
) -> list[NetworkSelection]:
    """Parse and validate `k8s.v1.cni.cncf.io/networks`; an empty text selects nothing."""
    pod = f"{pod_namespace}/{pod_name}"
    selections = _parse(text, pod_namespace, pod, NETWORKS_ANNOTATION)
    _check_across(selections, pod, NETWORKS_ANNOTATION)
    return selections


def parse_default_network_annotation(
    text: str, pod_namespace: str, pod_name: str
) -> NetworkSelection | None:
    """Parse `v1.multus-cni.io/default-network`: one network replacing the cluster default."""
    pod = f"{pod_namespace}/{pod_name}"
    selections = _parse(text, pod_namespace, pod, DEFAULT_NETWORK_ANNOTATION)
    if not selections:
        return None
    if len(selections) > 1:
        raise InvalidNetworkSelection(
            pod, DEFAULT_NETWORK_ANNOTATION,
            f"names {len(selections)} networks; the default network must be exactly one")
    return selections[0]
