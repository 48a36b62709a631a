"""Checkpoints: the state of everything a policy touches, kept until commit or rollback.

A checkpoint is a JSON file in the node state dir, so a later `node commit`/`rollback`
(or the rollback timer, a separate process) finds it. Restoring builds a desired state
from the saved one (interfaces created since are `absent`) and applies it with the same
code as any policy, then checks that the saved state is back exactly.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from multihome.net import addr, features, links, netns, node_links
from multihome.node import apply, current, dns, process, verify
from multihome.node import state as models
from multihome.node.errors import NodeError
from multihome.paths import state_dir, write_file_atomic

CHECKPOINT_FILE = "checkpoint.json"
APPLYING = "applying"
AWAITING_COMMIT = "awaiting-commit"
NODE_DIR_ENV = "MULTIHOME_NODE_DIR"


@contextmanager
def node_dir_override(path: str) -> Iterator[None]:
    """Use `path` as the node dir for the block (lab down cleans the lab's own)."""
    old = os.environ.get(NODE_DIR_ENV)
    os.environ[NODE_DIR_ENV] = path
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(NODE_DIR_ENV, None)
        else:
            os.environ[NODE_DIR_ENV] = old


def node_dir() -> str:
    """`$MULTIHOME_NODE_DIR`, else `node/` under the lab state dir."""
    return os.environ.get(NODE_DIR_ENV) or os.path.join(state_dir(), "node")


@dataclass
class Checkpoint:
    id: str
    created: float
    timeout: int
    netns: str | None
    touched: list[str]
    before: dict[str, Any]  # {"interfaces": [...], "routes": {"config": [...]}}
    timer_pid: int = 0
    changes: list[str] = field(default_factory=list)
    # APPLYING while `owner` (pid, start time) changes the node; AWAITING_COMMIT after a
    # `--no-commit` apply, while the timer (pid, start time) waits for its expiry
    phase: str = "applying"
    owner_pid: int = 0
    owner_start: int = 0
    timer_start: int = 0
    # what the kernel holds beyond the nmstate view, per touched interface: addresses with
    # broadcast/scope/flags in order, bridge and port options and the port number (see
    # kernel_details); a rollback brings these back too
    kernel: dict[str, Any] = field(default_factory=dict)
    # the node's resolv.conf exactly (dns.FileCopy), when the policy sets dns-resolver
    dns: dict[str, Any] | None = None

    @property
    def expires(self) -> float:
        return self.created + self.timeout


def touched_names(desired: models.NodeState, now: models.NodeState) -> set[str]:
    """Interfaces a policy may change: those it names, their ports, controllers' (bridges,
    bonds, vrfs) current ports."""
    names: set[str] = set()
    for iface in desired.interfaces:
        names.add(iface.name)
        names |= iface.linked_names()
        existing = now.interface(iface.name)
        if existing is not None and existing.CONTROLLER:
            names |= existing.linked_names()
    # the interfaces of routes a policy adds: their routes (of every table) come back
    names |= {r.next_hop_interface for r in desired.routes
              if r.next_hop_interface and not r.absent}
    # a port taken by a policy's controller leaves its old one: that one is touched too
    for iface in now.interfaces:
        if iface.CONTROLLER and iface.linked_names() & names:
            names.add(iface.name)
    return names


def _relevant_routes(routes: tuple[models.Route, ...], names: set[str],
                     policy_routes: tuple[models.Route, ...]) -> list[models.Route]:
    return [r for r in routes if r.next_hop_interface in names
            or any(p.matches(r) for p in policy_routes)]


def capture(desired: models.NodeState | Mapping[str, Any], netns_path: str | None,
            timeout: int) -> Checkpoint:
    wanted = models.from_nmstate(desired)
    now = current.read(netns_path)
    names = touched_names(wanted, now)
    # ethtool features come back only where the policy changes them: set on a link
    # that did not ask, they would stay fixed where the kernel would follow its ports
    offloads = {i.name for i in wanted.interfaces if i.ethtool is not None}
    ifaces = [(i if i.name in offloads else replace(i, ethtool=None)).to_nmstate()
              for i in now.interfaces if i.name in names]
    routes = [r.to_nmstate() for r in _relevant_routes(now.routes, names, wanted.routes)]
    before: dict[str, Any] = {"interfaces": ifaces, "routes": {"config": routes}}
    if wanted.rules is not None:  # a policy with route rules: all of them come back
        before["route-rules"] = {"config": [r.to_nmstate() for r in now.rules or ()]}
    me = os.getpid()
    return Checkpoint(secrets.token_hex(6), time.time(), timeout, netns_path, sorted(names),
                      before, phase=APPLYING,
                      owner_pid=me, owner_start=process.start_time(me) or 0,
                      kernel=kernel_details(netns_path, names),
                      dns=None if wanted.dns is None
                      else {**dns.copy().to_json(), "path": dns.path()})


def kernel_details(netns_path: str | None, names: set[str]) -> dict[str, Any]:
    """Per existing interface of `names`: its addresses exactly as the kernel holds them,
    its bridge options and, for a port, its port options and number."""
    out: dict[str, Any] = {}
    with netns.iproute_in(netns_path) as ipr:
        all_links = links.all_links(ipr)
        kinds = {lk.index: lk.kind for lk in all_links}
        for link in all_links:
            if link.name not in names:
                continue
            entry: dict[str, Any] = {
                "addresses": [d.to_json() for d in addr.details(ipr, link.index)]}
            if link.kind == "bridge":
                entry["bridge"] = node_links.bridge_options(ipr, link.index)
            if link.master and kinds.get(link.master) == "bridge":
                entry["port"] = node_links.port_options(ipr, link.index)
            if link.master and kinds.get(link.master) == "bond":
                # its MAC is the bond's while it is a port: the kernel gives it back
                entry["bond_port"] = True
            out[link.name] = entry
    for name, offloads in features.read(netns_path, list(out)).items():
        out[name]["features"] = offloads
    return out


def _restore_features(cp: Checkpoint) -> list[str]:
    """Ethtool features that differ from `cp.kernel` once everything else is back (a bond
    whose mode went and came back has other offloads than one created in that mode): only
    those are set, so a feature the kernel derives (a bridge's from its ports) is not
    pinned."""
    saved = {name: entry["features"] for name, entry in cp.kernel.items()
             if entry.get("features")}
    done: list[str] = []
    for name, now in features.read(cp.netns, list(saved)).items():
        differ = {k: v for k, v in saved[name].items() if k in now and now[k] != v}
        if differ:
            features.change(cp.netns, name, differ)
            done.append(f"{name}: ethtool features {sorted(differ)} restored")
    return done


def _restore_options(cp: Checkpoint) -> list[str]:
    """Bridge and port options back to what `cp.kernel` holds (only those that differ)."""
    done: list[str] = []
    with netns.iproute_in(cp.netns) as ipr:
        for name, entry in cp.kernel.items():
            link = links.by_name(ipr, name)
            if link is None:
                continue
            for key, read, write in (
                    ("bridge", node_links.bridge_options, node_links.set_bridge_options),
                    ("port", node_links.port_options, node_links.set_port_options)):
                if key not in entry or (key == "port" and not link.master):
                    continue
                now = read(ipr, link.index)
                changed = {k: v for k, v in entry[key].items() if now.get(k) != v}
                write(ipr, link.index, changed)
                if set(changed) - {"no"}:
                    done.append(f"{name}: {key} options {sorted(set(changed) - {'no'})} "
                                "restored")
    return done


def _port_order(iface: models.Interface, kernel: dict[str, Any]) -> models.Interface:
    """A bridge's ports in their old port-number order: re-attached in that order, each
    gets its number back."""
    if not isinstance(iface, models.LinuxBridge) or not iface.ports:
        return iface
    def number(port: models.Port) -> int:
        return int(kernel.get(port.name, {}).get("port", {}).get("no", 1 << 16))
    return replace(iface, ports=tuple(sorted(iface.ports, key=number)))


def restore_state(cp: Checkpoint) -> models.NodeState:
    """The desired state that takes the touched part of the node back to `cp.before`."""
    now = current.read(cp.netns)
    names = set(cp.touched)
    saved = models.from_nmstate(cp.before)
    before = {i.name: i for i in saved.interfaces}
    ifaces: list[models.Interface] = [
        models.Interface(name=i.name, state="absent") for i in now.interfaces
        if i.name in names and i.name not in before and i.VIRTUAL]
    # a deleted veth pair comes back from whichever end is listed first
    recreated: set[str] = set()
    for name, iface in before.items():
        if name in recreated:
            continue
        if cp.kernel.get(name, {}).get("bond_port"):
            # the MAC it showed was the bond's: the kernel restores its own when the bond
            # lets it go and lends the bond's again when it is a port once more
            iface = replace(iface, mac=None)
        ifaces.append(_port_order(iface, cp.kernel))
        if isinstance(iface, models.Veth):
            recreated |= iface.linked_names()
    now_routes = _relevant_routes(now.routes, names, saved.routes)
    routes = [replace(r, absent=True) for r in now_routes
              if not any(r.matches(b) and b.matches(r) for b in saved.routes)]
    rules = None
    if saved.rules is not None:
        rules = (*(replace(r, absent=True) for r in now.rules or ()
                   if not any(r.matches(b) and b.matches(r) for b in saved.rules)),
                 *saved.rules)
    return models.NodeState(interfaces=tuple(ifaces), routes=(*routes, *saved.routes),
                            rules=rules)


class RestoreFailed(NodeError):
    """The saved state could not be brought back; the checkpoint file is kept."""


def restore(cp: Checkpoint) -> list[str]:
    """Bring the saved state back and check it is back exactly."""
    state = restore_state(cp)
    exact = {name: [addr.AddressDetail.from_json(a) for a in entry.get("addresses", [])]
             for name, entry in cp.kernel.items()}
    done = apply.change(state, cp.netns, exact=exact)
    done += _restore_options(cp)
    done += _restore_features(cp)
    if cp.dns is not None:
        if cp.dns.get("path") != dns.path():
            # written back only to the file the node configures, never one a file names
            raise RestoreFailed(f"the checkpoint saved {cp.dns.get('path')}, but the node's "
                                f"resolv.conf is now {dns.path()}: not restored")
        saved = dns.FileCopy.from_json(cp.dns)
        if dns.copy() != saved:
            dns.write(saved)
            done.append(f"{dns.path()} restored")
        if dns.copy() != saved:
            raise RestoreFailed(f"rollback did not bring {dns.path()} back")
    diffs = verify.contained(cp.before, cp.netns)
    if diffs:
        raise RestoreFailed("rollback did not bring the earlier state back", "; ".join(diffs))
    return done


# -- persistence and the rollback timer -----------------------------------------------


def path() -> str:
    return os.path.join(node_dir(), CHECKPOINT_FILE)


def save(cp: Checkpoint) -> None:
    os.makedirs(node_dir(), mode=0o700, exist_ok=True)
    # the node's saved network state is for root only; a crash right after must still
    # find the checkpoint
    write_file_atomic(path(), json.dumps(asdict(cp), indent=2), 0o600, durable=True)


def load() -> Checkpoint | None:
    try:
        with open(path()) as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        # a file from before phases: a timer means --no-commit, none an apply under way
        data.setdefault("phase", AWAITING_COMMIT if data.get("timer_pid") else APPLYING)
        return Checkpoint(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as e:
        raise NodeError(f"cannot read checkpoint {path()}", str(e)) from e


def drop(cp: Checkpoint) -> None:
    """Forget the checkpoint and stop its timer (commit, or after a rollback)."""
    with suppress(FileNotFoundError):
        os.unlink(path())
    if cp.timer_pid and cp.timer_pid != os.getpid():
        # only the timer itself: its pid may belong to another process by now
        process.signal_if_same(cp.timer_pid, cp.timer_start, signal.SIGTERM)


def start_timer(cp: Checkpoint) -> tuple[int, int]:
    """A detached process that rolls back at the timeout unless the checkpoint is gone;
    its pid and start time."""
    os.makedirs(node_dir(), exist_ok=True)
    log = open(os.path.join(node_dir(), "rollback-timer.log"), "a")  # noqa: SIM115
    env = {**os.environ, NODE_DIR_ENV: node_dir()}
    with log:
        proc = subprocess.Popen([sys.executable, "-m", "multihome.node.timer", cp.id],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True)
    return proc.pid, process.start_time(proc.pid) or 0
