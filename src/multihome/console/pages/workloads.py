"""Pods and VMs with the networks each one is attached to."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from multihome.attach.policy.enforce import World, isolation_of, pod_info
from multihome.attach.policy.semantics import selecting
from multihome.console import topology
from multihome.console.pages.common import get_db, page
from multihome.lab import settings as labsettings
from multihome.store import POD, NotFound
from multihome.vm import state as vmstate

bp = Blueprint("workloads", __name__)


@bp.get("/pods")
def pods() -> str:
    world = World.read(get_db())
    rows = []
    for p in get_db().list(POD, None):
        info = pod_info(p)
        status = topology.network_status(p)
        for entry in status:  # how each attachment is isolated, next to it
            entry["isolated"] = isolation_of(world, info, entry["name"]) if entry["name"] else ""
        rows.append({"namespace": p.namespace, "name": p.name, "status": status,
                     "policies": [pol.key for pol in selecting(world.policies, info)]})
    return page("pods", "Pods", pods=rows)


@bp.get("/vms")
def vms() -> str:
    out: list[dict[str, Any]] = []
    for rec in vmstate.load_all(labsettings.load().state_dir, None):
        try:
            status = topology.network_status(get_db().get(POD, rec.namespace, rec.pod))
        except NotFound:
            status = []
        out.append({"rec": rec, "status": status})
    return page("vms", "Virtual machines", vms=out)
