"""Node policies (NNCP): their enactments per node, and applying one from YAML.

The page "watches" an enactment by refreshing itself while one is progressing or pending;
the policy is enacted on a thread so the POST returns at once.
"""

from __future__ import annotations

import threading
from typing import Any

import yaml
from flask import Blueprint, current_app, flash, redirect, request

from multihome.console import bounded_yaml, forms
from multihome.console.pages.common import NODE_NETNS, STORE_PATH, get_db, page
from multihome.node import policy as nodepolicy
from multihome.node.rollout import enactments_of
from multihome.store.objects import NNCP
from multihome.stores import open_store

bp = Blueprint("policies", __name__)
_APPLY_TITLE = "Apply a NodeNetworkConfigurationPolicy"


@bp.get("/policies")
def policies() -> str:
    rows = []
    for pol in get_db().list(NNCP, None):
        nnces = enactments_of(get_db(), pol.name)
        if not nnces:
            rows.append({"policy": pol.name, "node": "", "state": "Pending",
                         "reason": "", "message": "no enactment yet"})
        for nnce in nnces:
            state, reason, message = nodepolicy.active_condition(nnce)
            rows.append({"policy": pol.name, "node": nnce.labels.get("nmstate.io/node", ""),
                         "state": state or "Progressing", "reason": reason,
                         "message": message})
    busy = any(r["state"] in ("Progressing", "Pending") for r in rows)
    return page("policies", "Node policies", rows=rows, refresh=2 if busy else None)


@bp.route("/policies/apply", methods=["GET", "POST"])
def policy_apply() -> Any:
    text = request.form.get("yaml", "")
    if request.method == "GET":
        return page("nad_yaml", _APPLY_TITLE, text=text, namespace="", error="",
                    button="Apply")
    try:
        body = bounded_yaml.load_one(text)
    except yaml.YAMLError as e:
        body, error = None, f"error: error parsing YAML: {e}"
    else:
        error = "" if isinstance(body, dict) else "error: the YAML is not an object"
    obj = None
    if not error:
        obj, problem = forms.admit(body, "")
        error = problem or ("" if obj is not None else "invalid")
    if error or obj is None:
        return page("nad_yaml", _APPLY_TITLE, text=text, namespace="", error=error,
                    button="Apply"), 422
    get_db().apply_outcome(obj)
    _enact_in_background(current_app.config[STORE_PATH], obj.name,
                         current_app.config[NODE_NETNS])
    flash(f"nodenetworkconfigurationpolicy.nmstate.io/{obj.name} applied")
    return redirect("/policies")


def _enact_in_background(path: str, name: str, netns_path: str | None) -> None:
    def run() -> None:
        db = open_store(path)
        try:
            nodepolicy.enact(db, [name], netns_path=netns_path)
        except Exception:  # the enactment records its own failure
            pass
        finally:
            db.close()

    threading.Thread(target=run, name=f"enact-{name}", daemon=True).start()
