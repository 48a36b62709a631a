"""`multihome daemon` (the node daemon) and `multihome uninstall` (undo its node changes)."""

from __future__ import annotations

import os

import click

from multihome.paths import DEFAULT_DAEMON_STATE_DIR
from multihome.shim import DEFAULT_SOCKET, SOCKET_ENV

DEFAULT_CONF_DIR = "/etc/cni/net.d"
DEFAULT_BIN_DIR = "/opt/cni/bin"
# The second line of every executable that `multihome install-cni` writes.
INSTALLED_MARK = "# Written by `multihome install-cni`"


@click.command("daemon")
@click.option("--socket", "socket_path", envvar=SOCKET_ENV, default=DEFAULT_SOCKET,
              show_default=True, help="Unix socket to serve on (root only, mode 0600).")
@click.option("--conf-dir", default=DEFAULT_CONF_DIR, show_default=True,
              help="CNI conf dir: 00-multihome.conflist is written here ('' to skip).")
@click.option("--bin-dir", default=DEFAULT_BIN_DIR, show_default=True,
              help="CNI bin dir where delegates are found.")
@click.option("--store", default=None, metavar="PATH",
              help="Store file the engine reads pods and NADs from (default: the global "
              "--store / $MULTIHOME_STORE).")
@click.option("--cni-dir", default="", help="Attachment cache dir (Multus cniDir).")
@click.option("--workers", default=4, show_default=True, type=click.IntRange(1, 256),
              help="Requests run at the same time.")
@click.option("--queue", default=32, show_default=True, type=click.IntRange(0, 4096),
              help="Requests waiting for a worker before callers get CNI code 11.")
@click.option("--request-timeout", default=180.0, show_default=True,
              type=click.FloatRange(min=0.1), help="Seconds a request may wait for its "
              "container's earlier request and for a worker before it gets CNI code 11.")
@click.option("--shutdown-grace", default=30.0, show_default=True,
              type=click.FloatRange(min=0.0), help="Seconds SIGTERM waits for in-flight "
              "requests before the daemon exits anyway.")
@click.option("--state-dir", default=DEFAULT_DAEMON_STATE_DIR, show_default=True,
              envvar="MULTIHOME_DAEMON_STATE_DIR",
              help="The daemon's own state (DHCP leases, 0600), kept across restarts.")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]))
@click.option("--multus-config", default=None, metavar="FILE",
              help="Multus thick's daemon config (daemon-config.json), used unchanged in "
              "place of Multus: serve on <socketDir>/multus.sock, write 00-multus.conf in "
              "cniConfigDir, apply its node settings to every request. It sets the socket, "
              "the conf dir and the log level (--socket, --conf-dir, --log-level ignored).")
@click.option("--probe-dns", "probe_dns", multiple=True, metavar="NAME",
              help="Kubernetes mode: a name that must still resolve through the node's "
              "resolver after every NNCP apply (repeatable; as `probes.dns`).")
@click.option("--probe-api-server/--no-probe-api-server", default=True, show_default=True,
              help="Kubernetes mode: the API server must still accept connections after "
              "every NNCP apply.")
