"""The admission webhooks over real HTTPS with AdmissionReview v1 as the API server sends it."""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from test_k8s_store import nad

from multihome.attach.nad import RESOURCE_NAME_ANNOTATION
from multihome.cli.webhook import make_server
from multihome.k8s.admission import Policy
from multihome.store import Object
from multihome.store.sqlite import SQLiteStore


def throwaway_cert(tmp: Path) -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "multihome-webhook")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=1))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "tls.crt", tmp / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


class Webhook:
    def __init__(self, port: int, cafile: str) -> None:
        self.port = port
        self.ctx = ssl.create_default_context(cafile=cafile)

    def post(self, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx,
                                           timeout=5)
        try:
            conn.request("POST", path, json.dumps(body),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def review(self, path: str, resource: dict[str, str], kind: str, obj: dict[str, Any],
               namespace: str = "default") -> dict[str, Any]:
        uid = str(uuid.uuid4())
        status, body = self.post(path, {
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": uid, "kind": {**resource, "kind": kind}, "resource": resource,
                "requestKind": {**resource, "kind": kind}, "requestResource": resource,
                "name": obj["metadata"].get("name", ""), "namespace": namespace,
                "operation": "CREATE",
                "userInfo": {"username": "kubernetes-admin", "groups": ["system:masters"]},
                "object": obj, "oldObject": None, "dryRun": False,
                "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
            }})
        assert status == 200
        assert body["apiVersion"] == "admission.k8s.io/v1"
        assert body["response"]["uid"] == uid
        response: dict[str, Any] = body["response"]
        return response


NAD_RES = {"group": "k8s.cni.cncf.io", "version": "v1",
           "resource": "network-attachment-definitions"}
POD_RES = {"group": "", "version": "v1", "resource": "pods"}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store.db")
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def webhook(tmp_path: Path, store: SQLiteStore) -> Iterator[Webhook]:
    cert, key = throwaway_cert(tmp_path)
    server = make_server("127.0.0.1:0", cert, key, Policy({"my-vendor-cni"}), store)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Webhook(server.server_address[1], cert)
    finally:
        server.shutdown()
        server.server_close()


def test_valid_nad_is_allowed(webhook: Webhook) -> None:
    resp = webhook.review("/validate-nad", NAD_RES, "NetworkAttachmentDefinition", nad("ok"))
    assert resp["allowed"] is True


@pytest.mark.parametrize(("mutate", "words"), [
    (lambda b: b["spec"].update(config="{not json"), "not valid JSON"),
    (lambda b: b["metadata"].update(name="Bad_Name"), "DNS-1123"),
    (lambda b: b["spec"].update(config=json.dumps({"cniVersion": "9.9.9", "type": "bridge"})),
     "9.9.9"),
    (lambda b: b["spec"].update(config=json.dumps({"cniVersion": "1.0", "type": "bridge"})),
     "MAJOR.MINOR.PATCH"),
    (lambda b: b["spec"].update(config=json.dumps({"cniVersion": "1.0.0", "type": "nope"})),
     'plugin type "nope"'),
    (lambda b: b["metadata"].update(annotations={RESOURCE_NAME_ANNOTATION: "no-slash"}),
     "is not a resource name"),
])
def test_invalid_nad_is_denied_with_a_reason(webhook: Webhook, mutate: Any,
                                              words: str) -> None:
    body = nad("n1")
    mutate(body)
    resp = webhook.review("/validate-nad", NAD_RES, "NetworkAttachmentDefinition", body)
    assert resp["allowed"] is False
    assert resp["status"]["code"] == 400
    assert words in resp["status"]["message"]


def test_allowed_type_from_config(webhook: Webhook) -> None:
    body = nad("vendor", {"cniVersion": "1.0.0", "type": "my-vendor-cni"})
    resp = webhook.review("/validate-nad", NAD_RES, "NetworkAttachmentDefinition", body)
    assert resp["allowed"] is True


def apply_patch(doc: dict[str, Any], patch: list[dict[str, Any]]) -> dict[str, Any]:
    """Enough of RFC 6902 `add` to check what the API server would do."""
    for op in patch:
        assert op["op"] == "add"
        parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
        target: Any = doc
        for part in parts[:-1]:
            target = target[int(part)] if isinstance(target, list) else target[part]
        target[parts[-1]] = op["value"]
    return doc


def test_pod_gets_nad_resources(webhook: Webhook, store: SQLiteStore) -> None:
    sriov = nad("sriov-a")
    sriov["metadata"]["annotations"] = {RESOURCE_NAME_ANNOTATION: "intel.com/sriov_a"}
    store.create(Object.from_manifest(sriov))
    store.create(Object.from_manifest(nad("plain")))
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"generateName": "web-", "annotations": {
               "k8s.v1.cni.cncf.io/networks": "sriov-a,sriov-a@net2,plain"}},
           "spec": {"containers": [{"name": "c", "image": "x"}, {"name": "d", "image": "y"}]}}
    resp = webhook.review("/mutate-pod", POD_RES, "Pod", pod)
    assert resp["allowed"] is True and resp["patchType"] == "JSONPatch"
    patched = apply_patch(pod, json.loads(base64.b64decode(resp["patch"])))
    res = patched["spec"]["containers"][0]["resources"]
    assert res == {"requests": {"intel.com/sriov_a": "2"}, "limits": {"intel.com/sriov_a": "2"}}
    assert "resources" not in patched["spec"]["containers"][1]


def test_pod_without_resources_is_not_patched(webhook: Webhook, store: SQLiteStore) -> None:
    store.create(Object.from_manifest(nad("plain")))
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "annotations": {"k8s.v1.cni.cncf.io/networks": "plain"}},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    resp = webhook.review("/mutate-pod", POD_RES, "Pod", pod)
    assert resp["allowed"] is True and "patch" not in resp


def test_pod_with_invalid_selection_is_denied(webhook: Webhook) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "p", "annotations": {
               "k8s.v1.cni.cncf.io/networks": '[{"name": "x", "mac": "zz"}]'}},
           "spec": {"containers": [{"name": "c", "image": "x"}]}}
    resp = webhook.review("/mutate-pod", POD_RES, "Pod", pod)
    assert resp["allowed"] is False
    assert "k8s.v1.cni.cncf.io/networks" in resp["status"]["message"]


def test_not_an_admission_review_is_a_bad_request(webhook: Webhook) -> None:
    status, body = webhook.post("/validate-nad", {"kind": "Pod"})
    assert status == 400 and "AdmissionReview" in body["message"]


def test_cli_serves_healthz_over_https(tmp_path: Path) -> None:
    import socket
    import subprocess
    import sys
    import time

    cert, key = throwaway_cert(tmp_path)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "multihome"), "--store", str(tmp_path / "s.db"),
         "webhook", "--cert", cert, "--key", key, "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ctx = ssl.create_default_context(cafile=cert)
        deadline = time.monotonic() + 20
        while True:
            try:
                conn = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=2)
                conn.request("GET", "/healthz")
                resp = conn.getresponse()
                assert resp.status == 200 and json.loads(resp.read()) == {"status": "ok"}
                conn.close()
                break
            except (ConnectionRefusedError, ssl.SSLError, OSError):
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "webhook did not start"
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
