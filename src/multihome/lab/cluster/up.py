"""`multihome lab up --kubernetes` / `lab env` / `lab down` for the real cluster.

Order matters and each step waits, with a bound, for the one before it: etcd, the API
server, the controllers and the scheduler; `deploy/` through `kubectl apply -k` (CRDs,
RBAC, webhook configurations); multihome's webhook and node daemon as host processes
authenticated with tokens of their own ServiceAccounts (so deploy/'s RBAC is what is
exercised); containerd with multihome's CNI executables; the kubelet. `down` undoes it all
in reverse: pods first (so CNI DEL runs), then processes, mounts, cgroups, files.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from multihome.lab.cluster import build, components, images, kubectl, multus, procs
from multihome.lab.cluster.layout import (
    CNI_CHOICES,
    COMPONENTS,
    ClusterLayout,
    cluster_root,
    load,
)
from multihome.lab.cluster.pki import Authority, CertSpec, service_account_keys
from multihome.lab.cluster.procs import ClusterError
from multihome.net import addr, links, netns
from multihome.paths import write_file_atomic

Progress = Callable[[str], None]
TOKEN_TTL = "48h"
POD_DRAIN_TIMEOUT_S = 90.0


def repo_deploy_dir() -> Path:
    """deploy/ of the checkout this package runs from (the lab is a developer tool)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "deploy" / "kustomization.yaml").is_file():
            return parent / "deploy"
    raise ClusterError("cannot find deploy/kustomization.yaml above " + str(here))


def _probe(url: str, layout: ClusterLayout | None = None, *, client_cert: bool = False,
           verify: bool = True) -> bool:
    """GET `url` answers 200: plain HTTP (etcd), HTTPS trusted through the lab's CA
    (optionally with the admin's client certificate), or unverified (the controllers
    serve /healthz with a self-signed certificate of their own)."""
    ctx: ssl.SSLContext | None = None
    if url.startswith("https:"):
        if not verify:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            assert layout is not None
            ctx = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
            if client_cert:
                ctx.load_cert_chain(str(layout.pki / "admin.crt"),
                                    str(layout.pki / "admin.key"))
    with urllib.request.urlopen(url, context=ctx, timeout=3) as r:  # loopback only
        return bool(r.status == 200)


def _certificates(layout: ClusterLayout) -> Authority:
    ca = Authority(layout.pki)
    node = layout.node_name
    ip = layout.node_ip
    for spec in (
        CertSpec("apiserver", "kube-apiserver", server=True,
                 dns=("localhost", "kubernetes", "kubernetes.default",
                      "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"),
                 ips=(ip, "127.0.0.1", "10.96.0.1")),
        CertSpec("apiserver-kubelet", "kube-apiserver-kubelet-client", "system:masters",
                 client=True),
        CertSpec("admin", "mh-lab-admin", "system:masters", client=True),
        CertSpec("controller-manager", "system:kube-controller-manager", client=True),
        CertSpec("scheduler", "system:kube-scheduler", client=True),
        CertSpec("kubelet-client", f"system:node:{node}", "system:nodes", client=True),
        CertSpec("kubelet", node, server=True, dns=(node, "localhost"), ips=(ip,)),
        CertSpec("webhook", "multihome-webhook", server=True,
                 dns=("localhost", "multihome-webhook.multihome-system.svc"),
                 ips=("127.0.0.1",)),
    ):
        ca.issue(spec)
    service_account_keys(layout.pki)
    kube = layout.dir("kubeconfig")
    kube.mkdir(parents=True, exist_ok=True)
    os.chmod(kube, 0o700)
    for who, stem in (("admin", "admin"), ("controller-manager", "controller-manager"),
                      ("scheduler", "scheduler"), ("kubelet", "kubelet-client")):
        write_file_atomic(layout.kubeconfig(who), components.kubeconfig_text(
            layout, who, cert=layout.pki / f"{stem}.crt", key=layout.pki / f"{stem}.key"),
            0o600)
    return ca


def _service_account_kubeconfig(layout: ClusterLayout, account: str) -> Path:
    """A kubeconfig holding a TokenRequest token of multihome's own ServiceAccount."""
    token = kubectl.create_token(layout, layout.system_namespace, account, TOKEN_TTL)
    path = layout.kubeconfig(account)
    write_file_atomic(path, components.kubeconfig_text(layout, account, token=token), 0o600)
    return path


