"""The lab cluster's layout hands its node daemon what the daemon cannot guess."""

from __future__ import annotations

import pytest

from multihome.lab.cluster.layout import ClusterLayout, cluster_root
from multihome.paths import STATE_ENV, config_path_allowed


def test_the_daemon_learns_the_labs_state_dir_from_the_layout_not_the_callers_env() -> None:
    # `lab cni multihome` from a shell without $MULTIHOME_STATE_DIR restarts the daemon:
    # without the state dir it refused the lab's own IPAM dataDir as a foreign path
    layout = ClusterLayout(root=cluster_root("/srv/lab-state"))
    env = layout.daemon_env()
    assert env == {"NODE_NAME": "mh-lab-node", STATE_ENV: "/srv/lab-state"}


def test_the_labs_ipam_dir_is_allowed_once_the_state_dir_is_known(
        monkeypatch: pytest.MonkeyPatch) -> None:
    layout = ClusterLayout(root=cluster_root("/srv/lab-state"))
    ipam = str(layout.dir("ipam"))
    monkeypatch.delenv(STATE_ENV, raising=False)
    monkeypatch.delenv("MULTIHOME_CONFIG_PATH_ROOTS", raising=False)
    assert not config_path_allowed(ipam)
    monkeypatch.setenv(STATE_ENV, layout.daemon_env()[STATE_ENV])
    assert config_path_allowed(ipam)
