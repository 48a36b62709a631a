"""KubeStore against the fixture API server: caches, watches, conflicts, reachability."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from multihome.cni.errors import TRY_AGAIN_LATER
from multihome.k8s.cache import WatchCache
from multihome.k8s.client import ApiClient, Credentials, TokenSource
from multihome.k8s.store import NETWORK_STATUS, ApiUnreachableError, KubeStore
from multihome.store import NAD, POD, Conflict, InvalidObjectName, NotFound, Object
from support.fake_apiserver import FakeApiServer
from support.k8s_objects import NADS, PODS, nad, pod, wait_for


@pytest.fixture
def store(api: ApiClient) -> Iterator[KubeStore]:
    s = KubeStore(api, "node-a", retry_delay_s=0.01)
    try:
        yield s
    finally:
        s.close()


def gets(server: FakeApiServer, path: str) -> int:
    return sum(1 for m, p in server.requests if m == "GET" and p == path)


def test_pod_cache_is_filtered_to_the_node(apiserver: FakeApiServer, store: KubeStore) -> None:
    apiserver.put_object(PODS, pod("mine"))
    apiserver.put_object(PODS, pod("theirs", node="node-b"))
    cache = store.caches[POD]
    wait_for(lambda: cache.synced and cache.get("default", "mine") is not None)
    assert cache.get("default", "theirs") is None
    assert any("fieldSelector=spec.nodeName%3Dnode-a" in p for _, p in apiserver.requests)
    # served from the cache: no GET of the pod itself
    assert store.get(POD, "default", "mine").spec["nodeName"] == "node-a"
    assert gets(apiserver, f"{PODS}/mine") == 0


def test_uncached_pod_is_fetched_not_reported_missing(apiserver: FakeApiServer,
                                                      api: ApiClient) -> None:
    apiserver.put_object(PODS, pod("early"))
    s = KubeStore(api, "node-a", watch=False)  # a cache that never syncs
    try:
        assert s.get(POD, "default", "early").name == "early"
        assert gets(apiserver, f"{PODS}/early") == 1
        with pytest.raises(NotFound):
            s.get(POD, "default", "absent")
    finally:
        s.close()


def test_nad_cache_follows_watch_events(apiserver: FakeApiServer, store: KubeStore) -> None:
    cache = store.caches[NAD]
    wait_for(lambda: cache.synced)
    apiserver.put_object(NADS, nad("net1"))
    wait_for(lambda: cache.get("default", "net1") is not None)
    assert [o.name for o in store.list(NAD, "default")] == ["net1"]
    apiserver.bookmark()
    wait_for(lambda: cache.resource_version == str(apiserver.rv))
    store.delete(NAD, "default", "net1")
    wait_for(lambda: cache.get("default", "net1") is None)
    assert cache.relists == 1


def test_watch_resumes_from_last_version(apiserver: FakeApiServer, api: ApiClient) -> None:
    cache = WatchCache(api, "/api/v1/pods", watch_timeout_s=1)
    cache.relist()
    apiserver.put_object(PODS, pod("a"))
    cache.watch_once()  # ends after the server's timeout
    assert cache.get("default", "a") is not None
    first_rv = cache.resource_version
    apiserver.bookmark()
    cache.watch_once()
    assert int(cache.resource_version) > int(first_rv)  # bookmark moved the resume point
    watches = [p for m, p in apiserver.requests if "watch=true" in p]
    assert f"resourceVersion={first_rv}" in watches[-1]
    assert cache.relists == 1


def test_gone_forces_relist(apiserver: FakeApiServer, api: ApiClient) -> None:
    from multihome.k8s.client import ApiError

    cache = WatchCache(api, "/api/v1/pods", watch_timeout_s=1)
    cache.relist()
    # the cache misses this change and history is compacted: resuming answers 410 Gone
    apiserver.put_object(PODS, pod("after-compaction"))
    apiserver.compact()
    with pytest.raises(ApiError) as info:
        cache.watch_once()
    assert info.value.status == 410
    cache.start()  # the loop relists on 410 and picks the missed object up
    try:
        wait_for(lambda: cache.relists == 2
                 and cache.get("default", "after-compaction") is not None)
    finally:
        cache.stop()


def test_network_status_patch_retries_conflicts(apiserver: FakeApiServer,
                                                store: KubeStore) -> None:
    apiserver.put_object(PODS, pod("p1"))
    apiserver.conflicts_to_inject = 2
    status = [{"name": "default/net1", "interface": "net1", "ips": ["10.1.0.2"]}]
    stored = store.patch_annotations(POD, "default", "p1", {NETWORK_STATUS: json.dumps(status)})
    assert json.loads(stored.annotations[NETWORK_STATUS]) == status
    patches = [p for m, p in apiserver.requests if m == "PATCH"]
    assert len(patches) == 3
    # events are the engine's to record (attach/events.py), not a side effect of a patch
    assert [k for k in apiserver.objects if k[0] == "api/v1/events"] == []


def test_patch_gives_up_after_persistent_conflicts(apiserver: FakeApiServer,
                                                   store: KubeStore) -> None:
    apiserver.put_object(PODS, pod("p2"))
    apiserver.conflicts_to_inject = 100
    with pytest.raises(Conflict):
        store.patch_annotations(POD, "default", "p2", {"a": "b"})


def test_update_with_stale_version_conflicts(apiserver: FakeApiServer,
                                             store: KubeStore) -> None:
    created = store.create(Object.from_manifest(nad("net2")))
    stale = created.resource_version
    store.patch_annotations(NAD, "default", "net2", {"x": "1"})
    with pytest.raises(Conflict):
        store.update(created, expected_version=stale)


def test_reads_record_no_events_the_engine_records_them(apiserver: FakeApiServer,
                                                        store: KubeStore) -> None:
    apiserver.put_object(PODS, pod("p3"))
    store.get(POD, "default", "p3")
    with pytest.raises(NotFound):
        store.get(NAD, "default", "nope")
    assert [k for k in apiserver.objects if k[0] == "api/v1/events"] == []
    # what the engine calls (attach/events.py) becomes an Event on the pod, from "multus"
    store.record_event(("default", "p3"), "NoNetworkFound", "cannot find …", "Warning")
    events = [o for k, o in apiserver.objects.items() if k[0] == "api/v1/events"]
    assert [(e["reason"], e["type"], e["source"]["component"]) for e in events] == [
        ("NoNetworkFound", "Warning", "multus")]
    assert events[0]["involvedObject"]["name"] == "p3"


def test_unreachable_is_not_not_found() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    api = ApiClient(Credentials(server=f"http://127.0.0.1:{port}"), timeout_s=1)
    s = KubeStore(api, "node-a", watch=False, retry_delay_s=0.01)
    try:
        with pytest.raises(ApiUnreachableError) as info:
            s.get(POD, "default", "p")
        assert info.value.code == TRY_AGAIN_LATER
        assert "cannot reach the Kubernetes API server" in str(info.value)
        assert not isinstance(info.value, NotFound)
    finally:
        s.close()


def test_a_closed_client_is_unreachable_for_requests_and_watches(
        apiserver: FakeApiServer) -> None:
    # a watcher thread still running while its owner shuts down must get the error it
    # handles (and stop), not httpx's RuntimeError killing the thread
    from multihome.k8s.client import ApiUnreachable

    api = ApiClient(Credentials(server=apiserver.url), timeout_s=5)
    api.close()
    with pytest.raises(ApiUnreachable, match="the client was closed"):
        api.request("GET", "/api/v1/pods")
    with pytest.raises(ApiUnreachable, match="the client was closed"):
        next(api.watch("/api/v1/pods", {}))


def test_token_file_is_reread_when_it_changes(tmp_path: Path) -> None:
    server = FakeApiServer(token="first").start()
    token = tmp_path / "token"
    token.write_text("first\n")
    api = ApiClient(Credentials(server=server.url, token_file=str(token)), timeout_s=5)
    try:
        api.request("GET", "/api/v1/pods")
        server.token = "second"  # kubelet rotated the token
        token.write_text("second\n")
        os.utime(token, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
        api.request("GET", "/api/v1/pods")
        assert server.auth_seen == ["Bearer first", "Bearer second"]
    finally:
        api.close()
        server.stop()


def test_token_source_keeps_last_token_while_file_missing(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("abc")
    src = TokenSource(token_file=str(token))
    assert src.current() == "abc"
    token.unlink()
    assert src.current() == "abc"


def test_kubeconfig_credentials(tmp_path: Path, apiserver: FakeApiServer) -> None:
    from multihome.k8s.client import credentials_from_kubeconfig

    cfg = tmp_path / "kubeconfig"
    cfg.write_text(f"""
