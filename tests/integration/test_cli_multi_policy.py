"""`multihome apply/get/describe/delete/label` with MultiNetworkPolicies, on a store of the
test's own (no lab: nothing reaches the kernel)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from support.cli_objects import Cli

REF = "multinetworkpolicy.k8s.cni.cncf.io"


@pytest.fixture
def mh(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "s.db")


def _env(tmp_path: Path) -> dict[str, str]:
    return {"MULTIHOME_STATE_DIR": str(tmp_path / "state")}


def _write(tmp_path: Path, name: str, body: dict[str, object]) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(body))
    return str(path)


def _policy(name: str, spec: object, policy_for: str | None = "br-net") -> dict[str, object]:
    meta: dict[str, object] = {"name": name, "namespace": "blue"}
    if policy_for is not None:
        meta["annotations"] = {"k8s.v1.cni.cncf.io/policy-for": policy_for}
    return {"apiVersion": "k8s.cni.cncf.io/v1beta1", "kind": "MultiNetworkPolicy",
            "metadata": meta, "spec": spec}


def _pod(name: str, labels: dict[str, str]) -> dict[str, object]:
    status = [{"name": "blue/br-net", "interface": "net1", "ips": ["10.1.0.5"]}]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": name, "namespace": "blue", "labels": labels,
        "annotations": {"k8s.v1.cni.cncf.io/network-status": json.dumps(status)}},
        "spec": {"containers": [{"name": "c"}]}}


def test_apply_get_describe_delete(mh: Cli, tmp_path: Path) -> None:
    env = _env(tmp_path)
    spec = {"podSelector": {"matchLabels": {"app": "db"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}],
                         "ports": [{"port": 5432}]}]}
    assert mh("apply", "-f", _write(tmp_path, "p", _policy("db", spec)), env=env
              ).stdout.strip() == f"{REF}/db created"
    mh("apply", "-f", _write(tmp_path, "pod", _pod("db-0", {"app": "db"})), env=env)
    mh("apply", "-f", _write(tmp_path, "pod2", _pod("web-0", {"app": "web"})), env=env)

    for spelling in ("multi-policy", "multi-networkpolicy", "multi-networkpolicies"):
        table = mh("get", spelling, "-n", "blue", env=env).stdout.splitlines()
        assert table[0].split() == ["NAME", "POD-SELECTOR", "NETWORKS", "AGE"]
        assert table[1].split()[:3] == ["db", "app=db", "blue/br-net"]

    described = mh("describe", "multi-policy", "db", "-n", "blue", env=env).stdout
    assert "Allowing ingress traffic:" in described
    assert "To Port: 5432/TCP" in described and "PodSelector: app=web" in described
    assert "Not affecting egress traffic" in described
    assert "Selected Pods:  db-0" in described

    out = mh("delete", "multi-networkpolicy", "db", "-n", "blue", env=env)
    assert out.returncode == 0 and f'{REF} "db" deleted' in out.stdout.replace(
        "multinetworkpolicy.k8s.cni.cncf.io", REF)
    assert "No resources found" in mh("get", "multi-policy", "-n", "blue", env=env).stderr


@pytest.mark.parametrize(("spec", "policy_for", "needle"), [
    ({"podSelector": {}, "ingress": [{"from": [{}]}]}, "br-net", "must specify a peer"),
    ({"podSelector": {}, "ingress": [{"ports": [{"port": 0}]}]}, "br-net", "between 1 and"),
    ({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/24",
                                                            "except": ["11.0.0.0/28"]}}]}]},
     "br-net", "strict subset"),
    ({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}, "br-net",
     "non-empty"),
    ({"podSelector": {}}, "a/b/c", "policy-for"),
    ({"podSelector": {}, "ingress": [{}] * 5000}, "br-net", "more than 256 rules"),
    ("not a mapping", "br-net", "spec"),
])
def test_malformed_policies_are_refused_in_one_line(mh: Cli, tmp_path: Path, spec: object,
                                                    policy_for: str, needle: str) -> None:
    proc = mh("apply", "-f", _write(tmp_path, "bad", _policy("bad", spec, policy_for)),
              env=_env(tmp_path))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
    assert lines[0].startswith('The MultiNetworkPolicy "bad" is invalid: ')
    assert "No resources found" in mh("get", "multi-policy", "-n", "blue").stderr


def test_label_sets_and_removes_labels_as_kubectl_does(mh: Cli, tmp_path: Path) -> None:
    env = _env(tmp_path)
    ns = tmp_path / "ns.yml"
    ns.write_text("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: blue\n")
    mh("apply", "-f", str(ns), env=env)
    assert mh("label", "namespace", "blue", "team=x", env=env).stdout.strip() == (
        "namespace/blue labeled")
    refused = mh("label", "ns", "blue", "team=y", env=env)
    assert refused.returncode == 1 and "--overwrite" in refused.stderr
    mh("label", "ns", "blue", "team=y", "--overwrite", env=env)
    body = json.loads(mh("get", "ns", "blue", "-o", "json", env=env).stdout)
    assert body["metadata"]["labels"] == {"team": "y"}
    mh("label", "ns", "blue", "team-", env=env)
    body = json.loads(mh("get", "ns", "blue", "-o", "json", env=env).stdout)
    assert not body["metadata"].get("labels")
    for bad in ("=x", "a b=c", "k=v v", "k=v=w", "a/b/c=1", "Bad_-"):
        proc = mh("label", "ns", "blue", bad, env=env)
        assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    missing = mh("label", "ns", "nope", "a=b", env=env)
    assert missing.returncode == 1 and "not found" in missing.stderr


@pytest.mark.parametrize("args", [
    ("--labels", "app=db,bad key=x"), ("--labels", "app"), ("--labels", "k=" + "v" * 64),
    ("--port", "http"), ("--port", "http=0"), ("--port", "http=80/ICMP"),
    ("--port", "Bad_Name=80"), ("--port", "x" * 16 + "=80"),
])
def test_pod_run_refuses_bad_labels_and_ports_in_one_line(mh: Cli, tmp_path: Path,
                                                          args: tuple[str, str]) -> None:
    proc = mh("pod", "run", "p", "-n", "blue", *args, env=_env(tmp_path))
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "No resources found" in mh("get", "pods", "-n", "blue", env=_env(tmp_path)).stderr
