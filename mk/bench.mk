# Benchmarks (issue 7): `make bench` builds in release mode, starts aftersalesd, the
# libzmq echo server and redis-server on loopback free ports, runs every benchmark in
# alternating rounds, prints one table and writes bench/results/latest.md. It stops
# everything it started. See bench/README.md.
#
#   make bench                 full run (about 23 minutes on 2 cores)
#   make bench BENCH_QUICK=1   ~2-minute smoke run (small counts; writes latest-quick.md)

DEB_PACKAGES += redis-server valgrind gcc libzmq3-dev pkg-config python3 curl
# Row 10 (section peers): PostgreSQL 15's server and pgbench (Debian ships pgbench in
# postgresql-15, which the postgresql package pulls in; mk/postgres.mk lists it too).
DEB_PACKAGES += postgresql

BENCH_ROOT := $(patsubst %/mk/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

.PHONY: bench bench-quick

bench: deps
	BENCH_QUICK='$(BENCH_QUICK)' SWIFT_BUILD_FLAGS='$(SWIFT_BUILD_FLAGS)' $(BENCH_ROOT)/bench/run.sh

bench-quick: deps
	BENCH_QUICK=1 SWIFT_BUILD_FLAGS='$(SWIFT_BUILD_FLAGS)' $(BENCH_ROOT)/bench/run.sh
