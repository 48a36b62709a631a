"""dhcp IPAM: the address, gateway and routes of a lease from the network's DHCP server.

The configuration is the reference plugin's (`type: dhcp`, `request`, `provide`,
`priority`, `daemonSocketPath`). Its lease client runs inside the multihome node daemon
(multihome.ipam.dhcp_leases), not in a separate daemon: `daemonSocketPath` is accepted
and ignored (the daemon never opens a path a config names). Run outside the daemon (a
plugin executable with no daemon to forward to) ADD fails with code 11, try again later,
naming the daemon it needs.

ADD returns the lease as the reference does: the address with the server's subnet mask,
the first router as gateway, and routes: the classless static routes (option 121) when
the server sent them (RFC 3442: then option 33 and the router are not routes), else the
static routes (option 33, classful destinations) plus a default route via the router.
DEL sends DHCPRELEASE and stops renewing; CHECK finds the lease still held.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
from dataclasses import dataclass
from typing import Any

from multihome import shim
from multihome.cni import version as ver
from multihome.cni.errors import CNIError, InvalidConfig, NotAvailable, TryAgainLater
from multihome.cni.result import IPConfig, Result, Route
from multihome.cni.skel import Call
from multihome.cni.types import CmdArgs
from multihome.ipam import config as cfgmod
from multihome.ipam import dhcp_leases
from multihome.net.dhcp import TIMER_OPTIONS, ClientOptions, DhcpError, LeaseData

SUPPORTED_VERSIONS: tuple[str, ...] = ver.ALL_VERSIONS

# dhcp-options(5) names (the reference's and a few more), numbers also accepted.
# A name may stand for several options when asking ("routes": both kinds of routes).
OPTION_NAMES: dict[str, tuple[int, ...]] = {
    "subnet-mask": (1,), "routers": (3,), "router": (3,), "domain-name-servers": (6,),
    "dns": (6,), "host-name": (12,), "hostname": (12,), "domain-name": (15,),
    "interface-mtu": (26,), "mtu": (26,), "broadcast-address": (28,), "static-routes": (33,),
    "ntp-servers": (42,), "vendor-class-identifier": (60,), "vendor-id": (60,),
    "dhcp-client-identifier": (61,), "client-identifier": (61,), "client-id": (61,),
    "user-class": (77,), "domain-search": (119,), "classless-static-routes": (121,),
    "routes": (121, 33),
}
DEFAULT_REQUEST: tuple[int, ...] = (3, 1)  # routers, subnet mask (the reference's)
# What the client can put in its messages; other options are refused, not dropped.
PROVIDABLE = {12: "host-name", 60: "vendor-class-identifier", 61: "dhcp-client-identifier"}
MAX_OPTION_VALUE = 255
CLASSLESS_ROUTES, STATIC_ROUTES = 121, 33
_SCOPE_LINK = 253


@dataclass(frozen=True)
class DhcpConfig:
    request: tuple[int, ...]
    provide: dict[int, str]
    priority: int


def _option_codes(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise InvalidConfig(f"{where} 'option' must be an option name or number, got {value!r}")
    if text.isdigit():
        code = int(text)
        if not 1 <= code <= 254:
            raise InvalidConfig(f"{where} option {text} is not a DHCP option (1-254)")
        return (code,)
    codes = OPTION_NAMES.get(text.lower().replace("_", "-"))
    if codes is None:
        raise InvalidConfig(f"{where} option {text!r} is unknown: use a number or one of "
                            f"{', '.join(sorted(OPTION_NAMES))}")
    return codes


def _objects(ipam: dict[str, Any], key: str) -> list[dict[str, Any]]:
    raw = ipam.get(key)
    if raw is None:
        return []
    if not isinstance(raw, list) or not all(isinstance(o, dict) for o in raw):
        raise InvalidConfig(f"ipam '{key}' must be a list of objects, got {raw!r}")
    return raw


def parse(call: Call) -> DhcpConfig:
    ipam = cfgmod.ipam_section(call.conf)
    # accepted for configs written for the reference daemon; never opened (see above)
    cfgmod.string_key(ipam, "daemonSocketPath")
    priority = ipam.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int) or priority < 0:
        raise InvalidConfig(f"ipam 'priority' must be a non-negative integer, got {priority!r}")
    skip_default = False
    asked: list[int] = []
    for i, item in enumerate(_objects(ipam, "request")):
        skip = item.get("skipDefault", False)
        if not isinstance(skip, bool):
            raise InvalidConfig(f"ipam 'request' entry {i} 'skipDefault' must be a boolean")
        skip_default = skip_default or skip
        if item.get("option") not in (None, ""):
            asked += _option_codes(item["option"], f"ipam 'request' entry {i}")
    request: list[int] = []
    for code in [*(() if skip_default else DEFAULT_REQUEST), *asked, *TIMER_OPTIONS]:
        if code not in request:
            request.append(code)
    args = dict(_cni_args(call.cmd))
    provide: dict[int, str] = {}
    for i, item in enumerate(_objects(ipam, "provide")):
        where = f"ipam 'provide' entry {i}"
        codes = _option_codes(item.get("option"), where)
        if len(codes) != 1 or codes[0] not in PROVIDABLE:
            raise InvalidConfig(f"{where}: option {item.get('option')!r} cannot be provided; "
                                f"the client sends {', '.join(PROVIDABLE.values())}")
        value = cfgmod.string_key(item, "value", where)
        from_arg = cfgmod.string_key(item, "fromArg", where)
        if from_arg and from_arg in args:
            value = args[from_arg]  # as the reference: the CNI_ARGS value is sent last
        if len(value.encode()) > MAX_OPTION_VALUE:
            raise InvalidConfig(f"{where}: value for option {item.get('option')!r} is longer "
                                f"than {MAX_OPTION_VALUE} bytes")
        if value:
            provide[codes[0]] = value
    return DhcpConfig(tuple(request), provide, priority)


def _cni_args(cmd: CmdArgs) -> list[tuple[str, str]]:
    """CNI_ARGS pairs; `fromArg` names any key (K8S_POD_NAME…), unknown keys are fine."""
    return cmd.args_pairs


def _key(call: Call) -> dhcp_leases.LeaseKey:
    return dhcp_leases.LeaseKey(call.cmd.container_id, call.conf.name, call.cmd.ifname)


def _options(call: Call, conf: DhcpConfig, key: dhcp_leases.LeaseKey) -> ClientOptions:
    client_id = conf.provide.get(61, key.client_id)
    return ClientOptions(call.cmd.ifname, client_id.encode(), conf.request,
                         hostname=conf.provide.get(12), vendor_id=conf.provide.get(60))


def _no_daemon(what: str, details: str = "") -> TryAgainLater:
    return TryAgainLater(
        f"dhcp IPAM: {what} needs the multihome node daemon, which holds and renews "
        "DHCP leases; start `multihome daemon` on this node (the runtime will retry)", details)


def _forwarded(call: Call) -> dict[str, Any] | None:
    """This call served by the daemon that `dhcp_leases.forward_to` named: its result
    (None for an empty success); _Unserved when there is no such daemon or it does not
    answer. A CNI error from the daemon is raised as it is."""
    path = dhcp_leases.daemon_socket()
    if not path:
        raise _Unserved("no daemon socket is configured for this process")
    stdin = json.dumps(call.conf.raw).encode()
    try:
        reply = shim.call_daemon(path, "dhcp", call.cmd.to_env(), stdin)
    except (shim.Unreachable, shim.Lost) as e:
        raise _Unserved(str(e)) from e
    if reply is None:
        raise _Unserved(f"the daemon on {path} serves another network namespace")
    code, out = reply
    data = json.loads(out) if out.strip() else None
    if code != 0:
        raise CNIError.from_dict(data if isinstance(data, dict) else {"msg": out[:200]})
    return data if isinstance(data, dict) else None


class _Unserved(Exception):
    """No daemon in this process or behind the configured socket."""


def _manager_or_forward(call: Call) -> dhcp_leases.LeaseManager | dict[str, Any] | None:
    """The lease manager of this process, else the daemon's reply to this very call."""
    manager = dhcp_leases.current()
    if manager is not None:
        return manager
    try:
        return _forwarded(call)
    except _Unserved as e:
        raise _no_daemon(call.cmd.command, str(e)) from e


