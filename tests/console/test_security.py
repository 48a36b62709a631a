"""What another web site can and cannot make the console do, and the bounds on what any
request can make it do: cross-site posts, DNS rebinding, the token, body sizes, YAML
alias bombs and malformed pod annotations."""

from __future__ import annotations

import http.client
import json
import os
import socket
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
import yaml
from flask.testing import FlaskClient

from multihome.console import topology
from multihome.console.app import MAX_BODY, create_app
from multihome.store import NAD, POD, Object
from multihome.store.objects import NNCP
from multihome.stores import open_store
from support.console_client import EVIL, ORIGIN, csrf_of, fixed_topology, post, served

ROOT = Path(__file__).resolve().parents[2]
SEED_YAML = (ROOT / "examples" / "linux-bridge-dev.yml").read_text()
SEED_FORM = {"type": "linux-bridge", "name": "bridge-dev", "namespace": "multus-test",
             "bridge": "dev-bridge", "resource": "bridge-dev", "macspoofchk": "on"}
POLICY = yaml.safe_dump({
    "apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
    "metadata": {"name": "p1"},
    "spec": {"desiredState": {"interfaces": [{"name": "brx", "type": "linux-bridge",
                                              "state": "up"}]}}})


def _count(store_file: str, kind: str) -> int:
    db = open_store(store_file)
    try:
        return len(db.list(kind, None))
    finally:
        db.close()


def _seed_nad(store_file: str) -> None:
    db = open_store(store_file)
    try:
        db.apply(Object.from_manifest(yaml.safe_load(SEED_YAML), "multus-test"))
    finally:
        db.close()


# every state-changing request of the console, as a cross-site form would post it
CHANGES = [("/nads/new", SEED_FORM), ("/nads/yaml", {"yaml": SEED_YAML,
                                                     "namespace": "multus-test"}),
           ("/policies/apply", {"yaml": POLICY}),
           ("/nads/multus-test/bridge-dev/delete", {})]


def _nothing_changed(store_file: str) -> bool:
    return _count(store_file, NAD) == 1 and _count(store_file, NNCP) == 0


@pytest.mark.parametrize(("url", "form"), CHANGES, ids=[u for u, _ in CHANGES])
def test_a_post_without_the_csrf_token_changes_nothing(client: FlaskClient, store_file: str,
                                                       url: str, form: dict[str, str]) -> None:
    _seed_nad(store_file)
    resp = client.post(url, data=form)
    assert resp.status_code == 403
    assert "CSRF" in resp.get_data(as_text=True)
    assert _nothing_changed(store_file)


@pytest.mark.parametrize(("url", "form"), CHANGES, ids=[u for u, _ in CHANGES])
def test_a_cross_site_post_changes_nothing_even_with_a_token(
        client: FlaskClient, store_file: str, url: str, form: dict[str, str]) -> None:
    _seed_nad(store_file)
    token = csrf_of(client)
    for headers in ({"Origin": EVIL}, {"Origin": "null"}, {"Referer": f"{EVIL}/page"},
                    {"Origin": "http://localhost:8081"}):
        resp = client.post(url, data={**form, "csrf_token": token}, headers=headers)
        assert resp.status_code == 403, headers
    assert _nothing_changed(store_file)


def test_a_token_from_another_session_is_refused(store_file: str,
                                                 client: FlaskClient) -> None:
    app = create_app(store_file, topology_source=fixed_topology)
    with app.test_client() as other:
        theirs = csrf_of(other)
    resp = client.post("/nads/new", data={**SEED_FORM, "csrf_token": theirs},
                       headers={"Origin": ORIGIN})
    assert resp.status_code == 403
    assert _count(store_file, NAD) == 0


def test_the_same_origin_form_with_its_token_works(client: FlaskClient,
                                                   store_file: str) -> None:
    html = client.get("/nads/new").get_data(as_text=True)
    assert 'name="csrf_token"' in html
    assert post(client, "/nads/new", SEED_FORM).status_code == 302
    assert _count(store_file, NAD) == 1


@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "127.0.0.1.nip.io",
                                  "localhost@evil.example", "", "[::1"])
def test_a_foreign_host_header_is_refused(client: FlaskClient, host: str) -> None:
    """DNS rebinding: another site's name resolving to 127.0.0.1 reaches us with its Host."""
    assert client.get("/nads", headers={"Host": host}).status_code == 400


def test_loopback_host_names_are_served(client: FlaskClient) -> None:
    for host in ("localhost", "127.0.0.1:8080", "[::1]:8080"):
        assert client.get("/nads", headers={"Host": host}).status_code == 200, host


def test_a_bound_console_checks_the_port(store_file: str) -> None:
    from multihome.console.guard import Listen

    app = create_app(store_file, topology_source=fixed_topology,
                     listen=Listen("127.0.0.1", 8123))
    with app.test_client() as c:
        assert c.get("/nads", headers={"Host": "127.0.0.1:8123"}).status_code == 200
        assert c.get("/nads", headers={"Host": "127.0.0.1:9999"}).status_code == 400


