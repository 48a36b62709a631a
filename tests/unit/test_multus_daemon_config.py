"""Swapping Multus thick for multihome: Multus' daemon config read unchanged, its shim's
socket lookup, the 00-multus.conf it generates, and its keys laid over each request."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from multihome.daemon import autoconf
from multihome.daemon.multus_daemon_config import DaemonConfigError, load
from multihome.daemon.requests import EngineDefaults
from multihome.shim import SOCKET_ENV, socket_path
from support.multus_generator import expected_multus_conf

# The thick DaemonSet's ConfigMap of Multus 4.3, as shipped.
SHIPPED = {"chrootDir": "/hostroot", "cniVersion": "0.3.1", "logLevel": "verbose",
           "logToStderr": True, "cniConfigDir": "/host/etc/cni/net.d",
           "multusAutoconfigDir": "/host/etc/cni/net.d", "multusConfigFile": "auto",
           "socketDir": "/host/run/multus/"}


def write(tmp_path: Path, conf: object, name: str = "daemon-config.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps(conf))
    return str(path)


def test_shipped_daemon_config_is_read_as_multus_reads_it(tmp_path: Path) -> None:
    conf = load(write(tmp_path, {**SHIPPED, "somethingNew": [1, {"x": 2}]}))
    assert conf.socket == "/host/run/multus/multus.sock"
    assert conf.cni_config_dir == conf.autoconfig_dir == "/host/etc/cni/net.d"
    assert conf.auto and conf.log_level == "info"
    assert conf.request_overlay["somethingNew"] == [1, {"x": 2}]  # unknown: kept, unread


def test_daemon_config_defaults() -> None:
    from multihome.daemon.multus_daemon_config import parse

    conf = parse("f.json", {"cniVersion": "0.3.1"})
    assert conf.socket == "/run/multus/multus.sock"
    assert conf.cni_config_dir == "/etc/cni/net.d" and conf.auto


@pytest.mark.parametrize(("key", "value"), [
    ("socketDir", 5), ("cniConfigDir", ["/x"]), ("multusConfigFile", True),
    ("namespaceIsolation", "true"), ("logToStderr", 1), ("binDir", False),
    ("globalNamespaces", 7), ("defaultNetworks", {"a": 1}), ("readinessindicatorfile", 0),
    ("capabilities", {"portMappings": "yes"}), ("logLevel", "loud"), ("clusterNetwork", 3),
])
def test_wrong_type_is_refused_naming_key_and_file(tmp_path: Path, key: str,
                                                   value: Any) -> None:
    path = write(tmp_path, {**SHIPPED, key: value})
    with pytest.raises(DaemonConfigError) as e:
        load(path)
    message = str(e.value)
    assert message.startswith(f"{path}: ") and key in message and "\n" not in message


@pytest.mark.parametrize("text", ["{", "[1]", "", '{"a": ' + "[" * 5000 + "]" * 5000 + "}"])
def test_unreadable_daemon_config_is_one_line(tmp_path: Path, text: str) -> None:
    path = tmp_path / "daemon-config.json"
    path.write_text(text)
    with pytest.raises(DaemonConfigError) as e:
        load(str(path))
    assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)
    with pytest.raises(DaemonConfigError, match="cannot read"):
        load(str(tmp_path / "missing.json"))


def test_shim_finds_the_multus_socket_as_multus_shim_does() -> None:
    env = {SOCKET_ENV: "/ignored.sock"}
    plain = json.dumps({"type": "multus-shim", "socketPath": "/not-multus.sock"}).encode()
    assert socket_path(plain, env, "multus-shim") == "/run/multus/multus.sock"
    conf = json.dumps({"type": "multus-shim", "daemonSocketDir": "/var/run/m/"}).encode()
    assert socket_path(conf, env, "multus-shim") == "/var/run/m/multus.sock"
    assert socket_path(conf, env, "multus") == "/var/run/m/multus.sock"
    assert socket_path(b"garbage \"daemonSocketDir\"", {}, "multus") == "/run/multus/multus.sock"
    # the multihome type keeps its own lookup
    assert socket_path(plain, env, "multihome") == "/not-multus.sock"
    assert socket_path(conf, env, "multihome") == "/ignored.sock"


def test_00_multus_conf_is_what_multus_generates(tmp_path: Path) -> None:
    net_d = tmp_path / "net.d"
    net_d.mkdir()
    (net_d / "10-flannel.conflist").write_text(json.dumps({
        "cniVersion": "0.3.1", "name": "cbr0", "plugins": [
            {"type": "flannel"},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}))
    (net_d / "05-notes.txt").write_text("not a config")
    (net_d / "00-multus.conf.bak").write_text("{}")
    daemon = {**SHIPPED, "cniConfigDir": str(net_d), "multusAutoconfigDir": str(net_d) + "/",
              "binDir": "/opt/cni/bin", "cniDir": "/var/lib/cni/multus",
              "namespaceIsolation": True, "globalNamespaces": "default,shared",
              "readinessindicatorfile": "/r", "daemonSocketDir": "/run/m"}
    conf = load(write(tmp_path, daemon))
    settings = autoconf.Settings(str(net_d), conf.socket, multus=conf)
    assert autoconf.sync(settings)
    assert (net_d / "00-multus.conf").read_text() == expected_multus_conf(
        daemon, str(net_d / "10-flannel.conflist"), {"portMappings": True})
    assert (net_d / "00-multus.conf").stat().st_mode & 0o777 == 0o600
    assert not (net_d / autoconf.CONFIG_NAME).exists()


def test_multus_master_cni_and_no_primary(tmp_path: Path) -> None:
    net_d = tmp_path / "net.d"
    net_d.mkdir()
    conf = load(write(tmp_path, {**SHIPPED, "cniConfigDir": str(net_d),
                                 "multusAutoconfigDir": str(net_d)}))
    settings = autoconf.Settings(str(net_d), conf.socket, multus=conf)
    assert not autoconf.sync(settings)  # nothing to delegate to yet: not ready
    (net_d / "10-a.conf").write_text('{"cniVersion": "0.3.1", "name": "a", "type": "a"}')
    (net_d / "20-b.conf").write_text('{"cniVersion": "0.3.1", "name": "b", "type": "b"}')
    master = load(write(tmp_path, {**SHIPPED, "cniConfigDir": str(net_d),
                                   "multusAutoconfigDir": str(net_d),
                                   "multusMasterCNI": "20-b.conf"}))
    assert autoconf.sync(autoconf.Settings(str(net_d), master.socket, multus=master))
    written = json.loads((net_d / "00-multus.conf").read_text())
    assert written["clusterNetwork"] == str(net_d / "20-b.conf")
    (net_d / "30-loop.conf").write_text('{"cniVersion": "0.3.1", "name": "l", "type": "multus"}')
    for name in ("30-loop.conf", "00-multus.conf"):  # the engine itself: never the default
        loop = load(write(tmp_path, {**SHIPPED, "cniConfigDir": str(net_d),
                                     "multusAutoconfigDir": str(net_d),
                                     "multusMasterCNI": name}))
        assert not autoconf.sync(autoconf.Settings(str(net_d), loop.socket, multus=loop))


def test_engine_requests_get_the_daemon_keys_and_store() -> None:
    defaults = EngineDefaults({"namespaceIsolation": True, "cniVersion": "0.3.1"}, "/s.db")
    shim_conf = {"cniVersion": "1.0.0", "type": "multus-shim", "name": "multus-cni-network"}
    out = json.loads(defaults.apply(json.dumps(shim_conf).encode()))
    assert out == {**shim_conf, "namespaceIsolation": True, "cniVersion": "0.3.1",
                   "store": "/s.db"}
    for own in ({"store": "/own.db"}, {"kubeconfig": "/k"}):
        kept = json.loads(defaults.apply(json.dumps({**shim_conf, **own}).encode()))
        assert "store" not in kept or kept["store"] == "/own.db"
    assert defaults.apply(b"not json") == b"not json"  # the engine reports it
    # a daemon on the Kubernetes API store hands that to the engine the same way
    in_cluster = json.loads(EngineDefaults({}, "k8s").apply(json.dumps(shim_conf).encode()))
    assert in_cluster["store"] == "k8s"
