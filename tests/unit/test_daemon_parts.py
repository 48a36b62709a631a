"""Daemon parts without a kernel: pool admission and ordering, metrics text, auto-config,
the shim's socket lookup and logs."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from multihome.daemon import autoconf, logs
from multihome.daemon.metrics import DaemonMetrics, Histogram, NodePolicyMetrics
from multihome.daemon.pool import Busy, WaitTimeout, WorkerPool
from multihome.shim import DEFAULT_SOCKET, SOCKET_ENV, loads, socket_path


def test_pool_refuses_past_workers_plus_queue() -> None:
    pool = WorkerPool(1, 1)
    gate = threading.Event()
    results: list[int] = []

    def held(i: int) -> None:
        def work() -> int:
            return i if gate.wait(10) else -1

        results.append(pool.run(f"c{i}", work))

    threads = [threading.Thread(target=held, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while pool.admitted < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with pytest.raises(Busy, match="2 requests in progress"):
        pool.run("c3", lambda: 3)
    gate.set()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 1]
    assert pool.wait_idle(1) and pool.lock_count() == 0
    pool.shutdown()


def test_pool_serializes_one_container_and_parallelizes_others() -> None:
    pool = WorkerPool(4, 8)
    active: dict[str, int] = {}
    peak: dict[str, int] = {}
    both = threading.Barrier(2, timeout=5)
    lock = threading.Lock()

    def work(key: str) -> None:
        with lock:
            active[key] = active.get(key, 0) + 1
            peak[key] = max(peak.get(key, 0), active[key])
        if key in ("a", "b"):
            both.wait()  # a and b only pass together: they must run at the same time
        time.sleep(0.02)
        with lock:
            active[key] -= 1

    keys = ["same"] * 4 + ["a", "b"]
    threads = [threading.Thread(target=pool.run, args=(k, lambda k=k: work(k))) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == {"same": 1, "a": 1, "b": 1}
    pool.shutdown()


def _run_in_thread(fn: Callable[[], object]) -> threading.Thread:
    """`fn` in a thread; the waits it may overrun are what the test is about."""

    def target() -> None:
        with contextlib.suppress(WaitTimeout):
            fn()

    t = threading.Thread(target=target)
    t.start()
    return t


def _until(cond: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_teardown_runs_while_setup_is_full_and_is_never_busy() -> None:
    pool = WorkerPool(1, 0)
    gate = threading.Event()
    add = _run_in_thread(lambda: pool.run("c1", lambda: gate.wait(10)))
    _until(lambda: pool.admitted == 1)
    with pytest.raises(Busy):
        pool.run("c2", lambda: "add")
    # DELs of other containers run now, on their own workers; none is refused
    dels = [pool.run(f"d{i}", functools.partial(int, i), teardown=True) for i in range(3)]
    assert dels == [0, 1, 2]
    gate.set()
    add.join()
    pool.shutdown()


def test_every_wait_ends_with_what_it_waited_for() -> None:
    pool = WorkerPool(1, 4, wait_timeout=0.3)
    gate = threading.Event()
    first = _run_in_thread(lambda: pool.run("same", lambda: gate.wait(10)))
    _until(lambda: pool.lock_count() == 1)
    with pytest.raises(WaitTimeout, match="earlier request of container same"):
        pool.run("same", lambda: 1)
    with pytest.raises(WaitTimeout, match="free worker"):
        pool.run("other", lambda: 1)  # the only worker is taken
    gate.set()
    first.join()
    assert pool.wait_idle(5) and pool.lock_count() == 0
    pool.shutdown()


def test_a_request_past_its_deadline_keeps_its_container_lock_until_it_ends() -> None:
    pool = WorkerPool(2, 0, wait_timeout=0.2)
    gate = threading.Event()
    with pytest.raises(WaitTimeout, match="still running"):
        pool.run("c", lambda: gate.wait(10))
    with pytest.raises(WaitTimeout, match="earlier request of container c"):
        pool.run("c", lambda: 1)  # ordering holds: the first one still runs
    gate.set()
    assert pool.wait_idle(5)
    assert pool.run("c", lambda: 2) == 2
    pool.shutdown()


def test_nested_call_runs_while_its_outer_request_holds_lock_and_worker() -> None:
    pool = WorkerPool(1, 0)
    assert pool.run("c", lambda: pool.run_nested(lambda: "inner")) == "inner"
    pool.shutdown()


def test_metrics_text_format() -> None:
    m = DaemonMetrics()
    m.requests.inc("ADD", "multihome", "ok")
    m.request_seconds.observe(0.003, "ADD")
    text = m.render()
    assert 'multihome_cni_requests_total{command="ADD",type="multihome",result="ok"} 1' in text
    assert 'multihome_cni_request_duration_seconds_bucket{command="ADD",le="0.0025"} 0' in text
    assert 'multihome_cni_request_duration_seconds_bucket{command="ADD",le="0.005"} 1' in text
    assert 'multihome_cni_request_duration_seconds_bucket{command="ADD",le="+Inf"} 1' in text
    assert "# TYPE multihome_cni_requests_in_flight gauge" in text
    assert "multihome_cni_requests_in_flight 0" in text
    assert "multihome_resident_memory_bytes " in text


def test_histogram_counts_beyond_last_bucket() -> None:
    h = Histogram("x_seconds", "x", ("k",), buckets=(1.0,))
    h.observe(5.0, 'a"b')
    assert h.count('a"b') == 1
    assert 'x_seconds_bucket{k="a\\"b",le="1"} 0' in h.render()


def test_autoconf_uses_first_other_config(tmp_path: Path) -> None:
    (tmp_path / "20-b.conf").write_text(json.dumps({"cniVersion": "0.4.0", "name": "b",
                                                    "type": "bridge"}))
    (tmp_path / "10-a.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "a",
        "plugins": [{"type": "ptp", "capabilities": {"portMappings": True, "ips": False}}]}))
    (tmp_path / "05-broken.conf").write_text("{not json")
    settings = autoconf.Settings(str(tmp_path), "/run/x.sock", store="/s.db")
    assert autoconf.sync(settings)
    conf = json.loads((tmp_path / autoconf.CONFIG_NAME).read_text())
    assert conf["name"] == autoconf.NETWORK_NAME and conf["cniVersion"] == "1.0.0"
    plugin = conf["plugins"][0]
    assert plugin == {"type": "multihome", "clusterNetwork": str(tmp_path / "10-a.conflist"),
                      "socketPath": "/run/x.sock", "store": "/s.db",
                      "capabilities": {"portMappings": True}}
    assert autoconf.default_network_file(str(tmp_path)) == str(tmp_path / "10-a.conflist")
    ours = tmp_path / autoconf.CONFIG_NAME
    assert ours.stat().st_mode & 0o777 == 0o600
    ours.chmod(0o644)  # an older version's file, content unchanged
    assert autoconf.sync(settings) and ours.stat().st_mode & 0o777 == 0o600
    assert autoconf.remove(str(tmp_path)) and not autoconf.remove(str(tmp_path))


def test_autoconf_never_takes_an_engine_config_as_default(tmp_path: Path) -> None:
    """Multus' 00-multus.conf left on a node (or any config of the engine's types) would
    make every ADD call the engine from inside itself."""
    (tmp_path / "00-multus.conf").write_text(json.dumps({
        "cniVersion": "0.3.1", "name": "multus-cni-network", "type": "multus-shim",
        "clusterNetwork": "/etc/cni/net.d/10-a.conflist"}))
    (tmp_path / "01-x.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "x", "plugins": [{"type": "multus"}]}))
    (tmp_path / "10-a.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "a", "plugins": [{"type": "ptp"}]}))
    assert autoconf.default_network_file(str(tmp_path)) == str(tmp_path / "10-a.conflist")


def test_autoconf_not_ready_without_default(tmp_path: Path) -> None:
    assert not autoconf.sync(autoconf.Settings(str(tmp_path), "/s"))
    assert not (tmp_path / autoconf.CONFIG_NAME).exists()


def test_shim_socket_lookup_order() -> None:
    conf = json.dumps({"type": "multihome", "socketPath": "/a.sock"}).encode()
    assert socket_path(conf, {SOCKET_ENV: "/b.sock"}) == "/a.sock"
    assert socket_path(b'{"type": "x"}', {SOCKET_ENV: "/b.sock"}) == "/b.sock"
    assert socket_path(b"not json but \"socketPath\"", {}) == DEFAULT_SOCKET
    deep = b'{"socketPath": "/a.sock", "x": ' + b"[" * 100000 + b"]" * 100000 + b"}"
    assert socket_path(deep, {}) == DEFAULT_SOCKET  # no RecursionError out of the shim


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text() |
                    st.floats(allow_nan=False),
                    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
                    max_leaves=20))
def test_shim_json_reader_agrees_with_json(value: object) -> None:
    text = json.dumps(value)
    assert loads(f" {text}\n".encode()) == json.loads(text)


@pytest.mark.parametrize("bad", [b"{", b"", b"{}}", b'{"a": 1} x', b"[1,]", b"\xff"])
def test_shim_json_reader_refuses_what_json_refuses(bad: bytes) -> None:
    with pytest.raises(ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        loads(bad)


def test_shim_finds_the_socket_without_importing_json() -> None:
    """The engine's config always names its socket: reading it must stay cheap."""
    src = Path(__file__).parents[2] / "src"
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import multihome.shim as s; "
            "assert s.socket_path(b'{\"socketPath\": \"/x.sock\", \"n\": [1.5]}', {}) "
            "== '/x.sock'; print(sorted(m for m in ('json', 're', 'enum', 'os', 'typing') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-IS", "-c", code, str(src)], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == "[]"


