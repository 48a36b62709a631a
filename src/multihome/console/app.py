"""The console's Flask application.

Why Flask + Jinja2 rendered on the server: the store is a synchronous SQLite file shared
with the CLI, every page is a read of a few rows, and forms post back to the server that
already holds the CLI's validation code; no front-end build, no JavaScript needed (the
policy page "watches" progress by refreshing itself). Flask/Werkzeug/Jinja2 are mature,
maintained by Pallets, and packaged in Debian.

Each request opens the store by path and closes it at the end, like one CLI invocation,
so the console and the CLI can write the same file at the same time (SQLite WAL).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import yaml
from flask import Flask, Response, abort, flash, g, redirect, render_template, request
from jinja2 import DictLoader

from multihome import present
from multihome.console import bounded_yaml, forms, guard, templates, topology
from multihome.store import NAD, POD, NotFound, Store, store_path
from multihome.stores import open_store

# a form body or YAML document larger than this is refused with 413 (waitress enforces
# the same bound before the body reaches the app)
MAX_BODY = 1 << 20


def create_app(store: str | None, token: str | None = None,
               topology_source: Callable[[Store], topology.Topology] | None = None,
               node_netns: str | None = None, listen: guard.Listen | None = None) -> Flask:
    """``store`` is a store path (None: $MULTIHOME_STORE or the default); with ``token`` every
    request must carry it (Authorization: Bearer, or the session of a /login);
    ``node_netns`` (a netns path) plays the node, as `multihome node --netns` does;
    ``listen`` is the address served (the Host and Origin requests must name)."""
    app = Flask("multihome.console")
    app.jinja_loader = DictLoader(templates.ALL)
    # the templates have no .html suffix, so Flask would not escape them by default: names
    # and messages come from users and must never become markup
    app.jinja_env.autoescape = True
    app.jinja_env.globals["csrf_token"] = guard.csrf_token
    guard.configure(app)
    guard.bind(app, listen or guard.Listen())
    app.config.update(MAX_CONTENT_LENGTH=MAX_BODY, MAX_FORM_MEMORY_SIZE=MAX_BODY)
    app.config["STORE_PATH"] = store_path(store)
    app.config["TOKEN"] = token
    source = topology_source or (lambda db: topology.current(db, node_netns))

    def get_db() -> Store:
        if "store" not in g:
            g.store = open_store(app.config["STORE_PATH"])
        db: Store = g.store
        return db

    @app.teardown_appcontext
    def _close(_exc: BaseException | None) -> None:
        db = g.pop("store", None)
        if db is not None:
            db.close()

    @app.before_request
    def _gate() -> Response | None:
        return guard.check(app, lambda: render_template("login", title="Log in", refresh=None,
                                                        error="", next=_local_next()))

    app.after_request(guard.secure_headers)

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        expected = app.config["TOKEN"]
        if not expected:
            return redirect("/nads")
        error = ""
        if request.method == "POST":
            if guard.token_matches(request.form.get("token", "").strip(), expected):
                guard.log_in(expected)
                return redirect(_local_next())
            error = "that is not this console's token"
        return page("login", "Log in", error=error, next=_local_next()), 401 if error else 200

    def page(name: str, title: str, **kw: Any) -> str:
        return render_template(name, title=title, refresh=kw.pop("refresh", None), **kw)

    @app.get("/")
    def index() -> Any:
        return redirect("/nads")

    # -- NADs ----------------------------------------------------------------------

    @app.get("/nads")
    def nad_list() -> str:
        namespace = request.args.get("namespace", "").strip()
        rows = [_nad_row(o) for o in get_db().list(NAD, namespace or None)]
        return page("nad_list", "Network Attachment Definitions", rows=rows,
                    namespace=namespace)

    @app.route("/nads/new", methods=["GET", "POST"])
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

    @app.route("/nads/yaml", methods=["GET", "POST"])
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

    @app.get("/nads/<namespace>/<name>")
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

    @app.post("/nads/<namespace>/<name>/delete")
    def nad_delete(namespace: str, name: str) -> Any:
        try:
            get_db().delete(NAD, namespace, name)
        except NotFound:
            abort(404)
        flash(f'networkattachmentdefinition.k8s.cni.cncf.io "{name}" deleted')
        return redirect(f"/nads?namespace={namespace}")

    # -- pods and VMs -------------------------------------------------------------

    @app.get("/pods")
    def pods() -> str:
        rows = [{"namespace": p.namespace, "name": p.name,
                 "status": topology.network_status(p)} for p in get_db().list(POD, None)]
        return page("pods", "Pods", pods=rows)

    @app.get("/vms")
    def vms() -> str:
        from multihome.lab import settings as labsettings
        from multihome.vm import state as vmstate

        out = []
        for rec in vmstate.load_all(labsettings.load().state_dir, None):
            try:
                status = topology.network_status(get_db().get(POD, rec.namespace, rec.pod))
            except NotFound:
                status = []
            out.append({"rec": rec, "status": status})
        return page("vms", "Virtual machines", vms=out)

    # -- node network ----------------------------------------------------------------

    @app.get("/topology")
    def topology_page() -> str:
        try:
            svg, error = topology.to_svg(source(get_db())), ""
        except Exception as e:  # a page with the reason beats a 500
            svg, error = "", f"cannot read the node state: {e}"
        return page("topology", "Node network", svg=svg, error=error)

    @app.get("/topology.svg")
    def topology_svg() -> Response:
        return Response(topology.to_svg(source(get_db())), mimetype="image/svg+xml")

    # -- node policies ---------------------------------------------------------------

    @app.get("/policies")
    def policies() -> str:
        from multihome.node import policy as nodepolicy
        from multihome.node.rollout import enactments_of
        from multihome.store.objects import NNCP

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

    @app.route("/policies/apply", methods=["GET", "POST"])
    def policy_apply() -> Any:
        text = request.form.get("yaml", "")
        if request.method == "GET":
            return page("nad_yaml", "Apply a NodeNetworkConfigurationPolicy", text=text,
                        namespace="", error="", button="Apply")
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
            return page("nad_yaml", "Apply a NodeNetworkConfigurationPolicy", text=text,
                        namespace="", error=error, button="Apply"), 422
        get_db().apply_outcome(obj)
        _enact_in_background(app.config["STORE_PATH"], obj.name, node_netns)
        flash(f"nodenetworkconfigurationpolicy.nmstate.io/{obj.name} applied")
        return redirect("/policies")

    return app


def _local_next() -> str:
    """Where to go after the login: a path on this console only (never //other.site)."""
    target = request.values.get("next") or (request.full_path.rstrip("?")
                                            if request.path != "/login" else "/nads")
    return target if target.startswith("/") and not target.startswith(("//", "/\\")) \
        else "/nads"


def _enact_in_background(path: str, name: str, netns_path: str | None) -> None:
    def run() -> None:
        from multihome.node import policy as nodepolicy

        db = open_store(path)
        try:
            nodepolicy.enact(db, [name], netns_path=netns_path)
        except Exception:  # the enactment records its own failure
            pass
        finally:
            db.close()

    threading.Thread(target=run, name=f"enact-{name}", daemon=True).start()


def _create(db: Store, obj: Any) -> str | None:
    from multihome.store import AlreadyExists

    try:
        db.create(obj)
    except AlreadyExists:
        return (f'Error from server (AlreadyExists): networkattachmentdefinitions.k8s.cni.cncf.io '
                f'"{obj.name}" already exists')
    return None


def _nad_row(obj: Any) -> dict[str, str]:
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
