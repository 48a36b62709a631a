"""The `multihome` command on a store of its own, exactly as a user types it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
MULTIHOME = str(Path(sys.executable).parent / "multihome")
SEED = ROOT / "examples" / "linux-bridge-dev.yml"
NAD_REF = "networkattachmentdefinition.k8s.cni.cncf.io"
NAD_RES = "networkattachmentdefinitions.k8s.cni.cncf.io"


class Cli:
    def __init__(self, store: Path) -> None:
        self.store = store

    def __call__(self, *args: str, stdin: str | None = None,
                 env: dict[str, str] | None = None, use_flag: bool = True
                 ) -> subprocess.CompletedProcess[str]:
        argv = [MULTIHOME, *(["--store", str(self.store)] if use_flag else []), *args]
        full_env = {k: v for k, v in os.environ.items() if k != "MULTIHOME_STORE"}
        full_env.update(env or {})
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=60,
                              env=full_env, cwd=ROOT)
