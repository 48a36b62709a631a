"""Names and MACs the bindings give what they make inside the launcher pod."""

from __future__ import annotations

import secrets


def random_mac() -> str:
    """A locally administered unicast MAC."""
    first = (secrets.randbits(8) & 0xFC) | 0x02
    return ":".join(f"{b:02x}" for b in [first, *secrets.token_bytes(5)])


def _suffix(ifname: str) -> str:
    return ifname[-9:]


def bridge_name(ifname: str) -> str:
    return f"k6t-{_suffix(ifname)}"


def tap_name(ifname: str) -> str:
    return f"tap-{_suffix(ifname)}"
