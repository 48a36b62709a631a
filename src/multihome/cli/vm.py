"""`multihome vm run|stop|start|restart|get|describe|console|exec|delete`: VMs of the local lab."""

from __future__ import annotations

import json
import shlex
import sys
import time
from collections.abc import Callable

import click

from multihome.attach import status as netstatus
from multihome.cli.context import get_store, name_callback, namespace_callback
from multihome.errors import MultihomeError
from multihome.lab import migration, vm_hotplug, vms
from multihome.lab import settings as labsettings
from multihome.store import POD, NotFound, StoreError
from multihome.vm import agent, console, qemu, state
from multihome.vm.errors import VMError


def _progress(line: str) -> None:
    click.echo(line)


def _ns(namespace: str | None) -> str:
    return namespace or "default"


def _record(namespace: str, name: str) -> state.VMRecord:
    rec = state.load(labsettings.load().state_dir, namespace, name)
    if rec is None:
        raise click.ClickException(f'VM "{name}" not found in namespace "{namespace}"')
    return rec


def _started(rec: state.VMRecord) -> state.VMRecord:
    """The record of a VM that is not stopped (exec and console need its qemu)."""
    if rec.stopped:
        raise click.ClickException(f'VM "{rec.name}" is stopped: start it with '
                                   f"multihome vm start {rec.name} -n {rec.namespace}")
    return rec


def _vm_dir(rec: state.VMRecord) -> str:
    return state.vm_dir(labsettings.load().state_dir, rec.namespace, rec.name)


def _phase(rec: state.VMRecord) -> str:
    return "Running" if qemu.running(_vm_dir(rec)) else "Stopped"


def _age(created: float) -> str:
    secs = int(time.time() - created)
    return f"{secs}s" if secs < 120 else f"{secs // 60}m" if secs < 7200 else f"{secs // 3600}h"


