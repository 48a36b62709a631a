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
    assert len(crds) == 4


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
