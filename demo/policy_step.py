"""The demo's MultiNetworkPolicy step: one allowed and one denied flow on bridge-dev.

Called by lab_demo.py while its two pods run: vm-b is labelled app=db, the policy
examples/multi-policy-bridge-dev.yml lets app=db pods be reached on bridge-dev from the
pod range but not from the external host; a ping from vm-a passes, one from the external
host is dropped, and passes again once the policy is deleted.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

POLICY = Path(__file__).resolve().parent.parent / "examples" / "multi-policy-bridge-dev.yml"


def _external_ping(external_netns: str, target: str) -> bool:
    cmd = ["ip", "netns", "exec", external_netns, "ping", "-c", "1", "-W", "2", target]
    print(f"$ {' '.join(cmd)}   # from the external host", flush=True)
    ok = subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    print("  → reply" if ok else "  → no reply (dropped by the policy)", flush=True)
    return ok


def run(mh: Callable[..., subprocess.CompletedProcess[str]], step: Callable[[str], Any],
        namespace: str, external_netns: str, client: str, server: str,
        server_address: str) -> None:
    step("5a. MultiNetworkPolicy on bridge-dev: an allowed and a denied flow")
    mh("label", "pod", server, "app=db", "-n", namespace)
    print(POLICY.read_text().rstrip())
    mh("apply", "-f", str(POLICY))
    mh("get", "multi-networkpolicy", "-n", namespace)
    mh("describe", "multi-policy", "db-from-pods", "-n", namespace)
    print("allowed: a pod in 10.250.0.0/24 →", server)
    mh("pod", "exec", client, "-n", namespace, "--", "ping", "-c", "1", "-W", "2",
       server_address)
    print("denied: the external host (the except entry) →", server)
    if _external_ping(external_netns, server_address):
        raise SystemExit("demo failed: the policy did not drop the external host's ping")
    mh("delete", "-f", str(POLICY))
    if not _external_ping(external_netns, server_address):
        raise SystemExit("demo failed: the ping still fails after the policy was deleted")
