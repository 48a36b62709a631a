"""The daemon under hostile or unlucky conditions: nested plugin calls, bad clients,
SIGTERM with clients connected, DEL under load. Every case ends in a reply or an exit
within a bound, never a hang."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from support.cni_exec import run_cni
from support.daemon_world import NOTHING, Node
from support.netns import Netns, unique

pytestmark = pytest.mark.netns

GO_PTP = Path("/usr/lib/cni/ptp")


def _connect(s: socket.socket, path: str, within: float = 10.0) -> None:
    """connect(2) to a unix socket whose accept backlog may be full for a moment (EAGAIN
    when the acceptor lags behind many held connections on a loaded machine)."""
    deadline = time.monotonic() + within
    while True:
        try:
            s.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def raw_request(node: Node, data: bytes, *, read_timeout: float = 30) -> bytes:
    """Send `data` as it is, half-close, and return everything the daemon answers."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(read_timeout)
    try:
        _connect(s, node.socket)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
        return reply
    finally:
        s.close()


def post(body: bytes, *headers: str) -> bytes:
    head = "POST /cni HTTP/1.1\r\nHost: x\r\n" + "".join(f"{h}\r\n" for h in headers)
    return head.encode() + b"\r\n" + body


def cni_error(reply: bytes) -> dict[str, Any]:
    """The CNI error of an HTTP reply (status line must be a 4xx/5xx or a 200 with code 1)."""
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), reply[:200]
    assert b"x-cni-code: 1" in head.lower(), head
    err: dict[str, Any] = json.loads(body)
    assert isinstance(err["code"], int) and err["msg"]
    return err


def write_ptp_default(node: Node) -> None:
    """The default network is the Go ptp plugin; its IPAM `host-local` is our shim."""
    os.symlink(GO_PTP, node.extra_bin / "ptp")
    (node.conf_dir / "10-cluster.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "cluster",
        "plugins": [{"type": "ptp", "ipam": {"type": "host-local",
                                             "ranges": [[{"subnet": "10.66.0.0/24"}]],
                                             "dataDir": str(node.ipam)}}]}))


@pytest.mark.skipif(not GO_PTP.exists(), reason="needs containernetworking-plugins' ptp")
@pytest.mark.parametrize("workers", ["1", "4"])
def test_go_delegate_calling_our_shim_for_ipam_is_served(node: Node, netns: Netns,
                                                         workers: str) -> None:
    """ptp exec's host-local, which resolves to multihome's shim and asks the daemon while
    the pod's ADD (same container) is still running there: that nested call is served."""
    write_ptp_default(node)
    node.start("--workers", workers, "--queue", "0")
    cid = unique("c")
    result = node.cni("ADD", cid, netns, timeout=60).ok()
    assert result["ips"][0]["address"] == "10.66.0.2/24"
    assert netns.run("ip", "-o", "-4", "addr", "show", "eth0").stdout.split()[3] == \
        "10.66.0.2/24"
    metrics = (node.get("/metrics") or b"").decode()
    assert 'multihome_cni_requests_total{command="ADD",type="host-local",result="ok"} 1' \
        in metrics
    assert "nested=True" in node.log()
    node.cni("DEL", cid, netns, timeout=60).ok()
    assert node.leftovers(netns) == NOTHING


def test_sigterm_ends_the_daemon_within_the_grace_whatever_runs(node: Node,
                                                                netns: Netns) -> None:
    """An ADD that never finishes and idle clients do not keep a stopping daemon alive."""
    node.write_default(hold=True)
    node.hold()
    proc = node.start("--shutdown-grace", "1")
    add = node.cni_background("ADD", "g1", netns)
    node.wait_holding("g1")
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.connect(node.socket)  # connected, never sends a byte
    half = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    half.connect(node.socket)
    half.sendall(b"POST /cni HTTP/1.1\r\nContent-Length: 100\r\n\r\n{")
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        idle.close()
        half.close()
        node.release()
    add.communicate(timeout=60)
    assert add.returncode == 1  # the runtime's DEL cleans up what the ADD left
    node.cni("DEL", "g1", netns).ok()
    assert node.leftovers(netns) == NOTHING


def _closed_by_peer(sock: socket.socket) -> bool:
    """The daemon closed the connection: EOF, or a reset when bytes we sent were still
    unread in its buffer (the kernel answers a close with unread data with RST)."""
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True


def test_idle_and_slow_connections_time_out(node: Node) -> None:
    node.write_default()
    node.start()
    idle = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    idle.settimeout(30)
    idle.connect(node.socket)
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.settimeout(30)
    slow.connect(node.socket)
    try:
        # a byte every second stays under any per-read timeout; the whole request may not
        head = b"POST /cni HTTP/1.1\r\nHost: x\r\n"
        sent = 0
        for byte in head:
            try:
                slow.send(bytes([byte]))
            except OSError:
                break  # the daemon closed it already
            sent += 1
            time.sleep(1)
        assert sent < len(head), "the daemon waited for the whole slow request"
        assert _closed_by_peer(slow)
        assert _closed_by_peer(idle)  # closed by the daemon, long before our 30 s
    finally:
        idle.close()
        slow.close()
    assert node.get("/healthz") == b"ok\n"


