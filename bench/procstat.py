"""What /proc says about a process tree: its memory (RSS, PSS) and the CPU it used.

The benchmarks measure the daemon from outside, as an operator would: a daemon that
forks workers shares pages with them, so RSS summed over the tree would count those pages
several times; PSS splits each shared page among the processes that map it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Every live process below pid (children of all its threads, then theirs)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        parent = stack.pop()
        try:
            tasks = list(Path(f"/proc/{parent}/task").iterdir())
        except OSError:
            continue  # gone meanwhile
        for task in tasks:
            try:
                kids = [int(k) for k in (task / "children").read_text().split()]
            except OSError:
                continue
            found.extend(kids)
            stack.extend(kids)
    return found


@dataclass(frozen=True)
class Memory:
    rss: int  # bytes
    pss: int  # bytes

    @staticmethod
    def of(pid: int) -> Memory:
        """Rss and Pss from /proc/<pid>/smaps_rollup (zero when the process is gone)."""
        fields = {"Rss:": 0, "Pss:": 0}
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    key, _, rest = line.partition(" ")
                    if key in fields:
                        fields[key] = int(rest.split()[0]) * 1024
        except OSError:
            pass
        return Memory(fields["Rss:"], fields["Pss:"])


def cpu_seconds(pid: int) -> float:
    """User+system CPU of pid and of every process below it, live or reaped.

    A reaped child's time is in its parent's cutime/cstime; a live one's is only in its own
    stat, so both are added (a worker process that lives on is not missed).
    """
    total = 0.0
    for proc in [pid, *descendants(pid)]:
        try:
            with open(f"/proc/{proc}/stat") as f:
                # the command name is in parentheses and may hold spaces: split after it
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        # fields[0] is field 3 of proc(5): utime=14, stime=15, cutime=16, cstime=17
        total += sum(int(v) for v in fields[11:15]) / CLOCK_TICKS
    return total
