"""The bridge plugin's config keys, parsed and validated into one typed object."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from multihome.cni.args import requested_mac
from multihome.cni.errors import InvalidConfig, InvalidEnvironment
from multihome.cni.skel import Call
from multihome.cni.types import validate_ifname
from multihome.plugins import conf_keys
from multihome.plugins.conf_keys import get_bool, get_int

DEFAULT_BRIDGE = "cni0"
MAX_VLAN = 4094


@dataclass(frozen=True)
class BridgeConf:
    network: str
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = False
    is_default_gateway: bool = False
    force_address: bool = False
    ip_masq: bool = False
    mtu: int = 0
    hairpin: bool = False
    promisc: bool = False
    vlan: int = 0
    vlan_trunk: tuple[int, ...] = ()
    preserve_default_vlan: bool = True
    macspoofchk: bool = False
    enable_dad: bool = False
    disable_container_interface: bool = False
    port_isolation: bool = False
    ipam_type: str = ""
    mac: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def vlan_filtering(self) -> bool:
        return self.vlan != 0 or bool(self.vlan_trunk)


def _bool(raw: dict[str, Any], key: str, default: bool = False) -> bool:
    return get_bool(raw, key, "bridge", default)


def _int(raw: dict[str, Any], key: str) -> int:
    return get_int(raw, key, "bridge")


def _trunk_id(item: dict[str, Any], key: str) -> int | None:
    value = item.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidConfig(f"vlanTrunk {key} must be an integer, got {value!r}")
    if not 1 <= value <= MAX_VLAN:
        raise InvalidConfig(f"incorrect trunk {key} parameter {value}: must be 1-{MAX_VLAN}")
    return value


def parse_trunk(value: Any) -> tuple[int, ...]:
    """`[{"id": 5}, {"minID": 10, "maxID": 20}]` → sorted unique VLAN ids."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise InvalidConfig("vlanTrunk must be a list of {id} or {minID, maxID} objects")
    vids: set[int] = set()
    for item in value:
        if not isinstance(item, dict):
            raise InvalidConfig(f"vlanTrunk entry {item!r} must be an object")
        lo, hi = _trunk_id(item, "minID"), _trunk_id(item, "maxID")
        if lo is not None and hi is not None:
            if hi < lo:
                raise InvalidConfig(f"vlanTrunk minID {lo} is greater than maxID {hi}")
            vids.update(range(lo, hi + 1))
        elif lo is None and hi is not None:
            raise InvalidConfig("vlanTrunk minID and maxID must be set together: minID is missing")
        elif lo is not None and hi is None:
            raise InvalidConfig("vlanTrunk minID and maxID must be set together: maxID is missing")
        single = _trunk_id(item, "id")
        if single is not None:
            vids.add(single)
    return tuple(sorted(vids))


def parse(call: Call) -> BridgeConf:
    raw = call.conf.raw
    name = raw.get("bridge") or DEFAULT_BRIDGE
    if not isinstance(name, str):
        raise InvalidConfig(f"bridge name must be a string, got {name!r}")
    try:
        validate_ifname(name)
    except InvalidEnvironment as e:
        raise InvalidConfig(f"invalid bridge name: {e.msg}") from e
    mtu = conf_keys.get_mtu(raw, "bridge")
    vlan = _int(raw, "vlan")
    if not 0 <= vlan <= MAX_VLAN:
        raise InvalidConfig(f"invalid VLAN ID {vlan} (must be between 0 and {MAX_VLAN})")
    trunk = parse_trunk(raw.get("vlanTrunk"))
    if vlan and trunk:
        raise InvalidConfig("cannot set vlan and vlanTrunk at the same time: a port is either "
                            "an access port (vlan) or a trunk (vlanTrunk)")
    hairpin = _bool(raw, "hairpinMode")
    promisc = _bool(raw, "promiscMode")
    if hairpin and promisc:
        raise InvalidConfig("cannot set hairpinMode and promiscMode at the same time")
    ipam_type = conf_keys.ipam_type(call)
    disable_if = _bool(raw, "disableContainerInterface")
    if disable_if and ipam_type:
        raise InvalidConfig("cannot use IPAM when disableContainerInterface is set: a down "
                            "interface cannot hold addresses; drop one of them")
    is_dgw = _bool(raw, "isDefaultGateway")
    mac = requested_mac(call, known_args=("MAC", "IP")) if call.cmd.command == "ADD" else None
    return BridgeConf(
        network=call.conf.name,
        bridge=name,
        is_gateway=_bool(raw, "isGateway") or is_dgw,
        is_default_gateway=is_dgw,
        force_address=_bool(raw, "forceAddress"),
        ip_masq=_bool(raw, "ipMasq"),
        mtu=mtu,
        hairpin=hairpin,
        promisc=promisc,
        vlan=vlan,
        vlan_trunk=trunk,
        preserve_default_vlan=_bool(raw, "preserveDefaultVlan", True),
        macspoofchk=_bool(raw, "macspoofchk"),
        enable_dad=_bool(raw, "enabledad"),
        disable_container_interface=disable_if,
        port_isolation=_bool(raw, "portIsolation"),
        ipam_type=ipam_type,
        mac=mac or "",
        raw=raw,
    )
