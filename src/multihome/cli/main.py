"""The `multihome` command. Each group of subcommands lives in its own module."""

from __future__ import annotations

import importlib
import os

import click

from multihome.errors import MultihomeError
from multihome.extras import missing_extra

# module -> attribute holding a click command or group; imported lazily so that
# `multihome --help` and the fast paths stay cheap.
_COMMANDS: dict[str, tuple[str, str]] = {
    "install-cni": ("multihome.cli.install_cni", "install_cni"),
    "apply": ("multihome.cli.objects", "apply_cmd"),
    "create": ("multihome.cli.objects", "create_cmd"),
    "annotate": ("multihome.cli.annotate", "annotate_cmd"),
    "get": ("multihome.cli.objects", "get_cmd"),
    "delete": ("multihome.cli.objects", "delete_cmd"),
    "describe": ("multihome.cli.objects", "describe_cmd"),
    "label": ("multihome.cli.objects", "label_cmd"),
    "pod": ("multihome.cli.pods", "pod"),
    "lab": ("multihome.cli.lab", "lab"),
    "node": ("multihome.cli.node", "node"),
    "vm": ("multihome.cli.vm", "vm"),
    "daemon": ("multihome.cli.daemon", "daemon_cmd"),
    "uninstall": ("multihome.cli.daemon", "uninstall_cmd"),
    "webhook": ("multihome.cli.webhook", "webhook_cmd"),
    "console": ("multihome.cli.console", "console_cmd"),
    "topology": ("multihome.cli.console", "topology_cmd"),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_COMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in _COMMANDS:
            module, attr = _COMMANDS[cmd_name]
            try:
                cmd = getattr(importlib.import_module(module), attr)
            except ModuleNotFoundError as e:
                message = missing_extra(e, f"multihome {cmd_name}")
                if message is None:
                    raise
                return _unavailable(cmd_name, message)
            assert isinstance(cmd, click.Command)
            return cmd
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> object:
        # A store that breaks in the middle of any command (corrupt, read-only, gone) is
        # one line for the person at the terminal, whichever command met it.
        try:
            return super().invoke(ctx)
        except Exception as e:
            # Loaded only on this path, like the subcommands: `--help` must stay cheap.
            store_base = importlib.import_module("multihome.store.base")
            if isinstance(e, store_base.StoreUnavailable):
                raise click.ClickException(str(e)) from None
            # any of multihome's own errors a command did not report itself is still the
            # one sentence it carries, never a traceback
            if isinstance(e, MultihomeError):
                raise click.ClickException(str(e)) from None
            # a library of an extra met on the way (`topology -o png`, a k8s daemon)
            message = missing_extra(e, f"multihome {ctx.invoked_subcommand or ''}".rstrip())
            if message is not None:
                raise click.ClickException(message) from None
            raise


def _unavailable(name: str, message: str) -> click.Command:
    """A command whose extra is not installed: listed by --help, one line when run."""
    def run() -> None:
        raise click.ClickException(message)

    return click.Command(name, callback=run, help=f"(not installed) {message}",
                         context_settings={"ignore_unknown_options": True,
                                           "allow_extra_args": True})


@click.group(cls=_LazyGroup)
@click.version_option(package_name="multihome")
@click.option("--store", envvar="MULTIHOME_STORE", metavar="PATH", default=None,
              help="Store file (default: $MULTIHOME_STORE, else /var/lib/multihome/store.db).")
@click.pass_context
def cli(ctx: click.Context, store: str | None) -> None:
    """multihome: several network interfaces for pods and VMs."""
    ctx.ensure_object(dict)
    ctx.obj["store"] = store


def main() -> None:
    cli()


def kubectl_main() -> None:
    """`kubectl multihome ...` (kubectl runs `kubectl-multihome` from PATH): the same
    commands, against the cluster of the current kubeconfig unless a store is named."""
    from multihome.store import STORE_ENV

    if not os.environ.get(STORE_ENV):
        kubeconfig = (os.environ.get("KUBECONFIG") or "").split(os.pathsep)[0] \
            or os.path.expanduser("~/.kube/config")
        os.environ[STORE_ENV] = f"k8s:{kubeconfig}"
    cli(prog_name="kubectl multihome")
