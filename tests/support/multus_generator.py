"""What Multus 4.3 thick writes as 00-multus.conf for a daemon config, from the rules of its
generator (pkg/server/config/generator.go and manager.go), written out independently of
multihome's code so that a test can hold multihome's output against it."""

from __future__ import annotations

import json
from typing import Any

# MultusConf's fields in struct order: Go's encoder writes them in this order.
_ORDER = ["binDir", "capabilities", "cniVersion", "logFile", "logLevel", "logToStderr",
          "logOptions", "name", "clusterNetwork", "namespaceIsolation", "globalNamespaces",
          "readinessindicatorfile", "type", "cniDir", "cniConfigDir", "auxiliaryCNIChainName",
          "daemonSocketDir", "multusConfigFile", "multusMasterCNI", "multusAutoconfigDir",
          "forceCNIVersion", "overrideNetworkName"]
# Generate() clears these before marshalling
_CLEARED = {"cniConfigDir", "multusConfigFile", "multusAutoconfigDir", "multusMasterCNI",
            "forceCNIVersion", "readinessindicatorfile"}
_ALWAYS = {"cniVersion", "name", "type"}  # the fields without `omitempty`


def expected_multus_conf(daemon: dict[str, Any], cluster_network: str,
                         capabilities: dict[str, bool] | None = None) -> str:
    """The file's text: name forced to multus-cni-network, type multus-shim unless the
    daemon config sets one, clusterNetwork the primary config's path, compact JSON."""
    values = {**daemon, "name": "multus-cni-network", "clusterNetwork": cluster_network,
              "type": daemon.get("type", "multus-shim"),
              "capabilities": dict(sorted((capabilities or {}).items()))}
    out = {k: values[k] for k in _ORDER
           if k in values and k not in _CLEARED and (values[k] or k in _ALWAYS)}
    return json.dumps(out, separators=(",", ":"))
