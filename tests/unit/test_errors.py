"""One base error for the project; CNI codes only at the CNI edge."""

from __future__ import annotations

import pytest

from multihome.cni.errors import CNIError, InvalidConfig
from multihome.errors import MultihomeError
from multihome.node.apply import ApplyError
from multihome.node.checkpoint import RestoreFailed
from multihome.node.errors import NodeError
from multihome.node.recovery import RecoveryFailed
from multihome.node.resources import MissingNodeResource
from multihome.node.transaction import ApplyFailed, CheckpointPending
from multihome.vm.errors import VMError

NODE_ERRORS = [ApplyError, RestoreFailed, ApplyFailed, CheckpointPending, RecoveryFailed,
               MissingNodeResource]


@pytest.mark.parametrize("cls", NODE_ERRORS)
def test_node_errors_are_the_projects_not_cni_errors(cls: type[Exception]) -> None:
    assert issubclass(cls, NodeError) and issubclass(cls, MultihomeError)
    assert not issubclass(cls, CNIError)


def test_vm_errors_are_the_projects_not_cni_errors() -> None:
    err = VMError("qemu", "it exited", "status 1")
    assert isinstance(err, MultihomeError) and not isinstance(err, CNIError)
    assert str(err) == "qemu: it exited: status 1"


def test_cni_errors_are_the_projects_too_and_print_the_same() -> None:
    err = InvalidConfig("bad bridge", "no such device")
    assert isinstance(err, MultihomeError)
    assert str(err) == "bad bridge: no such device"
    assert str(NodeError("bad bridge", "no such device")) == str(err)
    assert err.to_dict("1.0.0") == {"cniVersion": "1.0.0", "code": 7, "msg": "bad bridge",
                                    "details": "no such device"}
