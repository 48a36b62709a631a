"""The engine as a CNI plugin of type `multihome`, for a runtime's `00-multihome.conf`.

It opens the store a config names (SQLite or the Kubernetes API), so it sits above
both, beside :mod:`multihome.stores`, rather than in `attach/`.

The config is a Multus config (see multus_config); the pod comes from CNI_ARGS
`K8S_POD_NAMESPACE` / `K8S_POD_NAME` as the kubelet passes them. Without them, or
without a `store`, the default network and the config's other `delegates` are attached,
as Multus does without an API. DEL and GC work without the store (see engine).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

from multihome.attach import engine, logs
from multihome.attach.multus_config import MultusConfig, parse_multus_config
from multihome.attach.plan import PodRef
from multihome.cni.result import Result
from multihome.cni.skel import Call
from multihome.cni.version import ALL_VERSIONS
from multihome.store import Store
from multihome.stores import open_store

SUPPORTED_VERSIONS: tuple[str, ...] = ALL_VERSIONS


def _config(call: Call) -> MultusConfig:
    conf = dataclasses.replace(parse_multus_config(call.conf.raw),
                               executor=engine.current_executor())
    logs.configure(conf)
    return conf


@contextlib.contextmanager
def _store(conf: MultusConfig, *, optional: bool = False) -> Iterator[Store | None]:
    """The engine's store. `optional` (DEL, GC): a store that cannot be opened is None,
    so teardown works from the engine's caches alone."""
    if not conf.store:
        yield None
        return
    try:
        store = open_store(conf.store)
    except Exception as e:
        if not optional:
            raise
        logs.log.error("store %s cannot be opened (%s: %s): working from the caches",
                       conf.store, type(e).__name__, e)
        yield None
        return
    try:
        yield store
    finally:
        with contextlib.suppress(Exception):
            store.close()


def _request(call: Call) -> engine.PodRequest:
    ns = call.cmd.arg("K8S_POD_NAMESPACE")
    name = call.cmd.arg("K8S_POD_NAME")
    pod = PodRef(ns, name) if ns and name else None
    passthrough = [(k, v) for k, v in call.cmd.args_pairs
                   if k not in ("IgnoreUnknown", "K8S_POD_NAMESPACE", "K8S_POD_NAME",
                                "K8S_POD_INFRA_CONTAINER_ID")]
    return engine.PodRequest(call.cmd.container_id, call.cmd.netns, pod, call.cmd.ifname,
                             passthrough)


def add(call: Call) -> Result:
    conf = _config(call)
    with _store(conf) as store:
        out = engine.add(conf, store, _request(call), call.cmd.path)
    return out.result.convert(call.conf.cni_version)


def delete(call: Call) -> None:
    conf = _config(call)
    with _store(conf, optional=True) as store:
        engine.delete(conf, store, _request(call), call.cmd.path)


def check(call: Call) -> None:
    engine.check(_config(call), _request(call), call.cmd.path)


def status(call: Call) -> None:
    conf = _config(call)
    with _store(conf) as store:
        engine.status(conf, store, call.cmd.path)


def gc(call: Call) -> None:
    conf = _config(call)
    raw: Any = call.conf.raw.get("cni.dev/valid-attachments",
                                 call.conf.raw.get("cni.dev/attachments", []))
    valid = [a for a in raw if isinstance(a, dict)] if isinstance(raw, list) else []
    with _store(conf, optional=True) as store:
        engine.gc(conf, store, valid, call.cmd.path)