def _multihome_argv() -> list[str]:
    """The `multihome` command installed beside this interpreter (the venv's)."""
    exe = Path(sys.executable).parent / "multihome"
    if not exe.exists():
        raise ClusterError(f"{exe} is missing: install multihome (make install) first")
    return [str(exe)]


def _start_apiserver(layout: ClusterLayout) -> None:
    procs.start(layout, "kube-apiserver", components.apiserver(layout))
    procs.wait_for(layout, "kube-apiserver",
                   lambda: _probe(layout.api_url + "/readyz", layout, client_cert=True),
                   120, "ready")


def _control_plane(layout: ClusterLayout, progress: Progress) -> None:
    procs.start(layout, "etcd", components.etcd(layout))
    procs.wait_for(layout, "etcd", lambda: _probe(f"http://127.0.0.1:{layout.etcd_port}/health"),
                   60, "healthy")
    progress(f"etcd is up (127.0.0.1:{layout.etcd_port})")
    _start_apiserver(layout)
    progress(f"kube-apiserver is ready ({layout.api_url})")
    procs.start(layout, "kube-controller-manager", components.controller_manager(layout))
    procs.start(layout, "kube-scheduler", components.scheduler(layout))
    procs.wait_for(layout, "kube-controller-manager",
                   lambda: _probe("https://127.0.0.1:10257/healthz", verify=False), 60, "healthy")
    procs.wait_for(layout, "kube-scheduler",
                   lambda: _probe("https://127.0.0.1:10259/healthz", verify=False), 60, "healthy")
    progress("kube-controller-manager and kube-scheduler are up")


def _deploy(layout: ClusterLayout, ca: Authority, progress: Progress) -> None:
    import base64

    overlay = layout.dir("deploy-overlay")
    overlay.mkdir(parents=True, exist_ok=True)
    bundle = base64.b64encode(ca.pem()).decode()
    (overlay / "kustomization.yaml").write_text(
        components.deploy_overlay(layout, overlay, repo_deploy_dir(), bundle))
    kubectl.run(layout, "apply", "-k", str(overlay), timeout=120)
    kubectl.run(layout, "wait", "--for", "condition=Established", "--timeout", "60s",
                "crd", "--all",
            timeout=90)
    progress("deploy/ applied with kubectl apply -k (CRDs, RBAC, webhook configurations)")


def _cni(layout: ClusterLayout) -> None:
    layout.cni_bin.mkdir(parents=True, exist_ok=True)
    layout.cni_conf.mkdir(parents=True, exist_ok=True)
    subprocess.run([*_multihome_argv(), "install-cni", "--bin-dir", str(layout.cni_bin)],
                   check=True, capture_output=True, timeout=60)
    # containerd's CRI brings every sandbox's lo up through the `loopback` plugin
    loopback = layout.cni_bin / "loopback"
    if not loopback.exists():
        loopback.symlink_to("/usr/lib/cni/loopback")
    (layout.cni_conf / "10-mh-k8s.conflist").write_text(components.default_network(layout))


def _start_webhook(layout: ClusterLayout, kubeconfig: Path) -> None:
    procs.start(layout, "multihome-webhook", [
        *_multihome_argv(), "--store", f"k8s:{kubeconfig}", "webhook",
        "--cert", str(layout.pki / "webhook.crt"), "--key", str(layout.pki / "webhook.key"),
        "--listen", f"127.0.0.1:{layout.webhook_port}"])
    procs.wait_for(layout, "multihome-webhook",
                   lambda: _probe(f"https://127.0.0.1:{layout.webhook_port}/healthz", layout),
                   60, "serving")


def _start_daemon(layout: ClusterLayout, kubeconfig: Path) -> None:
    procs.start(layout, "multihome-daemon", [
        *_multihome_argv(), "--store", f"k8s:{kubeconfig}", "daemon",
        "--socket", layout.daemon_socket, "--conf-dir", str(layout.cni_conf),
        "--bin-dir", str(layout.cni_bin), "--cni-dir", str(layout.cni_cache),
        "--state-dir", str(layout.daemon_state)],
        env=layout.daemon_env())
    procs.wait_for(layout, "multihome-daemon",
                   lambda: (layout.cni_conf / "00-multihome.conflist").exists()
                   and os.path.exists(layout.daemon_socket), 60, "serving")


