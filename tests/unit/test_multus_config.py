"""Multus configuration keys, defaults and errors."""

from __future__ import annotations

import pytest

from multihome.attach.multus_config import parse_multus_config
from multihome.cni.errors import InvalidConfig

BASE = {"cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus",
        "clusterNetwork": "cbr0"}


def test_defaults_are_multus_defaults() -> None:
    conf = parse_multus_config(BASE)
    assert conf.multus_namespace == "kube-system"
    assert conf.system_namespaces == ("kube-system",)
    assert conf.namespace_isolation is False
    assert conf.conf_dir == "/etc/cni/multus/net.d"
    assert conf.cni_dir == "/var/lib/cni/multus"
    assert conf.bin_dirs == ("/opt/cni/bin",)
    assert conf.retry_delete_on_error is False
    assert conf.is_global("default") and not conf.is_global("other")


def test_every_key_under_its_multus_name() -> None:
    conf = parse_multus_config({
        **BASE, "defaultNetworks": ["sidecar", "flannel"], "multusNamespace": "multus",
        "systemNamespaces": ["kube-system", "admin"], "namespaceIsolation": True,
        "globalNamespaces": "shared, infra", "confDir": "/c", "cniDir": "/d",
        "binDir": "/b1:/b2", "readinessindicatorfile": "/r", "retryDeleteOnError": True,
        "logLevel": "debug", "logFile": "/l", "logToStderr": True})
    assert conf.default_networks == ("sidecar", "flannel")
    assert conf.multus_namespace == "multus"
    assert conf.system_namespaces == ("kube-system", "admin")
    assert conf.global_namespaces == ("shared", "infra")
    assert conf.is_global("infra")
    assert (conf.conf_dir, conf.cni_dir, conf.bin_dirs) == ("/c", "/d", ("/b1", "/b2"))
    assert conf.readiness_indicator_file == "/r"
    assert conf.retry_delete_on_error and conf.log_to_stderr
    assert (conf.log_level, conf.log_file) == ("debug", "/l")


def test_delegates_form() -> None:
    conf = parse_multus_config({"delegates": [{"type": "bridge", "name": "x"}]})
    assert conf.cluster_network == "" and conf.delegates[0]["type"] == "bridge"


def test_older_spelling_of_retry() -> None:
    assert parse_multus_config({**BASE, "allowTryDeleteOnErr": True}).retry_delete_on_error


@pytest.mark.parametrize(("patch", "message"), [
    ({"clusterNetwork": None}, "needs 'clusterNetwork'"),
    ({"namespaceIsolation": "yes"}, "'namespaceIsolation' must be true or false"),
    ({"globalNamespaces": 3}, "'globalNamespaces' must be a list"),
    ({"logLevel": "loud"}, "logLevel 'loud'"),
    ({"delegates": [{"name": "x"}]}, "delegates\\[0\\] has neither"),
    ({"cniDir": 5}, "'cniDir' must be a string"),
])
def test_invalid_configs_say_what_is_wrong(patch: dict[str, object], message: str) -> None:
    raw = {**BASE, **patch}
    raw = {k: v for k, v in raw.items() if v is not None}
    with pytest.raises(InvalidConfig, match=message) as info:
        parse_multus_config(raw)
    assert info.value.code == 7


def test_not_an_object() -> None:
    with pytest.raises(InvalidConfig, match="must be a JSON object"):
        parse_multus_config([])
