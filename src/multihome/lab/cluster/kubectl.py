"""The lab's own kubectl calls, with the admin kubeconfig and a bound on every call."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from multihome.lab.cluster.layout import ClusterLayout
from multihome.lab.cluster.procs import ClusterError


def run(layout: ClusterLayout, *args: str, input_text: str | None = None,
        timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess[str]:
    argv = [str(layout.bins.path("kubectl")), "--kubeconfig", str(layout.kubeconfig("admin")),
            *args]
    proc = subprocess.run(argv, input=input_text, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args[:3])} failed: "
                           f"{(proc.stderr or proc.stdout).strip()[:400]}")
    return proc


def apply(layout: ClusterLayout, docs: list[dict[str, Any]]) -> None:
    run(layout, "apply", "-f", "-", input_text="\n".join(json.dumps(d) for d in docs))


def create_token(layout: ClusterLayout, namespace: str, account: str,
                 duration: str = "48h") -> str:
    """A TokenRequest token of the ServiceAccount (what its pods would be given)."""
    return run(layout, "create", "token", account, "-n", namespace,
               "--duration", duration).stdout.strip()
