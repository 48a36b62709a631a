"""A fixture API server: real HTTP on 127.0.0.1 with the Kubernetes semantics the code uses.

Not a Kubernetes API server. It serves get/list/create/update/merge-patch/delete of any
resource path, a global resourceVersion, 404 and 409 (stale resourceVersion) Status
bodies, `spec.nodeName` / `metadata.name` field selectors, and watch streams with
bookmarks and a compaction point: a watch from before it gets an ERROR event with 410
Gone, as the real server sends it.

Resources whose CRD in deploy/crds declares `subresources: status` get the real status
semantics: create and a write to the object ignore `.status`, a write to `/status` changes
only `.status`, an update must name the resourceVersion (CRDs allow no unconditional
update), and `metadata.generation` counts changes of everything but metadata and status.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

Key = tuple[str, str, str]  # (collection prefix + plural, namespace, name)
CRDS = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def status_subresources(crd_dir: Path = CRDS) -> set[str]:
    """`apis/<group>/<version>/<plural>` of every CRD version with a status subresource."""
    out: set[str] = set()
    for path in sorted(crd_dir.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if not crd or crd.get("kind") != "CustomResourceDefinition":
                continue
            spec = crd["spec"]
            out |= {f"apis/{spec['group']}/{v['name']}/{spec['names']['plural']}"
                    for v in spec["versions"] if "status" in (v.get("subresources") or {})}
    return out


def _main_part(body: dict[str, Any]) -> dict[str, Any]:
    """What metadata.generation counts: everything but metadata and status."""
    return {k: v for k, v in body.items() if k not in ("metadata", "status")}


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def status(code: int, reason: str, message: str) -> dict[str, Any]:
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code,
            "reason": reason, "message": message, "metadata": {}}


def _split(path: str) -> tuple[str, str, str, bool] | None:
    """(resource, namespace, name, is /status) of a REST path; resource = 'api/v1/pods'.

    For resources without status semantics here (built-in kinds), writes to `/status`
    are treated like writes to the object (the code under test only patches status there).
    """
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        prefix, rest = parts[:2], parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        prefix, rest = parts[:3], parts[3:]
    else:
        return None
    ns = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        ns, rest = rest[1], rest[2:]
    sub = len(rest) == 3 and rest[2] == "status"
    if sub:
        rest = rest[:2]
    if not rest or len(rest) > 2:
        return None
    return "/".join([*prefix, rest[0]]), ns, rest[1] if len(rest) == 2 else "", sub


class FakeApiServer:
    def __init__(self, token: str = "", status_resources: set[str] | None = None) -> None:
        self.token = token
        self.status_resources = status_subresources() if status_resources is None \
            else status_resources
        self.objects: dict[Key, dict[str, Any]] = {}
        self.events: list[tuple[int, str, Key, dict[str, Any]]] = []
        self.rv = 100
        self.compacted = 0  # watches from a version below this get 410
        self.cond = threading.Condition()
        self.requests: list[tuple[str, str]] = []  # (method, path?query) seen
        self.auth_seen: list[str] = []
        self.conflicts_to_inject = 0  # next N writes answer 409
        self.bookmark_requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def handle(self) -> None:
                # a client that closed mid-request (a cache being stopped)
                with contextlib.suppress(OSError, ValueError):
                    super().handle()

            def do_GET(self) -> None:
                server._handle(self, "GET")

            def do_POST(self) -> None:
                server._handle(self, "POST")

            def do_PUT(self) -> None:
                server._handle(self, "PUT")

            def do_PATCH(self) -> None:
                server._handle(self, "PATCH")

            def do_DELETE(self) -> None:
                server._handle(self, "DELETE")

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.stopping = False

    def start(self) -> FakeApiServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping = True
        with self.cond:
            self.cond.notify_all()
        self.httpd.shutdown()
        self.httpd.server_close()

    # -- state -------------------------------------------------------------------------

    def _bump(self, etype: str, key: Key, obj: dict[str, Any]) -> None:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        self.events.append((self.rv, etype, key, copy.deepcopy(obj)))
        self.cond.notify_all()

    def put_object(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create or replace directly (test setup); emits the watch event."""
        resource, ns, _, _ = _split(path) or ("", "", "", False)
        meta = body.setdefault("metadata", {})
        if resource in self.status_resources:
            meta.setdefault("generation", 1)
        key = (resource, ns or meta.get("namespace", ""), meta["name"])
        with self.cond:
            existed = key in self.objects
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", "2026-01-01T00:00:00Z")
            if ns:
                meta["namespace"] = ns
            self.objects[key] = copy.deepcopy(body)
            self._bump("MODIFIED" if existed else "ADDED", key, self.objects[key])
            return copy.deepcopy(self.objects[key])

    def compact(self) -> None:
        """Forget history: any watch from an older version gets 410 Gone."""
        with self.cond:
            self.compacted = self.rv + 1
            self.events.clear()
            self.cond.notify_all()

    def bookmark(self) -> None:
        """Advance the version without a change to watched objects and send a BOOKMARK."""
        with self.cond:
            self.rv += 1
            self.bookmark_requests += 1
            self.events.append((self.rv, "BOOKMARK", ("", "", ""), {}))
            self.cond.notify_all()

    # -- HTTP --------------------------------------------------------------------------

    def _send(self, h: BaseHTTPRequestHandler, code: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def _handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.requests.append((method, h.path))
        auth = h.headers.get("Authorization", "")
        self.auth_seen.append(auth)
        if self.token and auth != f"Bearer {self.token}":
            return self._send(h, 401, status(401, "Unauthorized", "Unauthorized"))
        parsed = _split(url.path)
        if parsed is None:
            return self._send(h, 404, status(404, "NotFound", "the server could not find "
                                                              "the requested resource"))
        resource, ns, name, sub = parsed
        length = int(h.headers.get("Content-Length") or 0)
        payload = json.loads(h.rfile.read(length)) if length else None
        with self.cond:
            if method == "GET" and not name and query.get("watch") == "true":
                pass
            elif method == "GET" and not name:
                return self._send(h, 200, self._list(resource, ns, query))
            elif method == "GET":
                obj = self.objects.get((resource, ns, name))
                if obj is None:
                    return self._send(h, 404, self._not_found(resource, name))
                return self._send(h, 200, obj)
            else:
                code, body = self._write(method, resource, ns, name, payload, h, sub)
                return self._send(h, code, body)
        self._watch(h, resource, ns, query)

    def _not_found(self, resource: str, name: str) -> dict[str, Any]:
        plural = resource.rsplit("/", 1)[-1]
        return status(404, "NotFound", f'{plural} "{name}" not found')

    def _matches(self, key: Key, obj: dict[str, Any], resource: str, ns: str,
                 selector: str) -> bool:
        if key[0] != resource or (ns and key[1] != ns):
            return False
        for term in filter(None, selector.split(",")):
            field, _, want = term.partition("=")
            value: Any = obj
            for part in field.split("."):
                value = value.get(part, "") if isinstance(value, dict) else ""
            if str(value) != want:
                return False
        return True

    def _list(self, resource: str, ns: str, query: dict[str, str]) -> dict[str, Any]:
        sel = query.get("fieldSelector", "")
        items = [copy.deepcopy(o) for k, o in sorted(self.objects.items())
                 if self._matches(k, o, resource, ns, sel)]
        return {"kind": "List", "apiVersion": "v1", "items": items,
                "metadata": {"resourceVersion": str(self.rv)}}

    def _write(self, method: str, resource: str, ns: str, name: str, payload: Any,
               h: BaseHTTPRequestHandler, sub: bool = False) -> tuple[int, dict[str, Any]]:
        with_status = resource in self.status_resources
        if method == "POST":
            meta = payload.setdefault("metadata", {})
            if with_status:
                payload.pop("status", None)  # only a write to /status sets it
                meta["generation"] = 1
            key = (resource, ns, meta.get("name", ""))
            if key in self.objects:
                return 409, status(409, "AlreadyExists", f'"{key[2]}" already exists')
            meta.update(uid=str(uuid.uuid4()), creationTimestamp="2026-01-01T00:00:00Z")
            if ns:
                meta["namespace"] = ns
            self.objects[key] = payload
            self._bump("ADDED", key, payload)
            return 201, copy.deepcopy(payload)
        key = (resource, ns, name)
        current = self.objects.get(key)
        if current is None:
            return 404, self._not_found(resource, name)
        if method == "DELETE":
            del self.objects[key]
            self._bump("DELETED", key, current)
            return 200, copy.deepcopy(current)
        conflict = status(409, "Conflict", f'Operation cannot be fulfilled on "{name}": the '
                          "object has been modified; please apply your changes to the "
                          "latest version and try again")
        if self.conflicts_to_inject:
            self.conflicts_to_inject -= 1
            return 409, conflict
        want = (payload.get("metadata") or {}).get("resourceVersion")
        if want and want != current["metadata"]["resourceVersion"]:
            return 409, conflict
        if with_status and method == "PUT" and not want:
            return 422, status(422, "Invalid", f'"{name}" is invalid: '
                               "metadata.resourceVersion: Invalid value: 0x0: must be "
                               "specified for an update")
        if method == "PUT":
            new = payload
            for k in ("uid", "creationTimestamp", "namespace"):
                if k in current["metadata"]:
                    new["metadata"][k] = current["metadata"][k]
        else:
            ctype = h.headers.get("Content-Type", "")
            if ctype != "application/merge-patch+json":
                return 415, status(415, "UnsupportedMediaType", f"unsupported {ctype}")
            new = merge_patch(current, payload)
        if with_status:
            new = self._status_semantics(current, new, sub)
        self.objects[key] = new
        self._bump("MODIFIED", key, new)
        return 200, copy.deepcopy(new)

    def _status_semantics(self, current: dict[str, Any], new: dict[str, Any],
                          sub: bool) -> dict[str, Any]:
        """A write to /status keeps all but status; a write to the object keeps status."""
        if sub:
            out = copy.deepcopy(current)
            if "status" in new:
                out["status"] = new["status"]
            else:
                out.pop("status", None)
            return out
        if "status" in current:
            new["status"] = copy.deepcopy(current["status"])
        else:
            new.pop("status", None)
        gen = int(current["metadata"].get("generation", 1))
        new["metadata"]["generation"] = gen + (_main_part(new) != _main_part(current))
        return new

    def _watch(self, h: BaseHTTPRequestHandler, resource: str, ns: str,
               query: dict[str, str]) -> None:
        since = int(query.get("resourceVersion") or 0)
        sel = query.get("fieldSelector", "")
        deadline = float(query.get("timeoutSeconds", "30"))
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.end_headers()

        def emit(event: dict[str, Any]) -> None:
            h.wfile.write(json.dumps(event).encode() + b"\n")
            h.wfile.flush()

        import time
        end = time.monotonic() + deadline
        try:
            with self.cond:
                while not self.stopping and time.monotonic() < end:
                    if since < self.compacted - 1:
                        emit({"type": "ERROR", "object": status(
                            410, "Expired", f"too old resource version: {since} "
                                            f"({self.compacted})")})
                        return
                    for rv, etype, key, obj in list(self.events):
                        if rv <= since:
                            continue
                        since = rv
                        if etype == "BOOKMARK":
                            emit({"type": "BOOKMARK", "object": {
                                "kind": "Pod", "metadata": {"resourceVersion": str(rv)}}})
                        elif self._matches(key, obj, resource, ns, sel):
                            emit({"type": etype, "object": obj})
                    self.cond.wait(0.2)
        except (OSError, ValueError):
            return  # the client went away, or the server is shutting down

