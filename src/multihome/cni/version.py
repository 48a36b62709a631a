"""CNI spec versions: parsing, comparison and the choice among `cniVersions`."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from multihome.cni.errors import IncompatibleVersion, InvalidConfig

ALL_VERSIONS: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
LATEST = ALL_VERSIONS[-1]

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)$")


def parse(version: str) -> tuple[int, int, int]:
    """`"0.3.1"` → `(0, 3, 1)`; anything else is an invalid config (code 7)."""
    if not isinstance(version, str):  # a JSON list or object would not even hash
        raise InvalidConfig(f"invalid cniVersion {version!r}: expected MAJOR.MINOR.PATCH")
    return _parse(version)


# Result conversion asks this hundreds of times per pod, about a handful of strings.
@functools.lru_cache(maxsize=64)
def _parse(version: str) -> tuple[int, int, int]:
    m = _SEMVER.match(version)
    if not m:
        raise InvalidConfig(f"invalid cniVersion {version!r}: expected MAJOR.MINOR.PATCH")
    return int(m[1]), int(m[2]), int(m[3])


def at_least(version: str, minimum: str) -> bool:
    return parse(version) >= parse(minimum)


def require_supported(version: str, supported: Iterable[str] = ALL_VERSIONS) -> str:
    """Return `version` if supported, else raise code 1 naming what is."""
    parse(version)
    supported = tuple(supported)
    if version not in supported:
        raise IncompatibleVersion(
            f"incompatible CNI versions: config is {version!r}, "
            f"plugin supports {list(supported)}"
        )
    return version


def pick(candidates: Iterable[str], supported: Iterable[str] = ALL_VERSIONS) -> str | None:
    """Highest of `candidates` (a config's `cniVersions`) that is supported, or None."""
    supported = set(supported)
    valid = [v for v in candidates if isinstance(v, str) and _SEMVER.match(v) and v in supported]
    return max(valid, key=parse) if valid else None
