"""The admission webhooks over real HTTPS with AdmissionReview v1 as the API server sends it."""

from __future__ import annotations

import base64
import datetime
import http.client
import ipaddress
import json
import os
import socket
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

from multihome.attach.nad import RESOURCE_NAME_ANNOTATION
from multihome.cli.webhook import make_server
from multihome.k8s.admission import Policy
from multihome.store import Object
from multihome.store.sqlite import SQLiteStore
from support.k8s_objects import nad


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


# -- robustness: stalled clients, malformed reviews, certificate rotation -------------------


@pytest.fixture
def small_webhook(tmp_path: Path, store: SQLiteStore) -> Iterator[tuple[Webhook, Any]]:
    """A webhook with two connection slots and a half-second timeout per step."""
    cert, key = throwaway_cert(tmp_path)
    server = make_server("127.0.0.1:0", cert, key, Policy(), store, max_connections=2,
                         timeout_s=0.5)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Webhook(server.server_address[1], cert), server
    finally:
        server.shutdown()
        server.server_close()


def _stalled(port: int, hello: bytes = b"") -> socket.socket:
    """A client that connects (and maybe starts a TLS hello) and then says nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    if hello:
        sock.sendall(hello)
    return sock


@pytest.mark.parametrize("hello", [b"", b"\x16\x03\x01\x02\x00\x01"],
                         ids=["silent", "half-hello"])
def test_a_stalled_tls_client_does_not_block_others(webhook: Webhook, hello: bytes) -> None:
    stalled = [_stalled(webhook.port, hello) for _ in range(3)]
    try:
        resp = webhook.review("/validate-nad", NAD_RES, "NetworkAttachmentDefinition",
                              nad("ok"))
        assert resp["allowed"] is True
    finally:
        for sock in stalled:
            sock.close()


def test_stalled_handshakes_time_out_and_connections_are_bounded(
        small_webhook: tuple[Webhook, Any]) -> None:
    hook, server = small_webhook
    stalled = [_stalled(hook.port) for _ in range(2)]
    try:
        extra = _stalled(hook.port)
        with extra:  # every slot taken: closed at once, not queued behind the stalled ones
            assert extra.recv(1) == b""
        assert server.refused >= 1
        for sock in stalled:  # the handshake timeout closes the stalled ones
            assert sock.recv(1) == b""
    finally:
        for sock in stalled:
            sock.close()
    assert hook.review("/validate-nad", NAD_RES, "NetworkAttachmentDefinition",
                       nad("ok"))["allowed"] is True


def _raw_post(hook: Webhook, path: str, data: bytes,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPSConnection("127.0.0.1", hook.port, context=hook.ctx, timeout=10)
    try:
        conn.putrequest("POST", path)
        for key, value in {"Content-Length": str(len(data)), **(headers or {})}.items():
            conn.putheader(key, value)
        conn.endheaders(data)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _review_of(request: Any) -> dict[str, Any]:
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": request}


def _req(obj: Any, **extra: Any) -> dict[str, Any]:
    return {"uid": "u-1", "operation": "CREATE", "namespace": "default", "object": obj,
            **extra}


MALFORMED = [
    ("nad", _review_of(None)), ("nad", _review_of([])), ("nad", _review_of("x")),
    ("nad", _review_of({"uid": 5})), ("nad", _review_of({"object": {}})),
    ("nad", [1, 2]), ("nad", "AdmissionReview"), ("nad", None),
    ("nad", {"kind": "AdmissionReview", "request": {"uid": "u", "object": []}}),
    ("nad", _review_of(_req("text"))),
    ("nad", _review_of(_req({"metadata": []}))),
    ("nad", _review_of(_req({"metadata": {"name": 5}}))),
    ("nad", _review_of(_req({"metadata": {"name": "a", "annotations": []}}))),
    ("nad", _review_of(_req({"metadata": {"name": "a"}, "spec": []}))),
    ("nad", _review_of(_req({"metadata": {"name": "a"}, "spec": {"config": 5}}))),
    ("nad", _review_of(_req({"metadata": {"name": "a"}, "spec": {"config": "[1]"}}))),
    ("nad", _review_of(_req({"metadata": {"name": "a"},
                             "spec": {"config": '{"plugins": "x"}'}}))),
    ("nad", _review_of(_req({"metadata": {"name": "a"},
                             "spec": {"config": '{"plugins": [1, {"type": 5}]}'}}))),
    ("nad", _review_of(_req({"metadata": {"name": "a"},
                             "spec": {"config": '{"cniVersion": 1, "type": "bridge"}'}}))),
    ("nad", _review_of(_req(nad("ok"), namespace=["x"]))),
    ("pod", _review_of(_req({"metadata": "x"}))),
    ("pod", _review_of(_req({"metadata": {"annotations": "x"}}))),
    ("pod", _review_of(_req({"metadata": {"annotations": {
        "k8s.v1.cni.cncf.io/networks": 5}}}))),
    ("pod", _review_of(_req({"metadata": {"annotations": {
        "k8s.v1.cni.cncf.io/networks": "[{]"}}}))),
    ("pod", _review_of(_req({"metadata": {"annotations": {
        "k8s.v1.cni.cncf.io/networks": '[{"name": 5}]'}}}))),
    ("pod", _review_of(_req({"metadata": {"annotations": {
        "k8s.v1.cni.cncf.io/networks": "sriov-a"}}, "spec": {"containers": [1]}}))),
    ("pod", _review_of(_req({"metadata": {"annotations": {
        "k8s.v1.cni.cncf.io/networks": "sriov-a"}}, "spec": {"containers": "c"}}))),
    ("pod", _review_of(_req({"metadata": {"annotations": {
        "k8s.v1.cni.cncf.io/networks": "sriov-a"}},
        "spec": {"containers": [{"resources": {"limits": []}}]}}))),
    ("pod", _review_of(_req({"metadata": {"annotations": {
        "k8s.v1.cni.cncf.io/networks": "sriov-a"}}, "spec": []}))),
]


@pytest.mark.parametrize(("kind", "body"), MALFORMED,
                         ids=[f"{k}-{i}" for i, (k, _) in enumerate(MALFORMED)])
def test_a_malformed_review_gets_an_answer(webhook: Webhook, store: SQLiteStore, kind: str,
                                           body: Any) -> None:
    sriov = nad("sriov-a")
    sriov["metadata"]["annotations"] = {RESOURCE_NAME_ANNOTATION: "intel.com/sriov_a"}
    store.create(Object.from_manifest(sriov))
    path = "/validate-nad" if kind == "nad" else "/mutate-pod"
    status, answer = webhook.post(path, body)
    if status == 400:
        assert answer["message"]
    else:
        assert status == 200
        assert answer["response"]["uid"] == body["request"]["uid"]
        assert answer["response"]["allowed"] is False
        assert answer["response"]["status"]["message"]


@pytest.mark.parametrize(("data", "headers"), [
    (b"{not json", {}), (b"[" * 100_000 + b"]" * 100_000, {}), (b"\xff\xfe", {}),
    (b"{}", {"Content-Length": "abc"}), (b"{}", {"Content-Length": "-5"}),
    (b"", {}),
])
def test_a_malformed_body_gets_a_400(webhook: Webhook, data: bytes,
                                     headers: dict[str, str]) -> None:
    status, answer = _raw_post(webhook, "/validate-nad", data, headers)
    assert status == 400 and answer["message"]


def test_a_rotated_certificate_is_served_without_a_restart(tmp_path: Path,
                                                           store: SQLiteStore) -> None:
    served = tmp_path / "served"
    served.mkdir()
    cert, key = throwaway_cert(served)
    server = make_server("127.0.0.1:0", cert, key, Policy(), store)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        old = Webhook(server.server_address[1], cert)
        assert old.review("/validate-nad", NAD_RES, "NetworkAttachmentDefinition",
                          nad("ok"))["allowed"] is True
        old_pem = Path(cert).read_bytes()
        fresh = tmp_path / "fresh"
        fresh.mkdir()
        new_cert, new_key = throwaway_cert(fresh)
        # as the kubelet swaps a Secret volume: each file replaced whole
        os.replace(new_key, key)
        os.replace(new_cert, cert)
        new = Webhook(server.server_address[1], cert)
        assert new.review("/validate-nad", NAD_RES, "NetworkAttachmentDefinition",
                          nad("ok"))["allowed"] is True
        stale = tmp_path / "old.crt"
        stale.write_bytes(old_pem)
        with pytest.raises(ssl.SSLError):
            Webhook(server.server_address[1], str(stale)).post("/validate-nad", {})
    finally:
        server.shutdown()
        server.server_close()


def test_a_half_rotated_pair_keeps_the_old_certificate(tmp_path: Path,
                                                       store: SQLiteStore) -> None:
    cert, key = throwaway_cert(tmp_path)
    server = make_server("127.0.0.1:0", cert, key, Policy(), store)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        other = tmp_path / "other"
        other.mkdir()
        _, new_key = throwaway_cert(other)
        os.replace(new_key, key)  # the key arrived, its certificate not yet
        hook = Webhook(server.server_address[1], cert)
        assert hook.review("/validate-nad", NAD_RES, "NetworkAttachmentDefinition",
                           nad("ok"))["allowed"] is True
    finally:
        server.shutdown()
        server.server_close()


NNCP_RES = {"group": "nmstate.io", "version": "v1",
            "resource": "nodenetworkconfigurationpolicies"}


@pytest.mark.parametrize(("spec", "words"), [
    ({"nodeSelector": ["a"]}, "spec.nodeSelector"),
    ({"maxUnavailable": "abc%"}, "spec.maxUnavailable"),
    ({"desiredState": {"interfaces": [5]}}, "spec.desiredState.interfaces[0]"),
    ({"desiredState": "text"}, "spec.desiredState"),
])
def test_an_invalid_nncp_is_denied(webhook: Webhook, spec: dict[str, Any],
                                   words: str) -> None:
    body = {"apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
            "metadata": {"name": "p"}, "spec": {"desiredState": {"interfaces": []}, **spec}}
    resp = webhook.review("/validate-nncp", NNCP_RES, "NodeNetworkConfigurationPolicy", body,
                          namespace="")
    assert resp["allowed"] is False
    assert words in resp["status"]["message"]


def test_a_valid_nncp_is_allowed(webhook: Webhook) -> None:
    body = {"apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
            "metadata": {"name": "p"}, "spec": {"nodeSelector": {"a": "b"}, "desiredState": {
                "interfaces": [{"name": "br0", "type": "linux-bridge", "state": "up"}]}}}
    resp = webhook.review("/validate-nncp", NNCP_RES, "NodeNetworkConfigurationPolicy", body,
                          namespace="")
    assert resp["allowed"] is True


MNP_RES = {"group": "k8s.cni.cncf.io", "version": "v1beta1",
           "resource": "multi-networkpolicies"}


def _multi_policy(spec: object) -> dict[str, Any]:
    return {"apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy",
            "metadata": {"name": "p", "namespace": "default", "annotations": {
                "k8s.v1.cni.cncf.io/policy-for": "br-net"}}, "spec": spec}


def test_multi_network_policies_are_validated(webhook: Webhook) -> None:
    ok = webhook.review("/validate-multi-policy", MNP_RES, "MultiNetworkPolicy",
                        _multi_policy({"podSelector": {}, "ingress": [{}]}))
    assert ok["allowed"] is True
    for spec, needle in (({"podSelector": {}, "ingress": [{"from": [{}]}]}, "peer"),
                         ({"podSelector": {}, "egress": [{"ports": [{"port": 99999}]}]},
                          "65535"),
                         ("junk", "spec"), ({"ingress": []}, "podSelector")):
        resp = webhook.review("/validate-multi-policy", MNP_RES, "MultiNetworkPolicy",
                              _multi_policy(spec))
        assert resp["allowed"] is False
        assert needle in resp["status"]["message"]
        assert resp["status"]["message"].startswith("MultiNetworkPolicy p: ")
