#!/usr/bin/env python3
"""The issue-3 demo: the seed NAD in the local lab, as a user would type it.

Runs `multihome` commands one after another and prints each with its output:
lab up (external network) → dev-bridge from examples/dev-bridge-policy.yml (NNCP,
enacted on this node, NNCE shown) → apply the seed NAD (verbatim) → get
net-attach-def → two pods on bridge-dev → `ip address` in one → their
network-status → ping pod↔pod and pod→external host over net1 → a pod in another
namespace refused under namespace isolation → a MultiNetworkPolicy on bridge-dev: a
ping from a pod allowed, one from the external host dropped → a VM → cleanup.

The seed NAD has no IPAM, so net1 comes up without an address, exactly as in
OpenShift Virtualization where the VM guest addresses its NIC. The demo plays the
guest: `pod run --address net1=...` sets the address inside the pod after attach,
and says so (it is not part of the CNI result or the network-status).

Usage: demo/lab_demo.py [--clean]   (--clean only removes leftovers of an earlier run)
State: $MULTIHOME_DEMO_DIR (default /tmp/multihome-demo): store, cache, IPAM data.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import hotplug_step  # demo/hotplug_step.py: a running pod gains and loses an interface
import policy_step  # demo/policy_step.py: a MultiNetworkPolicy's allowed and denied flows
import vm_step  # demo/vm_step.py: the VM on bridge-dev (runs from demo/, so it is importable)

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "examples" / "linux-bridge-dev.yml"
POLICY = ROOT / "examples" / "dev-bridge-policy.yml"
STATE = Path(os.environ.get("MULTIHOME_DEMO_DIR", "/tmp/multihome-demo"))
NS = "multus-test"
PODS = {"vm-a": "10.250.0.10/24", "vm-b": "10.250.0.11/24"}
EXTERNAL_HOST = "10.250.0.1"
EXTERNAL_NETNS = "mh-external"  # `lab up`'s default external network namespace


def _multihome() -> list[str]:
    exe = Path(sys.executable).parent / "multihome"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "multihome.cli.main"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["MULTIHOME_STATE_DIR"] = str(STATE / "lab")
    env["MULTIHOME_STORE"] = str(STATE / "store.db")
    return env


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def mh(*args: str, expect_rc: int | None = 0,
       quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `multihome ARGS` as a user would, show it, and check the exit code."""
    if not quiet:
        print(f"$ multihome {shlex.join(args)}", flush=True)
    proc = subprocess.run([*_multihome(), *args], capture_output=True, text=True, env=_env(),
                          cwd=ROOT, timeout=120)
    if not quiet:
        for text in (proc.stdout, proc.stderr):
            if text.strip():
                print(text.rstrip(), flush=True)
    if expect_rc is not None and proc.returncode != expect_rc:
        raise SystemExit(f"demo failed: `multihome {shlex.join(args)}` exited "
                         f"{proc.returncode}, expected {expect_rc}")
    return proc


def clean(quiet: bool) -> None:
    """Remove whatever an earlier run left (pods, bridges, namespaces, state)."""
    if (STATE / "store.db").exists() or (STATE / "lab").exists():
        mh("lab", "down", quiet=quiet, expect_rc=None)
    shutil.rmtree(STATE, ignore_errors=True)


def main() -> int:
    if os.geteuid() != 0:
        print("the lab demo needs root (it creates namespaces and bridges)", file=sys.stderr)
        return 1
    if "--clean" in sys.argv[1:]:
        clean(quiet=False)
        return 0
    clean(quiet=True)
    STATE.mkdir(parents=True, exist_ok=True)
    try:
        step("1. the external network, then the node bridge dev-bridge from a policy")
        mh("lab", "up", "--dev-bridge-by-policy")
        print(POLICY.read_text().rstrip())
        mh("apply", "-f", str(POLICY.relative_to(ROOT)))
        mh("node", "enact")
        mh("get", "nncp")
        mh("get", "nnce", "-o", "wide")
        mh("node", "describe")

        step("2. the seed NAD, verbatim, in namespace multus-test")
        print(SEED.read_text().rstrip())
        mh("apply", "-f", str(SEED.relative_to(ROOT)), "-n", NS)
        mh("get", "net-attach-def", "-n", NS)

        step("3. two pods asking for bridge-dev")
        print("(bridge-dev has no IPAM: the demo sets net1's address inside each pod, as a VM "
              "guest would; it is marked 'guest-side' below)")
        for pod, address in PODS.items():
            mh("pod", "run", pod, "-n", NS, "--networks", "bridge-dev",
               "--address", f"net1={address}")
        mh("pod", "get", "-n", NS, "-o", "wide")
        mh("pod", "exec", "vm-a", "-n", NS, "--", "ip", "address")
        mh("pod", "describe", "vm-a", "-n", NS)

        step("4. traffic over net1: pod to pod, pod to the external host")
        peer = PODS["vm-b"].split("/")[0]
        mh("pod", "exec", "vm-a", "-n", NS, "--", "ping", "-c", "2", "-W", "2", peer)
        mh("pod", "exec", "vm-a", "-n", NS, "--", "ping", "-c", "2", "-W", "2", EXTERNAL_HOST)

        hotplug_step.run(mh, step, NS, "vm-a")

        step("5. a pod in another namespace may not use multus-test/bridge-dev")
        mh("pod", "run", "intruder", "-n", "other", "--networks", f"{NS}/bridge-dev",
           expect_rc=1)
        mh("pod", "get", "-A")

        policy_step.run(mh, step, NS, EXTERNAL_NETNS, "vm-a", "vm-b",
                        PODS["vm-b"].split("/")[0])

        vm_step.run(mh, step, NS, EXTERNAL_HOST, PODS["vm-b"].split("/")[0])

        step("6. cleanup")
        for pod in PODS:
            mh("pod", "delete", pod, "-n", NS)
    finally:
        mh("lab", "down", quiet=False)
        shutil.rmtree(STATE, ignore_errors=True)
    print("\ndemo finished: everything it made is removed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
