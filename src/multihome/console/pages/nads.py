"""NetworkAttachmentDefinitions: list, create from a form or from YAML, show, delete."""

from __future__ import annotations

import json
from typing import Any

import yaml
from flask import Blueprint, abort, flash, redirect, request

from multihome import present
from multihome.console import bounded_yaml, forms
from multihome.console.pages.common import get_db, page
from multihome.store import NAD, AlreadyExists, NotFound, Object, Store

bp = Blueprint("nads", __name__)


@bp.get("/nads")
def nad_list() -> str:
    namespace = request.args.get("namespace", "").strip()
    rows = [_nad_row(o) for o in get_db().list(NAD, namespace or None)]
    return page("nad_list", "Network Attachment Definitions", rows=rows, namespace=namespace)


@bp.route("/nads/new", methods=["GET", "POST"])
def nad_new() -> Any:
    kind = request.values.get("type", "linux-bridge")
    if kind not in forms.NETWORK_TYPES:
        abort(404)
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    status = 200
    if request.method == "GET":
        values = {"namespace": request.args.get("namespace") or "default"} if \
            request.args.get("namespace") else {}
    else:
        values = {k: v for k, v in request.form.items()}
        form = forms.NadForm(values)
        body = forms.build_manifest(form)
        errors = form.errors
        if not errors:
            obj, problem = forms.admit(body, form.get("namespace"))
            if problem or obj is None:
                errors[forms.field_for(problem or "", kind)] = problem or "invalid"
            else:
                created = _create(get_db(), obj)
                if created is None:
                    flash(f"networkattachmentdefinition.k8s.cni.cncf.io/{obj.name} created")
                    return redirect(f"/nads/{obj.namespace}/{obj.name}")
                errors["name"] = created
        status = 422
    return page("nad_form", "Create Network Attachment Definition", type=kind,
                types=list(forms.NETWORK_TYPES), v=values, errors=errors), status


@bp.route("/nads/yaml", methods=["GET", "POST"])
def nad_yaml() -> Any:
    namespace = request.values.get("namespace", "") or "default"
    text = request.form.get("yaml", _YAML_EXAMPLE)
    if request.method == "GET":
        return page("nad_yaml", "Create from YAML", text=text, namespace=namespace,
                    error="", button="Create")
    error = ""
    try:
        docs = [d for d in bounded_yaml.load_all(text) if d is not None]
    except yaml.YAMLError as e:
        docs, error = [], f"error: error parsing YAML: {e}"
    made: list[str] = []
    for body in docs:
        if not isinstance(body, dict):
            error = "error: error parsing YAML: a document is not a mapping"
            break
        obj, problem = forms.admit(body, namespace)
        if problem or obj is None:
            error = problem or "invalid"
            break
        outcome = get_db().apply_outcome(obj)[1]
        made.append(f"{obj.kind.lower()} {obj.namespace}/{obj.name} {outcome}")
    if error or not made:
        return page("nad_yaml", "Create from YAML", text=text, namespace=namespace,
                    error=error or "error: no objects passed", button="Create"), 422
    for line in made:
        flash(line)
    return redirect(f"/nads?namespace={namespace}")


@bp.get("/nads/<namespace>/<name>")
def nad_detail(namespace: str, name: str) -> str:
    try:
        obj = get_db().get(NAD, namespace, name)
    except NotFound:
        abort(404)
    try:
        config = json.dumps(json.loads(obj.spec.get("config") or "{}"), indent=2)
    except (ValueError, TypeError, RecursionError):
        config = str(obj.spec.get("config", ""))
    return page("nad_detail", f"{namespace}/{name}", obj=obj, config=config,
                annotations=obj.metadata.get("annotations") or {},
                yaml_text=present.to_yaml([obj], single=True))


@bp.post("/nads/<namespace>/<name>/delete")
def nad_delete(namespace: str, name: str) -> Any:
    try:
        get_db().delete(NAD, namespace, name)
    except NotFound:
        abort(404)
    flash(f'networkattachmentdefinition.k8s.cni.cncf.io "{name}" deleted')
    return redirect(f"/nads?namespace={namespace}")


def _create(db: Store, obj: Object) -> str | None:
    try:
        db.create(obj)
    except AlreadyExists:
        return (f'Error from server (AlreadyExists): networkattachmentdefinitions.k8s.cni.cncf.io '
                f'"{obj.name}" already exists')
    return None


def _nad_row(obj: Object) -> dict[str, str]:
    try:
        conf = json.loads(obj.spec.get("config") or "{}")
    except (ValueError, TypeError, RecursionError):
        conf = {}
    if isinstance(conf, dict) and isinstance(conf.get("plugins"), list) and conf["plugins"]:
        conf = conf["plugins"][0]
    conf = conf if isinstance(conf, dict) else {}
    vlan = conf.get("vlan")
    return {"namespace": obj.namespace, "name": obj.name, "type": str(conf.get("type", "")),
            "bridge": str(conf.get("bridge", "") or conf.get("master", "")),
            "vlan": str(vlan) if vlan else "", "age": present.age_of(obj)}


_YAML_EXAMPLE = """apiVersion: "k8s.cni.cncf.io/v1"
kind: NetworkAttachmentDefinition
metadata:
  name: bridge-dev
  annotations:
    k8s.v1.cni.cncf.io/resourceName: bridge.network.kubevirt.io/bridge-dev
spec:
  config: '{"cniVersion": "0.3.1", "name": "bridge-dev", "type": "cnv-bridge",
            "bridge": "dev-bridge", "macspoofchk": true, "vlan": 0}'
"""