def _multihome_processes(layout: ClusterLayout, progress: Progress) -> None:
    _start_webhook(layout, _service_account_kubeconfig(layout, "multihome-webhook"))
    progress(f"multihome webhook is serving (127.0.0.1:{layout.webhook_port}, "
             "ServiceAccount multihome-webhook)")
    _start_daemon(layout, _service_account_kubeconfig(layout, "multihome-node"))
    progress("multihome daemon is serving (ServiceAccount multihome-node), "
             "00-multihome.conflist written")


def restart_daemon(layout: ClusterLayout) -> None:
    """Start the node daemon again (after it was killed), with the token it had."""
    procs.stop(layout, "multihome-daemon")
    _start_daemon(layout, layout.kubeconfig("multihome-node"))


def restart_apiserver(layout: ClusterLayout) -> None:
    """Stop and start the API server, as an upgrade or a crash would."""
    procs.stop(layout, "kube-apiserver")
    _start_apiserver(layout)


CTR_ATTEMPTS = 3
CTR_RETRY_DELAY_S = 1.0


def _ctr(layout: ClusterLayout, *args: str, timeout: float = 60) -> None:
    """Run ctr against the lab's containerd; a failure names ctr's own reason.

    A just-started containerd can refuse a request briefly while its services settle,
    so a refused call is tried again, a bounded number of times."""
    # containerd is serving when we call: a socket that does not answer at once won't
    argv = ["ctr", "--address", layout.containerd_socket, "--connect-timeout", "2s",
            "-n", "k8s.io", *args]
    reason = ""
    for attempt in range(CTR_ATTEMPTS):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                             check=False)
        if out.returncode == 0:
            return
        lines = (out.stderr or out.stdout).strip().splitlines()
        reason = lines[-1][:400] if lines else "(no output)"
        if attempt + 1 < CTR_ATTEMPTS:
            time.sleep(CTR_RETRY_DELAY_S * (attempt + 1))
    raise ClusterError(f"ctr {' '.join(args[:2])} failed {CTR_ATTEMPTS} times: {reason}; "
                       f"containerd's log {layout.log('containerd')}: "
                       f"{procs.last_line(layout.log('containerd'))}")


def _node_address(layout: ClusterLayout) -> None:
    """The pods' bridge with the node's address: made before the first pod, so the
    kubelet has a non-loopback address to register (the bridge plugin finds it as its
    gateway address, isGateway)."""
    prefix = ipaddress.ip_network(layout.pod_subnet).prefixlen
    with netns.iproute_in(None) as ipr:
        bridge = links.ensure_bridge(ipr, layout.pod_bridge)
        addr.add_address(ipr, bridge.index, ipaddress.ip_interface(f"{layout.node_ip}/{prefix}"),
                         ifname=layout.pod_bridge)
        links.set_up(ipr, bridge.index)


def _node(layout: ClusterLayout, progress: Progress) -> None:
    _node_address(layout)
    cdir = layout.dir("containerd")
    cdir.mkdir(parents=True, exist_ok=True)
    (cdir / "config.toml").write_text(components.containerd_config(layout))
    Path(layout.containerd_socket).parent.mkdir(parents=True, exist_ok=True)
    procs.start(layout, "containerd", components.containerd(layout))
    procs.wait_for(layout, "containerd", lambda: os.path.exists(layout.containerd_socket),
                   60, "serving")
    for archive in images.write_lab_images(layout.dir("images")):
        _ctr(layout, "images", "import", "--all-platforms",
             "--snapshotter", components.SNAPSHOTTER, str(archive))
    progress(f"containerd is up with {images.PAUSE_IMAGE} and {images.TEST_IMAGE}")
    (layout.dir("kubelet-config.yaml")).write_text(components.kubelet_config(layout))
    layout.kubelet_root.mkdir(parents=True, exist_ok=True)
    procs.start(layout, "kubelet", components.kubelet(layout))
    procs.wait_for(layout, "kubelet", lambda: _node_ready(layout), 180, "Ready")
    progress(f"kubelet registered node {layout.node_name}, which is Ready")


def _node_ready(layout: ClusterLayout) -> bool:
    out = kubectl.run(layout, "get", "node", layout.node_name, "-o", "json", check=False,
                      timeout=10)
    if out.returncode != 0:
        return False
    conditions = json.loads(out.stdout).get("status", {}).get("conditions", [])
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _ports_free(layout: ClusterLayout) -> None:
    """Refuse to start beside another lab cluster (or anything on our ports)."""
    import socket

    if procs.pid_of(layout, "kube-apiserver") is not None:
        return  # ours, from an earlier `up` of this lab: completing it is fine
    for port in (layout.api_port, layout.etcd_port, layout.etcd_peer_port,
                 layout.webhook_port, 10257, 10259):
        with socket.socket() as s:
            # as the servers themselves bind: a connection in TIME_WAIT is no conflict
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                raise ClusterError(
                    f"port {port} on 127.0.0.1 is in use: is another lab cluster running? "
                    "Stop it with `multihome lab down` (with its MULTIHOME_STATE_DIR)") from None


