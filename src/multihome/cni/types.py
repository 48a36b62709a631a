"""Typed views of a CNI call: the environment (`CmdArgs`) and the network config (`NetConf`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multihome.cni import jsontext
from multihome.cni import version as ver
from multihome.cni.errors import DecodingFailure, InvalidConfig, InvalidEnvironment
from multihome.cni.result import Result

COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")

# The spec's pattern, as printed in error messages. The compiled form ends in \Z because
# Python's `$` also matches before a trailing newline, which would let "abc\n" through.
NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$"
NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*\Z")
CONTAINER_ID_RE = NAME_RE

# Which variables each command needs (CNI spec, "Parameters").
_REQUIRED: dict[str, tuple[str, ...]] = {
    "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
    "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
    "GC": ("CNI_PATH",),
    "STATUS": (),
    "VERSION": (),
}


def validate_ifname(name: str) -> str:
    """Linux interface name rules, as the CNI spec and the kernel apply them."""
    if not name:
        raise InvalidEnvironment("interface name is empty")
    # IFNAMSIZ counts bytes, not characters.
    if len(name.encode("utf-8", "surrogateescape")) > 15:
        raise InvalidEnvironment(f"interface name {name!r} is longer than 15 bytes")
    if name in (".", ".."):
        raise InvalidEnvironment(f"interface name {name!r} is not allowed")
    if any(c in name for c in "/:") or any(c.isspace() for c in name):
        raise InvalidEnvironment(
            f"interface name {name!r} contains '/', ':' or whitespace, which are not allowed"
        )
    return name


def parse_cni_args(text: str) -> list[tuple[str, str]]:
    """`CNI_ARGS` is `K=V;K=V`; a pair without `=` is a bad environment (code 4)."""
    pairs: list[tuple[str, str]] = []
    if not text:
        return pairs
    for item in text.split(";"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidEnvironment(f"invalid CNI_ARGS pair {item!r}: expected KEY=VALUE")
        pairs.append((key, value))
    return pairs


@dataclass(frozen=True)
class CmdArgs:
    """The CNI environment of one call."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: str = ""
    path: tuple[str, ...] = ()

    @property
    def args_pairs(self) -> list[tuple[str, str]]:
        return parse_cni_args(self.args)

    def arg(self, key: str) -> str | None:
        """A legacy `CNI_ARGS` value (`IP=`, `MAC=`, `K8S_POD_NAME=`…)."""
        for k, v in self.args_pairs:
            if k == key:
                return v
        return None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CmdArgs:
        command = env.get("CNI_COMMAND", "")
        if not command:
            raise InvalidEnvironment("required env variable CNI_COMMAND is missing")
        if command not in COMMANDS:
            raise InvalidEnvironment(
                f"unknown CNI_COMMAND {command!r}: expected one of {', '.join(COMMANDS)}"
            )
        missing = [k for k in _REQUIRED[command] if not env.get(k)]
        if missing:
            raise InvalidEnvironment(
                f"required env variables [{', '.join(missing)}] missing for {command}"
            )
        cid = env.get("CNI_CONTAINERID", "")
        if cid and not CONTAINER_ID_RE.match(cid):
            raise InvalidEnvironment(
                f"invalid CNI_CONTAINERID {cid!r}: must match {NAME_PATTERN}"
            )
        ifname = env.get("CNI_IFNAME", "")
        if ifname or command in ("ADD", "CHECK", "DEL"):
            validate_ifname(ifname)
        cni_args = env.get("CNI_ARGS", "")
        parse_cni_args(cni_args)
        path = tuple(p for p in env.get("CNI_PATH", "").split(":") if p)
        return cls(command, cid, env.get("CNI_NETNS", ""), ifname, cni_args, path)

    def to_env(self) -> dict[str, str]:
        """The variables to pass to an exec'ed plugin (libcni's `Args.AsEnv`).

        All six are always present, empty when unset, so that values inherited from our
        own environment (when we run as a plugin ourselves) never leak into a delegate.
        """
        return {
            "CNI_COMMAND": self.command,
            "CNI_CONTAINERID": self.container_id,
            "CNI_NETNS": self.netns,
            "CNI_ARGS": self.args,
            "CNI_IFNAME": self.ifname,
            "CNI_PATH": ":".join(self.path),
        }


@dataclass
class NetConf:
    """The keys every plugin config has; `raw` keeps the whole object for plugin-specific keys."""

    cni_version: str
    name: str
    type: str
    raw: dict[str, Any]
    ipam: dict[str, Any] | None = None
    dns: dict[str, Any] | None = None
    runtime_config: dict[str, Any] = field(default_factory=dict)
    args: dict[str, Any] = field(default_factory=dict)
    prev_result: Result | None = None

    @property
    def cni_args(self) -> dict[str, Any]:
        """`args.cni` (the conventions' place for `ips`, `mac`…)."""
        cni = self.args.get("cni")
        return cni if isinstance(cni, dict) else {}

    @classmethod
    def from_bytes(cls, data: bytes | str, *, need_name: bool = True) -> NetConf:
        return cls.from_dict(jsontext.loads(data), need_name=need_name)

    @classmethod
    def from_dict(cls, raw: Any, *, need_name: bool = True) -> NetConf:
        if not isinstance(raw, dict):
            raise DecodingFailure("network config must be a JSON object")
        v = raw.get("cniVersion", "0.1.0")
        if v == "":
            v = "0.1.0"
        if not isinstance(v, str):
            raise InvalidConfig(f"invalid cniVersion {v!r}: expected a string")
        ver.parse(v)
        name = raw.get("name", "")
        if not isinstance(name, str):
            raise InvalidConfig("network config 'name' must be a string")
        if need_name and not name:
            raise InvalidConfig("network config is missing 'name'")
        if name and not NAME_RE.match(name):
            raise InvalidConfig(f"invalid network name {name!r}: must match {NAME_PATTERN}")
        ptype = raw.get("type", "")
        if not isinstance(ptype, str) or not ptype:
            raise InvalidConfig("network config is missing 'type'")
        ipam = raw.get("ipam")
        if ipam is not None and not isinstance(ipam, dict):
            raise InvalidConfig("network config 'ipam' must be an object")
        dns = raw.get("dns")
        if dns is not None and not isinstance(dns, dict):
            raise InvalidConfig("network config 'dns' must be an object")
        rc = raw.get("runtimeConfig", {}) or {}
        if not isinstance(rc, dict):
            raise InvalidConfig("network config 'runtimeConfig' must be an object")
        args = raw.get("args", {}) or {}
        if not isinstance(args, dict):
            raise InvalidConfig("network config 'args' must be an object")
        prev = raw.get("prevResult")
        prev_result = None
        if prev is not None:
            prev_result = Result.from_dict({"cniVersion": v, **prev} if isinstance(prev, dict)
                                           else prev)
        return cls(v, name, ptype, raw, ipam, dns, rc, args, prev_result)
