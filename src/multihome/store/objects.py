"""The kinds multihome knows: their API group, plural, short names and scope.

The CLI resolves what a user types (`nad`, `net-attach-def`, `pods`, `nncp`…) here, and
prints names the way kubectl does (`networkattachmentdefinition.k8s.cni.cncf.io/bridge-dev`).
Every kind is registered here, the kubernetes-nmstate ones (NNCP, NNS, NNCE) included, so
that whoever imports the store knows them all; :func:`register_kind` stays for tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class UnknownKind(LookupError):
    """A resource type nobody registered."""

    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(f'the server doesn\'t have a resource type "{text}"')


@dataclass(frozen=True)
class KindInfo:
    kind: str  # "NetworkAttachmentDefinition"
    plural: str  # "network-attachment-definitions"
    group: str  # "k8s.cni.cncf.io"; "" for the core group
    version: str  # "v1"
    namespaced: bool = True
    short_names: tuple[str, ...] = field(default_factory=tuple)
    # the CRD's `singular` when it differs from the kind in lower case
    singular_name: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def resource(self) -> str:
        """The type as kubectl errors name it: ``networkattachmentdefinitions.<group>``."""
        plural = self.plural.replace("-", "")
        return f"{plural}.{self.group}" if self.group else plural

    @property
    def type_name(self) -> str:
        """The type before ``/name`` in kubectl output: ``networkattachmentdefinition.<group>``."""
        return f"{self.singular}.{self.group}" if self.group else self.singular

    def ref(self, name: str) -> str:
        return f"{self.type_name}/{name}"


NAD = "NetworkAttachmentDefinition"
POD = "Pod"
NODE = "Node"
NAMESPACE = "Namespace"
# kubernetes-nmstate: the node's desired network, its reported state, one policy's outcome
NNCP = "NodeNetworkConfigurationPolicy"
NNS = "NodeNetworkState"
NNCE = "NodeNetworkConfigurationEnactment"
# whereabouts' CRDs, with whereabouts' own layout: a cluster switching from whereabouts
# keeps its allocations (the cluster-wide IPAM, multihome.ipam.whereabouts)
IPPOOL = "IPPool"
OVERLAPPING_RESERVATION = "OverlappingRangeIPReservation"
NODE_SLICE_POOL = "NodeSlicePool"
WHEREABOUTS_GROUP = "whereabouts.cni.cncf.io"
# multi-network spec v1.3's persistent IPs: the address belongs to the claim, not the pod
IPAM_CLAIM = "IPAMClaim"
# k8snetworkplumbingwg/multi-networkpolicy: NetworkPolicy for secondary networks
MULTI_POLICY = "MultiNetworkPolicy"

_KINDS: dict[str, KindInfo] = {}
_ALIASES: dict[str, str] = {}


def register_kind(info: KindInfo) -> KindInfo:
    """Make a kind known; every spelling kubectl accepts resolves to it."""
    _KINDS[info.kind] = info
    names = {
        info.kind.lower(), info.plural, info.plural.replace("-", ""), info.singular + "s",
        *info.short_names,
    }
    if info.singular_name:
        names.add(info.singular_name)
    if info.group:
        names |= {f"{n}.{info.group}" for n in set(names)}
    for name in names:
        _ALIASES[name.lower()] = info.kind
    return info


register_kind(KindInfo(NAD, "network-attachment-definitions", "k8s.cni.cncf.io", "v1",
                       short_names=("net-attach-def", "nad")))
register_kind(KindInfo(POD, "pods", "", "v1", short_names=("po",)))
register_kind(KindInfo(NODE, "nodes", "", "v1", namespaced=False, short_names=("no",)))
register_kind(KindInfo(NAMESPACE, "namespaces", "", "v1", namespaced=False,
                       short_names=("ns",)))
register_kind(KindInfo("Event", "events", "", "v1", short_names=("ev",)))
register_kind(KindInfo(NNCP, "nodenetworkconfigurationpolicies", "nmstate.io", "v1",
                       namespaced=False, short_names=("nncp",)))
register_kind(KindInfo(NNS, "nodenetworkstates", "nmstate.io", "v1beta1",
                       namespaced=False, short_names=("nns",)))
register_kind(KindInfo(NNCE, "nodenetworkconfigurationenactments", "nmstate.io", "v1beta1",
                       namespaced=False, short_names=("nnce",)))
register_kind(KindInfo(MULTI_POLICY, "multi-networkpolicies", "k8s.cni.cncf.io", "v1beta1",
                       short_names=("multi-policy",), singular_name="multi-networkpolicy"))

register_kind(KindInfo(IPPOOL, "ippools", WHEREABOUTS_GROUP, "v1alpha1", short_names=("ipp",)))
register_kind(KindInfo(OVERLAPPING_RESERVATION, "overlappingrangeipreservations",
                       WHEREABOUTS_GROUP, "v1alpha1"))
register_kind(KindInfo(IPAM_CLAIM, "ipamclaims", "k8s.cni.cncf.io", "v1alpha1"))
register_kind(KindInfo(NODE_SLICE_POOL, "nodeslicepools", WHEREABOUTS_GROUP, "v1alpha1",
                       short_names=("nsp",)))

def resolve_kind(text: str) -> str:
    """The kind for what a user typed, in any case: ``nad`` → ``NetworkAttachmentDefinition``."""
    kind = _ALIASES.get(text.strip().lower())
    if kind is None:
        raise UnknownKind(text)
    return kind


def kind_info(kind_or_alias: str) -> KindInfo:
    """Registration data for a kind (or any alias of it)."""
    info = _KINDS.get(kind_or_alias)
    return info if info is not None else _KINDS[resolve_kind(kind_or_alias)]


def known_kinds() -> list[KindInfo]:
    return list(_KINDS.values())
