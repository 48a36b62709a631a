"""The demo's hot-plug step: a running pod gains and loses an interface.

Called by lab_demo.py while the lab and its pods are up. kubectl's verb, `multihome
annotate pod … k8s.v1.cni.cncf.io/networks=… --overwrite`, edits the pod's selection;
the lab's engine plugs the new element into the running pod at once (net2, the name
Multus would give it), and unplugs it when the element is dropped again. A selection
naming a NAD that does not exist is refused and leaves the pod as it was.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

NETWORKS = "k8s.v1.cni.cncf.io/networks"


def run(mh: Callable[..., subprocess.CompletedProcess[str]], step: Callable[[str], Any],
        namespace: str, pod: str) -> None:
    step(f"4b. hot-plug: {pod} gets a second interface on bridge-dev while it runs, "
         "then loses it")
    mh("annotate", "pod", pod, "-n", namespace, f"{NETWORKS}=bridge-dev,bridge-dev",
       "--overwrite")
    mh("pod", "exec", pod, "-n", namespace, "--", "ip", "-br", "link")
    mh("get", "pod", pod, "-n", namespace, "-o", "wide")
    print("(a NAD that does not exist: refused, the pod keeps what it has)")
    mh("annotate", "pod", pod, "-n", namespace, f"{NETWORKS}=bridge-dev,no-such-nad",
       "--overwrite", expect_rc=1)
    mh("annotate", "pod", pod, "-n", namespace, f"{NETWORKS}=bridge-dev", "--overwrite")
    mh("pod", "exec", pod, "-n", namespace, "--", "ip", "-br", "link")
    described = mh("pod", "describe", pod, "-n", namespace, quiet=True).stdout
    print(f"$ multihome pod describe {pod} -n {namespace}   (its events)")
    print(described[described.index("Events:"):].rstrip())
