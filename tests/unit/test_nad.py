"""NAD config resolution (spec.config, conf dir, name injection) and NAD validation."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from multihome.attach.nad import (
    NODE_SETTINGS,
    InvalidNAD,
    nad_config,
    nad_config_from_object,
    resource_name,
    validate_nad,
)
from multihome.cni.errors import InvalidConfig
from multihome.store import NAD, NotFound, Object, Store
from multihome.stores import open_store

SEED_CONFIG = ('{"cniVersion": "0.3.1", "name": "bridge-dev", "type": "cnv-bridge",\n'
               '  "bridge": "dev-bridge", "macspoofchk": true, "vlan": 0}')


def make_nad(name: str = "bridge-dev", config: Any = SEED_CONFIG, namespace: str = "multus-test",
             annotations: dict[str, str] | None = None) -> Object:
    meta: dict[str, Any] = {"name": name}
    if annotations is not None:
        meta["annotations"] = annotations
    body: dict[str, Any] = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD, "metadata": meta}
    if config is not ...:
        body["spec"] = {"config": config}
    return Object.from_manifest(body, namespace)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(str(tmp_path / "s.db"))
    yield s
    s.close()


def test_spec_config_single(store: Store) -> None:
    store.create(make_nad())
    conf = nad_config(store, "multus-test", "bridge-dev", None)
    assert conf["type"] == "cnv-bridge" and conf["bridge"] == "dev-bridge"
    assert conf["name"] == "bridge-dev"


def test_spec_config_conflist(store: Store) -> None:
    conflist = {"cniVersion": "1.0.0", "name": "chain",
                "plugins": [{"type": "bridge", "bridge": "br0"}, {"type": "tuning"}]}
    store.create(make_nad("chain", json.dumps(conflist)))
    assert nad_config(store, "multus-test", "chain", None) == conflist


def test_name_injected_when_missing() -> None:
    conf = nad_config_from_object(make_nad("nameless", '{"type": "bridge"}'), None)
    assert conf == {"type": "bridge", "name": "nameless"}
    conf = nad_config_from_object(
        make_nad("chain", '{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}]}'), None)
    assert conf["name"] == "chain"


def test_empty_config_found_in_conf_dir_by_name(tmp_path: Path) -> None:
    conf_dir = tmp_path / "net.d"
    conf_dir.mkdir()
    (conf_dir / "10-other.conf").write_text('{"name": "other", "type": "bridge"}')
    (conf_dir / "20-broken.conf").write_text("{not json")
    (conf_dir / "30-mine.conflist").write_text(
        '{"cniVersion": "0.4.0", "name": "mine", "plugins": [{"type": "macvlan"}]}')
    (conf_dir / "40-mine-again.conf").write_text('{"name": "mine", "type": "ipvlan"}')
    (conf_dir / "mine.txt").write_text('{"name": "mine", "type": "ignored"}')
    conf = nad_config_from_object(make_nad("mine", ""), conf_dir)
    assert conf["plugins"] == [{"type": "macvlan"}]  # first file in sorted order wins
    conf = nad_config_from_object(make_nad("mine", ...), str(conf_dir))  # no spec at all
    assert conf["name"] == "mine"


def test_empty_config_without_match_is_clear(tmp_path: Path) -> None:
    with pytest.raises(InvalidConfig) as e:
        nad_config_from_object(make_nad("ghost", ""), tmp_path)
    assert str(e.value) == (f"NetworkAttachmentDefinition multus-test/ghost has an empty "
                            f"spec.config and no config named 'ghost' in {tmp_path}")
    with pytest.raises(InvalidConfig, match=r"has an empty spec\.config$"):
        nad_config_from_object(make_nad("ghost", ""), None)
    with pytest.raises(InvalidConfig, match="no config named"):
        nad_config_from_object(make_nad("ghost", ""), tmp_path / "missing-dir")


def test_missing_nad_is_store_not_found(store: Store) -> None:
    with pytest.raises(NotFound, match='"bridge-dev" not found in namespace "multus-test"'):
        nad_config(store, "multus-test", "bridge-dev", None)


def test_resource_name() -> None:
    ann = {"k8s.v1.cni.cncf.io/resourceName": "bridge.network.kubevirt.io/bridge-dev"}
    assert resource_name(make_nad(annotations=ann)) == "bridge.network.kubevirt.io/bridge-dev"
    assert resource_name(make_nad()) is None


def test_seed_nad_is_valid() -> None:
    validate_nad(make_nad(annotations={
        "k8s.v1.cni.cncf.io/resourceName": "bridge.network.kubevirt.io/bridge-dev"}))


@pytest.mark.parametrize("config", [
    "", "   ", ..., None, '{"type": "bridge"}',
    '{"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}, {"type": "tuning"}]}',
])
def test_valid_configs(config: Any) -> None:
    validate_nad(make_nad(config=config))


W = "NetworkAttachmentDefinition multus-test/bridge-dev"
INVALID: list[tuple[str, Any, str]] = [
    ("Bridge", "", 'NetworkAttachmentDefinition name "Bridge" is not a DNS-1123 label: use '
                   "lower case letters, digits and '-', starting and ending with a letter or "
                   "digit"),
    ("b.dev", "", 'NetworkAttachmentDefinition name "b.dev" is not a DNS-1123 label: use lower '
                  "case letters, digits and '-', starting and ending with a letter or digit"),
    ("a" * 64, "", f'NetworkAttachmentDefinition name "{"a" * 64}" is longer than 63 characters'),
    ("bridge-dev", "{oops", f"{W}: spec.config is not valid JSON (Expecting property name "
                            "enclosed in double quotes: line 1 column 2 (char 1))"),
    ("bridge-dev", "[1]", f"{W}: spec.config must be a JSON object"),
    ("bridge-dev", '{"name": "x"}', f'{W}: spec.config has neither "type" nor "plugins"'),
    ("bridge-dev", '{"plugins": []}', f'{W}: spec.config "plugins" must be a non-empty list'),
    ("bridge-dev", '{"plugins": [{"type": "a"}, {"name": "b"}]}',
     f'{W}: spec.config plugin 2 has no "type"'),
    ("bridge-dev", '{"type": "bridge", "cniVersion": "one"}',
     f"{W}: spec.config is not a valid CNI config: invalid cniVersion 'one': expected "
     "MAJOR.MINOR.PATCH"),
    ("bridge-dev", '{"type": "bridge", "ipam": "host-local"}',
     f"{W}: spec.config is not a valid CNI config: network config 'ipam' must be an object"),
    ("bridge-dev", {"type": "bridge"},
     f"{W}: spec.config must be a string holding JSON (quote it in YAML), not a dict"),
]


@pytest.mark.parametrize("name,config,message", INVALID, ids=[m[:40] for _, _, m in INVALID])
def test_invalid_nad(name: str, config: Any, message: str) -> None:
    with pytest.raises(InvalidNAD) as e:
        validate_nad(make_nad(name, config))
    assert str(e.value) == message
    assert e.value.code == 7


def test_empty_resource_name_is_invalid() -> None:
    with pytest.raises(InvalidNAD) as e:
        validate_nad(make_nad(annotations={"k8s.v1.cni.cncf.io/resourceName": " "}))
    assert str(e.value) == ("NetworkAttachmentDefinition multus-test/bridge-dev: annotation "
                            "k8s.v1.cni.cncf.io/resourceName is empty")


@pytest.mark.parametrize(("config", "needle"), [
    ({"cniVersion": "0.3.1", "type": "cnv-bridge", "bridge": "x", "vlan": 5000},
     "invalid VLAN ID 5000"),
    ({"cniVersion": "1.0.0", "plugins": [{"type": "macvlan", "mode": "l4"}]},
     "unknown macvlan mode 'l4'"),
])
def test_admission_runs_the_plugins_own_parser(config: dict[str, Any], needle: str) -> None:
    from multihome.attach.nad import validate_nad

    obj = Object.from_manifest({"apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD,
                                "metadata": {"name": "n", "namespace": "t"},
                                "spec": {"config": json.dumps(config)}})
    with pytest.raises(InvalidConfig, match=needle) as info:
        validate_nad(obj)
    assert info.value.msg.startswith("NetworkAttachmentDefinition t/n: ")


def test_admission_leaves_kernel_facts_and_third_party_types_to_add() -> None:
    from multihome.attach.nad import validate_nad

    for config in ({"cniVersion": "1.0.0", "type": "macvlan", "master": "no-such-link0"},
                   {"cniVersion": "1.0.0", "type": "ovn-k8s-cni-overlay", "anything": 1}):
        validate_nad(Object.from_manifest({
            "apiVersion": "k8s.cni.cncf.io/v1", "kind": NAD,
            "metadata": {"name": "n", "namespace": "t"}, "spec": {"config": json.dumps(config)}}))


@pytest.mark.parametrize("config, problem", [
    ({"cniVersion": "1.0.0", "type": "multihome",
      "delegates": [{"cniVersion": "1.0.0", "name": "x", "type": "bridge"}]},
     "type 'multihome' (the attachment engine itself) is not supported"),
    ({"cniVersion": "1.0.0", "plugins": [{"type": "bridge"}, {"type": "multihome",
                                                              "clusterNetwork": "x"}]},
     "type 'multihome'"),
    # Multus' names run the engine too (install-cni --multus-names)
    *[({"cniVersion": "1.0.0", "plugins": [{"type": name, "clusterNetwork": "x"}]},
       f"type '{name}' (the attachment engine itself)") for name in ("multus", "multus-shim")],
    *[({"cniVersion": "1.0.0", "type": "bridge", key: "/tmp/x"},
       f"key '{key}' is a node setting") for key in NODE_SETTINGS],
    ({"cniVersion": "1.0.0", "logFile": "/etc/x", "plugins": [{"type": "bridge"}]},
     "key 'logFile' is a node setting"),
    ({"cniVersion": "1.0.0", "plugins": [{"type": "bridge", "cniDir": "/etc"}]},
     "key 'cniDir' is a node setting"),
])
def test_admission_refuses_nested_engines_and_node_settings(config: dict[str, Any],
                                                            problem: str) -> None:
    with pytest.raises(InvalidNAD, match=re.escape(problem)) as err:
        validate_nad(make_nad(config=json.dumps(config)))
    assert err.value.code == 7


def test_admission_refuses_configs_nested_beyond_any_cni_config() -> None:
    deep = '{"cniVersion": "1.0.0", "type": "bridge", "x": ' + "[" * 100000 + "]" * 100000 + "}"
    with pytest.raises(InvalidNAD, match="deeper than"):
        validate_nad(make_nad(config=deep))
    shallow_but_deep = ('{"cniVersion": "1.0.0", "type": "bridge", "x": ' + "[" * 500 +
                        "]" * 500 + "}")
    with pytest.raises(InvalidNAD, match="deeper than"):
        validate_nad(make_nad(config=shallow_but_deep))
