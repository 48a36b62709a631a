"""Driving the console as a browser on it does: the session's CSRF token from a page's
<meta name="csrf-token">, and the console's own Origin on every form post."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from multihome.console import topology
from multihome.store import Store

MULTIHOME = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "multihome")
ORIGIN = "http://localhost"  # the Flask test client's Host is "localhost"
EVIL = "http://evil.example"

NODE_STATE = {"interfaces": [
    {"name": "br-test", "type": "linux-bridge", "state": "up",
     "bridge": {"port": [{"name": "br-test-up"}, {"name": "veth1"}]}},
    {"name": "eth0", "type": "ethernet", "state": "up"}]}


def fixed_topology(store: Store) -> topology.Topology:
    """The picture of a made-up node (the pages' tests need no real bridges)."""
    return topology.build(store, NODE_STATE, uplinks={"br-test-up"}, external="ext 10.9.0.1/24")


def csrf_of(client: FlaskClient, page: str = "/nads", **kw: Any) -> str:
    html = client.get(page, **kw).get_data(as_text=True)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', html)
    assert found, f"no CSRF token on {page}: {html[:300]}"
    return found.group(1)


def post(client: FlaskClient, url: str, data: dict[str, str] | None = None,
         **kw: Any) -> TestResponse:
    """A same-origin form post carrying this session's CSRF token."""
    headers = {"Origin": ORIGIN, **kw.pop("headers", {})}
    token = csrf_of(client, headers=headers)
    return client.post(url, data={**(data or {}), "csrf_token": token}, headers=headers, **kw)


@contextmanager
def served(args: list[str], env: dict[str, str] | None = None) -> Iterator[str]:
    """`multihome ... console --listen 127.0.0.1:0 ...` running; its URL (port 0: the
    kernel picks a free port, the console prints it)."""
    proc = subprocess.Popen([MULTIHOME, *args], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert found, f"console did not start: {line}"
        yield f"http://127.0.0.1:{found.group(1)}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
