"""`multihome annotate`: kubectl's verb for annotations, on any object of the store.

On a pod the lab runs, a change of `k8s.v1.cni.cncf.io/networks` hot-plugs and unplugs
its interfaces at once (lab.pods.hotplug); when that fails the annotation is set back and
the command exits 1 with the reason.
"""

from __future__ import annotations

import re

import click

from multihome.attach.plan import NETWORKS_ANNOTATION
from multihome.cli.context import get_store, namespace_callback
from multihome.errors import MultihomeError
from multihome.lab import pods as labpods
from multihome.lab import settings as labsettings
from multihome.store import (
    POD,
    Conflict,
    KindInfo,
    NotFound,
    StoreError,
    UnknownKind,
    kind_info,
    names,
)

# an annotation key: an optional DNS-1123 subdomain prefix and `/`, then a name of at
# most 63 characters (what the API server accepts)
_KEY_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]\Z")


class _Error(click.ClickException):
    """A failure worded as kubectl words it (`error: …`, `Error from server …`)."""

    def show(self, file: object = None) -> None:
        click.echo(self.message, err=True)


def _key_problem(key: str) -> str | None:
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or names.subdomain_problem(prefix, "prefix")):
        return f'invalid annotation key "{key}": the prefix must be a DNS-1123 subdomain'
    if not name or len(name) > 63 or not _KEY_NAME.match(name):
        return (f'invalid annotation key "{key}": a name of at most 63 characters of '
                "letters, digits, '-', '_' and '.', starting and ending with a letter or "
                "digit")
    return None


def parse_updates(items: tuple[str, ...]) -> dict[str, str | None]:
    """`KEY=VALUE` sets, `KEY-` removes (None); raises _Error as kubectl."""
    updates: dict[str, str | None] = {}
    for item in items:
        if "=" in item:
            key, _, value = item.partition("=")
        elif item.endswith("-"):
            key, value = item[:-1], None
        else:
            raise _Error(f"error: invalid annotation format: {item}")
        problem = _key_problem(key)
        if problem:
            raise _Error(f"error: {problem}")
        if key in updates and updates[key] != value:
            raise _Error(f"error: can not both modify and remove an annotation in "
                                       f"the same command: {key}")
        updates[key] = value
    if not updates:
        raise _Error("error: at least one annotation update is required")
    return updates


def _target(args: tuple[str, ...]) -> tuple[KindInfo, str, tuple[str, ...]]:
    if not args:
        raise _Error("error: you must specify the type of resource to annotate, "
                                   "e.g. `multihome annotate pod NAME KEY=VALUE`")
    kind, sep, name = args[0].partition("/")
    rest = args[1:]
    if not sep:
        if not rest:
            raise _Error("error: one resource name is required, e.g. "
                                       "`multihome annotate pod NAME KEY=VALUE`")
        name, rest = rest[0], rest[1:]
    try:
        info = kind_info(kind)
    except (UnknownKind, KeyError):
        raise _Error(f'error: the server doesn\'t have a resource type "{kind}"') from None
    problem = names.subdomain_problem(name, "name")
    if problem:
        raise _Error(f"error: {problem}")
    return info, name, rest


@click.command("annotate")
@click.argument("args", nargs=-1, required=True)
@click.option("-n", "--namespace", default=None, metavar="NS", callback=namespace_callback)
@click.option("--overwrite", is_flag=True,
              help="Replace annotations that have a value already (else refused).")
@click.pass_context
def annotate_cmd(ctx: click.Context, args: tuple[str, ...], namespace: str | None,
                 overwrite: bool) -> None:
    """Set (KEY=VALUE) or remove (KEY-) annotations of TYPE NAME (or TYPE/NAME).

    On a running lab pod, editing k8s.v1.cni.cncf.io/networks plugs and unplugs its
    interfaces.
    """
    info, name, items = _target(args)
    updates = parse_updates(items)
    ns = (namespace or "default") if info.namespaced else ""
    store = get_store(ctx)
    try:
        obj = store.get(info.kind, ns, name)
    except NotFound:
        raise _Error(
            f'Error from server (NotFound): {info.resource} "{name}" not found') from None
    current = dict(obj.annotations)
    if not overwrite:
        taken = [f"'{k}' already has a value ({current[k]})" for k, v in updates.items()
                 if v is not None and k in current and current[k] != v]
        if taken:
            raise _Error("error: --overwrite is false but found the following "
                                       "declared annotation(s): " + "; ".join(taken))
    for key, value in updates.items():
        if value is None:
            obj.annotations.pop(key, None)
        else:
            obj.annotations[key] = value
    try:
        store.update(obj, expected_version=obj.resource_version)
    except (Conflict, StoreError) as e:
        raise _Error(f"Error from server: {e}") from None
    before, after = current.get(NETWORKS_ANNOTATION), obj.annotations.get(NETWORKS_ANNOTATION)
    if info.kind == POD and before != after:
        try:
            labpods.hotplug(store, labsettings.load(), ns, name, before,
                            progress=click.echo)
        except (labpods.PodError, MultihomeError) as e:
            raise _Error(f"error: {e}") from e
    click.echo(f"{info.ref(name)} annotated")
