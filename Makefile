# dupstack: every target installs what it needs on a fresh Debian machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
OS_VENV := .venv-openstack
CACHE := .cache
APT_PACKAGES := python3-venv openssh-server openssh-client gnupg iproute2 cron e2fsprogs util-linux \
	nftables time postgresql mariadb-server sqlite3 attr
HEAT_VERSION := 27.0.1
KEYSTONE_VERSION := 30.0.0
DUPLICITY_VERSION := 3.2.1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

WHEELHOUSE := $(CACHE)/wheelhouse
SERVER_LOCK := agent/data/server-requirements.txt

.PHONY: help deps test demo lint templates bench clean lock dist wheelhouse

help:
	@echo "make demo       bring up a local Keystone + Heat and deploy a demo stack"
	@echo "make test       run the whole test suite (installs what it needs)"
	@echo "make lint       ruff"
	@echo "make templates  regenerate heat/*.heat.yaml from their sources"
	@echo "make lock       re-resolve the server's hash-locked set (uv), check every platform"
	@echo "make dist       build a release: dupstack-agent and dupstack, templates pinned to it"
	@echo "make wheelhouse one .tar of the server's wheels for a cloud without internet"
	@echo "make bench      benchmark backups (tar|gpg vs duplicity vs dupctl); writes bench/RESULTS.md"

$(CACHE)/apt.stamp:
	@mkdir -p $(CACHE)
	@# The database servers are for tests inside namespace hosts: their packages must not
	@# start them on this machine (policy-rc.d 101: "not allowed", only while installing).
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		added=; if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; added=1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); \
		status=$$?; [ -z "$$added" ] || rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi
	@touch $@

$(VENV)/.stamp: pyproject.toml $(CACHE)/apt.stamp
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[provisioner,remote,dev,server]'
	# duplicity's declared dependencies pull in every cloud SDK: the pin alone, as on the server.
	$(VENV)/bin/pip install -q --no-deps 'duplicity==$(DUPLICITY_VERSION)'
	@touch $@

# Real OpenStack services (Keystone, Heat) for tests and the demo; never installed for users.
$(OS_VENV)/.stamp: $(CACHE)/apt.stamp
	$(PYTHON) -m venv $(OS_VENV)
	$(OS_VENV)/bin/pip install -q --upgrade pip
	$(OS_VENV)/bin/pip install -q 'openstack-heat==$(HEAT_VERSION)' 'keystone==$(KEYSTONE_VERSION)'
	@touch $@

# The locked server set for this machine's Python and platform: the tests' and the demo's
# package index on loopback (the boot installs from it, never from the public index).
$(WHEELHOUSE)/.stamp: $(SERVER_LOCK) $(VENV)/.stamp
	rm -rf $(WHEELHOUSE) && mkdir -p $(WHEELHOUSE)
	PIP_CONFIG_FILE=/dev/null $(VENV)/bin/pip download -q --no-deps --require-hashes \
		--only-binary=:all: -r $(SERVER_LOCK) -d $(WHEELHOUSE)
	@touch $@

deps: $(VENV)/.stamp $(OS_VENV)/.stamp $(WHEELHOUSE)/.stamp

test: deps
	$(VENV)/bin/python -m pytest

demo: deps
	$(VENV)/bin/python scripts/demo.py

lint: $(VENV)/.stamp
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

templates: $(VENV)/.stamp
	$(VENV)/bin/python -m provisioner.render --write

lock: $(VENV)/.stamp
	$(VENV)/bin/python scripts/lock.py

dist: $(VENV)/.stamp
	$(VENV)/bin/python scripts/dist.py

# For clouds without internet: the release's agent wheel plus the locked set for one image's
# Python and CPU, as dist/dupstack-wheelhouse-V-pyX-ARCH.tar (after make dist; docs/releasing.md).
WHEELHOUSE_PYTHON ?= 3.11
WHEELHOUSE_ARCH ?= x86_64
wheelhouse: $(VENV)/.stamp
	$(VENV)/bin/python scripts/wheelhouse.py --python $(WHEELHOUSE_PYTHON) --arch $(WHEELHOUSE_ARCH)

BENCH_ARGS ?=
bench: $(VENV)/.stamp
	$(VENV)/bin/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(OS_VENV) $(CACHE)
