"""`multihome lab up|down|status`: the local lab's node bridge and external network."""

from __future__ import annotations

import importlib
from types import ModuleType

import click

from multihome.cli.context import get_store
from multihome.errors import MultihomeError
from multihome.extras import missing_extra
from multihome.lab import pods as labpods
from multihome.lab import settings as labsettings
from multihome.lab import world
from multihome.lab.cluster import layout as cluster_layout
from multihome.lab.cluster.build import BuildError
from multihome.lab.cluster.procs import ClusterError
from multihome.paths import state_dir
from multihome.store import POD, StoreError


def _progress(line: str) -> None:
    click.echo(line)


def _cluster() -> ModuleType:
    """The lab cluster's orchestration, which needs the `cluster` extra (cryptography for
    its CA). Imported when a cluster command runs, so that the rest of `multihome lab`
    works on an install without that extra; a missing extra is one line."""
    try:
        return importlib.import_module("multihome.lab.cluster.up")
    except ModuleNotFoundError as e:
        message = missing_extra(e, "the lab cluster")
        if message is None:
            raise
        raise click.ClickException(message) from None


@click.group("lab")
def lab() -> None:
    """The local lab: dev-bridge, its uplink to the external network, the default network."""


@lab.command("up")
@click.option("--dev-bridge", default=None, help="Node bridge NADs attach to.")
@click.option("--external-netns", default=None, help="Namespace playing the external LAN.")
@click.option("--external-address", default=None, help="The external host, ADDRESS/PREFIX.")
@click.option("--cluster-bridge", default=None, help="Bridge of the lab's default network.")
@click.option("--cluster-subnet", default=None, help="Subnet of the lab's default network.")
@click.option("--cluster-gateway/--no-cluster-gateway", default=None,
              help="Give the host the default network's gateway address (isGateway).")
@click.option("--namespace-isolation/--no-namespace-isolation", default=None)
@click.option("--dev-bridge-by-lab/--dev-bridge-by-policy", "create_dev_bridge", default=None,
              help="Make the node bridge here, or leave it (and its uplink port) to a "
                   "NodeNetworkConfigurationPolicy such as examples/dev-bridge-policy.yml.")
@click.option("--node-resources", type=click.Choice(["strict", "warn"]), default=None,
              help="A pod whose NAD needs bridge.network.kubevirt.io/<bridge> the node lacks: "
                   "strict refuses it (as a scheduler would), warn runs it with a warning.")
@click.option("--global-namespace", "global_namespaces", multiple=True,
              help="Namespace whose NADs every pod may use (repeatable).")
@click.option("--dhcp/--no-dhcp", default=None,
              help="Run a DHCP server (dnsmasq) on the external LAN and a daemon that holds "
                   "the pods' leases, for NADs with \"ipam\": {\"type\": \"dhcp\"}.")
@click.option("--kubernetes", is_flag=True,
              help="Also start a real single-node Kubernetes cluster (etcd, API server, "
                   "controllers, scheduler, containerd, kubelet) with multihome as its CNI.")
def up_cmd(dev_bridge: str | None, external_netns: str | None, external_address: str | None,
           cluster_bridge: str | None, cluster_subnet: str | None,
           cluster_gateway: bool | None, namespace_isolation: bool | None,
           create_dev_bridge: bool | None, node_resources: str | None,
           global_namespaces: tuple[str, ...], dhcp: bool | None, kubernetes: bool) -> None:
    """Create the lab (settings are kept in $MULTIHOME_STATE_DIR/lab.json)."""
    settings = labsettings.load()
    for key, value in (("dev_bridge", dev_bridge), ("external_netns", external_netns),
                       ("external_address", external_address),
                       ("cluster_bridge", cluster_bridge), ("cluster_subnet", cluster_subnet),
                       ("cluster_gateway", cluster_gateway),
                       ("namespace_isolation", namespace_isolation),
                       ("create_dev_bridge", create_dev_bridge),
                       ("node_resources", node_resources), ("dhcp", dhcp)):
        if value is not None:
            setattr(settings, key, value)
    if global_namespaces:
        settings.global_namespaces = list(global_namespaces)
    try:
        world.up(settings, _progress)
    except MultihomeError as e:
        raise click.ClickException(str(e)) from e
    if kubernetes:
        try:
            _cluster().up(settings.state_dir, _progress)
        except (ClusterError, BuildError) as e:
            raise click.ClickException(str(e)) from e
        click.echo('lab cluster is up: eval "$(multihome lab env)" puts kubectl in reach')
    click.echo("lab is up")


@lab.command("cni")
@click.argument("which", type=click.Choice(cluster_layout.CNI_CHOICES))
def cni_cmd(which: str) -> None:
    """Serve the lab cluster's pods with multihome, or with Multus thick (side by side)."""
    try:
        _cluster().use_cni(state_dir(), which, _progress)
    except (ClusterError, BuildError) as e:
        raise click.ClickException(str(e)) from e


@lab.command("env")
def env_cmd() -> None:
    """Print the export lines for the lab cluster's kubectl, kubeconfig and test image."""
    try:
        for line in _cluster().env_lines(state_dir()):
            click.echo(line)
    except ClusterError as e:
        raise click.ClickException(str(e)) from e


@lab.command("down")
def down_cmd() -> None:
    """Delete every lab pod, then the bridges, the external namespace and the lab state."""
    settings = labsettings.load()
    if cluster_layout.load(settings.state_dir) is not None:  # first: its pods need DEL
        _cluster().down(settings.state_dir, _progress)
    store = get_store()
    errors: list[str] = []
    from multihome.lab import vms  # VMs first: their qemu outlives the pod

    errors += vms.delete_all(store, settings, _progress)
    for obj in store.list(POD, None):
        try:
            labpods.delete(store, settings, obj.namespace, obj.name, _progress)
        except (labpods.PodError, MultihomeError, StoreError) as e:
            errors.append(str(e))
    try:
        world.down(settings, _progress)
    except MultihomeError as e:
        errors.append(str(e))
    if errors:
        raise click.ClickException("; ".join(errors))
    click.echo("lab is down")
