# multihome: set-up, tests, demo and benchmarks. Run as root on Debian 12.
#
#   make install     Debian packages + .venv with the package, its console, k8s, cluster and
#                    test extras (idempotent)
#   make test        ruff, mypy, the whole pytest suite, the Debian-kernel tier, the cluster tier
#   make test-kernel only the Debian-kernel tier (tests/kernel in a qemu guest, ~4-6 min)
#   make test-cluster only the cluster tier (a real Kubernetes cluster, tests/cluster)
#   make cluster-bins build the cluster's and Multus' Go binaries into ~/.cache/multihome (once)
#   make demo        the local lab: seed NAD, two pods on bridge-dev pinging each other and the external host
#   make demo-cni    the same bridge-dev network driven by plain CNI env vars through the executables
#   make demo-clean  remove anything a crashed demo left behind
#   make bench       our bridge executable vs /usr/lib/cni/bridge, the daemon vs Go plugins,
#                    pods on the lab cluster vs Multus thick
#   make lint        ruff, mypy (the package, the tests, bench and demo) and lint-imports (the
#                    import contracts in pyproject.toml)

SHELL := /bin/sh
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMPS := $(VENV)/.stamps

# iptables: the Go reference bridge plugin implements ipMasq with it (conformance tests).
# python3-nftables: the libnftables binding, linked into the venv (below): nftables
# in-process instead of one `nft` process per batch.
# qemu-system-x86, linux-image-amd64, busybox-static: the Debian-kernel test tier
# (tests/kernel/run_tier.py boots that kernel with virtme-ng, a PyPI test extra) and the
# lab's VMs; dnsmasq-base: the DHCP server of a VM's masquerade binding. chromium: the console's browser tests (Playwright drives it; no browser is
# downloaded). libcairo2: cairosvg renders `multihome topology -o png`.
# containerd, runc: the lab cluster's container runtime (Kubernetes itself and Multus are
# built from Go modules by `make cluster-bins` with the machine's Go: Debian's golang-go
# 1.19 is too old for Kubernetes 1.34, which needs Go 1.24 or newer).
DEB_PACKAGES := iproute2 nftables iptables containernetworking-plugins iputils-ping \
	python3 python3-venv python3-nftables qemu-system-x86 linux-image-amd64 busybox-static \
	dnsmasq-base chromium libcairo2 containerd runc

.PHONY: install test test-kernel test-cluster cluster-bins lint demo demo-cni demo-clean bench clean

install: $(STAMPS)/installed

# The package list is checked on every run (cheap); apt-get update/install only when
# something is missing, so a second `make install` does no network work at all.
$(STAMPS)/debs: Makefile
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' \
			|| missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" != 0 ]; then \
			echo "make install: need root to install Debian packages:$$missing" >&2; exit 1; \
		fi; \
		echo "installing Debian packages:$$missing"; \
		export DEBIAN_FRONTEND=noninteractive; \
		apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else \
		"multihome needs Python >= 3.11, $(PYTHON) is " + sys.version.split()[0])'
	@mkdir -p $(STAMPS) && touch $@

# Debian ships the libnftables binding for its own Python only and PyPI does not have it:
# the venv sees just that one package, through a .pth naming a directory that holds it.
$(VPY): $(STAMPS)/debs
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)
	@mkdir -p $(VENV)/debian-site
	@ln -sfn /usr/lib/python3/dist-packages/nftables $(VENV)/debian-site/nftables
	@echo "$(CURDIR)/$(VENV)/debian-site" > "$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/debian-nftables.pth"

$(STAMPS)/installed: pyproject.toml $(STAMPS)/debs | $(VPY)
	$(VPY) -m pip install -q -e '.[test,console,k8s,cluster]'
	@touch $@

lint: install
	$(VENV)/bin/ruff check src tests bench demo
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy --explicit-package-bases tests
	$(VENV)/bin/mypy bench demo
	$(VENV)/bin/lint-imports

# The Go binaries of the cluster tier (Kubernetes, etcd, Multus), built from modules once
# per machine into ~/.cache/multihome/<name>-<version>/ and reused: the cold build is paid
# here, before any test runs, not inside a test's timeout.
cluster-bins: install
	@command -v go >/dev/null || { echo "make cluster-bins: needs Go (golang-go or go.dev)" >&2; exit 1; }
	$(VPY) -m multihome.lab.cluster.build
	$(VPY) -m multihome.lab.cluster.build multus

# Each tier runs even when one before it failed (every result is worth seeing); `make test`
# fails if any did.
test: lint cluster-bins
	rc=0; $(VENV)/bin/pytest || rc=$$?; $(VPY) tests/kernel/run_tier.py || rc=$$?; \
	MH_CLUSTER_TIER=1 $(VENV)/bin/pytest tests/cluster || rc=$$?; exit $$rc

test-cluster: cluster-bins
	MH_CLUSTER_TIER=1 $(VENV)/bin/pytest tests/cluster

demo: install
	$(VPY) demo/lab_demo.py

demo-cni: install
	$(VPY) demo/bridge_dev.py

demo-clean: install
	$(VPY) demo/lab_demo.py --clean
	$(VPY) demo/bridge_dev.py --clean

bench: install cluster-bins
	$(VPY) bench/bench_bridge.py
	$(VPY) bench/bench_daemon.py
	$(VPY) bench/bench_cluster.py
	$(VPY) bench/bench_policy.py

test-kernel: install
	$(VPY) tests/kernel/run_tier.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