def up(state_dir: str, progress: Progress = print) -> ClusterLayout:
    """Start (or complete) the lab cluster; running it again changes nothing."""
    if os.geteuid() != 0:
        raise ClusterError("lab up --kubernetes must run as root (kubelet, containerd, CNI)")
    for tool in ("containerd", "runc", "ctr", "go"):
        if shutil.which(tool) is None:
            raise ClusterError(f"{tool} is not installed (make install installs it)")
    layout = load(state_dir) or ClusterLayout(root=cluster_root(state_dir))
    _ports_free(layout)
    layout.save()
    os.chmod(layout.base, 0o700)
    build.build_kube(layout.version, progress=progress)
    ca = _certificates(layout)
    _control_plane(layout, progress)
    _deploy(layout, ca, progress)
    _cni(layout)
    _multihome_processes(layout, progress)
    _node(layout, progress)
    return layout


def env_lines(state_dir: str) -> list[str]:
    layout = load(state_dir)
    if layout is None:
        raise ClusterError("no lab cluster here: run `multihome lab up --kubernetes` first")
    return [
        f"export KUBECONFIG={layout.kubeconfig('admin')}",
        f"export PATH={layout.bins.root / 'bin'}:{Path(sys.executable).parent}:$PATH",
        f"export MULTIHOME_LAB_IMAGE={images.TEST_IMAGE}",
    ]


def _drain_pods(layout: ClusterLayout, progress: Progress) -> None:
    """Delete every pod while the kubelet still runs, so each gets its CNI DEL."""
    if procs.pid_of(layout, "kube-apiserver") is None or procs.pid_of(layout, "kubelet") is None:
        return
    kubectl.run(layout, "delete", "pods", "--all", "--all-namespaces", "--wait=false",
            check=False, timeout=30)
    deadline = time.monotonic() + POD_DRAIN_TIMEOUT_S
    while time.monotonic() < deadline:
        out = kubectl.run(layout, "get", "pods", "-A", "--field-selector",
                      f"spec.nodeName={layout.node_name}", "-o", "name", check=False, timeout=10)
        if out.returncode == 0 and not out.stdout.strip():
            progress("all pods deleted")
            return
        time.sleep(1)
    progress("some pods did not go in time; removing their sandboxes by force")


def _unmount_under(prefixes: list[str]) -> None:
    """Detach every mount below our folders, deepest first (kubelet volumes, overlays)."""
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if any(point == p or point.startswith(p.rstrip("/") + "/") for p in prefixes):
                points.append(point)
    for point in sorted(points, key=len, reverse=True):
        netns.detach_mount(point)


def _kill_shims(layout: ClusterLayout) -> None:
    """containerd's shims outlive containerd by design; ours name our socket."""
    import signal

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmd and cmd[0].endswith(b"containerd-shim-runc-v2") and \
                layout.containerd_socket.encode() in cmd:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(int(entry.name), signal.SIGKILL)


CGROUP_EMPTY_WAIT_S = 5.0


def _kubepods_trees() -> list[Path]:
    root = Path("/sys/fs/cgroup")
    return [c / "kubepods" for c in (root.iterdir() if root.is_dir() else [])
            if (c / "kubepods").is_dir()]


def _kubepods_pids() -> set[int]:
    pids: set[int] = set()
    for top in _kubepods_trees():
        for dirpath, _dirs, _files in os.walk(top):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(p) for p in Path(dirpath, "cgroup.procs").read_text().split())
    return pids


def _remove_cgroups() -> None:
    """The kubelet's cgroup tree (kubepods) in every v1 controller, leaves first.

    Whatever still runs in it is a pod's process whose shim is gone (a lab that failed
    half-way up): the sandbox's sleep ignores SIGTERM, so it gets SIGKILL, and the
    trees go once they are empty (a bounded wait)."""
    import signal

    deadline = time.monotonic() + CGROUP_EMPTY_WAIT_S
    while (pids := _kubepods_pids()) and time.monotonic() < deadline:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)
    for top in _kubepods_trees():
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda t: len(t[0]),
                                             reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)


