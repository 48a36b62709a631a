"""State and config files are read with bounds: a FIFO, a directory or a huge file where
one is expected is an error at once (never a blocked daemon), in every reader."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from multihome.cni import cache
from multihome.cni.errors import CNIError, InvalidConfig
from multihome.ipam import config as ipam_config
from multihome.paths import read_bounded
from multihome.plugins import state_file


def test_read_bounded_reads_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"content")
    assert read_bounded(tmp_path / "f") == b"content"


@pytest.mark.parametrize("make", ["fifo", "dir"])
def test_read_bounded_refuses_what_is_not_a_regular_file_at_once(tmp_path: Path,
                                                                 make: str) -> None:
    target = tmp_path / "x"
    os.mkfifo(target) if make == "fifo" else target.mkdir()
    with pytest.raises(OSError) as err:
        read_bounded(target)
    assert err.value.errno in (errno.EINVAL, errno.EISDIR)


def test_read_bounded_refuses_a_file_past_its_limit(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(b"x" * 101)
    assert read_bounded(tmp_path / "big", 101) == b"x" * 101
    with pytest.raises(OSError) as err:
        read_bounded(tmp_path / "big", 100)
    assert err.value.errno == errno.EFBIG


def test_a_fifo_as_resolv_conf_is_a_config_error(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "resolv.conf")
    with pytest.raises(InvalidConfig, match="cannot be read"):
        ipam_config.parse_resolv_conf(str(tmp_path / "resolv.conf"))


def test_a_fifo_as_a_cni_cache_file_is_an_error(tmp_path: Path) -> None:
    path = cache.cache_path(str(tmp_path), "net", "c1", "eth0")
    os.makedirs(os.path.dirname(path))
    os.mkfifo(path)
    with pytest.raises(CNIError, match="cannot read CNI cache file"):
        cache.load(str(tmp_path), "net", "c1", "eth0")


def test_a_fifo_as_saved_plugin_state_is_an_error(tmp_path: Path) -> None:
    target = state_file.path(str(tmp_path), "c1", "eth0")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.mkfifo(target)
    with pytest.raises(CNIError, match="cannot read the saved settings"):
        state_file.load(str(tmp_path), "c1", "eth0")
    os.unlink(target)
    target.write_text(json.dumps({"mtu": 1400}))
    assert state_file.load(str(tmp_path), "c1", "eth0") == {"mtu": 1400}
