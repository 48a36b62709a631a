"""MultiNetworkPolicies in the local lab: the rules follow every change of the store.

The lab has no long-running process to watch the store, so each command that changes
something a rule depends on (a pod run or deleted, a policy, a namespace or a label
applied or removed) ends with :func:`sync`, which reprograms the lab's attachments from
the store. Only what changed is written (see attach.policy.enforce).
"""

from __future__ import annotations

from multihome.attach import engine
from multihome.attach.multus_config import parse_multus_config
from multihome.attach.policy.enforce import SyncReport
from multihome.attach.policy.enforce import sync as enforce_sync
from multihome.lab.settings import LabSettings
from multihome.store import MULTI_POLICY, NAMESPACE, POD, Store

# kinds whose change can move a rule
POLICY_INPUTS = frozenset({MULTI_POLICY, NAMESPACE, POD})


def sync(store: Store, settings: LabSettings, first: str = "") -> SyncReport:
    """Reprogram every lab attachment; with `first` (a container ID), that container's
    own rules are written before the others' (a new pod is isolated at once; its peers'
    rules, which name its address, follow)."""
    conf = parse_multus_config(settings.engine_config())
    records = engine.list_records(conf)
    if first:
        mine = [r for r in records if r.container_id == first]
        report = enforce_sync(store, mine, conf.cni_dir)
        rest = enforce_sync(store, records, conf.cni_dir)
        report.programmed += rest.programmed
        report.errors += rest.errors
        report.removed += rest.removed
        return report
    return enforce_sync(store, records, conf.cni_dir)
