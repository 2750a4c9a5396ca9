# Sluice: every target sets up what it needs first. Setup is idempotent.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
DEBIAN_PACKAGES := libpcap0.8 libpcap0.8-dev libmagic1 tshark tcpdump tcpreplay nftables \
	python3-nftables python3-bpfcc bpfcc-tools linux-headers-amd64 iproute2 python3-venv \
	python3-dev gcc make openssh-server openssh-client openssl systemd dnsmasq-base tmux \
	zip 7zip age qpdf gnupg crowdsec crowdsec-firewall-bouncer
PYTEST_ARGS ?=

# Production install (`make install`, as root; idempotent). DESTDIR stages every file it writes
# under another root (packaging, tests); with DESTDIR set nothing outside it is touched: no apt,
# no kernel-header link, no systemd calls. The shipped unit and tmpfiles name the default
# PREFIX and SYSCONFDIR; the installed copies name the chosen ones.
PREFIX ?= /opt/sluice
SYSCONFDIR ?= /etc/sluice
BINDIR ?= /usr/local/bin
UNITDIR ?= /etc/systemd/system
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
DESTDIR ?=
EXAMPLE_CONFIG ?= systemd/sluice.toml
# What the sensor needs to run: capture, content typing, Debian's bcc for the eBPF probe (and
# headers it compiles against), the venv, nft/tc/ip for enforcement and attaching, systemd.
# Not the development set (tshark, tcpreplay, gcc, sshd, dnsmasq...).
RUNTIME_DEBIAN_PACKAGES := libpcap0.8 libmagic1 python3-venv python3-bpfcc bpfcc-tools \
	linux-headers-amd64 nftables python3-nftables iproute2 systemd ethtool
INSTALL_VENV = $(DESTDIR)$(PREFIX)/venv
INSTALL_PATHS = sed -i -e 's|/opt/sluice|$(PREFIX)|g' -e 's|/etc/sluice|$(SYSCONFDIR)|g'

.PHONY: setup setup-debian setup-kernel-headers setup-venv demo test lint bench bench-ebpf bench-live fuzz pcaps clean
.PHONY: install install-debian install-venv install-files uninstall

setup: setup-debian setup-kernel-headers setup-venv

