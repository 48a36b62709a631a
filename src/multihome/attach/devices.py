"""Devices a pod was given by device plugins, and their device-info files.

A NAD annotated with `k8s.v1.cni.cncf.io/resourceName` stands for a device-plugin
resource (an SR-IOV VF pool, say). The kubelet records which device IDs of each
resource it allocated to which pod in its checkpoint file; like Multus, the engine hands
the next unused ID of the NAD's resource to the delegate as `deviceID`, and reports the
device plugin's device-info (Device Info spec, k8snetworkplumbingwg) in network-status.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any

KUBELET_CHECKPOINT = "/var/lib/kubelet/device-plugins/kubelet_internal_checkpoint"
DEVICE_INFO_DIR = "/var/run/k8s.cni.cncf.io/devinfo"
DEVICE_INFO_CAPABILITY = "CNIDeviceInfoFile"


def allocated(checkpoint: str, pod_uid: str) -> dict[str, list[str]]:
    """resource name -> device IDs allocated to the pod, in the kubelet's order.

    A missing or unreadable checkpoint means no devices, as for a pod on a node without
    device plugins. Both checkpoint shapes are read: DeviceIDs as a list (before
    Kubernetes 1.20) and as a map from NUMA node to list.
    """
    if not pod_uid:
        return {}
    try:
        with open(checkpoint, "rb") as f:
            data = json.load(f)
        entries = data["Data"]["PodDeviceEntries"] or []
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    out: dict[str, list[str]] = {}
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("PodUID") != pod_uid:
            continue
        ids: Any = entry.get("DeviceIDs") or []
        if isinstance(ids, dict):
            ids = [i for key in sorted(ids) for i in (ids[key] or [])]
        bucket = out.setdefault(str(entry.get("ResourceName", "")), [])
        bucket += [str(i) for i in ids if str(i) not in bucket]
    return out


class DeviceAssigner:
    """Hands out a pod's device IDs per resource, one per attachment, in order."""

    def __init__(self, devices: dict[str, list[str]]) -> None:
        self._free = {k: list(v) for k, v in devices.items()}

    def take(self, resource: str) -> str | None:
        free = self._free.get(resource)
        return free.pop(0) if free else None

    def skip(self, in_use: set[str]) -> None:
        """Never hand out these (a running pod's interfaces hold them: hot-plug)."""
        for resource, free in self._free.items():
            self._free[resource] = [d for d in free if d not in in_use]


def dp_info_path(root: str, resource: str, device_id: str) -> str:
    """Where the device plugin writes a device's info (`/` in the resource becomes `-`)."""
    return os.path.join(root, "dp", f"{resource.replace('/', '-')}-{device_id}-device.json")


def cni_info_path(root: str, network: str, container_id: str, ifname: str) -> str:
    """The device-info file handed to a delegate that declares CNIDeviceInfoFile."""
    safe = network.replace("/", "-")
    return os.path.join(root, "cni", f"{safe}-{container_id}_{ifname}-device.json")


def load_info(path: str) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def hand_over(dp_path: str, cni_path: str) -> None:
    """Copy the device plugin's info to the delegate's file, as Multus does before ADD."""
    info = load_info(dp_path)
    if info is None:
        return
    os.makedirs(os.path.dirname(cni_path), exist_ok=True)
    tmp = f"{cni_path}.tmp"
    with open(tmp, "w") as f:
        json.dump(info, f)
    os.replace(tmp, cni_path)


def forget(cni_path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(cni_path)


def inject_device_id(conflist: dict[str, Any], device_id: str) -> None:
    """Every plugin of the list gets `deviceID`, as Multus writes it into the config."""
    for plugin in conflist.get("plugins", []):
        if isinstance(plugin, dict):
            plugin["deviceID"] = device_id
