"""Exec of external plugins as libcni does it: lookup, environment, result and errors."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from multihome.cni.errors import CNIError, DecodingFailure, InternalError, InvalidConfig
from multihome.cni.invoke import exec_plugin, find_plugin, version_info
from multihome.cni.types import CmdArgs
from multihome.plugins import registry

GO_STATIC = Path("/usr/lib/cni/static")
ADD = CmdArgs("ADD", "ctr1", "/var/run/netns/none", "eth0", "", ("/usr/lib/cni",))


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_find_plugin_searches_paths_in_order(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    script(b, "foo", "exit 0\n")
    assert find_plugin("foo", [str(a), str(b)]) == str(b / "foo")
    script(a, "foo", "exit 0\n")
    assert find_plugin("foo", [str(a), str(b)]) == str(a / "foo")
    (a / "dir").mkdir()
    with pytest.raises(InvalidConfig, match="dir"):
        find_plugin("dir", [str(a)])


def test_find_plugin_errors_name_type_and_dirs(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig) as info:
        find_plugin("nothere", [str(tmp_path), "/nonexistent"])
    assert "nothere" in info.value.msg and str(tmp_path) in info.value.msg
    assert "/nonexistent" in info.value.msg
    with pytest.raises(InvalidConfig, match="CNI_PATH"):
        find_plugin("bridge", [])
    with pytest.raises(InvalidConfig, match="file name"):
        find_plugin("../bin/sh", ["/usr"])
    with pytest.raises(InvalidConfig):
        find_plugin("", ["/usr/lib/cni"])


@pytest.mark.skipif(not GO_STATIC.exists(), reason="containernetworking-plugins not installed")
def test_exec_go_static_add_and_version() -> None:
    conf = {"cniVersion": "1.0.0", "name": "s", "type": "static", "ipam": {
        "type": "static", "addresses": [{"address": "10.10.0.5/24", "gateway": "10.10.0.1"}]}}
    out = exec_plugin(find_plugin("static", ["/usr/lib/cni"]), ADD, json.dumps(conf).encode())
    assert out == {"cniVersion": "1.0.0", "ips": [{"address": "10.10.0.5/24",
                                                    "gateway": "10.10.0.1"}], "dns": {}}
    assert "1.0.0" in version_info(str(GO_STATIC))
    # the Go plugin refuses versions it does not know: its error JSON becomes code 1
    with pytest.raises(CNIError) as info:
        exec_plugin(str(GO_STATIC), ADD, json.dumps({**conf, "cniVersion": "1.1.0"}).encode())
    assert info.value.code == 1


def test_registry_delegates_unknown_types_by_exec(tmp_path: Path) -> None:
    assert "mh-ext-test" not in registry.BUILTIN
    script(tmp_path, "mh-ext-test", 'cat >/dev/null\necho \'{"cniVersion":"0.4.0","ips":'
                                    '[{"version":"4","address":"10.3.0.9/24"}]}\'\n')
    cmd = CmdArgs("ADD", "ctr1", "/var/run/netns/none", "eth0", "", (str(tmp_path),))
    result = registry.IN_PROCESS.run("mh-ext-test", cmd, {"cniVersion": "0.4.0", "name": "x",
                                                    "type": "mh-ext-test"})
    assert result is not None and str(result.ips[0].address) == "10.3.0.9/24"
    with pytest.raises(InvalidConfig, match="mh-ext-missing"):
        registry.IN_PROCESS.run("mh-ext-missing", cmd, {})


def test_error_json_on_stdout_becomes_that_error(tmp_path: Path) -> None:
    exe = script(tmp_path, "p", 'cat >/dev/null\necho \'{"cniVersion":"1.0.0","code":11,'
                              '"msg":"busy","details":"later"}\'\nexit 1\n')
    with pytest.raises(CNIError) as info:
        exec_plugin(str(exe), ADD, b"{}")
    assert (info.value.code, info.value.msg, info.value.details) == (11, "busy", "later")


def test_error_json_on_stderr_is_the_fallback(tmp_path: Path) -> None:
    exe = script(tmp_path, "p", 'cat >/dev/null\necho \'{"code":7,"msg":"bad conf"}\' >&2\n'
                              "exit 3\n")
    with pytest.raises(InvalidConfig, match="bad conf"):
        exec_plugin(str(exe), ADD, b"{}")


def test_plain_stderr_failure_is_quoted(tmp_path: Path) -> None:
    exe = script(tmp_path, "p", "cat >/dev/null\necho 'it went wrong' >&2\nexit 2\n")
    with pytest.raises(InternalError) as info:
        exec_plugin(str(exe), ADD, b"{}")
    assert "exit 2" in info.value.msg and "it went wrong" in info.value.details
    silent = script(tmp_path, "q", "exit 5\n")
    with pytest.raises(InternalError, match="no error message"):
        exec_plugin(str(silent), ADD, b"{}")


def test_garbage_outputs_are_decoding_failures(tmp_path: Path) -> None:
    bad_err = script(tmp_path, "a", "echo 'not json'\nexit 1\n")
    with pytest.raises(DecodingFailure):
        exec_plugin(str(bad_err), ADD, b"{}")
    bad_ok = script(tmp_path, "b", "echo 'not json'\n")
    with pytest.raises(DecodingFailure, match="not JSON"):
        exec_plugin(str(bad_ok), ADD, b"{}")
    array = script(tmp_path, "c", "echo '[1]'\n")
    with pytest.raises(DecodingFailure):
        exec_plugin(str(array), ADD, b"{}")


def test_empty_stdout_is_an_error_on_add_only(tmp_path: Path) -> None:
    exe = script(tmp_path, "p", "cat >/dev/null\nexit 0\n")
    with pytest.raises(DecodingFailure, match="printed nothing"):
        exec_plugin(str(exe), ADD, b"{}")
    for command in ("DEL", "CHECK", "GC", "STATUS"):
        assert exec_plugin(str(exe), CmdArgs(command, "c", "", "eth0"), b"{}") is None


def test_result_without_version_takes_the_config_version(tmp_path: Path) -> None:
    exe = script(tmp_path, "p", "cat >/dev/null\necho '{\"ips\":[{\"address\":\"10.0.0.2/8\"}]}'\n")
    out = exec_plugin(str(exe), ADD, b'{"cniVersion":"1.0.0"}')
    assert out is not None and out["cniVersion"] == "1.0.0"


def test_environment_and_stdin_reach_the_plugin(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    dump = tmp_path / "env.txt"
    exe = script(tmp_path, "p", f'cat > {tmp_path}/stdin.txt\nenv > {dump}\necho "{{}}"\n')
    # values we run with must not leak into the delegate's CNI variables
    monkeypatch.setenv("CNI_NETNS", "/leaked")
    monkeypatch.setenv("CNI_ARGS", "LEAK=1")
    monkeypatch.setenv("MH_MARKER", "kept")
    cmd = CmdArgs("DEL", "ctr9", "", "net3", "", ("/x", "/y"))
    exec_plugin(str(exe), cmd, b'{"a":1}')
    env = dict(line.split("=", 1) for line in dump.read_text().splitlines() if "=" in line)
    assert env["CNI_COMMAND"] == "DEL" and env["CNI_CONTAINERID"] == "ctr9"
    assert env["CNI_NETNS"] == "" and env["CNI_ARGS"] == ""
    assert env["CNI_IFNAME"] == "net3" and env["CNI_PATH"] == "/x:/y"
    assert env["MH_MARKER"] == "kept"
    assert (tmp_path / "stdin.txt").read_bytes() == b'{"a":1}'


def test_not_executable_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "noexec"
    path.write_text("#!/bin/sh\n")
    path.chmod(stat.S_IRUSR)
    if os.geteuid() == 0:
        path.chmod(0o644)  # root may read anything, but not exec without an x bit
    with pytest.raises(InternalError, match="cannot execute"):
        exec_plugin(str(path), ADD, b"{}")


def test_version_info_of_an_old_plugin(tmp_path: Path) -> None:
    old = script(tmp_path, "old", "echo '{}'\n")
    assert version_info(str(old)) == ["0.1.0"]
    new = script(tmp_path, "new", 'echo \'{"cniVersion":"0.4.0","supportedVersions":'
                                  '["0.3.1","0.4.0"]}\'\n')
    assert version_info(str(new)) == ["0.3.1", "0.4.0"]