apiVersion: v1
kind: Config
clusters: [{{name: c, cluster: {{server: "{apiserver.url}"}}}}]
users: [{{name: u, user: {{token: t0k}}}}]
contexts: [{{name: x, context: {{cluster: c, user: u}}}}]
current-context: x
""")
    creds = credentials_from_kubeconfig(str(cfg))
    assert (creds.server, creds.token) == (apiserver.url, "t0k")


CRAFTED = ["../../../api/v1/secrets", "default/pods/x", "a?b=c", "x#y", "..", ".", "A",
           "a%2fb", "", "a" * 300]


@pytest.mark.parametrize("bad", CRAFTED)
def test_crafted_names_never_reach_an_api_path(apiserver: FakeApiServer, store: KubeStore,
                                               bad: str) -> None:
    """A namespace or name that is not a DNS-1123 name is refused before any request: it
    could otherwise address another resource (`..` segments, a query, another kind)."""
    before = len(apiserver.requests)
    calls: list[Callable[[], object]] = [
        lambda: store.get(NAD, bad or "x/", "n"),
        lambda: store.get(NAD, "default", bad or "x/"),
        lambda: store.delete(POD, bad or "x/", "p"),
        lambda: store.list(POD, bad or "x/"),
        lambda: store.patch_annotations(POD, "default", bad or "x/", {"a": "b"}),
        lambda: store.create(Object(NAD, bad or "x/", "default", nad("n"))),
    ]
    for call in calls:
        with pytest.raises(InvalidObjectName):
            call()
    assert len(apiserver.requests) == before, apiserver.requests[before:]


def test_the_client_refuses_a_path_with_dot_dot(api: ApiClient) -> None:
    with pytest.raises(ValueError, match="not a plain name"):
        api.request("GET", "/api/v1/namespaces/../secrets")