def test_pages_forbid_framing(client: FlaskClient) -> None:
    resp = client.get("/nads")
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]


# -- the token ------------------------------------------------------------------------


def test_the_token_is_never_taken_from_the_url(store_file: str) -> None:
    app = create_app(store_file, token="s3cret", topology_source=fixed_topology)
    with app.test_client() as c:
        resp = c.get("/nads?token=s3cret")
        assert resp.status_code == 400
        assert "Set-Cookie" not in resp.headers
        assert c.get("/nads").status_code == 401


def test_login_form_sets_a_session(store_file: str) -> None:
    app = create_app(store_file, token="s3cret", topology_source=fixed_topology)
    with app.test_client() as c:
        page = c.get("/nads")
        assert page.status_code == 401 and 'id="token"' in page.get_data(as_text=True)
        token = csrf_of(c, "/login")
        bad = c.post("/login", data={"token": "wrong", "csrf_token": token},
                     headers={"Origin": ORIGIN})
        assert bad.status_code == 401
        assert c.get("/nads").status_code == 401
        good = c.post("/login", data={"token": "s3cret", "csrf_token": csrf_of(c, "/login"),
                                      "next": "/pods"}, headers={"Origin": ORIGIN})
        assert good.status_code == 302 and good.headers["Location"] == "/pods"
        cookie = good.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "s3cret" not in cookie
        assert c.get("/nads").status_code == 200
        # logged in, a change still needs the session's CSRF token
        assert c.post("/nads/new", data=SEED_FORM,
                      headers={"Origin": ORIGIN}).status_code == 403
        assert post(c, "/nads/new", SEED_FORM).status_code == 302


def test_login_without_csrf_token_or_cross_site_is_refused(store_file: str) -> None:
    app = create_app(store_file, token="s3cret", topology_source=fixed_topology)
    with app.test_client() as c:
        assert c.post("/login", data={"token": "s3cret"}).status_code == 403
        token = csrf_of(c, "/login")
        assert c.post("/login", data={"token": "s3cret", "csrf_token": token},
                      headers={"Origin": EVIL}).status_code == 403
        assert c.get("/nads").status_code == 401


def test_login_never_redirects_off_site(store_file: str) -> None:
    app = create_app(store_file, token="s3cret", topology_source=fixed_topology)
    with app.test_client() as c:
        for target in ("//evil.example/x", "http://evil.example/", "/\\evil.example"):
            resp = c.post("/login", data={"token": "s3cret", "next": target,
                                          "csrf_token": csrf_of(c, "/login")},
                          headers={"Origin": ORIGIN})
            assert resp.headers["Location"] == "/nads", target


def test_a_bearer_post_needs_the_csrf_token_too(store_file: str) -> None:
    app = create_app(store_file, token="s3cret", topology_source=fixed_topology)
    bearer = {"Authorization": "Bearer s3cret"}
    with app.test_client() as c:
        assert c.post("/nads/new", data=SEED_FORM, headers=bearer).status_code == 403
        token = csrf_of(c, headers=bearer)
        resp = c.post("/nads/new", data={**SEED_FORM, "csrf_token": token}, headers=bearer)
        assert resp.status_code == 302
    assert _count(store_file, NAD) == 1


# -- bounds ---------------------------------------------------------------------------


def test_a_body_over_the_limit_is_413(client: FlaskClient, store_file: str) -> None:
    text = SEED_YAML + "#" + "x" * MAX_BODY
    resp = post(client, "/nads/yaml", {"yaml": text, "namespace": "multus-test"})
    assert resp.status_code == 413
    assert _count(store_file, NAD) == 0


BOMB = """apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: bomb
  annotations: {}
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
spec:
  config: '{"cniVersion": "0.3.1", "name": "bomb", "type": "cnv-bridge", "bridge": "b"}'
  x: [*e,*e,*e,*e,*e,*e,*e,*e,*e]
"""
RECURSIVE = """apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata: {name: loop}
spec: &s
  config: '{"cniVersion": "0.3.1", "name": "loop", "type": "cnv-bridge", "bridge": "b"}'
  self: *s
"""
MANY_ALIASES = "a: &a x\nb: [" + ", ".join(["*a"] * 500) + "]\n"


@pytest.mark.parametrize("text", [BOMB, RECURSIVE, MANY_ALIASES],
                         ids=["billion-laughs", "recursive", "many-aliases"])
@pytest.mark.parametrize("url", ["/nads/yaml", "/policies/apply"])
def test_yaml_aliases_are_bounded(client: FlaskClient, store_file: str, text: str,
                                  url: str) -> None:
    before = os.path.getsize(store_file) if os.path.exists(store_file) else 0
    resp = post(client, url, {"yaml": text, "namespace": "multus-test"})
    assert resp.status_code == 422
    assert "error parsing YAML" in resp.get_data(as_text=True)
    assert _count(store_file, NAD) == 0 and _count(store_file, NNCP) == 0
    assert os.path.getsize(store_file) - before < 1 << 20


