# Sluice: every target sets up what it needs first. Setup is idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DEBIAN_PACKAGES := libpcap0.8 libpcap0.8-dev libmagic1 tshark tcpdump tcpreplay nftables \
	python3-nftables python3-bpfcc bpfcc-tools linux-headers-amd64 iproute2 python3-venv \
	python3-dev gcc make openssh-server openssh-client openssl systemd dnsmasq-base
PYTEST_ARGS ?=

.PHONY: setup setup-debian setup-kernel-headers setup-venv demo test lint bench bench-ebpf bench-live pcaps clean

setup: setup-debian setup-kernel-headers setup-venv

# Debian packages: only call apt when something is missing. Services the packages bring
# (openssh-server's sshd) are not started: tests run their own, inside network namespaces.
setup-debian:
	@missing=$$(for p in $(DEBIAN_PACKAGES); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "setup: installing Debian packages:" $$missing; \
		echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
		export DEBIAN_FRONTEND=noninteractive; \
		guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then guard=1; \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
		apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; rc=$$?; \
		[ -z "$$guard" ] || rm -f /usr/sbin/policy-rc.d; [ $$rc -eq 0 ] || exit $$rc; \
	fi

# bcc compiles against /lib/modules/$(uname -r)/build. Where the running kernel has no
# headers package (VMs with custom kernels), link the newest installed linux-headers tree;
# our programs use only stable UAPI structs.
setup-kernel-headers:
	@build=/lib/modules/$$(uname -r)/build; \
	if [ ! -e $$build/Makefile ]; then \
		hdr=$$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1); \
		if [ -n "$$hdr" ]; then \
			mkdir -p /lib/modules/$$(uname -r); ln -sfn $$hdr $$build; \
			echo "setup: linked $$build -> $$hdr"; \
		else echo "setup: no kernel headers found; eBPF probes will be unavailable"; fi; \
	fi

# The venv uses Debian's python3 with system site-packages, so Debian's bcc imports inside it.
setup-venv:
	@if [ ! -x $(PY) ]; then /usr/bin/python3 -m venv --system-site-packages $(VENV); fi
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@$(PY) -c "import bcc" || { echo "setup: 'import bcc' fails inside the venv"; exit 1; }

demo: setup
	@bash scripts/demo.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check sensor probes tests benchmarks pcaps scripts
	$(VENV)/bin/ruff format --check sensor probes tests benchmarks pcaps scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bench: setup
	$(PY) benchmarks/replay_bench.py

# Kernel cost of the eBPF programs (root; network namespaces, tcpreplay): about 8 minutes.
bench-ebpf: setup
	$(PY) benchmarks/ebpf_bench.py

# Live capture under load, with and without the eBPF probe (root; namespaces, tcpreplay): ~3 min.
bench-live: setup
	$(PY) benchmarks/live_bench.py

clean:
	rm -rf build benchmarks/out .pytest_cache .mypy_cache .ruff_cache