def _our_containers(layout: ClusterLayout) -> set[str]:
    """Ids of every container and sandbox our containerd knows (while it runs)."""
    if procs.pid_of(layout, "containerd") is None:
        return set()
    try:
        out = subprocess.run(["ctr", "--address", layout.containerd_socket, "-n", "k8s.io",
                              "containers", "list", "-q"], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except subprocess.TimeoutExpired:
        return set()
    return {line.strip() for line in out.splitlines() if line.strip()}


def _sandbox_netns(layout: ClusterLayout, ids: set[str]) -> set[str]:
    """The network namespace files (/var/run/netns/cni-…) our containerd made for them."""
    paths = set()
    for cid in ids:
        try:
            out = subprocess.run(["ctr", "--address", layout.containerd_socket, "-n",
                                  "k8s.io", "containers", "info", cid], capture_output=True,
                                 text=True, timeout=30, check=False).stdout
            spec = json.loads(out or "{}").get("Spec") or {}
        except (subprocess.TimeoutExpired, ValueError):
            continue
        for ns in (spec.get("linux") or {}).get("namespaces") or []:
            path = ns.get("path") if isinstance(ns, dict) else None
            if ns.get("type") == "network" and isinstance(path, str) and \
                    path.startswith("/var/run/netns/"):
                paths.add(path)
    return paths


def _remove_netns(paths: set[str]) -> None:
    """Namespaces of sandboxes the kubelet had not torn down when the lab stopped: their
    links go with them (a veth dies with its end in a deleted namespace)."""
    for path in paths:
        netns.delete_named(os.path.basename(path))


def _forget_libcni_caches(ids: set[str]) -> None:
    """containerd 1.6 keeps libcni's result cache in /var/lib/cni/results, a host path it
    does not let us move; a sandbox torn down after its CNI was swapped (`lab cni`) can
    leave its entry. Remove those of our sandboxes, never another runtime's."""
    results = Path("/var/lib/cni/results")
    if not ids or not results.is_dir():
        return
    for entry in results.iterdir():
        if any(f"-{cid}-" in entry.name for cid in ids):
            entry.unlink(missing_ok=True)


def down(state_dir: str, progress: Progress = print) -> None:
    """Stop every process `up` started and remove everything it made."""
    layout = load(state_dir)
    if layout is None:
        return
    with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
        _drain_pods(layout, progress)
    sandboxes = _our_containers(layout)
    sandbox_netns = _sandbox_netns(layout, sandboxes)
    multus.stop_multus(layout)
    for component in reversed(COMPONENTS):
        procs.stop(layout, component)
    _kill_shims(layout)
    _forget_libcni_caches(sandboxes)
    _remove_netns(sandbox_netns)
    _unmount_under([layout.root, layout.run, "/run/containerd/io.containerd"])
    _remove_cgroups()
    with netns.iproute_in(None) as ipr:
        bridge = links.by_name(ipr, layout.pod_bridge)
        if bridge is not None:
            links.delete(ipr, bridge.index)
    shutil.rmtree(layout.run, ignore_errors=True)
    shutil.rmtree(layout.root, ignore_errors=True)
    progress("lab cluster stopped and removed")




def use_cni(state_dir: str, which: str, progress: Progress = print) -> ClusterLayout:
    """Make `which` the cluster's meta plugin: multihome, or Multus thick beside it.

    Pods keep what they have; new pods get the new one. NADs are shared by both.
    """
    layout = load(state_dir)
    if layout is None:
        raise ClusterError("no lab cluster here: run `multihome lab up --kubernetes` first")
    if which == "multus":
        multus.use_multus(layout)
        progress("Multus thick serves the cluster's CNI calls (multihome's daemon stopped)")
    elif which == "multihome":
        procs.stop(layout, "multihome-daemon")  # it may be serving Multus' config
        multus.stop_multus(layout)
        _cni(layout)  # multihome's own executables again (no Multus names)
        _start_daemon(layout, layout.kubeconfig("multihome-node"))
        progress("multihome serves the cluster's CNI calls")
    elif which == "multihome-on-multus-config":
        multus.multihome_on_multus_config(layout, _multihome_argv(),
                                          layout.kubeconfig("multihome-node"))
        progress("multihome serves the cluster's CNI calls with Multus' own daemon config "
                 "and 00-multus.conf (Multus stopped)")
    else:
        raise ClusterError(f"unknown CNI {which!r}: use one of {', '.join(CNI_CHOICES)}")
    return layout
