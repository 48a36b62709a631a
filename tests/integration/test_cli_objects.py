"""`multihome apply|create|get|delete|describe` exactly as a user types them."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from multihome.present import format_age, format_table, object_table
from multihome.store import NAD, Object
from support.cli_objects import NAD_REF, NAD_RES, SEED, Cli


@pytest.fixture
def mh(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "s.db")


def nad_yaml(name: str, namespace: str | None = None, config: str = '{"type": "bridge"}') -> str:
    meta: dict[str, str] = {"name": name}
    if namespace:
        meta["namespace"] = namespace
    return yaml.safe_dump({"apiVersion": "k8s.cni.cncf.io/v1",
                           "kind": "NetworkAttachmentDefinition",
                           "metadata": meta, "spec": {"config": config}})


def test_seed_flow(mh: Cli) -> None:
    r = mh("apply", "-f", str(SEED), "-n", "multus-test")
    assert (r.returncode, r.stdout, r.stderr) == (0, f"{NAD_REF}/bridge-dev created\n", "")
    r = mh("get", "net-attach-def", "-n", "multus-test")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "NAME         AGE"
    assert re.fullmatch(r"bridge-dev   \d+s", lines[1]), lines
    assert len(lines) == 2


def test_seed_file_is_the_design_example() -> None:
    doc = yaml.safe_load(SEED.read_text())
    assert doc["metadata"] == {"name": "bridge-dev", "annotations": {
        "k8s.v1.cni.cncf.io/resourceName": "bridge.network.kubevirt.io/bridge-dev"}}
    assert json.loads(doc["spec"]["config"]) == {
        "cniVersion": "0.3.1", "name": "bridge-dev", "type": "cnv-bridge",
        "bridge": "dev-bridge", "macspoofchk": True, "vlan": 0}


def test_apply_again_unchanged_then_configured(mh: Cli, tmp_path: Path) -> None:
    f = tmp_path / "n.yml"
    f.write_text(nad_yaml("n1"))
    assert mh("apply", "-f", str(f)).stdout == f"{NAD_REF}/n1 created\n"
    assert mh("apply", "-f", str(f)).stdout == f"{NAD_REF}/n1 unchanged\n"
    f.write_text(nad_yaml("n1", config='{"type": "macvlan"}'))
    r = mh("apply", "-f", str(f))
    assert (r.returncode, r.stdout) == (0, f"{NAD_REF}/n1 configured\n")
    out = json.loads(mh("get", "nad", "n1", "-o", "json").stdout)
    assert out["spec"]["config"] == '{"type": "macvlan"}'
    assert out["metadata"]["namespace"] == "default"
    assert out["metadata"]["generation"] == 2


def test_create_twice_is_already_exists(mh: Cli) -> None:
    r = mh("create", "-f", str(SEED), "-n", "multus-test")
    assert (r.returncode, r.stdout) == (0, f"{NAD_REF}/bridge-dev created\n")
    r = mh("create", "-f", str(SEED), "-n", "multus-test")
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == (f'Error from server (AlreadyExists): error when creating '
                        f'"{SEED}": {NAD_RES} "bridge-dev" already exists\n')


def test_multi_document_yaml_from_stdin(mh: Cli) -> None:
    text = "---\n".join([nad_yaml("a"), nad_yaml("b", "other"), "", nad_yaml("c")])
    r = mh("apply", "-f", "-", "-n", "other", stdin=text)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [f"{NAD_REF}/a created", f"{NAD_REF}/b created",
                                     f"{NAD_REF}/c created"]
    r = mh("get", "nad", "-A")
    assert [line.split()[:2] for line in r.stdout.splitlines()] == [
        ["NAMESPACE", "NAME"], ["other", "a"], ["other", "b"], ["other", "c"]]


def test_create_partial_failure_keeps_going_and_exits_1(mh: Cli) -> None:
    mh("create", "-f", "-", stdin=nad_yaml("a"))
    r = mh("create", "-f", "-", stdin=nad_yaml("a") + "---\n" + nad_yaml("b"))
    assert r.returncode == 1
    assert r.stdout == f"{NAD_REF}/b created\n"
    assert 'error when creating "STDIN"' in r.stderr and f'{NAD_RES} "a" already exists' in r.stderr


def test_namespace_mismatch_is_refused(mh: Cli) -> None:
    r = mh("apply", "-f", "-", "-n", "b", stdin=nad_yaml("x", "a"))
    assert r.returncode == 1
    assert r.stderr == ('error: the namespace from the provided object "a" does not match the '
                        "namespace \"b\". You must pass '--namespace=a' to perform this "
                        "operation.\n")


def test_invalid_nad_is_refused_with_reason(mh: Cli) -> None:
    r = mh("apply", "-f", "-", stdin=nad_yaml("Bad_Name"))
    assert r.returncode == 1
    assert r.stderr.startswith('The NetworkAttachmentDefinition "Bad_Name" is invalid: '
                               'NetworkAttachmentDefinition name "Bad_Name" is not a DNS-1123')
    r = mh("create", "-f", "-", stdin=nad_yaml("ok", config='{"name": "x"}'))
    assert r.returncode == 1
    assert r.stderr == ('The NetworkAttachmentDefinition "ok" is invalid: '
                        "NetworkAttachmentDefinition default/ok: spec.config has neither "
                        '"type" nor "plugins"\n')
    assert mh("get", "nad", "-A").stderr == "No resources found.\n"


def test_unknown_kind_and_bad_files(mh: Cli, tmp_path: Path) -> None:
    r = mh("apply", "-f", "-", stdin="apiVersion: v9\nkind: Widget\nmetadata: {name: w}\n")
    assert r.returncode == 1
    assert r.stderr == ('error: resource mapping not found for name: "w" from "STDIN": no '
                        'matches for kind "Widget" in version "v9"\n')
    r = mh("apply", "-f", str(tmp_path / "missing.yml"))
    assert (r.returncode, r.stderr) == (1, f'error: the path "{tmp_path}/missing.yml" does '
                                           "not exist\n")
    r = mh("apply", "-f", "-", stdin="a: [\n")
    assert r.returncode == 1 and r.stderr.startswith("error: error parsing STDIN:")
    r = mh("apply", "-f", "-", stdin="")
    assert (r.returncode, r.stderr) == (1, "error: no objects passed to the command\n")
    r = mh("get", "widgets")
    assert (r.returncode, r.stderr) == (1, 'error: the server doesn\'t have a resource type '
                                           '"widgets"\n')


def test_get_empty_and_not_found(mh: Cli) -> None:
    r = mh("get", "net-attach-def", "-n", "multus-test")
    assert (r.returncode, r.stdout, r.stderr) == (
        0, "", "No resources found in multus-test namespace.\n")
    r = mh("get", "network-attachment-definitions", "x", "-n", "multus-test")
    assert (r.returncode, r.stdout, r.stderr) == (
        1, "", f'Error from server (NotFound): {NAD_RES} "x" not found\n')


def test_get_output_formats(mh: Cli) -> None:
    mh("apply", "-f", str(SEED), "-n", "multus-test")
    mh("apply", "-f", "-", "-n", "multus-test", stdin=nad_yaml("other"))
    r = mh("get", "nad", "-n", "multus-test", "-o", "name")
    assert r.stdout == f"{NAD_REF}/bridge-dev\n{NAD_REF}/other\n"
    one = yaml.safe_load(mh("get", "nad", "bridge-dev", "-n", "multus-test", "-o", "yaml").stdout)
    assert one["kind"] == "NetworkAttachmentDefinition"
    assert one["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"] == (
        "bridge.network.kubevirt.io/bridge-dev")
    assert one["metadata"]["uid"] and one["metadata"]["creationTimestamp"]
    listing = json.loads(mh("get", "nad", "-n", "multus-test", "-o", "json").stdout)
    assert listing["kind"] == "List"
    assert [i["metadata"]["name"] for i in listing["items"]] == ["bridge-dev", "other"]
    wide = mh("get", "nad/bridge-dev", "nad/other", "-n", "multus-test", "-o", "wide").stdout
    assert [line.split()[0] for line in wide.splitlines()] == ["NAME", "bridge-dev", "other"]
    r = mh("get", "nad", "bridge-dev", "-A")
    assert (r.returncode, r.stderr) == (
        1, "error: a resource cannot be retrieved by name across all namespaces\n")


def test_store_from_environment(mh: Cli) -> None:
    env = {"MULTIHOME_STORE": str(mh.store)}
    r = mh("apply", "-f", str(SEED), "-n", "multus-test", env=env, use_flag=False)
    assert r.returncode == 0, r.stderr
    assert mh.store.exists()
    assert "bridge-dev" in mh("get", "nad", "-n", "multus-test").stdout


def test_describe(mh: Cli) -> None:
    mh("apply", "-f", str(SEED), "-n", "multus-test")
    r = mh("describe", "net-attach-def", "bridge-dev", "-n", "multus-test")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[:6] == [
        "Name:         bridge-dev",
        "Namespace:    multus-test",
        "Labels:       <none>",
        "Annotations:  k8s.v1.cni.cncf.io/resourceName: bridge.network.kubevirt.io/bridge-dev",
        "API Version:  k8s.cni.cncf.io/v1",
        "Kind:         NetworkAttachmentDefinition",
    ]
    assert "last-applied" not in r.stdout
    assert any(line.startswith("  Config:") and '"cnv-bridge"' in line for line in lines)
    assert any(line.startswith("  UID:") for line in lines)
    r = mh("describe", "nad", "nope", "-n", "multus-test")
    assert (r.returncode, r.stderr) == (1, f'Error from server (NotFound): {NAD_RES} "nope" '
                                           "not found\n")


def test_delete_by_name_and_by_file(mh: Cli, tmp_path: Path) -> None:
    mh("apply", "-f", str(SEED), "-n", "multus-test")
    r = mh("delete", "nad", "bridge-dev", "-n", "multus-test")
    assert (r.returncode, r.stdout) == (0, f'{NAD_REF} "bridge-dev" deleted\n')
    r = mh("delete", "nad", "bridge-dev", "-n", "multus-test")
    assert (r.returncode, r.stderr) == (1, f'Error from server (NotFound): {NAD_RES} '
                                           '"bridge-dev" not found\n')
    assert mh("delete", "nad", "bridge-dev", "-n", "multus-test",
              "--ignore-not-found").returncode == 0
    mh("apply", "-f", str(SEED), "-n", "multus-test")
    r = mh("delete", "-f", str(SEED), "-n", "multus-test")
    assert (r.returncode, r.stdout) == (0, f'{NAD_REF} "bridge-dev" deleted\n')
    r = mh("delete", "-f", str(SEED), "-n", "multus-test")
    assert r.returncode == 1
    assert r.stderr == (f'Error from server (NotFound): error when deleting "{SEED}": '
                        f'{NAD_RES} "bridge-dev" not found\n')
    r = mh("delete", "nad")
    assert r.returncode == 1 and "no name was specified" in r.stderr


def test_delete_all(mh: Cli) -> None:
    mh("apply", "-f", "-", "-n", "x", stdin=nad_yaml("a") + "---\n" + nad_yaml("b"))
    mh("apply", "-f", "-", "-n", "y", stdin=nad_yaml("c"))
    r = mh("delete", "nad", "--all", "-n", "x")
    assert r.stdout.splitlines() == [f'{NAD_REF} "a" deleted', f'{NAD_REF} "b" deleted']
    assert mh("get", "nad", "-A", "-o", "name").stdout == f"{NAD_REF}/c\n"


def test_apply_keeps_annotations_written_by_the_engine(mh: Cli) -> None:
    from multihome.stores import open_store

    mh("apply", "-f", str(SEED), "-n", "multus-test")
    s = open_store(str(mh.store))
    try:
        s.patch_annotations(NAD, "multus-test", "bridge-dev", {"example.com/owner": "engine"})
    finally:
        s.close()
    assert mh("apply", "-f", str(SEED), "-n", "multus-test").stdout.endswith("unchanged\n")
    got = json.loads(mh("get", "nad", "bridge-dev", "-n", "multus-test", "-o", "json").stdout)
    assert got["metadata"]["annotations"]["example.com/owner"] == "engine"


# -- formatting (pure) ---------------------------------------------------------------


@pytest.mark.parametrize("seconds,text", [
    (-5, "<invalid>"), (-0.5, "0s"), (0, "0s"), (5, "5s"), (119, "119s"), (120, "2m"),
    (200, "3m20s"), (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (3 * 3600 + 600, "3h10m"),
    (8 * 3600, "8h"), (47 * 3600, "47h"), (48 * 3600, "2d"), (3 * 86400 + 4 * 3600, "3d4h"),
    (8 * 86400, "8d"), (400 * 86400, "400d"), (730 * 86400, "2y"),
    (800 * 86400, "2y70d"), (9 * 365 * 86400, "9y"),
])
def test_format_age_like_kubectl(seconds: float, text: str) -> None:
    assert format_age(timedelta(seconds=seconds)) == text


def test_table_padding_like_kubectl() -> None:
    assert format_table(["NAME", "AGE"], [["a", "5s"]]) == "NAME      AGE\na         5s"
    now = datetime(2024, 1, 1, tzinfo=UTC)
    obj = Object(NAD, "a-long-name", "ns", {"metadata": {
        "creationTimestamp": "2023-12-31T23:57:00Z"}})
    assert object_table([obj], all_namespaces=True, now=now) == (
        "NAMESPACE   NAME          AGE\nns          a-long-name   3m")


def test_generic_get_and_delete_of_a_pod_record(mh: Cli, tmp_path: Path) -> None:
    from multihome.paths import STATE_ENV

    env = {STATE_ENV: str(tmp_path / "lab")}
    pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p1\n"
    assert mh("apply", "-f", "-", "-n", "x", stdin=pod, env=env).stdout == "pod/p1 created\n"
    r = mh("get", "pods", "-n", "x", env=env)
    assert r.stdout.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    r = mh("delete", "po", "p1", "-n", "x", env=env)
    assert (r.returncode, r.stdout) == (0, 'pod "p1" deleted\n'), r.stderr
    r = mh("get", "pod", "p1", "-n", "x", env=env)
    assert (r.returncode, r.stderr) == (1, 'Error from server (NotFound): pods "p1" not found\n')
