"""The node's network as a picture (bridges, ports, pods and VMs on them)."""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from flask import Blueprint, Response, current_app

from multihome.console import topology
from multihome.console.pages.common import TOPOLOGY_SOURCE, get_db, page
from multihome.store import Store

bp = Blueprint("network", __name__)


def _current() -> topology.Topology:
    source = cast(Callable[[Store], topology.Topology], current_app.config[TOPOLOGY_SOURCE])
    return source(get_db())


@bp.get("/topology")
def topology_page() -> str:
    try:
        svg, error = topology.to_svg(_current()), ""
    except Exception as e:  # a page with the reason beats a 500
        svg, error = "", f"cannot read the node state: {e}"
    return page("topology", "Node network", svg=svg, error=error)


@bp.get("/topology.svg")
def topology_svg() -> Response:
    return Response(topology.to_svg(_current()), mimetype="image/svg+xml")
