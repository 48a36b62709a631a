"""Ethtool features (offloads such as rx-gro or tx-checksum-ip-generic) of links, read and
changed through pyroute2's ethtool support, in the kernel's feature names (as nmstate's
`ethtool.feature` spells them).

Only the features a link lets change are reported: the fixed ones say nothing a policy
could ask for. The ethtool sockets are opened inside the node's namespace, so a name is
looked up there and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

from pyroute2.ethtool import Ethtool

from multihome.cni.errors import CNIError
from multihome.net import netns


@contextmanager
def _ethtool(netns_path: str | None) -> Iterator[Any]:
    with netns.entered(netns_path) if netns_path else nullcontext(), Ethtool() as tool:
        yield tool


def _changeable(tool: Any, ifname: str) -> tuple[Any, dict[str, bool]]:
    try:
        found = tool.get_features(ifname)
    except (OSError, ValueError) as e:
        raise CNIError(f"cannot read the ethtool features of {ifname}", str(e)) from e
    return found, {name: bool(f.enable) for name, f in found.features.items()
                   if name and f.available}


def read(netns_path: str | None, names: Iterable[str]) -> dict[str, dict[str, bool]]:
    """The changeable features of each link of `names`, by link (a link that vanished in
    the meantime, or has none, is left out)."""
    out: dict[str, dict[str, bool]] = {}
    wanted = list(names)
    if not wanted:  # no sockets and no namespace switch for nothing
        return out
    with _ethtool(netns_path) as tool:
        for name in wanted:
            try:
                _, feats = _changeable(tool, name)
            except CNIError:
                continue
            if feats:
                out[name] = dict(sorted(feats.items()))
    return out


def change(netns_path: str | None, ifname: str, wanted: dict[str, bool]) -> list[str]:
    """Set the features that differ; a feature the link does not let change is an error
    naming it (and nothing is changed). Returns the names changed."""
    with _ethtool(netns_path) as tool:
        found, have = _changeable(tool, ifname)
        unknown = sorted(set(wanted) - set(have))
        if unknown:
            raise CNIError(f"{ifname} does not offer ethtool feature(s) {', '.join(unknown)} "
                           "to change", f"it offers: {', '.join(sorted(have))}")
        changed = [name for name, on in wanted.items() if have[name] != on]
        if not changed:
            return []
        for name in changed:
            found.features[name].enable = wanted[name]
        try:
            tool.set_features(ifname, found)
        except (OSError, ValueError) as e:
            raise CNIError(f"cannot set ethtool features {changed} of {ifname}",
                           str(e)) from e
    return changed
