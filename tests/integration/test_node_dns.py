"""The node's DNS settings from a policy (`dns-resolver`), written to the resolv.conf the
node configures (here a file under tmp_path), restored byte for byte on rollback."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from multihome.node import current, schema, transaction
from multihome.node.errors import NodeError
from support.netns import Netns

pytestmark = pytest.mark.netns

ORIGINAL = (b"# written by hand\ndomain example.org\nnameserver 192.0.2.53\n"
            b"search example.org\noptions ndots:2\n\n")


@pytest.fixture
def resolv(node_ns: Netns) -> Path:
    """The node's resolv.conf (MULTIHOME_RESOLV_CONF, set by node_ns), mode 0644."""
    path = Path(os.environ["MULTIHOME_RESOLV_CONF"])
    path.write_bytes(ORIGINAL)
    path.chmod(0o644)
    return path


def _dns(**config: Any) -> dict[str, Any]:
    return {"dns-resolver": {"config": config}}


def test_servers_and_search_are_written_where_the_resolver_reads(node_ns: Netns,
                                                                  resolv: Path) -> None:
    report = transaction.apply_state(_dns(server=["192.0.2.1", "2001:db8::1"],
                                          search=["lab.example", "example.org"]),
                                     netns_path=node_ns.path)
    assert report.changes
    text = resolv.read_text()
    assert "nameserver 192.0.2.1\nnameserver 2001:db8::1\n" in text
    assert "search lab.example example.org\n" in text
    assert "nameserver 192.0.2.53" not in text
    # the lines the policy does not manage stay; options it did not name too
    assert "domain example.org\n" in text and "options ndots:2\n" in text
    assert stat.S_IMODE(resolv.stat().st_mode) == 0o644
    shown = current.show(node_ns.path, names=set())["dns-resolver"]["config"]
    assert shown == {"server": ["192.0.2.1", "2001:db8::1"],
                     "search": ["lab.example", "example.org"], "options": ["ndots:2"]}
    assert transaction.apply_state({"dns-resolver": {"config": shown}},
                                   netns_path=node_ns.path).changes == []


def test_rollback_restores_the_file_byte_for_byte(node_ns: Netns, resolv: Path) -> None:
    resolv.chmod(0o640)
    transaction.apply_state(_dns(server=["192.0.2.9"], options=["rotate"]),
                            netns_path=node_ns.path, commit=False)
    assert resolv.read_bytes() != ORIGINAL
    assert transaction.rollback()[1]
    assert resolv.read_bytes() == ORIGINAL
    assert stat.S_IMODE(resolv.stat().st_mode) == 0o640


def test_a_failed_policy_restores_the_file_and_an_absent_one_is_removed_again(
        node_ns: Netns, resolv: Path) -> None:
    with pytest.raises(transaction.ApplyFailed):
        transaction.apply_state({**_dns(server=["192.0.2.7"]), "interfaces": [
            {"name": "nx0", "type": "veth"}]}, netns_path=node_ns.path)
    assert resolv.read_bytes() == ORIGINAL
    resolv.unlink()
    transaction.apply_state(_dns(server=["192.0.2.8"]), netns_path=node_ns.path,
                            commit=False)
    assert resolv.read_text().endswith("nameserver 192.0.2.8\n")
    transaction.rollback()
    assert not resolv.exists()


def test_an_empty_config_removes_every_setting(node_ns: Netns, resolv: Path) -> None:
    transaction.apply_state({"dns-resolver": {"config": {}}}, netns_path=node_ns.path)
    text = resolv.read_text()
    assert "nameserver" not in text and "search" not in text and "options" not in text
    assert "domain example.org" in text


@pytest.mark.parametrize(("config", "message"), [
    ({"server": ["192.0.2.1\nnameserver 6.6.6.6"]},
     "dns-resolver.config.server[0]: '192.0.2.1\\nnameserver 6.6.6.6' is not an IP address"),
    ({"search": ["a.example\noptions debug"]},
     "dns-resolver.config.search[0]: 'a.example\\noptions debug' is not a domain name"),
    ({"search": ["a b"]}, "dns-resolver.config.search[0]: 'a b' is not a domain name"),
    ({"options": ["ndots:2 rotate"]},
     "dns-resolver.config.options[0]: 'ndots:2 rotate' is not a resolver option"),
    ({"path": "/etc/passwd"}, "dns-resolver.config.path: unknown key"),
    ({"server": ["192.0.2.1"] * 33}, "dns-resolver.config.server: more than 32 entries"),
])
def test_values_that_could_add_lines_or_name_a_file_are_refused(
        node_ns: Netns, resolv: Path, config: dict[str, Any], message: str) -> None:
    with pytest.raises(schema.InvalidDesiredState) as bad:
        transaction.apply_state(_dns(**config), netns_path=node_ns.path)
    assert str(bad.value) == message
    assert resolv.read_bytes() == ORIGINAL


def test_a_symlinked_resolv_conf_is_not_followed(node_ns: Netns, resolv: Path,
                                                 tmp_path: Path) -> None:
    target = tmp_path / "stub-resolv.conf"
    target.write_bytes(ORIGINAL)
    resolv.unlink()
    resolv.symlink_to(target)
    with pytest.raises(NodeError) as failed:  # found before the checkpoint: nothing changed
        transaction.apply_state(_dns(server=["192.0.2.1"]), netns_path=node_ns.path)
    assert f"{resolv} is a symlink" in str(failed.value)
    assert target.read_bytes() == ORIGINAL and resolv.is_symlink()


def test_a_rollback_writes_only_the_resolv_conf_the_node_configures(
        node_ns: Netns, resolv: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpoint remembers which file it saved: rolled back while the node names
    another one, it refuses instead of writing the saved bytes there."""
    transaction.apply_state(_dns(server=["192.0.2.5"]), netns_path=node_ns.path,
                            commit=False)
    other = tmp_path / "other-resolv.conf"
    other.write_bytes(b"nameserver 198.51.100.1\n")
    monkeypatch.setenv("MULTIHOME_RESOLV_CONF", str(other))
    with pytest.raises(NodeError) as refused:
        transaction.rollback()
    assert f"but the node's resolv.conf is now {other}" in str(refused.value)
    assert other.read_bytes() == b"nameserver 198.51.100.1\n"
    monkeypatch.setenv("MULTIHOME_RESOLV_CONF", str(resolv))
    assert transaction.rollback()[1]
    assert resolv.read_bytes() == ORIGINAL
