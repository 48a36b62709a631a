"""`multihome webhook`: the admission webhooks over HTTPS.

POST /validate-nad   validating NetworkAttachmentDefinition
POST /validate-nncp  validating NodeNetworkConfigurationPolicy
POST /validate-multi-policy  validating MultiNetworkPolicy
POST /mutate-pod     mutating Pod (network-resources-injector)
GET  /healthz
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler
from typing import Any

import click

from multihome.k8s.admission import MalformedReview, Policy, review
from multihome.k8s.webhook_server import (
    MAX_CONNECTIONS,
    TIMEOUT_S,
    ReloadingContext,
    TLSServer,
)
from multihome.store import Store

ROUTES = {"/validate-nad": "nad", "/validate-nncp": "nncp",
          "/validate-multi-policy": "multi-policy", "/mutate-pod": "pod"}
MAX_BODY = 4 << 20
MAX_DRAIN = 1 << 20
DRAIN_WAIT_S = 0.2
log = logging.getLogger(__name__)


def make_server(listen: str, cert: str, key: str, policy: Policy, store: Store | None, *,
                max_connections: int = MAX_CONNECTIONS,
                timeout_s: float = TIMEOUT_S) -> TLSServer:
    host, _, port = listen.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, code: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(data)

        def _drain(self) -> None:
            """Read (a bounded amount of) a body we will not parse: closing with unread
            data resets the connection, and the client would never see our answer."""
            self.connection.settimeout(DRAIN_WAIT_S)
            total = 0
            try:
                while total < MAX_DRAIN:
                    chunk = self.rfile.read1(65536)
                    if not chunk:
                        break
                    total += len(chunk)
            except OSError:  # includes the timeout: nothing more is coming
                pass

        def do_GET(self) -> None:
            if self.path == "/healthz":
                self._reply(200, {"status": "ok"})
            else:
                self._reply(404, {"message": "not found"})

        def do_POST(self) -> None:
            try:
                self._post()
            except (OSError, TimeoutError):
                raise  # the connection itself failed: nobody to answer
            except Exception as e:  # an answer, never a dropped connection
                log.exception("webhook: %s failed", self.path)
                self._reply(500, {"message": f"internal error: {type(e).__name__}: {e}"})

        def _post(self) -> None:
            kind = ROUTES.get(self.path.split("?", 1)[0])
            if kind is None:
                return self._reply(404, {"message": f"no webhook at {self.path}"})
            text = self.headers.get("Content-Length") or ""
            length = int(text) if text.isdigit() else -1
            if length <= 0 or length > MAX_BODY:
                self._drain()
                return self._reply(400 if length <= MAX_BODY else 413, {
                    "message": f"an AdmissionReview body of at most {MAX_BODY} bytes with "
                               "its Content-Length is required"})
            data = self.rfile.read(length)
            if len(data) < length:
                return self._reply(400, {"message": "the body ended before Content-Length"})
            try:
                body = json.loads(data)
            except (ValueError, RecursionError) as e:
                return self._reply(400, {"message": f"body is not JSON: {e}"})
            try:
                answer = review(body, kind, policy, store)
            except MalformedReview as e:
                return self._reply(400, {"message": str(e)})
            self._reply(200, answer)

    Handler.timeout = timeout_s
    return TLSServer((host or "0.0.0.0", int(port)), Handler, ReloadingContext(cert, key),
                     max_connections=max_connections, timeout_s=timeout_s)


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
