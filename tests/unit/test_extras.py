"""Without an extra's libraries the CLI names the extra to install, in one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

# a missing library is simulated the way Python itself reports one: None in sys.modules
_RUN = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
from multihome.cli.main import cli
cli(sys.argv[2:], prog_name="multihome")
"""


def _cli(missing: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _RUN, missing, *args], capture_output=True,
                          text=True, timeout=60, check=False)


@pytest.mark.parametrize(("missing", "args", "extra", "library"), [
    ("flask", ["console"], "console", "flask"),
    ("waitress", ["console", "--listen", "127.0.0.1:0"], "console", "waitress"),
    ("cairosvg", ["--store", "/nonexistent/store.db", "topology", "-o", "png"], "console",
     "cairosvg"),
    ("lightkube", ["--store", "k8s:/nonexistent/kubeconfig", "get", "nad"], "k8s",
     "lightkube"),
    ("cryptography", ["lab", "env"], "cluster", "cryptography"),
])
def test_a_missing_extra_is_one_line_naming_it(missing: str, args: list[str], extra: str,
                                               library: str) -> None:
    proc = _cli(missing, *args)
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"needs the '{extra}' extra ({library} is not installed)" in lines[0]
    assert f"pip install 'multihome[{extra}]'" in lines[0]


def test_help_still_lists_a_command_whose_extra_is_missing() -> None:
    proc = _cli("flask,waitress,cairosvg,lightkube", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "console" in proc.stdout and "not installed" in proc.stdout


def test_the_rest_of_lab_works_without_the_cluster_extra() -> None:
    # only the cluster subcommands need cryptography; the local lab's commands are core
    proc = _cli("cryptography", "lab", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "down" in proc.stdout and "up" in proc.stdout
