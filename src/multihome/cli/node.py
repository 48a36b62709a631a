"""`multihome node show|apply|commit|rollback|enact|describe`: the node's network state.

`--netns NS` makes a network namespace play the node (tests and labs); by default the
commands act on the namespace multihome runs in.
"""

from __future__ import annotations

import json
from typing import Any

import click
import yaml

from multihome import present
from multihome.cli.context import get_store
from multihome.errors import MultihomeError
from multihome.node import recovery
from multihome.store import Object, yamltext
from multihome.store.objects import NNCE, NNCP, NNS


def _netns(ctx: click.Context) -> str | None:
    obj = ctx.find_object(dict)
    value = obj.get("node_netns") if obj else None
    if not value:
        return None
    from multihome.net.netns import named_path

    return named_path(str(value))


@click.group("node")
@click.option("--netns", "netns_name", default=None, metavar="NS",
              help="Act inside this network namespace (it plays the node).")
@click.pass_context
def node(ctx: click.Context, netns_name: str | None) -> None:
    """Declarative node networking (nmstate schema) with verification and rollback."""
    ctx.ensure_object(dict)
    ctx.obj["node_netns"] = netns_name
    _recover(ctx.invoked_subcommand or "")


# commands that still run when an interrupted apply cannot be rolled back: they show the
# node, or are the way out
_RUN_DESPITE_FAILED_RECOVERY = ("show", "describe", "rollback", "policy")


def _recover(command: str) -> None:
    """First of all: roll back what a killed `node apply` left half done."""
    try:
        done = recovery.recover_interrupted()
    except MultihomeError as e:
        if command not in _RUN_DESPITE_FAILED_RECOVERY:
            raise click.ClickException(str(e)) from e
        click.echo(f"warning: {e}", err=True)
        return
    if done:
        click.echo(f"recovered: {done}", err=True)


def _dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2)
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False).rstrip()


@node.command("show")
@click.argument("names", nargs=-1)
@click.option("-o", "--output", "fmt", type=click.Choice(["yaml", "json"]), default="yaml")
@click.pass_context
def show_cmd(ctx: click.Context, names: tuple[str, ...], fmt: str) -> None:
    """Print the current state (optionally only the named interfaces)."""
    from multihome.node import current

    try:
        state = current.show(_netns(ctx), names=set(names) if names else None)
    except MultihomeError as e:
        raise click.ClickException(str(e)) from e
    click.echo(_dump(state, fmt))


def _read_file(path: str) -> Any:
    try:
        with click.open_file(path, "rb") as f:
            return yamltext.load_one(f.read(yamltext.MAX_BYTES + 1))
    except (OSError, yamltext.YamlError) as e:
        raise click.ClickException(f"cannot read {path}: {e}") from e


def _policy_parts(data: Any) -> tuple[Any, Any] | None:
    """(capture, desiredState) of an NNCP manifest or of a bare nmpolicy file (a mapping
    with `capture` and `desiredState`); None for a bare desired state."""
    if not isinstance(data, dict):
        return None
    if data.get("kind") == NNCP:
        spec = data.get("spec")
        data = spec if isinstance(spec, dict) else {}
    elif "desiredState" not in data:
        return None
    return data.get("capture"), data.get("desiredState") or {}


def _generate(captures: Any, desired: Any, netns_path: str | None) -> Any:
    """The policy's captures resolved against this node (a one-line error otherwise)."""
    from multihome.node import capture, current

    try:
        return capture.generate(captures, desired, current.show(netns_path))
    except MultihomeError as e:
        raise click.ClickException(f"spec.capture: {e}") from e


def _desired_from_file(path: str, netns_path: str | None) -> Any:
    """A bare desired state, or an NNCP manifest (its spec.desiredState, with its
    `capture` entries resolved against this node's current state)."""
    data = _read_file(path)
    parts = _policy_parts(data)
    if parts is None:
        return data
    captures, desired = parts
    if captures is None and "{{" not in json.dumps(desired):
        return desired  # nothing to resolve: the node's state need not be read
    return _generate(captures, desired, netns_path).desired


@node.command("policy")
@click.option("-f", "--filename", "filename", required=True, metavar="FILE",
              help="An NNCP manifest, or a file with `capture` and `desiredState`.")
@click.option("-o", "--output", "fmt", type=click.Choice(["yaml", "json"]), default="yaml")
@click.pass_context
def policy_cmd(ctx: click.Context, filename: str, fmt: str) -> None:
    """Resolve a policy's captures against this node and print the captured states and the
    desired state they generate, changing nothing (as `nmstatectl policy`)."""
    parts = _policy_parts(_read_file(filename))
    if parts is None:
        raise click.ClickException(f"{filename}: not an NNCP manifest nor a policy with "
                                   "capture and desiredState")
    generated = _generate(*parts, _netns(ctx))
    click.echo(_dump({"capturedStates": generated.captured,
                      "desiredState": generated.desired}, fmt))


@node.command("apply")
@click.option("-f", "--filename", "filename", required=True, metavar="FILE")
@click.option("--timeout", default=60, show_default=True, type=click.IntRange(1, 86400),
              help="Seconds before an uncommitted change is rolled back.")
@click.option("--no-commit", is_flag=True, help="Keep the checkpoint until `node commit`.")
@click.option("--probe", "probes", multiple=True, metavar="ADDR",
              help="Address that must still answer ping after the change (repeatable).")
@click.option("--probe-dns", "probe_dns", multiple=True, metavar="NAME",
              help="Name that must still resolve through the node's resolver after the "
              "change (repeatable).")