def test_a_few_aliases_still_work(client: FlaskClient, store_file: str) -> None:
    text = "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n" \
        "metadata:\n  name: aliased\n  labels: &l {team: net}\n  annotations: *l\n" \
        "spec:\n  config: '{\"cniVersion\": \"0.3.1\", \"name\": \"aliased\", " \
        "\"type\": \"cnv-bridge\", \"bridge\": \"br1\"}'\n"
    assert post(client, "/nads/yaml", {"yaml": text, "namespace": "multus-test"}
                ).status_code == 302
    assert _count(store_file, NAD) == 1


# -- malformed annotations ----------------------------------------------------------

BAD_STATUS = ["{not json", "42", '"text"', "null", '{"a": 1}', "[1, 2]",
              json.dumps([{"name": 5, "interface": ["x"], "ips": "10.0.0.1", "mac": {},
                           "default": "yes"}]),
              json.dumps([{"name": "multus-test/bridge-dev", "interface": "net1",
                           "ips": 7}]),
              json.dumps([{"name": "/", "ips": [None, {"a": 1}]}]),
              json.dumps([{"name": "UPPER/../x"}]), "[" * 5000 + "]" * 5000]


@pytest.mark.parametrize("status", BAD_STATUS)
def test_a_malformed_network_status_never_breaks_a_page(client: FlaskClient, store_file: str,
                                                        status: str) -> None:
    db = open_store(store_file)
    try:
        db.apply(Object.from_manifest(
            {"apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD, "metadata": {
                "name": "bridge-dev", "namespace": "multus-test"},
             "spec": {"config": json.dumps({"cniVersion": "0.3.1", "type": "cnv-bridge",
                                            "bridge": {"not": "text"}, "vlan": "5"})}}))
        db.apply(Object.from_manifest({"apiVersion": "v1", "kind": POD, "metadata": {
            "name": "pod-bad", "namespace": "multus-test",
            "annotations": {topology.NETWORK_STATUS: status}}}))
    finally:
        db.close()
    for page in ("/nads", "/nads/multus-test/bridge-dev", "/pods", "/vms", "/topology",
                 "/topology.svg", "/policies"):
        resp = client.get(page)
        assert resp.status_code == 200, (page, resp.get_data(as_text=True)[-500:])
    assert "pod-bad" in client.get("/pods").get_data(as_text=True)


# -- the served console (`multihome console`, waitress) -------------------------------


def _http(url: str, method: str = "GET", body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request(method, parts.path or "/", body, headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _declared_too_large(url: str, length: int) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.putrequest("POST", parts.path)
        conn.putheader("Content-Type", "application/x-www-form-urlencoded")
        conn.putheader("Content-Length", str(length))
        conn.endheaders(b"yaml=")
        return conn.getresponse().status
    finally:
        conn.close()


def test_the_served_console_enforces_the_rules(tmp_path: Path) -> None:
    env = {**os.environ, "MULTIHOME_STATE_DIR": str(tmp_path / "state")}
    store_file = str(tmp_path / "s.db")
    with served(["--store", store_file, "console", "--listen", "127.0.0.1:0"], env) as url:
        status, headers, _ = _http(f"{url}/nads")
        assert status == 200
        assert "werkzeug" not in headers.get("Server", "").lower()
        assert _http(f"{url}/nads", headers={"Host": "rebind.example:80"})[0] == 400
        form = urlencode(SEED_FORM).encode()
        post_headers = {"Content-Type": "application/x-www-form-urlencoded",
                        "Origin": EVIL}
        assert _http(f"{url}/nads/new", "POST", form, post_headers)[0] == 403
        # refused on the declared length, before the body is read
        assert _declared_too_large(f"{url}/nads/yaml", MAX_BODY + 1) == 413
    assert _count(store_file, NAD) == 0


def test_idle_connections_do_not_block_the_served_console(tmp_path: Path) -> None:
    """Clients that connect and send nothing take no worker thread (waitress reads
    requests asynchronously and hands only whole ones to its threads)."""
    env = {**os.environ, "MULTIHOME_STATE_DIR": str(tmp_path / "state")}
    with served(["--store", str(tmp_path / "s.db"), "console", "--listen", "127.0.0.1:0"],
                env) as url:
        parts = urlsplit(url)
        idle = [socket.create_connection((parts.hostname or "", parts.port or 0), timeout=5)
                for _ in range(12)]
        try:
            for sock in idle[:6]:
                sock.sendall(b"GET /nads HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
            assert _http(f"{url}/nads")[0] == 200
        finally:
            for sock in idle:
                sock.close()
