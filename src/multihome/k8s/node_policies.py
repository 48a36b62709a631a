"""The daemon's NodeNetworkConfigurationPolicy handler in Kubernetes mode.

For this node (NODE_NAME) it watches NNCPs and the Node object, and runs
:func:`multihome.node.policy.enact` -- the code path of `multihome node enact` -- for the
policies that need it; enact matches `spec.nodeSelector` against the Node's labels as read
through the API, takes maxUnavailable slots (counted in the NNCP status, guarded by its
resourceVersion), writes the NNCE and the node's NodeNetworkState.

A policy needs a pass when this node has no enactment for it, the enactment is for an
older generation, or it is Pending (waiting for a slot) or Progressing (a pass was cut
short, e.g. the daemon restarted). Failing and Aborted stay until the policy changes, as
a failed apply would otherwise take the node down again on every resync. Every change to
an NNCP (other nodes releasing slots write its status) and to the Node wakes the loop.

A policy that selects none of the Nodes the controller can list (RBAC: nodes list) and is
not yet marked gets a pass too: enact marks it Ignored (NoMatchingNode), as
kubernetes-nmstate does; the node that matches later clears it with its enactment. Other
Nodes' label changes are seen at the next resync (watching every Node from every node
would cost the API server more than the condition is worth).

With `metrics`, each pass sets this node's enactments per state and counts every apply
attempt by result (the daemon's /metrics).

Every apply also probes the API server (the kubeconfig's, as kubernetes-nmstate checks
that the node still reaches it; `daemon --no-probe-api-server` turns it off) and the
names of `daemon --probe-dns`, beside the probes the policy names itself.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import urllib.parse
from collections.abc import Iterable

from multihome.cni.errors import CNIError
from multihome.daemon.metrics import NODE_POLICIES, NodePolicyMetrics
from multihome.k8s import paths
from multihome.k8s.cache import WatchCache
from multihome.k8s.client import ApiError, ApiUnreachable
from multihome.k8s.reconcile_loop import ReconcileLoop
from multihome.k8s.store import KubeStore, daemon_node_store
from multihome.node import policy, probes
from multihome.store import NODE, Object, StoreError
from multihome.store.objects import NNCE, NNCP

log = logging.getLogger(__name__)

RESYNC_INTERVAL_S = 60.0
# states of this node's enactment that the next pass picks up again
RETRIED_STATES = ("", "Pending", "Progressing")


class NodePolicyController(ReconcileLoop):
    def __init__(self, store: KubeStore, node_name: str, *, netns_path: str | None = None,
                 resync_s: float = RESYNC_INTERVAL_S,
                 metrics: NodePolicyMetrics | None = None,
                 probe_defaults: probes.Defaults | None = None) -> None:
        super().__init__("node-policies", resync_s)
        self.store, self.node_name, self.netns_path = store, node_name, netns_path
        self.probe_defaults = probe_defaults
        self.metrics = metrics
        self.watches = [
            WatchCache(store.api, paths.collection(NNCP, None), on_change=self.wake),
            WatchCache(store.api, paths.collection(NODE, None), f"metadata.name={node_name}",
                       on_change=self.wake),
        ]

    def caches(self) -> Iterable[WatchCache]:
        return self.watches

    def due(self) -> list[str]:
        """Names of the policies whose enactment on this node needs a pass."""
        labels = policy.node_labels(self.store, self.node_name)
        known = policy.known_node_labels(self.store, self.node_name, labels)
        nnces = {e.name: e for e in self.store.list(NNCE, None)}
        out: list[str] = []
        for nncp in self.store.list(NNCP, None):
            nnce = nnces.get(f"{self.node_name}.{nncp.name}")
            try:
                selected = policy.selects(nncp, labels)
            except ValueError:
                # invalid: enact records why (Failing, Degraded) once per generation
                if nnce is None or nnce.status.get("policyGeneration") != policy.generation(
                        nncp):
                    out.append(nncp.name)
                continue
            if not selected:
                if nnce is not None:
                    out.append(nncp.name)  # enact drops the enactment
                elif not policy.is_ignored(nncp) and policy.selects_no_node(nncp, known):
                    out.append(nncp.name)  # enact marks it Ignored
            elif (nnce is None
                  or nnce.status.get("policyGeneration") != policy.generation(nncp)
                  or policy.active_condition(nnce)[0] in RETRIED_STATES):
                out.append(nncp.name)
        return out

    def reconcile(self) -> list[Object]:
        """One pass; returns the enactments written (none when nothing was due)."""
        names = self.due()
        if not names:
            policy.refresh_state(self.store, self.node_name, self.netns_path)
            written: list[Object] = []
        else:
            written = policy.enact(self.store, names, node=self.node_name,
                                   netns_path=self.netns_path, progress=self._progress,
                                   on_apply=self._count_apply,
                                   probe_defaults=self.probe_defaults)
        self._record_states()
        return written

    def _count_apply(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.count_apply(result)

    def _record_states(self) -> None:
        if self.metrics is None:
            return
        states: dict[str, int] = {}
        for nnce in self.store.list(NNCE, None):
            if nnce.labels.get("nmstate.io/node") == self.node_name:
                state = policy.active_condition(nnce)[0]
                states[state] = states.get(state, 0) + 1
        self.metrics.set_enactments(states)

    def _progress(self, line: str) -> None:
        log.info("node %s: %s", self.node_name, line)

    def pass_failed(self, error: Exception, delay: float) -> None:
        log.warning("node policies on %s: %s (next pass in %.1fs)", self.node_name, error,
                    delay, exc_info=not isinstance(
                        error, ApiError | ApiUnreachable | StoreError | CNIError))


def api_server_target(server: str) -> str | None:
    """The API server as an API-server probe target (its URL when it names an address;
    a name is looked up once, here, not by every probe after a change that may break the
    resolver); None when it cannot be probed."""
    try:
        parsed = urllib.parse.urlsplit(server)
        host, port = parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)
    except ValueError:
        return None
    if not host:
        return None
    try:
        ipaddress.ip_address(host)
        return server
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    address = str(infos[0][4][0]) if infos else ""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}" if address else None


def start_for_daemon(store_spec: str, probe_dns: tuple[str, ...] = (),
                     probe_api_server: bool = True) -> NodePolicyController | None:
    """The daemon's NNCP handler when it runs against the Kubernetes API (``k8s[:cfg]``).
    Every apply also probes `probe_dns` names and, with `probe_api_server`, the API server."""
    store = daemon_node_store(store_spec, "NNCPs are not enacted on this node")
    if store is None:
        return None
    api = api_server_target(store.api.creds.server) if probe_api_server else None
    if probe_api_server and api is None:
        log.warning("the API server %s cannot be probed (no address for it)",
                    store.api.creds.server)
    controller = NodePolicyController(store, store.node_name, metrics=NODE_POLICIES,
                                      probe_defaults=probes.Defaults(dns=probe_dns,
                                                                     api_server=api))
    controller.start()
    return controller
