"""`multihome pod run|exec|get|describe|delete`: pods of the local lab."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import click

from multihome import present
from multihome.attach import status as netstatus
from multihome.attach.plan import NETWORKS_ANNOTATION
from multihome.cli.context import get_store, name_callback, namespace_callback
from multihome.errors import MultihomeError
from multihome.lab import pods as labpods
from multihome.lab import settings as labsettings
from multihome.lab import vms
from multihome.store import POD, NotFound, Object, StoreError, yamltext
from multihome.store.events import events_of
from multihome.store.labels import parse_label_arg


def _progress(line: str) -> None:
    click.echo(line)


def _fail(message: str) -> None:
    raise click.ClickException(message)


def _pod_columns(obj: Object, wide: bool) -> list[tuple[str, str]]:
    cols = [("STATUS", str(obj.status.get("phase", "Unknown")))]
    if wide:
        entries = netstatus.parse(obj.annotations.get(netstatus.NETWORK_STATUS_ANNOTATION, ""))
        nets = ",".join(f"{e.get('interface')}={e.get('name')}" for e in entries
                        if not e.get("default"))
        cols += [("IP", str(obj.status.get("podIP") or "<none>")),
                 ("NODE", str(obj.spec.get("nodeName") or "<none>")),
                 ("NETWORKS", nets or "<none>")]
    return cols


present.register_columns(POD, _pod_columns)


def _namespace(namespace: str | None) -> str:
    return namespace or "default"


def _annotations_from_file(path: str) -> dict[str, str]:
    """A file with the JSON selection list, or a mapping of annotations."""
    try:
        with open(path, "rb") as f:
            data: Any = yamltext.load_one(f.read(yamltext.MAX_BYTES + 1))
    except OSError as e:
        raise click.ClickException(f"cannot read {path}: {e.strerror}") from e
    except yamltext.YamlError as e:
        raise click.ClickException(f"{path} is neither JSON nor YAML: {e}") from e
    if isinstance(data, list):
        return {NETWORKS_ANNOTATION: json.dumps(data)}
    if isinstance(data, dict):
        ann = data.get("metadata", {}).get("annotations") if "metadata" in data else data
        if isinstance(ann, dict):
            return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in ann.items()}
    raise click.ClickException(
        f"{path}: expected a JSON list of network selections or a mapping of annotations")


@click.group("pod")
def pod() -> None:
    """Pods of the local lab: a network namespace with the pod's networks attached."""


@pod.command("run")
@click.argument("name", callback=name_callback)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
@click.option("--networks", default="", metavar="SELECTION",
              help="k8s.v1.cni.cncf.io/networks in comma form, e.g. 'bridge-dev,other@net5'.")
@click.option("--annotations", "annotations_file", default=None, metavar="FILE",
              help="JSON/YAML file: the JSON selection list, or a mapping of annotations.")
@click.option("--default-network", default="", metavar="[NS/]NAD",
              help="v1.multus-cni.io/default-network for this pod.")
@click.option("--address", "addresses", multiple=True, metavar="IFNAME=CIDR",
              help="Lab only: set an address inside the pod after attach, as a VM guest "
                   "would on a NIC whose NAD has no IPAM (not a CNI result).")
@click.option("-l", "--labels", default="", metavar="KEY=VALUE,...",
              help="Labels of the pod, as kubectl run --labels: 'app=db,tier=x'.")
@click.option("--port", "ports", multiple=True, metavar="NAME=PORT[/PROTOCOL]",
              help="A named container port (what a policy's named port refers to).")
def run_cmd(name: str, namespace: str | None, networks: str, annotations_file: str | None,
            default_network: str, addresses: tuple[str, ...], labels: str,
            ports: tuple[str, ...]) -> None:
    """Create pod NAME and attach its networks."""
    ns = _namespace(namespace)
    if networks and annotations_file:
        _fail("use either --networks or --annotations, not both")
    annotations = (_annotations_from_file(annotations_file) if annotations_file
                   else labpods.networks_annotation(networks))
    if default_network:
        annotations["v1.multus-cni.io/default-network"] = default_network
    try:
        guests = [labpods.GuestAddress.parse(a) for a in addresses]
        try:
            label_map = parse_label_arg(labels)
        except ValueError as e:
            raise labpods.PodError(f"--labels: {e}") from None
        container_ports = [labpods.ContainerPort.parse(p) for p in ports]
        labpods.run(get_store(), labsettings.load(), ns, name, annotations, guests,
                    progress=_progress, labels=label_map, ports=container_ports)
    except (labpods.PodError, MultihomeError, StoreError) as e:
        _fail(str(e))