@click.option("--probe-api-server", "probe_api", default=None, metavar="ADDR:PORT",
              help="Address (or https:// URL) that must still accept TCP connections.")
@click.pass_context
def apply_cmd(ctx: click.Context, filename: str, timeout: int, no_commit: bool,
              probes: tuple[str, ...], probe_dns: tuple[str, ...],
              probe_api: str | None) -> None:
    """Checkpoint, change, verify, probe, then commit or restore the earlier state."""
    from multihome.node import probes as node_probes
    from multihome.node import transaction

    for option, section in (("--probe", {"ping": list(probes)}),
                            ("--probe-dns", {"dns": list(probe_dns)}),
                            ("--probe-api-server", {"api-server": probe_api})):
        try:
            node_probes.check(section)
        except node_probes.BadTarget as e:
            raise click.BadParameter(str(e).partition(": ")[2], param_hint=option) from None
    defaults = node_probes.Defaults(dns=probe_dns, api_server=probe_api)

    desired = _desired_from_file(filename, _netns(ctx))
    try:
        report = transaction.apply_state(desired, netns_path=_netns(ctx), timeout=timeout,
                                    commit=not no_commit, probes=probes,
                                    probe_defaults=defaults)
    except transaction.ApplyFailed as e:
        for line in e.report.changes:
            click.echo(f"changed: {line}")
        for line in e.report.rolled_back:
            click.echo(f"rolled back: {line}")
        raise click.ClickException(str(e)) from e
    except MultihomeError as e:
        raise click.ClickException(str(e)) from e
    for line in report.changes:
        click.echo(f"changed: {line}")
    if not report.changes:
        click.echo("no changes: the node already has the desired state")
    if report.probes:
        click.echo(f"probes passed: {', '.join(report.probes)}")
    if report.committed:
        click.echo("desired state applied and verified; committed")
    else:
        click.echo(f"desired state applied and verified; checkpoint {report.checkpoint_id} "
                   f"kept: run `multihome node commit` within {timeout}s or it is rolled back")


@node.command("commit")
def commit_cmd() -> None:
    """Keep the changes of the last `apply --no-commit`."""
    from multihome.node import transaction

    try:
        click.echo(f"checkpoint {transaction.commit()} committed")
    except MultihomeError as e:
        raise click.ClickException(str(e)) from e


@node.command("rollback")
def rollback_cmd() -> None:
    """Restore the state saved by the last `apply --no-commit`."""
    from multihome.node import transaction

    try:
        cp_id, done = transaction.rollback()
    except MultihomeError as e:
        raise click.ClickException(str(e)) from e
    for line in done:
        click.echo(f"rolled back: {line}")
    click.echo(f"checkpoint {cp_id} rolled back")


@node.command("enact")
@click.argument("policies", nargs=-1)
@click.option("--node", "node_name", default=None, help="Node name (default: hostname, or "
              "$MULTIHOME_NODE_NAME).")
@click.pass_context
def enact_cmd(ctx: click.Context, policies: tuple[str, ...], node_name: str | None) -> None:
    """Enact stored NodeNetworkConfigurationPolicies on this node (default: all).

    Exits 1 unless every enactment ends Available (Failing, Pending, Aborted).
    """
    from multihome.node import policy
    from multihome.store import NotFound

    store = get_store(ctx)
    try:
        nnces = policy.enact(store, list(policies) or None, node=node_name,
                             netns_path=_netns(ctx), progress=click.echo)
    except NotFound as e:
        raise click.ClickException(str(e)) from e
    failed = False
    for nnce in nnces:
        active, reason, message = policy.active_condition(nnce)
        click.echo(f"{NNCE.lower()}.nmstate.io/{nnce.name}: {active} ({reason}) {message}")
        failed |= active != "Available"
    if failed:
        ctx.exit(1)


@node.command("describe")
@click.option("--node", "node_name", default=None)
@click.pass_context
def describe_cmd(ctx: click.Context, node_name: str | None) -> None:
    """The node's name, labels, bridge resources and interfaces."""
    from multihome.node import policy, resources

    store = get_store(ctx)
    name = policy.node_name(node_name)
    nns = policy.refresh_state(store, name, _netns(ctx))
    lines = [f"Name:         {name}", "Labels:"]
    lines += [f"  {k}={v}" for k, v in sorted(policy.node_labels(store, name).items())]
    lines.append("Capacity:")
    lines += [f"  {k}: {v}" for k, v in resources.capacity(_netns(ctx)).items()]
    lines.append("Interfaces:")
    for iface in nns.status.get("currentState", {}).get("interfaces", []):
        addrs = [f"{a['ip']}/{a['prefix-length']}" for fam in ("ipv4", "ipv6")
                 for a in iface.get(fam, {}).get("address", [])]
        lines.append(f"  {iface['name']:<16}{iface['type']:<14}{iface['state']:<6}"
                     f"{' '.join(addrs)}")
    click.echo("\n".join(lines))


# -- `get nncp|nnce|nns` columns ------------------------------------------------------


def _nncp_columns(obj: Object, wide: bool) -> list[tuple[str, str]]:
    from multihome.node.policy import active_condition

    active, reason, _ = active_condition(obj)
    return [("STATUS", active), ("REASON", reason)]


def _nnce_columns(obj: Object, wide: bool) -> list[tuple[str, str]]:
    from multihome.node.policy import active_condition

    active, reason, message = active_condition(obj)
    cols = [("STATUS", active), ("REASON", reason)]
    return [*cols, ("MESSAGE", message)] if wide else cols


present.register_columns(NNCP, _nncp_columns)
present.register_columns(NNCE, _nnce_columns)
present.register_columns(NNS, lambda obj, wide: [])
