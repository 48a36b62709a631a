"""A small Prometheus text exposition: counters, gauges and histograms with labels.

Written here rather than taken from prometheus_client to keep the daemon's start-up and
memory small; the output follows the text format 0.0.4 that Prometheus scrapes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence

from multihome.node.policy import APPLY_RESULTS, CONDITION_TYPES

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                   10.0, 30.0)

Labels = tuple[str, ...]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _label_text(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return repr(float(value)) if value != int(value) else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        self.name = name
        self.help = help_text
        self.label_names = tuple(label_names)
        self._lock = threading.Lock()

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]

    def render(self) -> list[str]:
        raise NotImplementedError


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = ()) -> None:
        super().__init__(name, help_text, label_names)
        self._values: dict[Labels, float] = {}

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        with self._lock:
            self._values[labels] = self._values.get(labels, 0.0) + amount

    def value(self, *labels: str) -> float:
        return self._values.get(labels, 0.0)

    def render(self) -> list[str]:
        with self._lock:
            items = sorted(self._values.items())
        return [*self.header(), *(f"{self.name}{_label_text(self.label_names, k)} {_num(v)}"
                                  for k, v in items)]


class Gauge(Counter):
    kind = "gauge"

    def dec(self, *labels: str) -> None:
        self.inc(*labels, amount=-1.0)

    def set(self, value: float, *labels: str) -> None:
        with self._lock:
            self._values[labels] = value


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_text: str, label_names: Sequence[str] = (),
                 buckets: Sequence[float] = LATENCY_BUCKETS) -> None:
        super().__init__(name, help_text, label_names)
        self.buckets = (*sorted(buckets), math.inf)
        # labels -> (per-bucket counts, not cumulative; sum)
        self._series: dict[Labels, tuple[list[int], list[float]]] = {}

    def observe(self, seconds: float, *labels: str) -> None:
        with self._lock:
            counts, total = self._series.setdefault(labels, ([0] * len(self.buckets), [0.0]))
            for i, bound in enumerate(self.buckets):
                if seconds <= bound:
                    counts[i] += 1
                    break
            total[0] += seconds

    def count(self, *labels: str) -> int:
        series = self._series.get(labels)
        return sum(series[0]) if series else 0

    def render(self) -> list[str]:
        with self._lock:
            items = sorted((k, (list(c), t[0])) for k, (c, t) in self._series.items())
        lines = self.header()
        for labels, (counts, total) in items:
            running = 0
            for bound, n in zip(self.buckets, counts, strict=True):
                running += n
                le = _label_text(self.label_names, labels, f'le="{_num(bound)}"')
                lines.append(f"{self.name}_bucket{le} {running}")
            plain = _label_text(self.label_names, labels)
            lines.append(f"{self.name}_sum{plain} {_num(total)}")
            lines.append(f"{self.name}_count{plain} {running}")
        return lines


class NodePolicyMetrics:
    """What the node's NNCP controller did: its enactments per state and its applies.

    Label values come from fixed sets (the NNCE condition types, APPLY_RESULTS), all
    exported from the start as 0, so a dashboard sees every series before the first event."""

    def __init__(self) -> None:
        self.enactments = Gauge("multihome_nncp_enactments",
                                "This node's NNCP enactments by state.", ("state",))
        self.applies = Counter("multihome_node_applies_total",
                               "Node network apply attempts by result.", ("result",))
        self.set_enactments({})
        for result in APPLY_RESULTS:
            self.applies.inc(result, amount=0.0)

    def set_enactments(self, counts: Mapping[str, int]) -> None:
        """Per-state counts; a state outside the fixed set is not exported."""
        for state in CONDITION_TYPES:
            self.enactments.set(float(counts.get(state, 0)), state)

    def count_apply(self, result: str) -> None:
        if result in APPLY_RESULTS:
            self.applies.inc(result)


# One per process: the daemon's CLI starts the NNCP controller before the HTTP server
# builds its DaemonMetrics, and both must meet in this one set of series.
NODE_POLICIES = NodePolicyMetrics()


class DaemonMetrics:
    """Everything the daemon exports on /metrics."""

    def __init__(self, node_policies: NodePolicyMetrics = NODE_POLICIES) -> None:
        self.node_policies = node_policies
        self.requests = Counter("multihome_cni_requests_total",
                                "CNI requests by command, plugin type and result.",
                                ("command", "type", "result"))
        self.request_seconds = Histogram("multihome_cni_request_duration_seconds",
                                         "CNI request latency in the daemon, by command.",
                                         ("command",))
        self.plugin_seconds = Histogram("multihome_plugin_duration_seconds",
                                        "Latency of each plugin call (top level and delegates).",
                                        ("plugin", "command"))
        self.in_flight = Gauge("multihome_cni_requests_in_flight",
                               "CNI requests admitted and not yet answered.")
        self.in_flight.inc(amount=0.0)  # exported as 0 before the first request
        self.rss = Gauge("multihome_resident_memory_bytes", "Resident set size of the daemon.")

    def render(self) -> str:
        self.rss._values[()] = float(resident_bytes())
        metrics: list[_Metric] = [self.requests, self.request_seconds, self.plugin_seconds,
                                  self.in_flight, self.rss, self.node_policies.enactments,
                                  self.node_policies.applies]
        return "\n".join(line for m in metrics for line in m.render()) + "\n"


def resident_bytes(pid: int | str = "self") -> int:
    """VmRSS of a process from /proc (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
