"""`multihome apply -f` on manifests that are not what they should be: every one gets a
one-line error on stderr and a non-zero exit, never a traceback, and stores nothing.

The class: documents that are not mappings, lists of junk, nesting deeper than the
interpreter's recursion limit, the wrong type in metadata or spec, alias bombs (a few
hundred bytes that expand to millions of nodes once stored as JSON), aliases that refer
to themselves, bytes that are not UTF-8, control characters, Python-only tags, keys and
values JSON cannot hold.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from support.cli_objects import ROOT, Cli


@pytest.fixture
def mh(tmp_path: Path) -> Cli:
    """The `multihome` command on a store of its own, as test_cli_objects drives it."""
    return Cli(tmp_path / "s.db")


NAD_HEAD = "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
CONFIG = "config: '{\"cniVersion\": \"0.3.1\", \"name\": \"n\", \"type\": \"bridge\"}'"


def bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        refs = ", ".join([f"*a{i - 1}"] * 9)
        lines.append(f"a{i}: &a{i} [{refs}]")
    return NAD_HEAD + f"metadata: {{name: n}}\nspec:\n  {CONFIG}\n  junk:\n" + "".join(
        f"    {line}\n" for line in lines)


HOSTILE: dict[str, bytes | str] = {
    "a number": "42\n",
    "a string": "just text\n",
    "a list of junk": "- a\n- 1\n- [x, {y: z}]\n",
    "a List of junk items": "kind: List\nitems: [1, x, null]\n",
    "a List whose items are a number": "kind: List\nitems: 5\n",
    "deep flow nesting": "[" * 50_000 + "]" * 50_000,
    "deep block nesting": "".join(f"{'  ' * i}k{i}:\n" for i in range(300)) + "  " * 300 + "v\n",
    "deep JSON": "{\"a\": " * 5000 + "1" + "}" * 5000,
    "an alias bomb in spec": bomb(),
    "an alias cycle": NAD_HEAD + "metadata: {name: n}\nspec: &s {config: x, me: *s}\n",
    "binary garbage": os.urandom(4096).replace(b"\n", b"\x00") + b"\xff",
    "invalid UTF-8": NAD_HEAD.encode() + b"metadata: {name: \xff\xfe}\n",
    "a control character": NAD_HEAD + "metadata: {name: \x07}\n",
    "a python tag": "!!python/object/apply:os.system ['true']\n",
    "metadata as a list": NAD_HEAD + f"metadata: [1, 2]\nspec: {{{CONFIG}}}\n",
    "name as a number": NAD_HEAD + f"metadata: {{name: 5}}\nspec: {{{CONFIG}}}\n",
    "namespace as a list": NAD_HEAD + f"metadata: {{name: n, namespace: [x]}}\n"
                           f"spec: {{{CONFIG}}}\n",
    "labels as a list": NAD_HEAD + f"metadata: {{name: n, labels: [x]}}\nspec: {{{CONFIG}}}\n",
    "spec as a list": NAD_HEAD + "metadata: {name: n}\nspec: [1]\n",
    "spec.config as a number": NAD_HEAD + "metadata: {name: n}\nspec: {config: 5}\n",
    "kind as a mapping": "apiVersion: [1]\nkind: {a: 1}\nmetadata: {name: n}\n",
    "a number as a key": NAD_HEAD + f"metadata: {{name: n}}\nspec: {{{CONFIG}, 5: x}}\n",
    "NaN": NAD_HEAD + f"metadata: {{name: n, generation: .nan}}\nspec: {{{CONFIG}}}\n",
    "a path as the name": NAD_HEAD + f"metadata: {{name: ../../x}}\nspec: {{{CONFIG}}}\n",
    "a path as the namespace": NAD_HEAD + f"metadata: {{name: n, namespace: a/b}}\n"
                               f"spec: {{{CONFIG}}}\n",
}


def assert_one_line_refusal(proc: object, what: str) -> None:
    rc, stdout, stderr = proc.returncode, proc.stdout, proc.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr, f"{what}: {stderr[-3000:]}"
    assert rc != 0, f"{what} was accepted: {stdout}"
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 500, f"{what}: {stderr[:2000]}"


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_apply_refuses_in_one_line(mh: Cli, tmp_path: Path, what: str) -> None:
    data = HOSTILE[what]
    path = tmp_path / "manifest.yaml"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    assert_one_line_refusal(mh("apply", "-f", str(path)), what)
    if isinstance(data, str):
        assert_one_line_refusal(mh("create", "-f", "-", stdin=data), f"{what} on stdin")
    listed = mh("get", "net-attach-def", "-A")
    assert listed.returncode == 0 and "n " not in listed.stdout, listed.stdout


def test_anchors_that_share_a_block_still_work(mh: Cli, tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    item = "  - {apiVersion: k8s.cni.cncf.io/v1, kind: NetworkAttachmentDefinition, "
    path.write_text("kind: List\nitems:\n"
                    + item + "metadata: {name: a}, spec: &shared {" + CONFIG + "}}\n"
                    + item + "metadata: {name: b}, spec: *shared}\n")
    proc = mh("apply", "-f", str(path), "-n", "default")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("created") == 2


@pytest.mark.parametrize("bad", ["x/y", "../../x", "A", "a..b"])
@pytest.mark.parametrize("argv", [
    ("get", "nad", "-n", "{bad}"), ("get", "nad", "{bad}"), ("describe", "nad", "{bad}"),
    ("delete", "nad", "{bad}"), ("delete", "pod", "-n", "{bad}", "p"),
    ("pod", "run", "{bad}"), ("pod", "run", "p", "-n", "{bad}"), ("pod", "get", "{bad}"),
    ("pod", "exec", "{bad}", "true"), ("vm", "get", "-n", "{bad}"),
])
def test_names_and_namespaces_are_refused_in_one_line(mh: Cli, tmp_path: Path, bad: str,
                                                      argv: tuple[str, ...]) -> None:
    """Before anything is looked up or made: `pod run x/y` would otherwise bind-mount a
    network namespace under the working directory."""
    args = [a.replace("{bad}", bad) for a in argv]
    proc = mh(*args, env={"MULTIHOME_STATE_DIR": str(tmp_path / "state")})
    assert_one_line_refusal(proc, " ".join(args))
    assert bad in proc.stderr or bad.upper() in proc.stderr, proc.stderr
    assert not (tmp_path / "x").exists() and not (ROOT / "x").exists()
