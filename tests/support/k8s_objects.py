"""Objects and a kubeconfig for the fast client checks against support.fake_apiserver."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multihome.store import NAD
from support.fake_apiserver import FakeApiServer
from support.kube import wait_until

PODS = "/api/v1/namespaces/default/pods"
NADS = "/apis/k8s.cni.cncf.io/v1/namespaces/default/network-attachment-definitions"


def pod(name: str, node: str = "node-a", ns: str = "default") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns}, "spec": {"nodeName": node}}


def nad(name: str, config: dict[str, Any] | None = None) -> dict[str, Any]:
    conf = config or {"cniVersion": "1.0.0", "type": "bridge", "bridge": "br-x"}
    return {"apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD,
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"config": json.dumps(conf)}}


def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    """Until `cond()` holds, at most `timeout` seconds (watch caches catch up quickly)."""
    wait_until(cond, timeout, "condition", interval=0.02)


def kubeconfig(tmp_path: Path, server: FakeApiServer) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": server.url}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
    }))
    return path
