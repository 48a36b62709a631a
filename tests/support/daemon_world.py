"""A node for daemon tests: a namespace playing the node, a daemon in it, the shim exec'ed
there as a runtime would, and an accounting of what attachments leave behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multihome.daemon.autoconf import CONFIG_NAME
from support.cni_exec import CNIOutcome, node_env, run_cni
from support.netns import Netns

MULTIHOME = str(Path(sys.executable).parent / "multihome")

# A chained plugin that holds ADD while its hold file exists (and says so in a marker
# file), so a test can act while a request is in the middle of its work.
HOLD_PLUGIN = """#!/bin/sh
conf=$(cat)
case "$CNI_COMMAND" in
VERSION) echo '{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}'; exit 0;;
ADD)
  dir=$(dirname "$0")
  touch "$dir/holding-$CNI_CONTAINERID"
  while [ -e "$dir/hold" ]; do sleep 0.05; done
  printf '%s' "$conf" | python3 -c \
    'import json,sys; print(json.dumps(json.load(sys.stdin)["prevResult"]))'
  ;;
esac
exit 0
"""


@dataclass
class Node:
    ns: Netns
    tmp: Path
    installed: Path
    bridge: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    # where a daemon started with --multus-config listens (its file names the socket)
    multus_socket: str = ""

    @property
    def socket(self) -> str:
        return self.multus_socket or str(self.tmp / "run" / "mh.sock")

    @property
    def conf_dir(self) -> Path:
        return self.tmp / "net.d"

    @property
    def extra_bin(self) -> Path:
        return self.tmp / "bin"

    @property
    def cache(self) -> Path:
        return self.tmp / "cache"

    @property
    def ipam(self) -> Path:
        return self.tmp / "ipam"

    def write_default(self, *, hold: bool = False, subnet: str = "10.62.0.0/24") -> Path:
        plugins: list[dict[str, Any]] = [{
            "type": "bridge", "bridge": self.bridge, "isGateway": True, "macspoofchk": True,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]],
                     "dataDir": str(self.ipam)}}]
        if hold:
            plugins.append({"type": "mh-hold"})
        path = self.conf_dir / "10-cluster.conflist"
        path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "cluster",
                                    "plugins": plugins}))
        return path

    def start(self, *extra: str) -> subprocess.Popen[bytes]:
        log = open(self.tmp / "daemon.log", "ab")  # noqa: SIM115 (the child owns it)
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns.name, MULTIHOME, "daemon", "--socket", self.socket,
             "--conf-dir", str(self.conf_dir), "--bin-dir", str(self.installed),
             "--cni-dir", str(self.cache), *extra],
            stdout=log, stderr=log, start_new_session=True)
        log.close()
        self.procs.append(proc)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"daemon exited: {self.log()}"
            if os.path.exists(self.socket) and self.get("/healthz") == b"ok\n":
                return proc
            time.sleep(0.05)
        raise AssertionError(f"daemon did not start: {self.log()}")

    def get(self, url: str) -> bytes | None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.socket)
            s.sendall(f"GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        except OSError:
            return None
        finally:
            s.close()
        return data.partition(b"\r\n\r\n")[2]

    def log(self) -> str:
        path = self.tmp / "daemon.log"
        return path.read_text() if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)

    def plugin_conf(self) -> dict[str, Any]:
        """The multihome plugin's stdin as a runtime builds it from our conflist."""
        conflist = json.loads((self.conf_dir / CONFIG_NAME).read_text())
        return {**conflist["plugins"][0], "name": conflist["name"],
                "cniVersion": conflist["cniVersion"]}

    def cni(self, command: str, cid: str, pod: Netns | None, *, exe: str = "multihome",
            conf: dict[str, Any] | None = None, env: dict[str, str] | None = None,
            timeout: float = 120) -> CNIOutcome:
        return run_cni(self.installed / exe, command, conf or self.plugin_conf(),
                       container_id=cid, netns=pod.path if pod else "", ifname="eth0",
                       cni_path=f"{self.extra_bin}:{self.installed}", host_ns=self.ns,
                       cni_args=f"IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={cid}",
                       env=env, timeout=timeout)

    def cni_background(self, command: str, cid: str, pod: Netns) -> subprocess.Popen[bytes]:
        env = {"PATH": os.environ["PATH"], **node_env(), "CNI_COMMAND": command,
               "CNI_CONTAINERID": cid,
               "CNI_NETNS": pod.path, "CNI_IFNAME": "eth0",
               "CNI_PATH": f"{self.extra_bin}:{self.installed}"}
        stdin = self.tmp / f"stdin-{command}-{cid}.json"
        stdin.write_text(json.dumps(self.plugin_conf()))
        with open(stdin, "rb") as f:
            return subprocess.Popen(["ip", "netns", "exec", self.ns.name,
                                     str(self.installed / "multihome")], env=env,
                                    stdin=f, stdout=subprocess.PIPE)

    def hold(self) -> None:
        (self.extra_bin / "hold").touch()

    def release(self) -> None:
        (self.extra_bin / "hold").unlink(missing_ok=True)

    def wait_holding(self, cid: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not (self.extra_bin / f"holding-{cid}").exists():
            assert time.monotonic() < deadline, f"ADD of {cid} never reached mh-hold"
            time.sleep(0.05)

    def leftovers(self, pod: Netns) -> dict[str, Any]:
        """Everything an attachment leaves: pod links, bridge ports, IPs, cache files."""
        pod_links = [ln.split(":")[1].strip().split("@")[0] for ln in
                     pod.run("ip", "-o", "link", "show").stdout.splitlines()]
        ports = self.ns.run("ip", "-o", "link", "show", "master", self.bridge,
                            check=False).stdout.strip()
        ips = [p.name for p in self.ipam.rglob("*") if p.name[0].isdigit()]
        caches = [str(p.relative_to(self.cache)) for p in self.cache.rglob("*") if p.is_file()]
        return {"pod links": [n for n in pod_links if n != "lo"], "bridge ports": ports,
                "ips": ips, "cache": caches}


NOTHING = {"pod links": [], "bridge ports": "", "ips": [], "cache": []}
