"""Hot-plug of something the engine does not hold is a clear error, never a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from multihome.attach import engine, hotplug
from multihome.attach.multus_config import MultusConfig, parse_multus_config
from multihome.attach.plan import PodRef
from multihome.cni.errors import InvalidEnvironment, UnknownContainer
from multihome.store.sqlite import SQLiteStore


def _conf(tmp_path: Path) -> MultusConfig:
    return parse_multus_config({
        "cniVersion": "1.0.0", "name": "mh", "type": "multihome",
        "cniDir": str(tmp_path / "cache"),
        "delegates": [{"cniVersion": "1.0.0", "name": "d", "type": "bridge",
                       "bridge": "br-d"}]})


def test_no_records_at_all_and_an_unknown_container_are_unknown_containers(
        tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    store = SQLiteStore(tmp_path / "s.db")
    with pytest.raises(UnknownContainer, match="nothing to hot-plug"):
        hotplug.hotplug(conf, store, "c1")
    engine.save_record(conf, engine.PodRecord(
        "other", "/proc/self/ns/net", "eth0", PodRef("ns", "p"), []))
    with pytest.raises(UnknownContainer, match="c1: nothing to hot-plug"):
        hotplug.hotplug(conf, store, "c1")
    store.close()


def test_a_pod_whose_netns_is_gone_cannot_be_hot_plugged(tmp_path: Path) -> None:
    conf = _conf(tmp_path)
    store = SQLiteStore(tmp_path / "s.db")
    engine.save_record(conf, engine.PodRecord(
        "c1", str(tmp_path / "no-such-netns"), "eth0", PodRef("ns", "p"), []))
    with pytest.raises(InvalidEnvironment, match=r"network namespace .* is gone"):
        hotplug.hotplug(conf, store, "c1")
    store.close()
