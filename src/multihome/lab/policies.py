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


def sync(store: Store, settings: LabSettings) -> SyncReport:
    conf = parse_multus_config(settings.engine_config())
    return enforce_sync(store, engine.list_records(conf))
