# PostgreSQL for cluster mode: the server the PostgresTests start (one throwaway cluster
# each, through scripts/pg-throwaway) and libpq for the Postgres library (Sources/CLibPQ).
# Included from the top-level Makefile, whose `deps` installs DEB_PACKAGES.
#
#   make pg-start   a throwaway server with its data in var/pg/ (PG_PORT=N for a fixed
#                   port); prints its URL: postgres://aftersales@127.0.0.1:PORT/aftersales
#   make pg-stop    stops it (the data stays; pg-start brings it back on the same port)
#   make run-cluster  PostgreSQL, a 16-shard cluster and three members on loopback (7710, 7720, 7730)

DEB_PACKAGES += postgresql libpq-dev

# Paths are taken from this file's place, so the fragment works from any make -C.
PG_ROOT := $(patsubst %/mk/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
PG_DIR  ?= $(PG_ROOT)/var/pg
PG_PORT ?=

.PHONY: pg-start pg-stop run-cluster

pg-start: deps
	$(PG_ROOT)/scripts/pg-throwaway start $(PG_DIR) $(PG_PORT)

pg-stop:
	$(PG_ROOT)/scripts/pg-throwaway stop $(PG_DIR)

# Three members on loopback over a throwaway PostgreSQL (scripts/run-cluster says more).
run-cluster: build-release
	$(PG_ROOT)/scripts/run-cluster