def _parse_addresses(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        ifname, sep, cidr = item.partition("=")
        if not sep or not ifname or "/" not in cidr:
            raise click.ClickException(f"invalid address {item!r}: expected IFNAME=ADDRESS/PREFIX"
                                       ", e.g. net1=10.250.0.20/24")
        out[ifname] = cidr
    return out


@click.group("vm")
def vm() -> None:
    """Virtual machines of the local lab: qemu joined to a launcher pod's networks."""


def _parse_link_states(items: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for item in items:
        nic, sep, value = item.partition("=")
        if not sep or not nic or value not in state.LINK_STATES:
            raise click.ClickException(f"invalid link state {item!r}: expected NIC=up|down, "
                                       "e.g. net1=down")
        out[nic] = value
    return out


@vm.command("run")
@click.argument("name", callback=name_callback)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
@click.option("--networks", default="", metavar="SELECTION",
              help="Secondary networks of the launcher pod, e.g. 'bridge-dev' or "
                   "'bridge-dev,other'.")
@click.option("--no-pod-network", is_flag=True,
              help="No NIC on the pod network (KubeVirt's autoattachPodInterface: false).")
@click.option("--port", "ports", multiple=True, metavar="PORT[/tcp|/udp]",
              help="Forward only these inbound ports of the pod to the guest (default: all).")
@click.option("--link-state", "link_states", multiple=True, metavar="NIC=up|down",
              help="Start with this NIC's link down (or up); NIC: eth0, net1, a network.")
@click.option("--memory", default=256, show_default=True, metavar="MiB")
@click.option("--address", "addresses", multiple=True, metavar="IFNAME=CIDR",
              help="Guest address for the NIC on pod interface IFNAME, for NADs without IPAM "
                   "(the guest configures it, as a VM's own OS would).")
def run_cmd(name: str, namespace: str | None, networks: str, no_pod_network: bool,
            ports: tuple[str, ...], link_states: tuple[str, ...], memory: int,
            addresses: tuple[str, ...]) -> None:
    """Create the launcher pod, bind its networks to VM NICs and boot the VM.

    The first NIC is the pod network with KubeVirt's masquerade binding (the guest gets
    10.0.2.2 by DHCP, NAT through the pod's eth0), then one NIC per secondary network.
    """
    try:
        settings = labsettings.load()
        # the VM's change lock from the start: a `vm stop` (or migrate, delete…) typed
        # during the boot waits for it instead of pulling the pod from under it
        with state.creating(settings.state_dir, _ns(namespace), name):
            vms.run(get_store(), settings, _ns(namespace), name, networks,
                    memory=memory, guest_addresses=_parse_addresses(addresses),
                    progress=_progress, pod_network=not no_pod_network,
                    link_states=_parse_link_states(link_states), ports=ports)
    except (MultihomeError, StoreError) as e:
        raise click.ClickException(str(e)) from e


@vm.command("link")
@click.argument("name", callback=name_callback)
@click.argument("nic")
@click.argument("link_state", metavar="up|down", type=click.Choice(state.LINK_STATES))
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
def link_cmd(name: str, nic: str, link_state: str, namespace: str | None) -> None:
    """Set the link of a running VM's NIC up or down (KubeVirt's interface state).

    NIC is the pod interface (eth0, net1), the guest interface or the network.
    """
    try:
        settings = labsettings.load()
        with state.changing(settings.state_dir, _ns(namespace), name):
            vms.set_link(settings, _ns(namespace), name, nic, link_state, _progress)
    except MultihomeError as e:
        raise click.ClickException(str(e)) from e


@vm.command("add-nic")
@click.argument("name", callback=name_callback)
@click.argument("network", metavar="NAD")
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
@click.option("--address", default="", metavar="CIDR",
              help="Record this guest address for the NIC (the guest's OS configures it).")
def add_nic_cmd(name: str, network: str, namespace: str | None, address: str) -> None:
    """Hot-plug a NIC on network NAD ([ns/]name, bridge binding) into a running VM."""
    try:
        settings = labsettings.load()
        with state.changing(settings.state_dir, _ns(namespace), name):
            vm_hotplug.plug(get_store(), settings, _ns(namespace), name, network, address,
                            _progress)
    except (MultihomeError, StoreError) as e:
        raise click.ClickException(str(e)) from e


@vm.command("remove-nic")
@click.argument("name", callback=name_callback)
@click.argument("nic")
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
def remove_nic_cmd(name: str, nic: str, namespace: str | None) -> None:
    """Unplug a bridge NIC (pod interface, guest interface or network) from a running VM."""
    try:
        settings = labsettings.load()
        with state.changing(settings.state_dir, _ns(namespace), name):
            vm_hotplug.unplug(get_store(), settings, _ns(namespace), name, nic, _progress)
    except (MultihomeError, StoreError) as e:
        raise click.ClickException(str(e)) from e


@vm.command("migrate")
@click.argument("name", callback=name_callback)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
def migrate_cmd(name: str, namespace: str | None) -> None:
    """Live-migrate a running VM to a new launcher pod (same networks, MACs, addresses)."""
    try:
        settings = labsettings.load()
        with state.changing(settings.state_dir, _ns(namespace), name):
            migration.migrate(get_store(), settings, _ns(namespace), name, _progress)
    except (MultihomeError, StoreError) as e:
        raise click.ClickException(str(e)) from e


def _lifecycle(verb: str, change: Callable[..., object], doc: str) -> None:
    """`vm stop|start|restart`: one change of the VM under its change lock."""
    @vm.command(verb, help=doc)
    @click.argument("name", callback=name_callback)
    @click.option("-n", "--namespace", default=None, metavar="NS",
                  callback=namespace_callback)
    def command(name: str, namespace: str | None) -> None:
        try:
            settings = labsettings.load()
            with state.changing(settings.state_dir, _ns(namespace), name):
                change(get_store(), settings, _ns(namespace), name, _progress)
        except (MultihomeError, StoreError) as e:
            raise click.ClickException(str(e)) from e


_lifecycle("stop", vms.stop, "Stop a VM (virtctl stop): qemu ends and the launcher pod goes; "
           "the VM, its NICs' MACs and its IPAMClaims (so its addresses) stay for `vm start`.")
_lifecycle("start", vms.start,
           "Start a stopped VM (virtctl start): a new launcher pod with the same networks.")
_lifecycle("restart", vms.restart,
           "Restart a VM (virtctl restart): stop it (if it runs), then start it again.")


@vm.command("get")
@click.argument("names", nargs=-1, callback=name_callback)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
@click.option("-A", "--all-namespaces", "all_namespaces", is_flag=True)
@click.option("-o", "--output", "fmt", type=click.Choice(["json"]), default=None)
def get_cmd(names: tuple[str, ...], namespace: str | None, all_namespaces: bool,
            fmt: str | None) -> None:
    """List VMs (or show the named ones)."""
    root = labsettings.load().state_dir
    recs = state.load_all(root, None if all_namespaces else _ns(namespace))
    if names:
        recs = [r for r in recs if r.name in names]
        missing = set(names) - {r.name for r in recs}
        for n in sorted(missing):
            click.echo(f'Error: VM "{n}" not found', err=True)
        if missing:
            sys.exit(1)
    if fmt == "json":
        click.echo(json.dumps([{**r.to_json(), "phase": _phase(r)} for r in recs], indent=2))
        return
    if not recs:
        click.echo("No resources found.", err=True)
        return
    rows = [("NAMESPACE", "NAME", "STATUS", "ACCEL", "NICS", "AGE")]
    rows += [(r.namespace, r.name, _phase(r), r.accel,
              ",".join(f"{n.ifname}={n.binding}" for n in r.nics), _age(r.created))
             for r in recs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        click.echo("   ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@vm.command("describe")
@click.argument("name", callback=name_callback)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
def describe_cmd(name: str, namespace: str | None) -> None:
    """Show a VM: its NICs, MACs, addresses and the launcher pod's network-status."""
    rec = _record(_ns(namespace), name)
    lines = [f"Name:          {rec.name}", f"Namespace:     {rec.namespace}",
             f"Status:        {_phase(rec)}", f"Accelerator:   {rec.accel}",
             f"Memory:        {rec.memory} MiB", f"Boot:          {rec.boot_seconds} s",
             f"Launcher pod:  {rec.pod}", f"Migrations:    {rec.migrations}", "NICs:"]
    for nic in rec.nics:
        lines.append(f"  {nic.guest_ifname}:  {nic.network} via pod {nic.ifname} "
                     f"({nic.binding} binding)")
        lines.append(f"    MAC:       {nic.mac}")
        lines.append(f"    Link:      {nic.link}")
        lines.append(f"    Addresses: {', '.join(nic.addresses) or '<none>'}")
        if nic.gateway:
            lines.append(f"    Gateway:   {nic.gateway}")
        if nic.binding == "bridge":
            lines.append(f"    In pod:    bridge {nic.bridge}, tap {nic.tap}, {nic.ifname} "
                         f"now {nic.pod_mac}")
        if nic.binding == "masquerade":
            lines.append(f"    In pod:    bridge {nic.bridge} ({nic.gateway}), tap {nic.tap}, "
                         f"NAT through {nic.ifname}, inbound ports "
                         f"{', '.join(nic.ports) or 'all'}, DHCP server pid "
                         f"{nic.dhcp_pid or '<not running>'}")
    lines.append("Pod Network Status:")
    try:
        pod = get_store().get(POD, rec.namespace, rec.pod)
        raw = pod.annotations.get(netstatus.NETWORK_STATUS_ANNOTATION, "")
        lines += ["  " + line for line in
                  json.dumps(netstatus.parse(raw), indent=2).splitlines()]
    except NotFound:
        lines.append("  <launcher pod not found>")
    click.echo("\n".join(lines))


@vm.command("exec", context_settings={"ignore_unknown_options": True})
@click.argument("name", callback=name_callback)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
@click.option("--timeout", default=60.0, show_default=True, metavar="SECONDS")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_cmd(name: str, namespace: str | None, timeout: float,
             command: tuple[str, ...]) -> None:
    """Run COMMAND in the guest (through its agent on the second serial port)."""
    rec = _started(_record(_ns(namespace), name))
    try:
        result = agent.run(_vm_dir(rec), shlex.join(command), timeout=timeout)
    except VMError as e:
        raise click.ClickException(str(e)) from e
    # as `kubectl exec`: the guest's stdout and stderr on ours, its exit code as ours
    sys.stdout.buffer.write(result.stdout)
    sys.stdout.flush()
    sys.stderr.buffer.write(result.stderr)
    sys.stderr.flush()
    sys.exit(result.rc)


@vm.command("console")
@click.argument("name", callback=name_callback)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
def console_cmd(name: str, namespace: str | None) -> None:
    """Attach to the VM's serial console (Ctrl-] leaves)."""
    rec = _started(_record(_ns(namespace), name))
    try:
        console.attach(_vm_dir(rec))
    except VMError as e:
        raise click.ClickException(str(e)) from e


@vm.command("delete")
@click.argument("names", nargs=-1, required=True)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
def delete_cmd(names: tuple[str, ...], namespace: str | None) -> None:
    """Stop qemu, undo the bindings and delete the launcher pod."""
    failed = False
    for n in names:
        try:
            vms.delete(get_store(), labsettings.load(), _ns(namespace), n, _progress)
        except (MultihomeError, StoreError) as e:
            click.echo(f"Error: {e}", err=True)
            failed = True
    if failed:
        sys.exit(1)
