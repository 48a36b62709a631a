"""The lab's world outside the pods: the node bridge and the external network.

`dev-bridge` is the node bridge NADs attach to; its uplink is a veth whose other end
is `eth0` of the `mh-external` namespace, which plays the datacenter LAN with one
host at a known address. Everything lives in namespaces or on links the lab names,
so `down` finds it again from the settings alone.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
from collections.abc import Callable

from multihome.errors import MultihomeError
from multihome.lab import dhcp as labdhcp
from multihome.lab.settings import ENGINE_CONF_FILE, SETTINGS_FILE, LabSettings, save
from multihome.net import addr, links, netns

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def up(settings: LabSettings, progress: Progress = _quiet) -> None:
    """Create (or complete) the lab; running it again changes nothing."""
    save(settings)
    ext_path = netns.named_path(settings.external_netns)
    if not netns.exists(ext_path):
        netns.create_named(settings.external_netns)
        progress(f"namespace {settings.external_netns} created (the external network)")
    with netns.iproute_in(None) as ipr:
        uplink = links.by_name(ipr, settings.uplink)
        if uplink is None:
            with netns.opened(ext_path) as fd:
                uplink, _ = links.create_veth(ipr, "eth0", fd, host_name=settings.uplink)
            progress(f"uplink {settings.uplink} leads to {settings.external_netns}")
        if settings.create_dev_bridge:
            bridge = links.ensure_bridge(ipr, settings.dev_bridge)
            links.set_master(ipr, uplink.index, bridge.index)
            progress(f"bridge {settings.dev_bridge} is up, {settings.uplink} is its port")
        else:
            progress(f"bridge {settings.dev_bridge} is left to a "
                     "NodeNetworkConfigurationPolicy (e.g. examples/dev-bridge-policy.yml)")
        links.set_up(ipr, uplink.index)
    host = ipaddress.ip_interface(settings.external_address)
    with netns.iproute_in(ext_path) as ipr:
        for name in ("lo", "eth0"):
            link = links.by_name(ipr, name)
            if link is not None:
                links.set_up(ipr, link.index)
        eth0 = links.by_name(ipr, "eth0")
        if eth0 is not None:
            addr.add_address(ipr, eth0.index, host, ifname="eth0")
    progress(f"external host {host} in {settings.external_netns}")
    if settings.dhcp:
        labdhcp.up(settings, progress)


def down(settings: LabSettings, progress: Progress = _quiet) -> None:
    """Remove what `up` and the pods' default network made; missing parts are fine."""
    labdhcp.down(settings, progress)
    with netns.iproute_in(None) as ipr:
        for name in (settings.uplink, settings.dev_bridge, settings.cluster_bridge):
            if links.delete_by_name(ipr, name):
                progress(f"link {name} deleted")
    if netns.exists(netns.named_path(settings.external_netns)):
        netns.delete_named(settings.external_netns)
        progress(f"namespace {settings.external_netns} deleted")
    _drop_node_checkpoint(settings, progress)
    for sub in (settings.cni_dir, settings.ipam_dir, os.path.join(settings.state_dir, "node")):
        shutil.rmtree(sub, ignore_errors=True)
    for fname in (SETTINGS_FILE, ENGINE_CONF_FILE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(settings.state_dir, fname))


def _drop_node_checkpoint(settings: LabSettings, progress: Progress) -> None:
    """Forget a pending `node apply --no-commit` checkpoint of the lab node and stop its
    rollback timer: the links it would restore are gone with the lab."""
    from multihome.node import checkpoint

    node_dir = os.path.join(settings.state_dir, "node")
    with checkpoint.node_dir_override(node_dir):
        try:
            cp = checkpoint.load()
        except MultihomeError as e:  # unreadable: the directory goes anyway
            progress(f"node checkpoint ignored: {e}")
            return
        if cp is not None:
            checkpoint.drop(cp)
            progress(f"node checkpoint {cp.id} dropped")
