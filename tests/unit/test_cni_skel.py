"""The plugin entry: dispatch turns every failure into CNI error JSON with the right code."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multihome.cli.install_cni import install_cni, script_text, write_executable
from multihome.cni import version as ver
from multihome.cni.errors import TryAgainLater
from multihome.cni.result import Interface, IPConfig, Result
from multihome.cni.skel import Call, dispatch
from multihome.plugins.registry import BUILTIN, MULTUS_NAMES

KNOWN_CODES = {1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51, 999}
GOOD_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/var/run/netns/x",
            "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}
GOOD_CONF = {"cniVersion": "1.0.0", "name": "net", "type": "dummy"}


def make_plugin(fail: Exception | None = None) -> Any:
    calls: list[tuple[str, Call]] = []

    def record(op: str) -> Any:
        def fn(call: Call) -> Any:
            calls.append((op, call))
            if fail is not None:
                raise fail
            if op == "add":
                import ipaddress
                return Result(cni_version=call.conf.cni_version,
                              interfaces=[Interface(call.cmd.ifname, sandbox=call.cmd.netns)],
                              ips=[IPConfig(ipaddress.ip_interface("10.9.0.2/24"), interface=0)])
            return None
        return fn

    return SimpleNamespace(SUPPORTED_VERSIONS=ver.ALL_VERSIONS, calls=calls, add=record("add"),
                           delete=record("delete"), check=record("check"),
                           status=record("status"), gc=record("gc"))


def run(env: dict[str, str], conf: Any, plugin: Any = None) -> tuple[int, Any]:
    stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    code, out = dispatch(plugin or make_plugin(), env, stdin)
    return code, json.loads(out) if out else None


def assert_error(code: int, out: Any, expected: int) -> None:
    assert code == 1, out
    assert isinstance(out, dict) and out["code"] == expected, out
    assert isinstance(out["msg"], str) and out["msg"]
    assert out["cniVersion"] in ver.ALL_VERSIONS


# -- plain cases ------------------------------------------------------------------

def test_add_result_in_config_version() -> None:
    for v in ("0.3.1", "1.0.0", "1.1.0"):
        code, out = run(GOOD_ENV, {**GOOD_CONF, "cniVersion": v})
        assert code == 0 and out["cniVersion"] == v
        assert out["interfaces"] == [{"name": "eth0", "sandbox": "/var/run/netns/x"}]


def test_version_output() -> None:
    code, out = run({"CNI_COMMAND": "VERSION"}, b"")
    assert code == 0
    assert out == {"cniVersion": ver.LATEST, "supportedVersions": list(ver.ALL_VERSIONS)}


def test_del_check_status_gc_print_nothing() -> None:
    plugin = make_plugin()
    for command, v in (("DEL", "0.3.1"), ("CHECK", "0.4.0"), ("STATUS", "1.1.0"),
                       ("GC", "1.1.0")):
        code, out = run({**GOOD_ENV, "CNI_COMMAND": command}, {**GOOD_CONF, "cniVersion": v},
                        plugin)
        assert (code, out) == (0, None), (command, out)
    assert [op for op, _ in plugin.calls] == ["delete", "check", "status", "gc"]


@pytest.mark.parametrize(("command", "v"), [("CHECK", "0.3.1"), ("STATUS", "1.0.0"),
                                            ("GC", "1.0.0")])
def test_commands_newer_than_the_config_are_code_1(command: str, v: str) -> None:
    plugin = make_plugin()
    code, out = run({**GOOD_ENV, "CNI_COMMAND": command}, {**GOOD_CONF, "cniVersion": v}, plugin)
    assert_error(code, out, 1)
    assert plugin.calls == []


def test_plugin_errors_keep_their_code_and_config_version() -> None:
    code, out = run(GOOD_ENV, {**GOOD_CONF, "cniVersion": "0.4.0"},
                    make_plugin(TryAgainLater("bridge busy", "retry")))
    assert_error(code, out, 11)
    assert out == {"cniVersion": "0.4.0", "code": 11, "msg": "bridge busy", "details": "retry"}


def test_plugin_bug_is_code_999_not_a_traceback() -> None:
    code, out = run(GOOD_ENV, GOOD_CONF, make_plugin(KeyError("oops")))
    assert_error(code, out, 999)
    assert "KeyError" in out["msg"]


@pytest.mark.parametrize(("conf", "expected"), [
    (b"", 6), (b"{", 6), (b"\xff\xfe", 6), (b"[]", 6), (b'"x"', 6),
    ({"cniVersion": "1.0.0", "type": "t"}, 7),
    ({"cniVersion": "1.0.0", "name": "a b", "type": "t"}, 7),
    ({"cniVersion": "1.0.0", "name": "n"}, 7),
    ({"cniVersion": "1.0", "name": "n", "type": "t"}, 7),
    ({"cniVersion": "3.0.0", "name": "n", "type": "t"}, 1),
    ({"cniVersion": "1.0.0", "name": "n", "type": "t", "ipam": "x"}, 7),
    ({"cniVersion": "1.0.0", "name": "n", "type": "t", "prevResult": {"ips": "x"}}, 6),
])
def test_config_errors(conf: Any, expected: int) -> None:
    code, out = run(GOOD_ENV, conf)
    assert_error(code, out, expected)


@pytest.mark.parametrize(("over", "expected"), [
    ({"CNI_COMMAND": "NOPE"}, 4), ({"CNI_CONTAINERID": "/x"}, 4), ({"CNI_IFNAME": "x" * 16}, 4),
    ({"CNI_IFNAME": "a/b"}, 4), ({"CNI_IFNAME": "a b"}, 4), ({"CNI_ARGS": "novalue"}, 4),
    ({"CNI_NETNS": ""}, 4),
])
def test_env_errors(over: dict[str, str], expected: int) -> None:
    code, out = run({**GOOD_ENV, **over}, GOOD_CONF)
    assert_error(code, out, expected)


# -- hypothesis: nothing ever escapes as a traceback ------------------------------

ENV_KEYS = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"]
env_text = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\0"),
                   max_size=24)
command = st.sampled_from(["ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC", "", "add", "X"])
envs = st.fixed_dictionaries({"CNI_COMMAND": command},
                             optional={k: env_text for k in ENV_KEYS[1:]})
json_leaf = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | env_text
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3)
                          | st.dictionaries(env_text, c, max_size=3), max_leaves=10)
conf_dicts = st.fixed_dictionaries({}, optional={
    "cniVersion": st.sampled_from([*ver.ALL_VERSIONS, "", "1.0", "9.9.9"]) | json_leaf,
    "name": st.sampled_from(["net", "n-1.x", "", "-x", "a b"]) | json_leaf,
    "type": st.sampled_from(["dummy", ""]) | json_leaf,
    "ipam": json_value, "dns": json_value, "runtimeConfig": json_value, "args": json_value,
    "prevResult": json_value,
})
stdins = (conf_dicts.map(lambda d: json.dumps(d).encode()) | st.binary(max_size=64)
          | json_value.map(lambda v: json.dumps(v).encode()))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(env=envs, stdin=stdins)
def test_fuzz_dispatch_always_answers_cni_json(env: dict[str, str], stdin: bytes) -> None:
    code, out = dispatch(make_plugin(), env, stdin)
    if code == 0:
        assert out == "" or isinstance(json.loads(out), dict)
        return
    err = json.loads(out)
    assert err["code"] in KNOWN_CODES - {999}, err  # malformed input never looks like a bug
    assert isinstance(err["msg"], str) and err["msg"]
    assert "Traceback" not in out


@settings(max_examples=200, deadline=None)
@given(stdin=conf_dicts.map(lambda d: json.dumps(d).encode()))
def test_fuzz_config_errors_have_config_codes(stdin: bytes) -> None:
    code, out = dispatch(make_plugin(), GOOD_ENV, stdin)
    if code:
        assert json.loads(out)["code"] in (1, 6, 7), out


@settings(max_examples=200, deadline=None)
@given(args=st.lists(st.text(alphabet="ab=;", max_size=5), max_size=4).map(";".join))
def test_fuzz_cni_args(args: str) -> None:
    code, out = dispatch(make_plugin(), {**GOOD_ENV, "CNI_ARGS": args},
                         json.dumps(GOOD_CONF).encode())
    pairs = [p for p in args.split(";") if p]
    valid = all("=" in p and not p.startswith("=") for p in pairs)
    if valid:
        assert code == 0, out
    else:
        assert json.loads(out)["code"] == 4


# -- real executables ----------------------------------------------------------------

DUMMY_MODULE = '''
import ipaddress, os
from multihome.cni.errors import TryAgainLater
from multihome.cni.result import Interface, IPConfig, Result
SUPPORTED_VERSIONS = ("0.3.1", "0.4.0", "1.0.0", "1.1.0")

def add(call):
    if call.conf.raw.get("fail"):
        raise TryAgainLater("asked to fail", call.cmd.ifname)
    if call.conf.raw.get("crash"):
        raise ZeroDivisionError("boom")
    return Result(call.conf.cni_version, [Interface(call.cmd.ifname)],
                  [IPConfig(ipaddress.ip_interface("10.7.0.2/24"), interface=0)])

def delete(call): pass
def check(call): pass
def status(call): pass
def gc(call): pass
'''


@pytest.fixture
def dummy_exe(tmp_path: Path) -> Path:
    mod_dir = tmp_path / "mods"
    mod_dir.mkdir()
    name = f"dummy_cni_{os.getpid()}"
    (mod_dir / f"{name}.py").write_text(DUMMY_MODULE)
    sys.path.insert(0, str(mod_dir))
    try:
        text = script_text(module=name, extra_paths=[str(mod_dir)])
    finally:
        sys.path.remove(str(mod_dir))
        sys.modules.pop(name, None)
    exe = tmp_path / "dummy"
    write_executable(str(exe), text)
    return exe


def exec_plugin(exe: Path, env: dict[str, str], stdin: bytes) -> tuple[int, Any, str]:
    proc = subprocess.run([str(exe)], input=stdin, env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, timeout=60)
    out = proc.stdout.decode()
    return proc.returncode, json.loads(out) if out.strip() else None, proc.stderr.decode()


def test_executable_cases(dummy_exe: Path) -> None:
    assert stat.S_IMODE(dummy_exe.stat().st_mode) == 0o755
    assert dummy_exe.read_text().startswith(f"#!{sys.executable} -IS\n")
    rc, out, _ = exec_plugin(dummy_exe, {"CNI_COMMAND": "VERSION"}, b"")
    assert (rc, out) == (0, {"cniVersion": "1.1.0",
                             "supportedVersions": ["0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    conf = json.dumps(GOOD_CONF).encode()
    rc, out, _ = exec_plugin(dummy_exe, GOOD_ENV, conf)
    assert rc == 0 and out["ips"] == [{"interface": 0, "address": "10.7.0.2/24"}]
    cases: list[tuple[dict[str, str], bytes, int]] = [
        ({**GOOD_ENV, "CNI_IFNAME": "x" * 20}, conf, 4),
        ({"CNI_COMMAND": "ADD"}, conf, 4),
        (GOOD_ENV, b"{nope", 6),
        (GOOD_ENV, json.dumps({**GOOD_CONF, "cniVersion": "0.2.0"}).encode(), 1),
        (GOOD_ENV, json.dumps({**GOOD_CONF, "name": ""}).encode(), 7),
        (GOOD_ENV, json.dumps({**GOOD_CONF, "fail": True}).encode(), 11),
        (GOOD_ENV, json.dumps({**GOOD_CONF, "crash": True}).encode(), 999),
    ]
    for env, stdin, expected in cases:
        rc, out, err = exec_plugin(dummy_exe, env, stdin)
        assert rc == 1 and out["code"] == expected, (env, stdin, out)
        assert "Traceback" not in err


def test_executable_reports_a_missing_module_as_json(tmp_path: Path) -> None:
    text = script_text(module="multihome_no_such_module_xyz")
    exe = tmp_path / "broken"
    write_executable(str(exe), text)
    rc, out, err = exec_plugin(exe, GOOD_ENV, json.dumps(GOOD_CONF).encode())
    assert rc == 1 and out["code"] == 999 and "multihome_no_such_module_xyz" in out["msg"]
    assert "Traceback" not in err


def test_install_cni_writes_every_builtin(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    result = CliRunner().invoke(install_cni, ["--bin-dir", str(bin_dir)])
    assert result.exit_code == 0, result.output
    # Multus' names only when asked for: they replace Multus' own executables
    assert not (bin_dir / "multus").exists() and not (bin_dir / "multus-shim").exists()
    assert not (bin_dir / "whereabouts").exists()  # nor over the node's whereabouts
    everything = ",".join(t for t in BUILTIN if t not in MULTUS_NAMES)
    result = CliRunner().invoke(install_cni, ["--bin-dir", str(bin_dir), "--multus-names",
                                              "--types", everything])
    assert result.exit_code == 0, result.output
    for plugin_type in BUILTIN:
        exe = bin_dir / plugin_type
        assert stat.S_IMODE(exe.stat().st_mode) == 0o755
        rc, out, _ = exec_plugin(exe, {"CNI_COMMAND": "VERSION"}, b"")
        assert rc == 0 and "1.0.0" in out["supportedVersions"], (plugin_type, out)
        rc, out, _ = exec_plugin(exe, {"CNI_COMMAND": "ADD"}, b"{}")
        # A bad environment is reported as such (4) before anything needs the daemon.
        assert rc == 1 and out["code"] == 4, (plugin_type, out)
    assert not [p for p in bin_dir.iterdir() if p.name.startswith(".")]


def test_install_cni_replaces_atomically_and_filters_types(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    runner = CliRunner()
    assert runner.invoke(install_cni, ["--bin-dir", str(bin_dir), "--types", "bridge"]
                         ).exit_code == 0
    assert sorted(p.name for p in bin_dir.iterdir()) == ["bridge"]
    before = (bin_dir / "bridge").stat().st_ino
    with open(bin_dir / "bridge"):  # a plugin being run keeps its old inode
        assert runner.invoke(install_cni, ["--bin-dir", str(bin_dir), "--types",
                                           "bridge,static"]).exit_code == 0
    assert (bin_dir / "bridge").stat().st_ino != before
    assert sorted(p.name for p in bin_dir.iterdir()) == ["bridge", "static"]
    bad = runner.invoke(install_cni, ["--bin-dir", str(bin_dir), "--types", "nope"])
    assert bad.exit_code != 0 and "nope" in bad.output


def test_script_is_small_and_stdlib_only_until_the_plugin_runs(tmp_path: Path) -> None:
    text = script_text(plugin_type="bridge")
    assert "import click" not in text and "pyroute2" not in text
    # the skel/types/result chain itself must not pull in pyroute2 or click
    probe = textwrap.dedent("""
        import sys
        import multihome.plugins.exe, multihome.cni.skel, multihome.plugins.registry
        bad = [m for m in sys.modules if m.split('.')[0] in ('pyroute2', 'click', 'yaml')]
        print(bad)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
