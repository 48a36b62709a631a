"""`apply`, `create`, `get`, `delete`, `describe`: kubectl's object verbs on the store.

Messages and exit codes follow kubectl: errors go to stderr as ``Error from server
(Reason): …`` or ``error: …``, the command carries on with the remaining objects, and
exits 1 if anything failed.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click

from multihome import present
from multihome.admission import (
    DEFAULT_NAMESPACE,
    Manifest,
    ManifestError,
    admit,
    manifest_object,
)
from multihome.attach.plan import NETWORKS_ANNOTATION
from multihome.cli.context import get_store, namespace_callback
from multihome.errors import MultihomeError
from multihome.store import (
    POD,
    AlreadyExists,
    KindInfo,
    NotFound,
    Object,
    Store,
    StoreError,
    UnknownKind,
    kind_info,
    names,
    store_path,
    yamltext,
)
from multihome.store.events import events_of
from multihome.store.labels import label_key_problem, parse_label_arg

_MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")

DeleteHandler = Callable[[Store, Object], None]


class DeleteFailed(Exception):
    """A delete handler could not finish; the message is for the person at the terminal."""


def _delete_lab_pod(store: Store, obj: Object) -> None:
    # `delete pod X` must tear down what `pod run` built, exactly like `pod delete X`.
    from multihome.lab import pods as labpods
    from multihome.lab import settings as labsettings

    try:
        labpods.delete(store, labsettings.load(), obj.namespace, obj.name)
    except labpods.PodError as e:
        raise DeleteFailed(str(e)) from e


# kind -> what `delete` must do besides removing the record (a lab pod's netns, say).
DELETE_HANDLERS: dict[str, DeleteHandler] = {POD: _delete_lab_pod}


# kind -> module that registers its `get` columns when imported (kept lazy for startup time).
COLUMN_MODULES: dict[str, str] = {POD: "multihome.cli.pods",
                                  "MultiNetworkPolicy": "multihome.cli.policies",
                                  **dict.fromkeys(("NodeNetworkConfigurationPolicy",
                                                   "NodeNetworkConfigurationEnactment",
                                                   "NodeNetworkState"), "multihome.cli.node")}


def _load_columns(kind: str) -> None:
    module = COLUMN_MODULES.get(kind)
    if module is not None:
        importlib.import_module(module)


def register_delete_handler(kind: str, fn: DeleteHandler) -> None:
    DELETE_HANDLERS[kind] = fn


class _Failures:
    """Errors are printed as they happen; the exit code says whether any happened."""

    def __init__(self) -> None:
        self.count = 0

    def report(self, message: str) -> None:
        self.count += 1
        click.echo(message, err=True)

    def exit(self, ctx: click.Context) -> None:
        if self.count:
            ctx.exit(1)


def _warn_only(line: str) -> None:
    if line.startswith("warning:"):
        click.echo(line, err=True)


def sync_lab_policies(ctx: click.Context, kinds: set[str]) -> None:
    """After a change to a policy, a namespace or a pod in the local lab's store, bring the
    lab's MultiNetworkPolicy rules up to date (the daemon does it from its watches in
    Kubernetes mode)."""
    from multihome.lab import pods as labpods
    from multihome.lab import policies as labpolicies
    from multihome.lab import settings as labsettings

    root = ctx.find_root()
    path = root.obj.get("store") if isinstance(root.obj, dict) else None
    if not kinds & labpolicies.POLICY_INPUTS or store_path(
            path if isinstance(path, str) else None).startswith("k8s") or not labsettings.is_up():
        return
    try:
        labpods.sync_policies(get_store(ctx), labsettings.load(), _warn_only)
    except (MultihomeError, StoreError, OSError) as e:
        click.echo(f"warning: multi-networkpolicy rules not updated: {e}", err=True)


def _fail(ctx: click.Context, message: str) -> None:
    click.echo(message, err=True)
    ctx.exit(1)


# -- manifests -----------------------------------------------------------------------


def _files(path: str) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.iterdir() if f.suffix in _MANIFEST_SUFFIXES and f.is_file())
    if not p.exists():
        raise ManifestError(f'error: the path "{path}" does not exist')
    return [p]


def _documents(data: bytes, source: str) -> Iterator[Manifest]:
    try:
        docs = yamltext.load_all(data)
    except yamltext.YamlError as e:
        raise ManifestError(f"error: error parsing {source}: {e}") from None
    for doc in docs:
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ManifestError(f"error: error parsing {source}: a document is a "
                                f"{_yaml_type(doc)}, not a mapping (an object)")
        if doc.get("kind") == "List" and "items" in doc:
            items = doc["items"]
            if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                raise ManifestError(f"error: error parsing {source}: the items of a List "
                                    "must be a list of mappings (objects)")
            yield from (Manifest(source, item) for item in items)
            continue
        yield Manifest(source, doc)


def _yaml_type(value: Any) -> str:
    return {list: "list", str: "string", bool: "boolean", int: "number",
            float: "number"}.get(type(value), type(value).__name__)


def load_manifests(paths: tuple[str, ...]) -> list[Manifest]:
    """Every object in the files (``-`` = stdin, directories = their YAML/JSON files)."""
    out: list[Manifest] = []
    for path in paths:
        if path == "-":
            out += _documents(sys.stdin.buffer.read(yamltext.MAX_BYTES + 1), "STDIN")
            continue
        for f in _files(path):
            try:
                with f.open("rb") as stream:
                    data = stream.read(yamltext.MAX_BYTES + 1)
            except OSError as e:
                raise ManifestError(f'error: cannot read "{f}": {e.strerror}') from None
            out += _documents(data, str(path) if f == Path(path) else str(f))
    if not out:
        raise ManifestError("error: no objects passed to the command")
    return out


def _ns_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-n", "--namespace", "namespace", default=None, metavar="NS",
                        callback=namespace_callback,
                        help="Namespace (default: the object's own, else \"default\").")(f)


def _file_option(required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return click.option("-f", "--filename", "filenames", multiple=True, required=required,
                        metavar="FILE", help="Manifest file, directory, or - for stdin.")


def _write_objects(ctx: click.Context, filenames: tuple[str, ...], namespace: str | None,
                   verb: str) -> None:
    failures = _Failures()
    try:
        manifests = load_manifests(filenames)
    except ManifestError as e:
        _fail(ctx, str(e))
        return
    store = get_store(ctx)
    touched: set[str] = set()
    for m in manifests:
        try:
            info, obj = manifest_object(m, namespace)
        except ManifestError as e:
            failures.report(str(e))
            continue
        problem = admit(info, obj)
        if problem:
            failures.report(problem)
            continue
        if verb == "create":
            try:
                store.create(obj)
            except AlreadyExists:
                failures.report(f'Error from server (AlreadyExists): error when creating '
                                f'"{m.source}": {info.resource} "{obj.name}" already exists')
                continue
            click.echo(f"{info.ref(obj.name)} created")
        else:
            before = _networks_of(store, obj) if obj.kind == POD else None
            stored, outcome = store.apply_outcome(obj)
            if outcome == "configured" and obj.kind == POD:
                problem = _follow_networks(store, stored, before)
                if problem:
                    failures.report(f'error: when applying "{m.source}": {problem}')
                    continue
            click.echo(f"{info.ref(obj.name)} {outcome}")
        touched.add(info.kind)
    sync_lab_policies(ctx, touched)
    failures.exit(ctx)


def _networks_of(store: Store, obj: Object) -> str | None:
    try:
        return store.get(obj.kind, obj.namespace, obj.name).annotations.get(
            NETWORKS_ANNOTATION)
    except NotFound:
        return None


def _follow_networks(store: Store, pod: Object, before: str | None) -> str | None:
    """A running lab pod whose selection changed hot-plugs; why it could not, or None."""
    from multihome.lab import pods as labpods
    from multihome.lab import settings as labsettings

    if pod.annotations.get(NETWORKS_ANNOTATION) == before:
        return None
    try:
        labpods.hotplug(store, labsettings.load(), pod.namespace, pod.name, before,
                        progress=click.echo)
    except (labpods.PodError, MultihomeError) as e:
        return str(e)
    return None


@click.command("apply")
@_file_option(required=True)
@_ns_option
@click.pass_context
def apply_cmd(ctx: click.Context, filenames: tuple[str, ...], namespace: str | None) -> None:
    """Create or update objects from YAML/JSON manifests (several documents per file)."""
    _write_objects(ctx, filenames, namespace, "apply")


@click.command("create")
@_file_option(required=True)
@_ns_option
@click.pass_context
def create_cmd(ctx: click.Context, filenames: tuple[str, ...], namespace: str | None) -> None:
    """Create objects from manifests; an object that exists already is an error."""
    _write_objects(ctx, filenames, namespace, "create")


# -- reading -------------------------------------------------------------------------


def _resolve(ctx: click.Context, text: str) -> KindInfo:
    try:
        return kind_info(text)
    except (UnknownKind, KeyError):
        _fail(ctx, f'error: the server doesn\'t have a resource type "{text}"')
        raise  # unreachable: ctx.exit raised


def _targets(ctx: click.Context, args: tuple[str, ...]) -> list[tuple[KindInfo, str | None]]:
    """`KIND [NAME...]` or `KIND/NAME...` → (kind, name or None for "all")."""
    if not args:
        _fail(ctx, "error: you must specify the type of resource to get, e.g. "
                   "`multihome get net-attach-def`")
    if "/" in args[0]:
        out: list[tuple[KindInfo, str | None]] = []
        for arg in args:
            kind, sep, name = arg.partition("/")
            if not sep or not name:
                _fail(ctx, f'error: there is no need to specify a resource type as a separate '
                           f'argument when passing arguments in resource/name form ("{arg}")')
            out.append((_resolve(ctx, kind), _checked_name(ctx, name)))
        return out
    info = _resolve(ctx, args[0])
    if len(args) == 1:
        return [(info, None)]
    return [(info, _checked_name(ctx, name)) for name in args[1:]]


def _checked_name(ctx: click.Context, name: str) -> str:
    problem = names.subdomain_problem(name, "name")
    if problem:
        _fail(ctx, f"error: {problem}")
    return name


def _not_found(info: KindInfo, name: str) -> str:
    return f'Error from server (NotFound): {info.resource} "{name}" not found'


def _namespace(info: KindInfo, namespace: str | None) -> str:
    return (namespace or DEFAULT_NAMESPACE) if info.namespaced else ""


@click.command("get")
@click.argument("args", nargs=-1)
@_ns_option
@click.option("-A", "--all-namespaces", "all_namespaces", is_flag=True,
              help="List the objects of every namespace.")
@click.option("-o", "--output", "fmt", type=click.Choice(["wide", "yaml", "json", "name"]),
              default=None, help="Output format.")
@click.pass_context
def get_cmd(ctx: click.Context, args: tuple[str, ...], namespace: str | None,
            all_namespaces: bool, fmt: str | None) -> None:
    """List objects (`get nad -n multus-test`) or show named ones."""
    targets = _targets(ctx, args)
    if all_namespaces and any(name for _, name in targets):
        _fail(ctx, "error: a resource cannot be retrieved by name across all namespaces")
    store = get_store(ctx)
    failures = _Failures()
    found: list[Object] = []
    by_name = False
    for info, name in targets:
        ns = _namespace(info, namespace)
        if name is None:
            scope = None if all_namespaces or not info.namespaced else ns
            found += store.list(info.kind, scope)
            continue
        by_name = True
        try:
            found.append(store.get(info.kind, ns, name))
        except NotFound:
            failures.report(_not_found(info, name))
    _print_objects(found, fmt, single=by_name and len(targets) == 1,
                   all_namespaces=all_namespaces, searched=not by_name,
                   namespace=_namespace(targets[0][0], namespace))
    failures.exit(ctx)


def _print_objects(objs: list[Object], fmt: str | None, *, single: bool, all_namespaces: bool,
                   searched: bool, namespace: str) -> None:
    if fmt == "json":
        if objs or searched:
            click.echo(present.to_json(objs, single=single))
        return
    if fmt == "yaml":
        if objs or searched:
            click.echo(present.to_yaml(objs, single=single))
        return
    if not objs:
        if searched:
            where = f" in {namespace} namespace" if namespace and not all_namespaces else ""
            click.echo(f"No resources found{where}.", err=True)
        return
    if fmt == "name":
        for obj in objs:
            click.echo(present.name_line(obj))
        return
    # One table per kind, like kubectl with several types.
    kinds = list(dict.fromkeys(o.kind for o in objs))
    for i, kind in enumerate(kinds):
        if i:
            click.echo("")
        group = [o for o in objs if o.kind == kind]
        _load_columns(kind)
        click.echo(present.object_table(group, all_namespaces=all_namespaces,
                                       wide=fmt == "wide"))


@click.command("describe")
@click.argument("args", nargs=-1)
@_ns_option
@click.option("-A", "--all-namespaces", "all_namespaces", is_flag=True)
@click.pass_context
def describe_cmd(ctx: click.Context, args: tuple[str, ...], namespace: str | None,
                 all_namespaces: bool) -> None:
    """Show one object (or every object of a kind) in detail."""
    targets = _targets(ctx, args)
    store = get_store(ctx)
    failures = _Failures()
    shown: list[Object] = []
    for info, name in targets:
        ns = _namespace(info, namespace)
        if name is None:
            scope = None if all_namespaces or not info.namespaced else ns
            shown += store.list(info.kind, scope)
            continue
        try:
            shown.append(store.get(info.kind, ns, name))
        except NotFound:
            failures.report(_not_found(info, name))
    if not shown and not failures.count:
        where = f" in {_namespace(targets[0][0], namespace)} namespace" if (
            targets[0][0].namespaced and not all_namespaces) else ""
        click.echo(f"No resources found{where}.", err=True)
    click.echo("\n\n\n".join(
        present.describe(o, extra_sections=_sections(store, o),
                         events=events_of(store, o.namespace, o.name) if o.kind == POD
                         else ()) for o in shown) if shown else "", nl=bool(shown))
    failures.exit(ctx)


def _sections(store: Store, obj: Object) -> list[str]:
    if obj.kind == "MultiNetworkPolicy":
        from multihome.cli import policies

        return policies.describe_sections(store, obj)
    return []


# -- delete --------------------------------------------------------------------------


def _delete_one(store: Store, info: KindInfo, namespace: str, name: str) -> Object:
    obj = store.get(info.kind, namespace, name)
    handler = DELETE_HANDLERS.get(info.kind)
    if handler is not None:
        handler(store, obj)
    try:
        return store.delete(info.kind, namespace, name)
    except NotFound:
        return obj  # the handler removed the record itself


@click.command("delete")
@click.argument("args", nargs=-1)
@_file_option(required=False)
@_ns_option
@click.option("--all", "delete_all", is_flag=True, help="Delete every object of the kind.")
@click.option("--ignore-not-found", is_flag=True, help="Treat a missing object as deleted.")
@click.pass_context
def delete_cmd(ctx: click.Context, args: tuple[str, ...], filenames: tuple[str, ...],
               namespace: str | None, delete_all: bool, ignore_not_found: bool) -> None:
    """Delete objects by kind and name, or those described in manifests."""
    failures = _Failures()
    work: list[tuple[KindInfo, str, str, str | None]] = []  # kind, ns, name, source
    if filenames:
        if args:
            _fail(ctx, "error: cannot specify both -f and resource names")
        try:
            manifests = load_manifests(filenames)
        except ManifestError as e:
            _fail(ctx, str(e))
            return
        for m in manifests:
            try:
                info, obj = manifest_object(m, namespace)
            except ManifestError as e:
                failures.report(str(e))
                continue
            work.append((info, obj.namespace, obj.name, m.source))
    else:
        if not args:
            _fail(ctx, "error: you must specify the type of resource to delete, or -f FILE")
        targets = _targets(ctx, args)
        store = get_store(ctx)
        for info, name in targets:
            ns = _namespace(info, namespace)
            if name is not None:
                work.append((info, ns, name, None))
            elif delete_all:
                work += [(info, o.namespace, o.name, None) for o in store.list(info.kind, ns)]
            else:
                _fail(ctx, "error: resource(s) were provided, but no name was specified "
                           "(use --all to delete every one)")
        if delete_all and not work:
            click.echo("No resources found", err=True)
    store = get_store(ctx)
    touched: set[str] = set()
    for info, ns, name, source in work:
        try:
            _delete_one(store, info, ns, name)
        except NotFound:
            if not ignore_not_found:
                when = f'error when deleting "{source}": ' if source else ""
                failures.report(f'Error from server (NotFound): {when}{info.resource} '
                                f'"{name}" not found')
            continue
        except (MultihomeError, DeleteFailed) as e:
            failures.report(f'error: deleting {info.type_name} "{name}": {e}')
            continue
        click.echo(f'{info.type_name} "{name}" deleted')
        touched.add(info.kind)
    sync_lab_policies(ctx, touched)
    failures.exit(ctx)


# -- label ---------------------------------------------------------------------------


@click.command("label")
@click.argument("kind")
@click.argument("name")
@click.argument("changes", nargs=-1, required=True)
@_ns_option
@click.option("--overwrite", is_flag=True, help="Allow changing an existing label's value.")
@click.pass_context
def label_cmd(ctx: click.Context, kind: str, name: str, changes: tuple[str, ...],
              namespace: str | None, overwrite: bool) -> None:
    """Set (KEY=VALUE) or remove (KEY-) labels of one object, as kubectl label does."""
    info = _resolve(ctx, kind)
    _checked_name(ctx, name)
    sets: dict[str, str] = {}
    removes: list[str] = []
    for change in changes:
        if change.endswith("-") and "=" not in change:
            problem = label_key_problem(change[:-1])
            removes.append(change[:-1])
        else:
            try:
                sets.update(parse_label_arg(change))
                problem = None
            except ValueError as e:
                problem = str(e)
        if problem:
            _fail(ctx, f"error: {problem}")
    store = get_store(ctx)
    ns = _namespace(info, namespace)
    try:
        obj = store.get(info.kind, ns, name)
    except NotFound:
        _fail(ctx, _not_found(info, name))
        return
    labels = obj.labels
    for key, value in sets.items():
        if key in labels and labels[key] != value and not overwrite:
            _fail(ctx, f"error: '{key}' already has a value ({labels[key]}), and --overwrite "
                       "is false")
    before = dict(labels)
    labels.update(sets)
    for key in removes:
        labels.pop(key, None)
    if labels == before:
        click.echo(f"{info.ref(name)} not labeled")
        return
    store.update(obj, expected_version=obj.resource_version)
    click.echo(f"{info.ref(name)} labeled")
    sync_lab_policies(ctx, {info.kind})
