"""Where the local lab keeps its state, and the names and addresses of its world.

Every directory hangs off one state dir (`$MULTIHOME_STATE_DIR`, default
`/var/lib/multihome/lab`) so tests and demos can run side by side in their own
tmp dirs; `lab up` records the settings in `<state>/lab.json`, later commands read them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from multihome.cni.errors import InvalidConfig, IOFailure
from multihome.paths import DEFAULT_STATE_DIR, state_dir

SETTINGS_FILE = "lab.json"
ENGINE_CONF_FILE = "00-multihome.conf"
NODE_RESOURCE_MODES = ("strict", "warn")


@dataclass
class LabSettings:
    state_dir: str = DEFAULT_STATE_DIR
    # the lab's default (cluster) network: eth0 of every pod
    cluster_network: str = "mh-cluster"
    cluster_bridge: str = "mh-cluster0"
    cluster_subnet: str = "10.244.0.0/24"
    # isGateway puts the subnet's first address on the host bridge; off by default so
    # the lab adds no address to the host itself
    cluster_gateway: bool = False
    # the node bridge and the network outside the cluster
    dev_bridge: str = "dev-bridge"
    external_netns: str = "mh-external"
    external_address: str = "10.250.0.1/24"
    namespace_isolation: bool = True
    # False: `lab up` makes only the external network and the uplink veth; the bridge
    # with its port comes from a NodeNetworkConfigurationPolicy (examples/dev-bridge-policy.yml)
    create_dev_bridge: bool = True
    # a NAD's resourceName bridge.network.kubevirt.io/<bridge> the node lacks: "strict"
    # refuses the pod as a scheduler would, "warn" runs it and says so. warn by default:
    # the seed NAD asks for bridge-dev while its config (and the lab) uses dev-bridge,
    # and the seed must run verbatim.
    node_resources: str = "warn"
    global_namespaces: list[str] = field(default_factory=list)
    # `lab up --dhcp`: a DHCP server on the external LAN and a daemon holding pod leases
    dhcp: bool = False
    bin_dirs: list[str] = field(default_factory=lambda: ["/opt/cni/bin", "/usr/lib/cni"])

    @property
    def uplink(self) -> str:
        """Host end of the veth to the external namespace (a dev-bridge port)."""
        return f"{self.dev_bridge[:11]}-up"

    @property
    def cni_dir(self) -> str:
        return os.path.join(self.state_dir, "cni")

    @property
    def ipam_dir(self) -> str:
        return os.path.join(self.state_dir, "ipam")

    @property
    def conf_dir(self) -> str:
        return os.path.join(self.state_dir, "net.d")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def engine_config(self) -> dict[str, Any]:
        """The lab's Multus config: the cluster network inline as the first delegate."""
        cluster: dict[str, Any] = {
            "cniVersion": "1.0.0",
            "name": self.cluster_network,
            "plugins": [{
                "type": "bridge",
                "bridge": self.cluster_bridge,
                "isGateway": self.cluster_gateway,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": self.cluster_subnet}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": self.ipam_dir,
                },
            }],
        }
        return {
            "cniVersion": "1.0.0",
            "name": "multihome-lab",
            "type": "multihome",
            "delegates": [cluster],
            "namespaceIsolation": self.namespace_isolation,
            "globalNamespaces": list(self.global_namespaces),
            "confDir": self.conf_dir,
            "cniDir": self.cni_dir,
            "binDir": ":".join(self.bin_dirs),
        }


def is_up(path: str | None = None) -> bool:
    """Whether `lab up` recorded settings in this state dir (a lab to act on exists)."""
    return os.path.exists(os.path.join(state_dir(path), SETTINGS_FILE))


def load(path: str | None = None) -> LabSettings:
    """The settings `lab up` recorded, or the defaults for this state dir."""
    root = state_dir(path)
    file = os.path.join(root, SETTINGS_FILE)
    try:
        with open(file) as f:
            data = json.load(f)
    except FileNotFoundError:
        return LabSettings(state_dir=root)
    except (OSError, ValueError) as e:
        raise InvalidConfig(f"cannot read lab settings {file}", str(e)) from e
    known = {f.name for f in dataclasses.fields(LabSettings)}
    values = {k: v for k, v in data.items() if k in known}
    values["state_dir"] = root
    settings = LabSettings(**values)
    if settings.node_resources not in NODE_RESOURCE_MODES:
        raise InvalidConfig(f"lab setting node_resources in {file} is "
                            f"{settings.node_resources!r}: use strict or warn")
    return settings


def save(settings: LabSettings) -> None:
    try:
        # Lab state (addresses, bridges, the engine's config) is for root alone.
        os.makedirs(settings.state_dir, mode=0o700, exist_ok=True)
        for name, data in ((SETTINGS_FILE, settings.to_json()),
                           (ENGINE_CONF_FILE, settings.engine_config())):
            fd = os.open(os.path.join(settings.state_dir, name),
                         os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=2)
    except OSError as e:
        raise IOFailure(f"cannot write lab settings in {settings.state_dir}", str(e)) from e
