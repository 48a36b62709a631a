"""The console in headless Chromium (Debian's package, driven by Playwright; nothing is
downloaded): the seed NAD through the form, a bad VLAN beside its field, the topology of a
lab with a bridge and two pods, and a screenshot of every page under tests/artifacts/."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from support.cli_lab import CLILab, lab_down, lab_up, new_lab
from support.console_client import served
from support.node_world import make_world, nncp
from support.vm_world import skip_without_vm_tools

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"

if not Path(CHROMIUM).exists():
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)",
                allow_module_level=True)
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if TYPE_CHECKING:
    from playwright.sync_api import Page
else:
    Page = playwright.Page


@dataclass
class Console(CLILab):
    """The lab's CLI (its store and state dir), with the console serving them at `url`."""

    url: str = ""


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    lab = new_lab(Console, tmp_path, "mh")  # names only: the lab fixture brings it up
    with served(["--store", str(tmp_path / "s.db"), "console", "--listen", "127.0.0.1:0"],
                lab.env()) as url:
        lab.url = url
        yield lab


@pytest.fixture
def page(request: pytest.FixtureRequest) -> Iterator[Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 900})
            yield pg
        finally:
            browser.close()


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"console-{name}.png"), full_page=True)


def _fill_seed(page: Page, console: Console, vlan: str = "") -> None:
    # the seed's inputs; its resourceName names bridge-dev while it bridges to dev-bridge
    page.goto(f"{console.url}/nads/new?type=linux-bridge")
    page.fill("#name", "bridge-dev")
    page.fill("#namespace", "multus-test")
    page.fill("#bridge", "dev-bridge")
    page.fill("#resource", "bridge-dev")
    page.fill("#vlan", vlan)
    page.check("#macspoofchk")


def test_seed_nad_through_the_form_then_the_cli(console: Console, page: Page) -> None:
    _fill_seed(page, console)
    _shot(page, "nad-form")
    page.click("#submit")
    assert page.url.endswith("/nads/multus-test/bridge-dev")
    assert '"bridge": "dev-bridge"' in page.inner_text("#config")
    _shot(page, "nad-detail")
    out = console.ok("get", "net-attach-def", "-n", "multus-test")
    assert out.split()[:3] == ["NAME", "AGE", "bridge-dev"]
    yaml_out = console.ok("get", "net-attach-def", "bridge-dev", "-n", "multus-test",
                          "-o", "yaml")
    assert "bridge.network.kubevirt.io/bridge-dev" in yaml_out
    page.goto(f"{console.url}/nads?namespace=multus-test")
    row = page.inner_text("#nads")
    assert "bridge-dev" in row and "cnv-bridge" in row and "dev-bridge" in row
    _shot(page, "nad-list")
    page.goto(f"{console.url}/nads/yaml")
    _shot(page, "nad-yaml")


def test_bad_vlan_shows_beside_the_field_and_creates_nothing(console: Console,
                                                             page: Page) -> None:
    _fill_seed(page, console, vlan="5000")
    page.click("#submit")
    error = page.locator("#vlan-error")
    assert "invalid VLAN ID 5000 (must be between 0 and 4094)" in error.inner_text()
    # beside the field: the error is in the same paragraph as the VLAN input
    assert page.locator("p:has(#vlan) #vlan-error").count() == 1
    _shot(page, "nad-form-error")
    proc = console.mh("get", "net-attach-def", "-n", "multus-test")
    assert proc.stdout == ""
    assert "No resources found in multus-test namespace." in proc.stderr


@pytest.fixture
def lab(console: Console) -> Iterator[tuple[Console, str]]:
    if os.geteuid() != 0:
        pytest.skip("needs root to create namespaces and bridges")
    lab_up(console, "10.67.0.1/24", "10.66.0.0/24")
    try:
        yield console, console.dev_bridge
    finally:
        console.mh("pod", "delete", "web-a", "web-b", "-n", "multus-test")
        lab_down(console)


