"""Driving the lab cluster from tests the way a person does: kubectl, with bounded waits."""

from __future__ import annotations

import functools
import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
TEST_IMAGE = "localhost/multihome/busybox:1"


class WaitTimeout(AssertionError):
    """A bounded wait ran out; the message says what was awaited and the last state."""


def wait_until(check: Callable[[], T | None], timeout: float, what: str,
               interval: float = 0.5, describe: Callable[[], str] | None = None) -> T:
    """Poll `check` until it returns something truthy, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            state = describe() if describe else ""
            raise WaitTimeout(f"{what}: not after {timeout:.0f} s. {state}")
        time.sleep(interval)


@dataclass(frozen=True)
class Kube:
    """kubectl against one cluster (the admin kubeconfig `multihome lab env` names)."""

    kubectl_path: str
    kubeconfig: str
    env: dict[str, str]

    def run(self, *args: str, input_text: str | None = None, check: bool = True,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.kubectl_path, "--kubeconfig", self.kubeconfig, *args],
                              input=input_text, capture_output=True, text=True,
                              timeout=timeout, check=False, env=self.env)
        if check and proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): "
                                 f"{proc.stderr.strip() or proc.stdout.strip()}")
        return proc

    def apply(self, *docs: dict[str, Any], namespace: str | None = None) -> str:
        ns = ["-n", namespace] if namespace else []
        return self.run("apply", *ns, "-f", "-",
                        input_text=yaml.safe_dump_all(list(docs))).stdout

    def get(self, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        ns = ["-n", namespace] if namespace else []
        proc = self.run("get", kind, name, *ns, "-o", "json", check=False)
        if proc.returncode != 0:
            return None
        obj: dict[str, Any] = json.loads(proc.stdout)
        return obj

    def items(self, kind: str, namespace: str | None = None,
              *selector: str) -> list[dict[str, Any]]:
        ns = ["-n", namespace] if namespace else ["-A"]
        out = json.loads(self.run("get", kind, *ns, *selector, "-o", "json").stdout)
        items: list[dict[str, Any]] = out["items"]
        return items

    def events(self, namespace: str, pod: str) -> list[dict[str, Any]]:
        return self.items("events", namespace,
                          f"--field-selector=involvedObject.name={pod}")

    def pod_phase(self, namespace: str, name: str) -> str:
        pod = self.get("pod", name, namespace)
        return str(pod["status"].get("phase", "")) if pod else ""

    def wait_running(self, namespace: str, *names: str, timeout: float = 120) -> None:
        for name in names:
            wait_until(functools.partial(self._running, namespace, name), timeout,
                       f"pod {namespace}/{name} Running",
                       describe=functools.partial(self.describe_pod, namespace, name))

    def _running(self, namespace: str, name: str) -> bool:
        return self.pod_phase(namespace, name) == "Running"

    def describe_pod(self, namespace: str, name: str) -> str:
        proc = self.run("describe", "pod", name, "-n", namespace, check=False)
        return proc.stdout[-2500:]

    def wait_gone(self, kind: str, name: str, namespace: str | None = None,
                  timeout: float = 90) -> None:
        wait_until(lambda: self.get(kind, name, namespace) is None, timeout,
                   f"{kind} {name} deleted")

    def exec(self, namespace: str, pod: str, *argv: str,
             check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.run("exec", "-n", namespace, pod, "--", *argv, check=check, timeout=60)

    def network_status(self, namespace: str, pod: str) -> list[dict[str, Any]]:
        obj = self.get("pod", pod, namespace) or {}
        text = obj.get("metadata", {}).get("annotations", {}).get(
            "k8s.v1.cni.cncf.io/network-status", "[]")
        status: list[dict[str, Any]] = json.loads(text)
        return status


def pod_manifest(name: str, networks: str | None = None, *, net_admin: bool = False,
                 node_name: str | None = None, extra_annotations: dict[str, str] | None = None,
                 tolerate_all: bool = False) -> dict[str, Any]:
    """A busybox pod that sleeps; `networks` is the k8s.v1.cni.cncf.io/networks value."""
    annotations = dict(extra_annotations or {})
    if networks is not None:
        annotations["k8s.v1.cni.cncf.io/networks"] = networks
    container: dict[str, Any] = {
        "name": "main", "image": TEST_IMAGE, "imagePullPolicy": "Never",
        "command": ["sleep", "3600"],
    }
    if net_admin:
        container["securityContext"] = {"capabilities": {"add": ["NET_ADMIN", "NET_RAW"]}}
    spec: dict[str, Any] = {"terminationGracePeriodSeconds": 0, "containers": [container]}
    if node_name:
        spec["nodeName"] = node_name
    if tolerate_all:
        spec["tolerations"] = [{"operator": "Exists"}]
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "annotations": annotations}, "spec": spec}


def namespace_manifest(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