@pod.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("name", callback=name_callback)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(name: str, namespace: str | None, command: tuple[str, ...]) -> None:
    """Run COMMAND inside the pod's network namespace."""
    from multihome.net import netns

    ns = _namespace(namespace)
    if not labpods.exists_netns(ns, name):
        _fail(f'pods "{name}" not found in namespace "{ns}"')
    sys.stdout.flush()
    try:
        with netns.entered(labpods.netns_path(ns, name)):
            os.execvp(command[0], list(command))
    except FileNotFoundError:
        _fail(f'exec: "{command[0]}": executable file not found in $PATH')
    except MultihomeError as e:
        _fail(str(e))


@pod.command("get")
@click.argument("names", nargs=-1, callback=name_callback)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
@click.option("-A", "--all-namespaces", "all_namespaces", is_flag=True)
@click.option("-o", "--output", "fmt", type=click.Choice(["wide", "yaml", "json", "name"]),
              default=None)
def get_cmd(names: tuple[str, ...], namespace: str | None, all_namespaces: bool,
            fmt: str | None) -> None:
    """List pods (or show the named ones)."""
    store = get_store()
    ns = _namespace(namespace)
    missing: list[str] = []
    if names:
        objs = []
        for n in names:
            try:
                objs.append(store.get(POD, ns, n))
            except NotFound:
                missing.append(n)
    else:
        objs = store.list(POD, None if all_namespaces else ns)
    if fmt == "json":
        click.echo(present.to_json(objs, single=len(names) == 1 and not missing))
    elif fmt == "yaml":
        click.echo(present.to_yaml(objs, single=len(names) == 1 and not missing))
    elif fmt == "name":
        for obj in objs:
            click.echo(f"pod/{obj.name}")
    elif objs:
        click.echo(present.object_table(objs, all_namespaces=all_namespaces and not names,
                                       wide=fmt == "wide"))
    elif not names:
        where = "" if all_namespaces else f" in {ns} namespace"
        click.echo(f"No resources found{where}.", err=True)
    for n in missing:
        click.echo(f'Error from server (NotFound): pods "{n}" not found', err=True)
    if missing:
        sys.exit(1)


def _status_section(obj: Object) -> list[str]:
    entries = netstatus.parse(obj.annotations.get(netstatus.NETWORK_STATUS_ANNOTATION, ""))
    lines = ["Network Status:"]
    if not entries:
        lines.append("  <none>")
    for e in entries:
        default = " (default)" if e.get("default") else ""
        lines.append(f"  {e.get('interface')}:  {e.get('name')}{default}")
        lines.append(f"    IPs:      {', '.join(e.get('ips') or []) or '<none>'}")
        lines.append(f"    MAC:      {e.get('mac') or '<none>'}")
        if e.get("mtu"):
            lines.append(f"    MTU:      {e['mtu']}")
        if e.get("gateway"):
            lines.append(f"    Gateway:  {', '.join(e['gateway'])}")
    return lines


@pod.command("describe")
@click.argument("name", callback=name_callback)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
def describe_cmd(name: str, namespace: str | None) -> None:
    """Show a pod, its annotations and its network status."""
    ns = _namespace(namespace)
    store = get_store()
    try:
        obj = store.get(POD, ns, name)
    except NotFound:
        _fail(f'pods "{name}" not found in namespace "{ns}"')
        return
    click.echo(present.describe(obj, extra_sections=_status_section(obj),
                                events=events_of(store, ns, name)))


@pod.command("delete")
@click.argument("names", nargs=-1, required=True)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
@click.option("--force", is_flag=True,
              help="For a running VM's launcher pod: delete the VM (qemu first) with it.")
def delete_cmd(names: tuple[str, ...], namespace: str | None, force: bool) -> None:
    """Detach a pod's networks and remove it; parts already gone are skipped.

    A running VM's launcher pod is refused unless --force: `vm delete` removes it.
    """
    store = get_store()
    settings = labsettings.load()
    failed = False
    for n in names:
        try:
            try:
                labpods.delete(store, settings, _namespace(namespace), n, progress=_progress)
            except labpods.LauncherPodInUse as e:
                if not force:
                    raise
                _progress(f"pod/{n}: launcher of running VM {e.vm}; --force: deleting the VM")
                vms.delete(store, settings, e.namespace, e.vm, _progress)
        except (labpods.PodError, MultihomeError, StoreError) as e:
            click.echo(f"Error: {e}", err=True)
            failed = True
    if failed:
        sys.exit(1)
