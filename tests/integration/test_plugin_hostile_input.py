"""Every installed plugin executable answers hostile input with a CNI error JSON on stdout.

Whatever arrives on stdin or in the CNI variables (nesting deeper than the interpreter's
recursion limit, invalid UTF-8, NaN, a config bigger than any real one, the wrong JSON
type for a key, garbage in CNI_ARGS), the runtime must get `{"cniVersion","code","msg"}`
with a known code and a non-zero exit, and never a Python traceback. The executables run
inside a namespace that plays the node, so even a call that got further could not touch
the host.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from multihome.cni import jsontext
from multihome.plugins.registry import BUILTIN
from support.cni_exec import run_cni
from support.netns import Netns

pytestmark = pytest.mark.netns

DEEP = b"[" * 200_000 + b"]" * 200_000
HOSTILE_STDIN: dict[str, bytes] = {
    "deep nesting": DEEP,
    "deep nesting in a key": b'{"cniVersion": "1.0.0", "name": "n", "type": "T", "x": '
                             + DEEP + b"}",
    # the shim parses the config itself when it may name the daemon's socket
    "deep nesting beside socketPath": b'{"socketPath": ' + DEEP + b"}",
    "invalid UTF-8": b'{"cniVersion": "1.0.0", "name": "\xff\xfe", "type": "T"}',
    "NaN": b'{"cniVersion": "1.0.0", "name": "n", "type": "T", "mtu": NaN}',
    "a number of 5000 digits": b'{"cniVersion": "1.0.0", "name": "n", "type": "T", "mtu": '
                               + b"9" * 5000 + b"}",
    "bigger than any config": b'{"x": "' + b"a" * (jsontext.MAX_BYTES + 10) + b'"}',
    "a list": b"[1, 2, 3]",
    "null": b"null",
    "empty": b"",
    "version as a list": b'{"cniVersion": ["1.0.0"], "name": "n", "type": "T"}',
    "name as a number": b'{"cniVersion": "1.0.0", "name": 7, "type": "T"}',
    "ipam as a list": b'{"cniVersion": "1.0.0", "name": "n", "type": "T", "ipam": []}',
    "prevResult as a string": b'{"cniVersion": "1.0.0", "name": "n", "type": "T", '
                              b'"prevResult": "x"}',
    "mtu as a huge integer": b'{"cniVersion": "1.0.0", "name": "n", "type": "T", '
                             b'"mtu": 18446744073709551617, "master": "eth0", '
                             b'"device": "eth0", "deviceID": "ffff:ff:1f.7"}',
}
KNOWN_CODES = {1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999}
BAD_CNI_ARGS = ["=", "a", ";;=x", "IgnoreUnknown=perhaps", "IP=10.1.0.1/99;IgnoreUnknown=1",
                "MAC=\udcff\udcfe", "K8S_POD_NAME=" + "x" * 10_000]


def assert_cni_error(exe: Path, out: object, what: str) -> dict[str, object]:
    stdout, stderr, rc = out.stdout, out.stderr, out.returncode  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, f"{exe.name} on {what}: {stderr[-2000:]}"
    assert rc != 0, f"{exe.name} accepted {what}: {stdout[:300]}"
    err = json.loads(stdout)
    assert set(err) <= {"cniVersion", "code", "msg", "details"}, err
    assert err["code"] in KNOWN_CODES and isinstance(err["msg"], str) and err["msg"], err
    return err  # type: ignore[no-any-return]


@pytest.mark.parametrize("plugin", sorted(BUILTIN))
def test_hostile_stdin_gets_a_cni_error(cni_bin_dir: Path, host_ns: Netns, tmp_path: Path,
                                        plugin: str) -> None:
    exe = cni_bin_dir / plugin
    # nothing answers there: the executable runs the plugin itself, as on a node without
    # the daemon (a daemon another test started must not serve these calls)
    env = {"MULTIHOME_SOCKET": str(tmp_path / "no-daemon.sock")}
    for what, stdin in HOSTILE_STDIN.items():
        stdin = stdin.replace(b'"T"', json.dumps(plugin).encode())
        for command in ("ADD", "DEL"):
            out = run_cni(exe, command, stdin, container_id="hostile", netns="/nonexistent",
                          ifname="eth9", cni_path=cni_bin_dir, host_ns=host_ns, env=env)
            undecodable = what.startswith(("deep", "invalid UTF-8", "NaN", "a number", "big"))
            if command == "DEL" and not undecodable and out.returncode == 0:
                # DEL is best effort: a plugin that needs no key of the config to undo
                # (macvtap) may succeed; it still prints nothing and no traceback
                assert out.stdout == "" and "Traceback" not in out.stderr, out
                continue
            err = assert_cni_error(exe, out, f"{command} with {what}")
            if undecodable:
                assert err["code"] == 6, (what, err)


@pytest.mark.parametrize("plugin", sorted(BUILTIN))
def test_garbage_cni_args_gets_a_cni_error(cni_bin_dir: Path, host_ns: Netns, tmp_path: Path,
                                           plugin: str) -> None:
    exe = cni_bin_dir / plugin
    env = {"MULTIHOME_SOCKET": str(tmp_path / "no-daemon.sock")}
    conf = {"cniVersion": "1.0.0", "name": "n", "type": plugin, "master": "eth0",
            "device": "eth0", "deviceID": "ffff:ff:1f.7",
            "ipam": {"type": "static", "addresses": [{"address": "10.1.0.2/24"}]}}
    for args in BAD_CNI_ARGS:
        out = run_cni(exe, "ADD", conf, container_id="hostile", netns="/nonexistent",
                      ifname="eth9", cni_path=cni_bin_dir, cni_args=args, host_ns=host_ns,
                      env=env)
        assert_cni_error(exe, out, f"CNI_ARGS {args[:40]!r}")
