"""What every page uses: the request's store and the page renderer.

Each request opens the store by path and closes it at the end (app.create_app registers
the teardown), like one CLI invocation, so the console and the CLI can write the same file
at the same time (SQLite WAL).
"""

from __future__ import annotations

from typing import Any

from flask import current_app, g, render_template, request

from multihome.store import Store
from multihome.stores import open_store

STORE_PATH = "STORE_PATH"  # app.config keys the pages read
TOKEN = "TOKEN"
NODE_NETNS = "MULTIHOME_NODE_NETNS"
TOPOLOGY_SOURCE = "MULTIHOME_TOPOLOGY_SOURCE"


def get_db() -> Store:
    if "store" not in g:
        g.store = open_store(current_app.config[STORE_PATH])
    db: Store = g.store
    return db


def close_db(_exc: BaseException | None) -> None:
    db = g.pop("store", None)
    if db is not None:
        db.close()


def page(name: str, title: str, **kw: Any) -> str:
    return render_template(name, title=title, refresh=kw.pop("refresh", None), **kw)


def local_next() -> str:
    """Where to go after the login: a path on this console only (never //other.site)."""
    target = request.values.get("next") or (request.full_path.rstrip("?")
                                            if request.path != "/login" else "/nads")
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) \
        else "/nads"
