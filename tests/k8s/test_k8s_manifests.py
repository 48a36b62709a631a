"""Every manifest in deploy/ against the Kubernetes schemas (kubernetes-validate, offline)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

kubernetes_validate = pytest.importorskip("kubernetes_validate")

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.30.0"


def documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(DEPLOY.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((f"{path.relative_to(DEPLOY)}:{doc['kind']}/"
                             f"{doc['metadata']['name']}", doc))
    return docs


@pytest.mark.parametrize(("where", "doc"), documents(), ids=[w for w, _ in documents()])
def test_manifest_is_valid(where: str, doc: dict[str, Any]) -> None:
    assert kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kust = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    files = {str(p.relative_to(DEPLOY)) for p in DEPLOY.rglob("*.yaml")}
    assert set(kust["resources"]) == files - {"kustomization.yaml"}


def test_crds_cover_the_kinds_the_store_knows() -> None:
    from multihome.store.objects import kind_info

    crds = {d["spec"]["names"]["kind"]: d for _, d in documents()
            if d["kind"] == "CustomResourceDefinition"}
    for kind, crd in crds.items():
        info = kind_info(kind)
        assert crd["spec"]["group"] == info.group
        assert crd["spec"]["names"]["plural"] == info.plural
        assert [v["name"] for v in crd["spec"]["versions"]] == [info.version]
        assert (crd["spec"]["scope"] == "Namespaced") == info.namespaced
    assert len(crds) == 9  # NAD, IPAMClaim, MultiNetworkPolicy, the three of nmstate, the three
    # of whereabouts


@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1)")
def test_validation_needs_no_network() -> None:
    """Run one validation in a new network namespace (no interfaces but lo)."""
    code = ("import kubernetes_validate as k;"
            "k.validate({'apiVersion':'v1','kind':'Namespace','metadata':{'name':'x'}},"
            f"'{K8S_VERSION}', strict=True); print('ok')")
    out = subprocess.run(["unshare", "-n", sys.executable, "-c", code], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# -- hardening: what the manifests promise ------------------------------------------------


def _doc(kind: str, name: str) -> dict[str, Any]:
    found = [d for _, d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, (kind, name)
    return found[0]


def test_daemon_has_probes_and_an_unprivileged_init_container() -> None:
    pod = _doc("DaemonSet", "multihome-node")["spec"]["template"]["spec"]
    daemon = pod["containers"][0]
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert probe in daemon, probe
    assert "/healthz" in daemon["livenessProbe"]["exec"]["command"][-1]
    assert "/readyz" in daemon["readinessProbe"]["exec"]["command"][-1]
    init = pod["initContainers"][0]["securityContext"]
    assert init.get("privileged") is False and init["allowPrivilegeEscalation"] is False
    assert init["capabilities"]["drop"] == ["ALL"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"


def test_namespace_has_pod_security_labels() -> None:
    labels = _doc("Namespace", "multihome-system")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "privileged"  # the daemon
    assert labels["pod-security.kubernetes.io/warn"] in ("baseline", "restricted")


def test_webhook_spreads_keeps_one_and_skips_system_pods() -> None:
    pod = _doc("Deployment", "multihome-webhook")["spec"]["template"]
    assert pod["spec"]["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    anti = pod["spec"]["affinity"]["podAntiAffinity"]
    terms = anti["preferredDuringSchedulingIgnoredDuringExecution"]
    assert terms[0]["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert "livenessProbe" in pod["spec"]["containers"][0]
    pdb = _doc("PodDisruptionBudget", "multihome-webhook")["spec"]
    assert pdb["minAvailable"] >= 1
    assert pdb["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    hook = _doc("MutatingWebhookConfiguration", "multihome-pod-resources")["webhooks"][0]
    excluded = {v for e in hook["namespaceSelector"]["matchExpressions"]
                if e["operator"] == "NotIn" for v in e["values"]}
    assert {"kube-system", "multihome-system"} <= excluded
    assert hook["objectSelector"]["matchExpressions"]


def test_nncp_validation_webhook_is_registered() -> None:
    hooks = _doc("ValidatingWebhookConfiguration", "multihome-nad-validation")["webhooks"]
    nncp = [h for h in hooks if h["clientConfig"]["service"]["path"] == "/validate-nncp"]
    assert nncp and nncp[0]["rules"][0]["resources"] == ["nodenetworkconfigurationpolicies"]


def _nncp_schema() -> dict[str, Any]:
    crd = _doc("CustomResourceDefinition", "nodenetworkconfigurationpolicies.nmstate.io")
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


BAD_NNCP_SPECS = [
    # maxUnavailable's bounds ("abc%", -1) are a CEL rule, which only the real API server
    # evaluates: tests/cluster/test_admission.py checks them there
    {"nodeSelector": ["a"]}, {"nodeSelector": {"a": 5}}, {"maxUnavailable": {"x": 1}},
    {"desiredState": "text"},
    {"desiredState": {"interfaces": "x"}}, {"desiredState": {"interfaces": [5]}},
    {"desiredState": {"interfaces": [{"name": 5}]}},
    {"desiredState": {"interfaces": [{"type": "linux-bridge"}]}},
    # routes.config may be "{{ capture.… }}": its type is the webhook's to check
    {"desiredState": {"routes": "x"}}, {"desiredState": {"probes": {"ping": "x"}}},
    {"desiredState": {"probes": {"dns": "x"}}}, {"capture": "x"}, {"capture": {"a": 5}},
]


@pytest.mark.parametrize("spec", BAD_NNCP_SPECS)
def test_nncp_schema_refuses_wrong_types(spec: dict[str, Any]) -> None:
    import jsonschema

    body = {"apiVersion": "nmstate.io/v1", "kind": "NodeNetworkConfigurationPolicy",
            "metadata": {"name": "p"}, "spec": spec}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, _nncp_schema())


@pytest.mark.parametrize("name", ["dev-bridge-policy.yml", "bridge-on-default-gw-policy.yml"])
def test_nncp_schema_admits_the_example_policies(name: str) -> None:
    import jsonschema

    example = DEPLOY.parent / "examples" / name
    for body in yaml.safe_load_all(example.read_text()):
        if body and body.get("kind") == "NodeNetworkConfigurationPolicy":
            jsonschema.validate(body, _nncp_schema())
            body["spec"]["maxUnavailable"] = "50%"
            jsonschema.validate(body, _nncp_schema())
