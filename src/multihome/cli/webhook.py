"""`multihome webhook`: the admission webhooks over HTTPS.

POST /validate-nad   validating NetworkAttachmentDefinition
POST /mutate-pod     mutating Pod (network-resources-injector)
GET  /healthz
"""

from __future__ import annotations

import json
import ssl
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import click

from multihome.k8s.admission import Policy, review
from multihome.store import Store

ROUTES = {"/validate-nad": "nad", "/mutate-pod": "pod"}
MAX_BODY = 4 << 20


def make_server(listen: str, cert: str, key: str, policy: Policy,
                store: Store | None) -> ThreadingHTTPServer:
    host, _, port = listen.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, {"status": "ok"})
            else:
                self._reply(404, {"message": "not found"})

        def do_POST(self) -> None:
            kind = ROUTES.get(self.path.split("?", 1)[0])
            length = int(self.headers.get("Content-Length") or 0)
            if kind is None:
                return self._reply(404, {"message": f"no webhook at {self.path}"})
            if length <= 0 or length > MAX_BODY:
                return self._reply(400, {"message": "an AdmissionReview body is required"})
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError as e:
                return self._reply(400, {"message": f"body is not JSON: {e}"})
            if not isinstance(body, dict) or body.get("kind") != "AdmissionReview":
                return self._reply(400, {"message": "body is not an AdmissionReview"})
            self._reply(200, review(body, kind, policy, store))

    server = ThreadingHTTPServer((host or "0.0.0.0", int(port)), Handler)
    server.daemon_threads = True
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    return server


@click.command("webhook")
@click.option("--cert", required=True, type=click.Path(exists=True, dir_okay=False),
              help="TLS certificate (PEM) the API server trusts through caBundle.")
@click.option("--key", required=True, type=click.Path(exists=True, dir_okay=False),
              help="TLS private key (PEM).")
@click.option("--listen", default="0.0.0.0:8443", show_default=True, help="host:port.")
@click.option("--allow-type", "allow_types", multiple=True,
              help="A NAD plugin type allowed besides the built-in ones (repeatable).")
@click.option("--allow-any-type", is_flag=True, help="Do not check NAD plugin types.")
@click.pass_context
def webhook_cmd(ctx: click.Context, cert: str, key: str, listen: str,
                allow_types: tuple[str, ...], allow_any_type: bool) -> None:
    """Serve the validating (NAD) and mutating (Pod) admission webhooks over HTTPS."""
    from multihome.cli.context import get_store

    store = get_store(ctx)
    server = make_server(listen, cert, key, Policy(set(allow_types), allow_any_type), store)
    click.echo(f"multihome webhook: serving on https://{listen}", err=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
