"""The kubernetes-nmstate kinds, registered with the store so `get nncp|nns|nnce` works."""

from __future__ import annotations

from multihome.store.objects import KindInfo, register_kind

NNCP = "NodeNetworkConfigurationPolicy"
NNS = "NodeNetworkState"
NNCE = "NodeNetworkConfigurationEnactment"

register_kind(KindInfo(NNCP, "nodenetworkconfigurationpolicies", "nmstate.io", "v1",
                       namespaced=False, short_names=("nncp",)))
register_kind(KindInfo(NNS, "nodenetworkstates", "nmstate.io", "v1beta1",
                       namespaced=False, short_names=("nns",)))
register_kind(KindInfo(NNCE, "nodenetworkconfigurationenactments", "nmstate.io", "v1beta1",
                       namespaced=False, short_names=("nnce",)))