def test_log_lines_carry_pod_container_ifname(caplog: pytest.LogCaptureFixture) -> None:
    tags = logs.RequestTags.from_env({"CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0",
                                      "CNI_ARGS": "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p"})
    token = logs.current.set(tags)
    try:
        record = logging.LogRecord("multihome.daemon", logging.INFO, "", 0, "ADD ok", (), None)
        record.fields = {"ms": 1.5, "error": 'a "quoted" msg'}
        line = logs.LogfmtFormatter().format(record)
    finally:
        logs.current.reset(token)
    assert " pod=ns/p container=c1 ifname=eth0 msg=\"ADD ok\" " in line
    assert line.endswith('error="a \\"quoted\\" msg" ms=1.5')


def test_malloc_arenas_are_capped_on_glibc() -> None:
    import platform

    from multihome.daemon.memory import limit_malloc_arenas

    assert limit_malloc_arenas() is (platform.libc_ver()[0] == "glibc")


def test_daemon_environment_turns_off_per_thread_malloc_caches() -> None:
    from multihome.daemon.memory import tunables_env

    assert tunables_env({"PATH": "/bin"}) == {
        "PATH": "/bin", "GLIBC_TUNABLES": "glibc.malloc.tcache_count=0"}
    # other tunables the operator set are kept
    assert tunables_env({"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"}) == {
        "GLIBC_TUNABLES": "glibc.malloc.arena_max=4:glibc.malloc.tcache_count=0"}
    # the operator's own cache size stands (and nothing re-executes)
    assert tunables_env({"GLIBC_TUNABLES": "glibc.malloc.tcache_count=7"}) is None
    assert tunables_env({"GLIBC_TUNABLES": "a=1:glibc.malloc.tcache_count=0"}) is None