# $(call apt-install,PACKAGES): install those of PACKAGES that are missing, in one apt run (none
# when all are there). Services the packages bring (openssh-server's sshd) are not started:
# tests run their own, inside network namespaces; a production host starts only Sluice's unit.
define apt-install
@missing=$$(for p in $(1); do \
	dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
if [ -n "$$missing" ]; then \
	echo "$@: installing Debian packages:" $$missing; \
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections; \
	export DEBIAN_FRONTEND=noninteractive; \
	guard=; if [ ! -e /usr/sbin/policy-rc.d ]; then guard=1; \
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; fi; \
	apt-get update -q && apt-get install -y -q --no-install-recommends $$missing; rc=$$?; \
	[ -z "$$guard" ] || rm -f /usr/sbin/policy-rc.d; [ $$rc -eq 0 ] || exit $$rc; \
fi
endef

# Debian packages for development and tests. crowdsec's install script registers with
# CrowdSec's central API unless its credentials file says no (Debian's documented opt-out):
# the tests run their own LAPI on 127.0.0.1 and need no network. Its services (and the
# firewall bouncer's, which would create a table in this host's ruleset) are not started by
# apt-install and are disabled here, so that they do not start at the next boot either.
setup-debian:
	@if [ ! -e /etc/crowdsec/online_api_credentials.yaml ]; then \
		mkdir -p /etc/crowdsec; \
		echo "# no thanks: Sluice tests run their own LAPI without the Central API" \
			> /etc/crowdsec/online_api_credentials.yaml; fi
	$(call apt-install,$(DEBIAN_PACKAGES))
	@for unit in crowdsec.service crowdsec-firewall-bouncer.service; do \
		if [ -e /etc/systemd/system/multi-user.target.wants/$$unit ]; then \
			systemctl disable $$unit >/dev/null 2>&1 || \
				rm -f /etc/systemd/system/multi-user.target.wants/$$unit; fi; done

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

# Mutation fuzzing of `sluice replay` over the sample captures for FUZZ_SECONDS (no root, no
# network); failing cases and their minimised reproducers go to build/fuzz/. FUZZ_ARGS: e.g.
# --seed 7 --jobs 4.
FUZZ_SECONDS ?= 300
FUZZ_ARGS ?=
fuzz: setup
	$(PY) scripts/fuzz.py --seconds $(FUZZ_SECONDS) $(FUZZ_ARGS)

clean:
	rm -rf build benchmarks/out .pytest_cache .mypy_cache .ruff_cache

# The production install: runtime packages, the venv, the files, then systemd takes them in.
# A second run reinstalls Sluice from this checkout and keeps the operator's config.
install: $(if $(DESTDIR),,install-debian setup-kernel-headers) install-venv install-files
	@if [ -z '$(DESTDIR)' ] && [ -d /run/systemd/system ]; then \
		systemd-sysusers '$(SYSUSERSDIR)/sluice.conf' && \
		systemd-tmpfiles --create '$(TMPFILESDIR)/sluice.conf' && \
		systemctl daemon-reload && \
		echo "install: done; start a sensor with: systemctl enable --now sluice@IFACE"; \
	else \
		echo "install: files in place; systemd not called (DESTDIR set, or systemd is not PID 1):"; \
		echo "  the user, directories and unit are taken in at the next boot"; \
	fi

install-debian:
	$(call apt-install,$(RUNTIME_DEBIAN_PACKAGES))

# Debian's python3 with system site-packages, so Debian's bcc (python3-bpfcc) imports inside it;
# Sluice itself not editable and without the dev extra. umask 022: user sluice reads the venv.
# Under DESTDIR the scripts' #! lines are rewritten to the final path.
install-venv: | $(if $(DESTDIR),,install-debian)
	@umask 022; venv='$(INSTALL_VENV)'; \
	if [ ! -x "$$venv/bin/python" ]; then /usr/bin/python3 -m venv --system-site-packages "$$venv"; fi; \
	"$$venv/bin/python" -m pip install -q --disable-pip-version-check '$(CURDIR)' || exit 1; \
	test -x "$$venv/bin/sluice" || { echo "install: no $$venv/bin/sluice after pip install"; exit 1; }; \
	"$$venv/bin/python" -c "import bcc" 2>/dev/null || \
		echo "install: warning: 'import bcc' fails in $$venv: the eBPF probe will be unavailable"
	$(if $(DESTDIR),@grep -rlIZ -F '$(INSTALL_VENV)' '$(INSTALL_VENV)/bin' | \
		xargs -0 -r sed -i 's|$(INSTALL_VENV)|$(PREFIX)/venv|g')

# Only the files: the unit, its user and directories, the README the unit links to, and the
# example config, which is installed only where no config is (an operator's is never touched).
install-files:
	@umask 022; mkdir -p '$(DESTDIR)$(UNITDIR)' '$(DESTDIR)$(SYSUSERSDIR)' \
		'$(DESTDIR)$(TMPFILESDIR)' '$(DESTDIR)$(PREFIX)'
	install -m 0644 systemd/sluice@.service '$(DESTDIR)$(UNITDIR)/sluice@.service'
	install -m 0644 systemd/sluice.sysusers '$(DESTDIR)$(SYSUSERSDIR)/sluice.conf'
	install -m 0644 systemd/sluice.tmpfiles '$(DESTDIR)$(TMPFILESDIR)/sluice.conf'
	install -m 0644 README.md '$(DESTDIR)$(PREFIX)/README.md'
	install -d -m 0755 '$(DESTDIR)$(PREFIX)/docs' '$(DESTDIR)$(BINDIR)'
	ln -sfn '$(PREFIX)/venv/bin/sluice' '$(DESTDIR)$(BINDIR)/sluice'
	install -m 0644 docs/*.md '$(DESTDIR)$(PREFIX)/docs/'
	$(INSTALL_PATHS) '$(DESTDIR)$(UNITDIR)/sluice@.service' '$(DESTDIR)$(TMPFILESDIR)/sluice.conf'
	@umask 022; config='$(DESTDIR)$(SYSCONFDIR)/sluice.toml'; \
	if [ -e "$$config" ] || [ -L "$$config" ]; then echo "install: keeping $$config"; \
	else mkdir -p -m 0750 '$(DESTDIR)$(SYSCONFDIR)' && \
		install -m 0640 '$(EXAMPLE_CONFIG)' "$$config"; fi

# Removes what install put, after stopping the sensors. Kept: the config ($(SYSCONFDIR)), the
# data (/var/lib/sluice), the pinned counters (/sys/fs/bpf/sluice) and the user sluice, who
# still owns them.
uninstall:
	@case '$(PREFIX)' in ''|/) echo "uninstall: refusing PREFIX='$(PREFIX)'"; exit 1;; esac
	@if [ -z '$(DESTDIR)' ] && [ -d /run/systemd/system ]; then \
		systemctl stop 'sluice@*.service' || true; fi
	rm -f '$(DESTDIR)$(UNITDIR)'/*.wants/sluice@*.service '$(DESTDIR)$(UNITDIR)/sluice@.service' \
		'$(DESTDIR)$(SYSUSERSDIR)/sluice.conf' '$(DESTDIR)$(TMPFILESDIR)/sluice.conf' \
		'$(DESTDIR)$(PREFIX)/README.md'
	rm -rf '$(INSTALL_VENV)' '$(DESTDIR)$(PREFIX)/docs'
	@if [ -L '$(DESTDIR)$(BINDIR)/sluice' ]; then rm -f '$(DESTDIR)$(BINDIR)/sluice'; fi
	@rmdir '$(DESTDIR)$(PREFIX)' 2>/dev/null || true
	@if [ -z '$(DESTDIR)' ] && [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
	@echo "uninstall: kept $(DESTDIR)$(SYSCONFDIR), /var/lib/sluice, /sys/fs/bpf/sluice and the user sluice"