@pytest.mark.parametrize("headers, status", [
    (("Content-Length: -1",), b"400"),
    (("Content-Length: abc",), b"400"),
    (("Content-Length: 1e3",), b"400"),
    (("Content-Length: " + "9" * 5000,), b"400"),
    (("Content-Length: 99999999999",), b"413"),
    (("Content-Length: 4194305",), b"413"),
    ((), b"411"),
    (("Transfer-Encoding: chunked",), b"411"),
    (("Transfer-Encoding: chunked", "Content-Length: 2"), b"411"),
    (("Content-Length: 2", "Content-Length: 3"), b"400"),
    (("Content-Length: 500",), b"400"),  # the body ends (half-close) before 500 bytes
])
def test_body_limit_holds_for_every_content_length(node: Node, headers: tuple[str, ...],
                                                   status: bytes) -> None:
    node.write_default()
    node.start()
    reply = raw_request(node, post(b"{}", *headers))
    assert reply.split(b"\r\n")[0].split(b" ")[1] == status, reply[:300]
    assert cni_error(reply)["code"] == 6
    assert node.get("/healthz") == b"ok\n"


def _deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize("body", [
    b"null", b"[]", b"42", b'"text"', b"true", b"{}", b'{"env": []}',
    b'{"env": {"CNI_COMMAND": 1}}', b'{"env": {}, "type": ["bridge"]}',
    b'{"env": {}, "netns": 1e400}', b'{"env": {}, "netns": -1}',
    b'{"env": {}, "netns": "x"}', b'{"env": {}, "netns": true}',
    b'{"env": {}, "stdin": {"a": 1}}', b'{"env": {}, "stdinBase64": 5}',
    b'{"env": {}, "stdinBase64": "!!"}', b"\xff\xfe{", b'{"env": {"\xff": "x"}}',
    _deep(100000).encode(), ('{"env": {}, "x": ' + _deep(50000) + "}").encode(),
    b"{" * 3_000_000,
])
def test_malformed_requests_get_an_error_reply(node: Node, body: bytes) -> None:
    node.write_default()
    node.start()
    reply = raw_request(node, post(body, f"Content-Length: {len(body)}"))
    assert cni_error(reply)["code"] in (4, 6, 7), reply[:300]
    assert node.get("/healthz") == b"ok\n"
    assert "Traceback" not in node.log()


def test_deeply_nested_cni_config_is_a_config_error(node: Node, netns: Netns) -> None:
    node.write_default()
    node.start()
    conf = '{"cniVersion": "1.0.0", "name": "x", "type": "bridge", "deep": ' + \
        _deep(20000) + "}"
    for exe in ("bridge", "multihome"):
        res = run_cni(node.installed / exe, "ADD", conf.encode(), container_id=unique("c"),
                      netns=netns.path, cni_path=node.installed, host_ns=node.ns,
                      env={"MULTIHOME_SOCKET": node.socket})
        assert res.returncode == 1
        assert res.json["code"] in (6, 7), res.stdout[:300]
    assert node.get("/healthz") == b"ok\n"


def test_metrics_labels_come_from_a_bounded_set(node: Node) -> None:
    node.write_default()
    node.start()
    for i in range(5):
        body = json.dumps({"type": f"made-up-{i}", "env": {"CNI_COMMAND": f"CMD{i}"},
                           "stdin": "{}"}).encode()
        raw_request(node, post(body, f"Content-Length: {len(body)}"))
    metrics = (node.get("/metrics") or b"").decode()
    assert "made-up" not in metrics and "CMD" not in metrics
    assert 'multihome_cni_requests_total{command="other",type="other",result="error"} 5' \
        in metrics


def test_past_the_connection_cap_add_is_busy_and_del_still_succeeds(node: Node,
                                                                     netns: Netns) -> None:
    node.write_default()
    node.start("--workers", "1", "--queue", "0")  # cap: max(3 * (1 + 0) + 16, 256)
    cid = unique("c")
    node.cni("ADD", cid, netns).ok()
    held = []
    try:
        for _ in range(256):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            _connect(s, node.socket)
            held.append(s)
        # the acceptor takes connections in order: these are counted before the next
        reply = raw_request(node, post(b"{}", "Content-Length: 2"))
        assert reply.startswith(b"HTTP/1.1 503"), reply[:200]
        assert cni_error(reply)["code"] == 11
        busy = node.cni("ADD", unique("c"), netns)
        assert busy.returncode == 1 and busy.json["code"] == 11
        node.cni("DEL", cid, netns).ok()  # refused unread: the shim runs it in-process
        assert node.leftovers(netns) == NOTHING
    finally:
        for s in held:
            s.close()
    deadline = time.monotonic() + 10
    while node.get("/healthz") != b"ok\n":  # served again once they are gone
        assert time.monotonic() < deadline
        time.sleep(0.1)
