"""SR-IOV VF settings, made on the PF over netlink (IFLA_VFINFO_LIST)."""

from __future__ import annotations

import errno
from dataclasses import asdict, dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from multihome.cni.errors import CNIError

RTEXT_FILTER_VF = 1
LINK_STATES = {"auto": 0, "enable": 1, "disable": 2}


@dataclass(frozen=True)
class VfSettings:
    """Each field None means "leave as is"."""

    mac: str | None = None
    vlan: int | None = None
    qos: int | None = None
    spoofchk: bool | None = None
    trust: bool | None = None
    link_state: str | None = None
    min_tx_rate: int | None = None
    max_tx_rate: int | None = None

    def empty(self) -> bool:
        return all(v is None for v in asdict(self).values())

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> VfSettings:
        return cls(**{k: d[k] for k in asdict(cls()) if k in d})


def read(ipr: IPRoute, pf_index: int, vf_index: int) -> VfSettings | None:
    """The PF's current settings of one VF; None when the PF reports no VFs."""
    msgs = ipr.get_links(pf_index, ext_mask=RTEXT_FILTER_VF)
    vflist = msgs[0].get_attr("IFLA_VFINFO_LIST") if msgs else None
    if vflist is None:
        return None
    for info in vflist.get_attrs("IFLA_VF_INFO"):
        mac = info.get_attr("IFLA_VF_MAC")
        if mac is None or mac["vf"] != vf_index:
            continue
        vlan, rate = info.get_attr("IFLA_VF_VLAN"), info.get_attr("IFLA_VF_RATE")
        spoof, trust = info.get_attr("IFLA_VF_SPOOFCHK"), info.get_attr("IFLA_VF_TRUST")
        state = info.get_attr("IFLA_VF_LINK_STATE")
        names = {v: k for k, v in LINK_STATES.items()}
        return VfSettings(
            mac=mac["mac"], vlan=vlan["vlan"] if vlan else None,
            qos=vlan["qos"] if vlan else None,
            spoofchk=bool(spoof["spoofchk"]) if spoof else None,
            trust=bool(trust["trust"]) if trust else None,
            link_state=names.get(state["link_state"]) if state else None,
            min_tx_rate=rate["min_tx_rate"] if rate else None,
            max_tx_rate=rate["max_tx_rate"] if rate else None)
    return None


def apply(ipr: IPRoute, pf_index: int, pf_name: str, vf_index: int, s: VfSettings) -> None:
    """Set what `s` names on VF `vf_index` of the PF; nothing to set is a no-op."""
    if s.empty():
        return
    spec: dict[str, Any] = {"vf": vf_index}
    if s.mac is not None:
        spec["mac"] = s.mac
    if s.vlan is not None or s.qos is not None:
        spec["vlan"] = {"vlan": s.vlan or 0, "qos": s.qos or 0}
    if s.spoofchk is not None:
        spec["spoofchk"] = int(s.spoofchk)
    if s.trust is not None:
        spec["trust"] = int(s.trust)
    if s.link_state is not None:
        spec["link_state"] = LINK_STATES[s.link_state]
    if s.min_tx_rate is not None or s.max_tx_rate is not None:
        spec["rate"] = {"min_tx_rate": s.min_tx_rate or 0, "max_tx_rate": s.max_tx_rate or 0}
    try:
        ipr.link("set", index=pf_index, vf=spec)
    except NetlinkError as e:
        if e.code == errno.EOPNOTSUPP:
            raise CNIError(f"PF {pf_name} does not support VF settings "
                           f"{sorted(s.to_dict())}: its driver has no SR-IOV netlink "
                           "support; drop these keys or use an SR-IOV capable NIC") from e
        raise CNIError(f"cannot apply VF {vf_index} settings on PF {pf_name}",
                       f"{e.args[1] if len(e.args) > 1 else e} (errno {e.code})") from e