@pytest.mark.netns
def test_topology_shows_the_lab_bridge_and_pods(lab: tuple[Console, str], page: Page) -> None:
    console, dev = lab
    page.goto(f"{console.url}/nads/new?type=linux-bridge")
    page.fill("#name", "bridge-dev")
    page.fill("#namespace", "multus-test")
    page.fill("#bridge", dev)
    page.click("#submit")
    assert page.url.endswith("/nads/multus-test/bridge-dev")
    for pod in ("web-a", "web-b"):
        console.ok("pod", "run", pod, "-n", "multus-test", "--networks", "bridge-dev")
    page.goto(f"{console.url}/topology")
    svg = page.locator("#topology svg")
    assert svg.count() == 1
    bridge = page.locator(f'g.bridge[data-name="{dev}"]')
    assert bridge.count() == 1
    for pod in ("web-a", "web-b"):
        assert bridge.locator(f'g.attachment[data-owner="pod multus-test/{pod}"]').count() == 1
    drawn = bridge.text_content() or ""
    assert f"bridge {dev}" in drawn and f"uplink {dev[:11]}-up" in drawn
    assert "external network" in (page.locator("g.external").text_content() or "")
    _shot(page, "topology")
    page.goto(f"{console.url}/pods")
    pods = page.inner_text("#pods")
    assert "web-a" in pods and "web-b" in pods and "net1" in pods
    assert "multus-test/bridge-dev" in pods
    _shot(page, "pods")
    page.goto(f"{console.url}/vms")
    _shot(page, "vms")
    page.goto(f"{console.url}/policies")
    _shot(page, "policies")


@pytest.mark.netns
def test_topology_shows_the_bridge_pods_and_vm(lab: tuple[Console, str], page: Page) -> None:
    """The demo's picture: bridge-dev with both pods and a VM (a real qemu guest)."""
    skip_without_vm_tools()
    console, dev = lab
    console.ok("apply", "-f", str(_nad_file(console, dev)), "-n", "multus-test")
    for pod in ("web-a", "web-b"):
        console.ok("pod", "run", pod, "-n", "multus-test", "--networks", "bridge-dev")
    try:
        console.ok("vm", "run", "vm-a", "-n", "multus-test", "--networks", "bridge-dev",
                   "--memory", "256")
        page.goto(f"{console.url}/topology")
        bridge = page.locator(f'g.bridge[data-name="{dev}"]')
        assert bridge.count() == 1
        owners = {bridge.locator("g.attachment").nth(i).get_attribute("data-owner")
                  for i in range(bridge.locator("g.attachment").count())}
        assert owners == {"pod multus-test/web-a", "pod multus-test/web-b",
                          "vm multus-test/vm-a"}
        _shot(page, "topology-vm")
        page.goto(f"{console.url}/vms")
        vms = page.inner_text("main")
        assert "vm-a" in vms and "multus-test/bridge-dev" in vms
        _shot(page, "vms-running")
    finally:
        console.mh("vm", "delete", "vm-a", "-n", "multus-test")


def _nad_file(console: Console, bridge: str) -> Path:
    path = console.tmp / "bridge-dev.yml"
    path.write_text(yaml.safe_dump({
        "apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "bridge-dev"},
        "spec": {"config": json.dumps({
            "cniVersion": "0.3.1", "name": "bridge-dev", "type": "cnv-bridge",
            "bridge": bridge, "macspoofchk": True,
            # the test's own dataDir: never the machine's /var/lib/cni/networks
            "ipam": {"type": "host-local", "dataDir": str(console.tmp / "ipam"),
                     "subnet": "10.67.0.0/24",
                     "rangeStart": "10.67.0.10", "rangeEnd": "10.67.0.50"}})}}))
    return path


@pytest.mark.netns
def test_apply_a_policy_and_watch_it_become_available(netns_factory: Any, tmp_path: Path,
                                                      page: Page) -> None:
    world = make_world(netns_factory, tmp_path, random.randint(200, 250))
    env = world.env()
    with served(["console", "--listen", "127.0.0.1:0", "--node-netns", world.node.name],
                env) as url:
        policy = nncp("br-uplink", world.bridge_policy("br-up", ["up0"]))
        page.goto(f"{url}/policies/apply")
        page.fill("#yaml", yaml.safe_dump(policy, sort_keys=False))
        page.click("#submit")
        assert page.url.endswith("/policies")
        # the page refreshes itself while the enactment progresses
        page.wait_for_function(
            "() => [...document.querySelectorAll('#policies td.state')]"
            ".some(td => td.textContent === 'Available')", timeout=60_000)
        _shot(page, "policy-applied")
        assert "br-uplink" in page.inner_text("#policies")
        assert world.pings_host()
        page.goto(f"{url}/topology")
        assert page.locator('g.bridge[data-name="br-up"]').count() == 1
