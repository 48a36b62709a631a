"""`python -m multihome.node.timer ID`: roll checkpoint ID back at its expiry time.

Started detached by `node apply --no-commit`; `node commit` and `node rollback`
remove the checkpoint (and signal this process), so it finds nothing and exits.
"""

from __future__ import annotations

import sys
import time

from multihome.node import checkpoint


def main(argv: list[str]) -> int:
    wanted = argv[1]
    cp = checkpoint.load()
    while cp is not None and cp.id == wanted and time.time() < cp.expires:
        time.sleep(min(0.5, max(0.0, cp.expires - time.time())))
        cp = checkpoint.load()
    if cp is None or cp.id != wanted:
        return 0
    try:
        for line in checkpoint.restore(cp):
            print(f"rollback: {line}", flush=True)
    except Exception as e:
        print(f"rollback of checkpoint {wanted} failed: {e}", flush=True)
        return 1
    checkpoint.drop(cp)
    print(f"checkpoint {wanted} rolled back after {cp.timeout}s without commit", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