def _classful(dst: ipaddress.IPv4Address) -> int:
    first = int(dst) >> 24
    return 8 if first < 128 else 16 if first < 192 else 24


def _classless_routes(raw: bytes) -> list[Route]:
    """RFC 3442: (width, significant octets of the destination, router) repeated."""
    routes: list[Route] = []
    i = 0
    while i < len(raw):
        width = raw[i]
        octets = (width + 7) // 8
        if width > 32 or i + 1 + octets + 4 > len(raw):
            raise DhcpError(f"malformed classless static routes option at octet {i}")
        dst = ipaddress.IPv4Network(
            (bytes(raw[i + 1:i + 1 + octets]).ljust(4, b"\0"), width), strict=False)
        gw = ipaddress.IPv4Address(bytes(raw[i + 1 + octets:i + 5 + octets]))
        routes.append(Route(dst=dst, gw=gw, scope=_SCOPE_LINK if gw.is_unspecified else None))
        i += 5 + octets
    return routes


def routes_of(lease: LeaseData) -> list[Route]:
    classless = lease.raw_option(CLASSLESS_ROUTES)
    if classless:
        return _classless_routes(classless)
    routes: list[Route] = []
    static = lease.raw_option(STATIC_ROUTES) or b""
    for i in range(0, len(static) - 7, 8):
        dst = ipaddress.IPv4Address(static[i:i + 4])
        routes.append(Route(dst=ipaddress.IPv4Network((dst, _classful(dst)), strict=False),
                            gw=ipaddress.IPv4Address(static[i + 4:i + 8])))
    if lease.gateway is not None:
        # the CNI spec: a gateway is not a route; the default route is listed
        routes.append(Route(dst=ipaddress.IPv4Network("0.0.0.0/0"), gw=lease.gateway))
    return routes


