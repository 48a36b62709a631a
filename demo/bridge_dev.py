"""The issue-2 lab: two namespaces joined by the seed's bridge-dev network, pinging.

The seed NetworkAttachmentDefinition (examples/linux-bridge-dev.yml) is used as written;
only a host-local IPAM section is added so the two "pods" get addresses. Everything goes
through the installed `cnv-bridge` executable with plain CNI variables, as a container
runtime would drive it. Addresses exist only inside the two namespaces.

    .venv/bin/python demo/bridge_dev.py           run the demo (cleans up on any exit)
    .venv/bin/python demo/bridge_dev.py --clean   remove what a killed demo left behind
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
SEED_FILE = REPO / "examples" / "linux-bridge-dev.yml"
STATE = Path("/run/multihome-demo")
BIN_DIR = STATE / "bin"
STATE_FILE = STATE / "state.json"
PODS = {"mh-demo-a": "net1", "mh-demo-b": "net1"}
SUBNET = "10.200.0.0/24"


def step(text: str) -> None:
    print(f"\n\033[1m==> {text}\033[0m", flush=True)


def sh(*argv: str, check: bool = True, show: bool = False) -> subprocess.CompletedProcess[str]:
    if show:
        print("$ " + " ".join(argv), flush=True)
    proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    if show:
        print((proc.stdout + proc.stderr).rstrip(), flush=True)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {proc.stderr.strip()}")
    return proc


def seed_config() -> dict[str, Any]:
    nad = yaml.safe_load(SEED_FILE.read_text())
    config: dict[str, Any] = json.loads(nad["spec"]["config"])
    return config


def demo_config() -> dict[str, Any]:
    """The seed config plus an address range (the seed itself is L2 only)."""
    return {**seed_config(), "ipam": {"type": "host-local", "dataDir": str(STATE / "ipam"),
                                      "ranges": [[{"subnet": SUBNET}]]}}


def cni(command: str, pod: str, conf: dict[str, Any]) -> dict[str, Any] | None:
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
           "CNI_COMMAND": command, "CNI_CONTAINERID": pod, "CNI_IFNAME": PODS[pod],
           "CNI_PATH": str(BIN_DIR)}
    if Path(f"/var/run/netns/{pod}").exists():
        env["CNI_NETNS"] = f"/var/run/netns/{pod}"
    proc = subprocess.run([str(BIN_DIR / "cnv-bridge")], input=json.dumps(conf), env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"cnv-bridge {command} for {pod} failed: {proc.stdout.strip()}")
    return json.loads(proc.stdout) if proc.stdout.strip() else None


def has_link(name: str) -> bool:
    return sh("ip", "link", "show", "dev", name, check=False).returncode == 0


def bridge_nat_rules() -> int | None:
    """Number of rules in `bridge nat`, None when the table does not exist."""
    out = sh("nft", "-j", "list", "table", "bridge", "nat", check=False)
    if out.returncode != 0:
        return None
    return sum(1 for item in json.loads(out.stdout)["nftables"] if "rule" in item)


def install() -> None:
    subprocess.run([sys.executable, "-c", "from multihome.cli.main import main; main()",
                    "install-cni", "--bin-dir", str(BIN_DIR)], check=True)


def clean() -> None:
    """Undo everything a demo (even a killed one) made; safe to run any number of times."""
    state: dict[str, Any] = {}
    if STATE_FILE.exists():
        state = json.loads(STATE_FILE.read_text())
    if STATE.exists():
        if not (BIN_DIR / "cnv-bridge").exists():
            install()
        for pod in PODS:
            try:
                cni("DEL", pod, demo_config())
            except RuntimeError as e:
                print(f"warning: {e}", file=sys.stderr)
    for pod in PODS:
        if Path(f"/var/run/netns/{pod}").exists():
            sh("ip", "netns", "del", pod, check=False)
    bridge = seed_config()["bridge"]
    # Only what the demo created: a dev-bridge or nft table that was there before stays.
    if state.get("created_bridge") and has_link(bridge):
        sh("ip", "link", "del", bridge, check=False)
    if state.get("created_bridge_nat") and bridge_nat_rules() == 0:
        sh("nft", "delete", "table", "bridge", "nat", check=False)
    shutil.rmtree(STATE, ignore_errors=True)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run() -> None:
    conf = demo_config()
    bridge = conf["bridge"]
    STATE.mkdir(parents=True, exist_ok=True)
    STATE_FILE.write_text(json.dumps({"created_bridge": not has_link(bridge),
                                      "created_bridge_nat": bridge_nat_rules() is None}))

    step(f"The seed NetworkAttachmentDefinition ({SEED_FILE.relative_to(REPO)})")
    print(SEED_FILE.read_text().rstrip())
    step(f"Install the plugin executables: multihome install-cni --bin-dir {BIN_DIR}")
    install()
    print("  " + " ".join(sorted(p.name for p in BIN_DIR.iterdir())))

    step("Two pods (network namespaces) join bridge-dev through cnv-bridge, host-local "
         f"{SUBNET}")
    ips: dict[str, str] = {}
    for pod, ifname in PODS.items():
        sh("ip", "netns", "add", pod)
        sh("ip", "-n", pod, "link", "set", "lo", "up")
        result = cni("ADD", pod, conf)
        assert result is not None
        ips[pod] = result["ips"][0]["address"].split("/")[0]
        print(f"  {pod}: CNI ADD {ifname} -> {result['ips'][0]['address']} on "
              f"{result['interfaces'][0]['name']}, mac {result['interfaces'][2]['mac']}")

    a, b = list(PODS)
    step(f"ip address inside {a}")
    sh("ip", "netns", "exec", a, "ip", "address", show=True)
    step(f"Ports of {bridge} and the macspoofchk rules (nft table bridge nat)")
    sh("ip", "-br", "link", "show", "master", bridge, show=True)
    sh("nft", "list", "table", "bridge", "nat", show=True)
    step(f"{a} pings {b} over bridge-dev")
    ping = sh("ip", "netns", "exec", a, "ping", "-c", "3", "-W", "1", ips[b], show=True,
              check=False)
    if ping.returncode != 0:
        raise RuntimeError(f"{a} cannot reach {b} at {ips[b]}")

    step("CNI DEL of both attachments")
    for pod in PODS:
        cni("DEL", pod, conf)
        print(f"  {pod}: CNI DEL {PODS[pod]} ok")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", action="store_true", help="remove demo leftovers")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("the demo creates namespaces and a bridge: run it as root", file=sys.stderr)
        return 1
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _stop)
    if args.clean:
        clean()
        return 0
    clean()  # a previous run that was killed hard (SIGKILL) may have left something
    try:
        run()
        step("Demo finished: two namespaces pinged each other over bridge-dev")
        return 0
    except (RuntimeError, subprocess.CalledProcessError, KeyboardInterrupt) as e:
        print(f"\ndemo failed: {e}", file=sys.stderr)
        return 1
    finally:
        step("Clean up")
        clean()
        print("  removed the namespaces, the demo's bridge and rules, and its state")


if __name__ == "__main__":
    sys.exit(main())