@click.pass_context
def daemon_cmd(ctx: click.Context, socket_path: str, conf_dir: str, bin_dir: str,
               store: str | None, cni_dir: str, workers: int, queue: int,
               request_timeout: float, shutdown_grace: float, state_dir: str,
               log_level: str, multus_config: str | None, probe_dns: tuple[str, ...],
               probe_api_server: bool) -> None:
    """Serve CNI requests on a unix socket, running the engine and plugins in-process."""
    from multihome.daemon import logs
    from multihome.daemon.memory import limit_malloc_arenas, reexec_without_thread_caches
    from multihome.daemon.multus_daemon_config import DaemonConfigError, load
    from multihome.daemon.server import DaemonOptions, run

    multus = None
    if multus_config is not None:
        try:
            multus = load(multus_config)
        except DaemonConfigError as e:
            raise click.ClickException(str(e)) from None
        socket_path, conf_dir, log_level = multus.socket, multus.cni_config_dir, multus.log_level
    from multihome.net.reach import valid_name as valid_dns_name

    for name in probe_dns:
        if not valid_dns_name(name):
            raise click.BadParameter(f"{name[:80]!r} is not a DNS name",
                                     param_hint="--probe-dns")
    if os.geteuid() != 0:
        raise click.ClickException("multihome daemon must run as root (it changes the "
                                   "node's network and owns a root-only socket)")
    reexec_without_thread_caches()  # once the arguments are known good; returns when set
    limit_malloc_arenas()  # before the first thread
    logs.setup(log_level)
    _recover_node()
    store = store or (ctx.obj or {}).get("store") or ""
    on_start = None
    if store == "k8s" or store.startswith("k8s:"):
        from multihome.k8s.bridge_marker import start_for_daemon

        start_for_daemon(store)  # Kubernetes mode: bridges on the Node's capacity
        from multihome.k8s.node_policies import start_for_daemon as start_node_policies

        # Kubernetes mode: enact the NNCPs selecting this node
        start_node_policies(store, probe_dns, probe_api_server)
        from multihome.attach.multus_config import DEFAULT_CNI_DIR
        from multihome.k8s.hotplug import start_for_daemon as hotplug_for_daemon
        from multihome.k8s.multi_policies import start_for_daemon as start_multi_policies

        on_start = hotplug_for_daemon(store)  # Kubernetes mode: follow pods' selections
        # Kubernetes mode: MultiNetworkPolicies on this node's attachments
        start_multi_policies(store, cni_dir or (multus.raw.get("cniDir", "") if multus else "")
                             or DEFAULT_CNI_DIR)
    if store:
        _cluster_ipam(store, cni_dir)
    try:
        run(DaemonOptions(socket=socket_path, conf_dir=conf_dir, bin_dir=bin_dir,
                          store=store if store == "k8s" or store.startswith("k8s:")
                          else os.path.abspath(store) if store else "", cni_dir=cni_dir,
                          workers=workers, queue=queue, request_timeout=request_timeout,
                          shutdown_grace=shutdown_grace, multus=multus,
                          state_dir=os.path.abspath(state_dir), on_start=on_start))
    except RuntimeError as e:
        raise click.ClickException(str(e)) from e


def _cluster_ipam(store: str, cni_dir: str) -> None:
    """The cluster-wide IPAM's pools for every plugin call, and the reconciler that frees
    addresses of pods that are gone (their DEL lost)."""
    from multihome.attach.engine import LOCAL_POOLS_FILE
    from multihome.attach.multus_config import DEFAULT_CNI_DIR
    from multihome.daemon.ipam_reconciler import IpamReconciler
    from multihome.ipam import whereabouts
    from multihome.stores import open_store

    spec = store if store == "k8s" or store.startswith("k8s:") else os.path.abspath(store)
    local = os.path.join(os.path.abspath(cni_dir or DEFAULT_CNI_DIR), LOCAL_POOLS_FILE) \
        if spec.startswith("k8s") else ""
    # plugins the daemon serves directly (not through the engine) use the same pools
    whereabouts.use_store(lambda: open_store(spec), local)
    IpamReconciler(lambda: open_store(spec), local).start()


def _recover_node() -> None:
    """A `node apply` killed after its checkpoint left the node changed: roll it back now,
    before serving (the daemon may be what restarted after that crash). A failure is
    logged with what to run, and the daemon still serves CNI: pods must not wait on it."""
    import logging

    from multihome.daemon.logs import log
    from multihome.errors import MultihomeError
    from multihome.node.recovery import recover_interrupted

    try:
        done = recover_interrupted()
    except MultihomeError as e:
        log(logging.ERROR, f"node network: {e}")
        return
    if done:
        log(logging.WARNING, f"node network: {done}")


def installed_executables(bin_dir: str) -> list[str]:
    """Files in `bin_dir` written by install-cni (never another vendor's plugin)."""
    out: list[str] = []
    try:
        names = sorted(os.listdir(bin_dir))
    except FileNotFoundError:
        return out
    for name in names:
        path = os.path.join(bin_dir, name)
        try:
            with open(path, "rb") as f:
                head = f.read(256)
        except (IsADirectoryError, PermissionError, FileNotFoundError):
            continue
        if INSTALLED_MARK.encode() in head:
            out.append(path)
    return out


@click.command("uninstall")
@click.option("--conf-dir", default=DEFAULT_CONF_DIR, show_default=True)
@click.option("--bin-dir", default=DEFAULT_BIN_DIR, show_default=True)
def uninstall_cmd(conf_dir: str, bin_dir: str) -> None:
    """Remove 00-multihome.conflist and the executables that install-cni wrote."""
    from multihome.daemon.autoconf import CONFIG_NAME, remove

    if remove(conf_dir):
        click.echo(f"removed {os.path.join(conf_dir, CONFIG_NAME)}")
    for path in installed_executables(bin_dir):
        os.unlink(path)
        click.echo(f"removed {path}")