def test_idle_trim_runs_off_the_callers_thread_and_one_at_a_time() -> None:
    import platform
    import threading

    from multihome.daemon.memory import IdleTrim

    trim = IdleTrim(interval=0.2)
    trim.idle()  # trims at once
    for t in [t for t in threading.enumerate() if t.name == "malloc-trim"]:
        t.join(timeout=10)
    trim.idle()  # within the interval: one trim when it ends...
    trim.idle()  # ...and none more while that one is pending
    for t in [t for t in threading.enumerate() if t.name == "malloc-trim"]:
        t.join(timeout=10)
    assert trim.trims == (2 if platform.libc_ver()[0] == "glibc" else 0)


def test_idle_trim_collects_cycles_before_handing_memory_back() -> None:
    # cycles a burst leaves (pyroute2's loops, tracebacks) would otherwise wait for the
    # collector's next generation-2 pass and pin their arenas past the trim
    import gc
    import threading
    import weakref

    from multihome.daemon.memory import IdleTrim

    class Node:
        other: object = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    gone = weakref.ref(a)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        del a, b
        assert gone() is not None  # only a collection frees a cycle
        IdleTrim(interval=0.0).idle()
        for t in [t for t in threading.enumerate() if t.name == "malloc-trim"]:
            t.join(timeout=10)
        assert gone() is None
    finally:
        if was_enabled:
            gc.enable()


def test_autoconf_skips_configs_nested_too_deep(tmp_path: Path) -> None:
    (tmp_path / "05-deep.conf").write_text('{"type": "bridge", "x": ' + "[" * 100000 +
                                           "]" * 100000 + "}")
    (tmp_path / "10-ok.conf").write_text(json.dumps({"cniVersion": "1.0.0", "name": "ok",
                                                     "type": "bridge"}))
    assert autoconf.default_network_file(str(tmp_path)) == str(tmp_path / "10-ok.conf")


def test_node_policy_metrics_export_fixed_label_sets() -> None:
    node = NodePolicyMetrics()
    text = DaemonMetrics(node).render()
    assert "# TYPE multihome_nncp_enactments gauge" in text
    assert "# TYPE multihome_node_applies_total counter" in text
    for state in ("Available", "Failing", "Progressing", "Pending", "Aborted"):
        assert f'multihome_nncp_enactments{{state="{state}"}} 0' in text
    for result in ("applied", "rolled_back", "failed"):
        assert f'multihome_node_applies_total{{result="{result}"}} 0' in text
    node.set_enactments({"Available": 2, "Failing": 1, "Bogus": 7})
    node.count_apply("applied")
    node.count_apply("rolled_back")
    node.count_apply("something else")
    text = DaemonMetrics(node).render()
    assert 'multihome_nncp_enactments{state="Available"} 2' in text
    assert 'multihome_nncp_enactments{state="Failing"} 1' in text
    assert 'multihome_nncp_enactments{state="Pending"} 0' in text
    assert "Bogus" not in text and "something else" not in text
    assert 'multihome_node_applies_total{result="applied"} 1' in text
    assert 'multihome_node_applies_total{result="rolled_back"} 1' in text
    assert 'multihome_node_applies_total{result="failed"} 0' in text
