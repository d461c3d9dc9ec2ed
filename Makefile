# aftersales — the two commands a newcomer types:
#   make run    install what is missing, build (release), start aftersalesd on its defaults
#   make test   the same set-up, then every test (Swift, Python, C)
# Each installs what it needs itself: Debian packages only when one is missing, Python
# packages into .venv/.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# Debian packages the build and the tests need (fragments below append theirs).
DEB_PACKAGES := libzmq3-dev libsodium-dev pkg-config protobuf-compiler python3-venv
SWIFT_BUILD_FLAGS ?=
AFTERSALESD_DEBUG := $(CURDIR)/.build/debug/aftersalesd
AFTERSALESD_RELEASE := $(CURDIR)/.build/release/aftersalesd
AFTERSALESD ?= $(AFTERSALESD_DEBUG)
PROBE ?= $(CURDIR)/.build/debug/aftersales-probe

-include mk/*.mk

.PHONY: help deps build build-release run test swift-test proto clean install

help:
	@echo "make run    install what is missing, build, start aftersalesd on tcp://127.0.0.1:7700 (calls) and :7701 (announcements)"
	@echo "make test   install what is missing, build, run every test"
	@echo "make bench  benchmarks (see bench/)"
	@echo "make install PREFIX=/usr/local  the binaries, the systemd unit and the sample environment file"
	@echo "make proto  regenerate Sources/AfterSalesProto from proto/"

# Installs the Debian packages that are missing; does nothing when all are present.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi
	@command -v swift >/dev/null || { echo "swift is not on PATH (expected a Swift 6.x toolchain, e.g. /opt/swift/usr/bin)"; exit 1; }

build: deps
	swift build $(SWIFT_BUILD_FLAGS)

build-release: deps
	swift build -c release --product aftersalesd $(SWIFT_BUILD_FLAGS)
	swift build -c release --product aftersales-probe $(SWIFT_BUILD_FLAGS)

run: build-release
	mkdir -p var
	$(AFTERSALESD_RELEASE) --data-dir var/aftersales

swift-test: build
	swift test $(SWIFT_BUILD_FLAGS)

test: swift-test outside-clients-test
	@echo "make test: all suites passed"

proto:
	scripts/generate-proto

# Installs the release binaries under $(PREFIX)/bin, the systemd unit and the sample
# environment file (never over an existing one); DESTDIR stages a package root.
PREFIX ?= /usr/local
install: build-release
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/systemd/system $(DESTDIR)/etc/aftersales
	install -m 0755 .build/release/aftersalesd .build/release/aftersales-probe $(DESTDIR)$(PREFIX)/bin/
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|g' daemon/aftersalesd.service > $(DESTDIR)/etc/systemd/system/aftersalesd.service
	test -e $(DESTDIR)/etc/aftersales/aftersalesd.env || install -m 0644 daemon/aftersalesd.env $(DESTDIR)/etc/aftersales/aftersalesd.env
	@echo "installed; create the service user with: useradd --system --home /var/lib/aftersales --shell /usr/sbin/nologin aftersales"

clean:
	rm -rf .build clients/c/build

# The outside clients' targets (python-client-test, c-client-test) live in mk/outside-clients.mk.
.PHONY: outside-clients-test
outside-clients-test: build python-client-test c-client-test