def result_of(lease: LeaseData, conf: DhcpConfig, cni_version: str) -> Result:
    routes = routes_of(lease)
    if conf.priority:
        for r in routes:
            r.priority = conf.priority
    return Result(cni_version=cni_version,
                  ips=[IPConfig(address=lease.address, gateway=lease.gateway)], routes=routes)


def add(call: Call) -> Result:
    conf = parse(call)
    manager = _manager_or_forward(call)
    if not isinstance(manager, dhcp_leases.LeaseManager):
        if manager is None:
            raise CNIError("dhcp IPAM: the daemon returned no result")
        return Result.from_dict(manager)
    key = _key(call)
    try:
        lease = manager.acquire(key, call.cmd.netns, _options(call, conf, key))
        return result_of(lease, conf, call.conf.cni_version)
    except BaseException as e:
        # a failed ADD holds no lease, whatever failed (the result too)
        manager.release(key)
        if isinstance(e, DhcpError):
            raise TryAgainLater(f"dhcp IPAM: {e}") from e
        raise


def delete(call: Call) -> None:
    """Release the lease (DHCPRELEASE) and stop renewing; nothing held is fine (DEL twice,
    or no daemon in this process: its leases end with their namespace)."""
    manager = dhcp_leases.current()
    if manager is not None:
        manager.release(_key(call))
        return
    with contextlib.suppress(_Unserved):
        _forwarded(call)


def check(call: Call) -> None:
    parse(call)
    manager = _manager_or_forward(call)
    if not isinstance(manager, dhcp_leases.LeaseManager):
        return  # the daemon checked
    lease = manager.lease_of(_key(call))
    if lease is None:
        raise CNIError(f"dhcp IPAM: no DHCP lease is held for {call.cmd.ifname} of "
                       f"container {call.cmd.container_id}")
    prev = call.conf.prev_result
    if prev is not None and prev.ips and not any(
            ip.address.ip == lease.address.ip for ip in prev.ips):
        raise CNIError(f"dhcp IPAM: the lease is for {lease.address.ip}, the previous "
                       f"result has {', '.join(str(ip.address) for ip in prev.ips)}")


def status(call: Call) -> None:
    parse(call)
    if dhcp_leases.current() is None:
        try:
            _forwarded(call)
        except _Unserved as e:
            raise NotAvailable("dhcp IPAM needs the multihome node daemon, which is not "
                               "running in this process", str(e)) from e


def gc(call: Call) -> None:
    """Release the leases of this network whose attachment is not among the valid ones."""
    manager = dhcp_leases.current()
    if manager is None:
        return
    valid = call.conf.raw.get("cni.dev/valid-attachments",
                              call.conf.raw.get("cni.dev/attachments"))
    if not isinstance(valid, list):
        return
    keep = {(a.get("containerID"), a.get("ifname")) for a in valid if isinstance(a, dict)}
    for key in manager.held():
        if key.network == call.conf.name and (key.container_id, key.ifname) not in keep:
            manager.release(key)
