# multihome: set-up, tests, demo and benchmarks. Run as root on Debian 12.
#
#   make install     Debian packages + .venv with the package and its test extras (idempotent)
#   make test        ruff, mypy and the whole pytest suite
#   make demo        the local lab: seed NAD, two pods on bridge-dev pinging each other and the external host
#   make demo-cni    the same bridge-dev network driven by plain CNI env vars through the executables
#   make demo-clean  remove anything a crashed demo left behind
#   make bench       our bridge executable vs /usr/lib/cni/bridge
#   make lint        ruff and mypy only

SHELL := /bin/sh
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMPS := $(VENV)/.stamps

# iptables: the Go reference bridge plugin implements ipMasq with it (conformance tests).
DEB_PACKAGES := iproute2 nftables iptables containernetworking-plugins iputils-ping \
	python3 python3-venv

.PHONY: install test test-kernel lint demo demo-cni demo-clean bench clean

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

$(VPY): $(STAMPS)/debs
	@test -x $(VPY) || $(PYTHON) -m venv $(VENV)

$(STAMPS)/installed: pyproject.toml $(STAMPS)/debs | $(VPY)
	$(VPY) -m pip install -q -e '.[test]'
	@touch $@

lint: install
	$(VENV)/bin/ruff check src tests bench demo
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy bench demo

test: lint
	$(VENV)/bin/pytest

demo: install
	$(VPY) demo/lab_demo.py

demo-cni: install
	$(VPY) demo/bridge_dev.py

demo-clean: install
	$(VPY) demo/lab_demo.py --clean
	$(VPY) demo/bridge_dev.py --clean

bench: install
	$(VPY) bench/bench_bridge.py
	$(VPY) bench/bench_daemon.py

test-kernel: install
	$(VPY) tests/kernel/run_tier.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
