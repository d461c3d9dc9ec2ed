# Outside clients (issue 6): the Python and C clients, built and tested against a real
# daemon. Included from the top-level Makefile, which defines AFTERSALESD (the built
# daemon's path) and DEB_PACKAGES.
#
#   make python-client-test  venv at .venv (if missing), install clients/python (+pytest)
#                            once, generate its protobuf modules, run pytest
#   make c-client            protoc-c + cc into clients/c/build/
#   make c-client-test       start a daemon, run the C client against it, check it, stop it

DEB_PACKAGES += libprotobuf-c-dev protobuf-c-compiler libzmq3-dev protobuf-compiler \
                pkg-config gcc python3-venv

# Paths are taken from this file's place, so the fragment works from any make -C.
OC_ROOT := $(patsubst %/mk/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))

OC_PYTHON      ?= python3
OC_VENV        := $(OC_ROOT)/.venv
OC_VENV_PY     := $(OC_VENV)/bin/python
OC_PY_DIR      := $(OC_ROOT)/clients/python
OC_PY_STAMP    := $(OC_VENV)/.aftersales-client-installed
OC_PROTO_DIR   := $(OC_ROOT)/proto

OC_C_DIR       := $(OC_ROOT)/clients/c
OC_C_BUILD     := $(OC_C_DIR)/build
OC_C_GEN       := $(OC_C_BUILD)/gen
OC_C_BIN       := $(OC_C_BUILD)/aftersales-c-client
OC_C_PROTOS    := $(sort $(wildcard $(OC_PROTO_DIR)/aftersales/v1/*.proto))
# options.proto extends google/protobuf/descriptor.proto, which protoc-c compiles from the
# copy protobuf-compiler installs (libprotobuf-c ships no C for it).
OC_PB_INCLUDE  ?= /usr/include
OC_C_GEN_SRCS  := $(patsubst $(OC_PROTO_DIR)/%.proto,$(OC_C_GEN)/%.pb-c.c,$(OC_C_PROTOS)) \
                  $(OC_C_GEN)/google/protobuf/descriptor.pb-c.c
OC_C_PKGS      := libprotobuf-c libzmq
OC_CFLAGS      ?= -std=c11 -D_POSIX_C_SOURCE=200809L -O2 -g
OC_C_WARN      := -Wall -Wextra -Werror

.PHONY: python-client-gen python-client-test c-client c-client-test

# --- Python ------------------------------------------------------------------------------

$(OC_VENV_PY):
	$(OC_PYTHON) -m venv $(OC_VENV)

# Installed once (editable, so regenerated modules are picked up); again only when
# pyproject.toml changes or the venv is recreated.
$(OC_PY_STAMP): $(OC_PY_DIR)/pyproject.toml | $(OC_VENV_PY)
	$(OC_VENV_PY) -m pip install --disable-pip-version-check -q -e '$(OC_PY_DIR)[test]'
	touch $@

python-client-gen: | $(OC_VENV_PY)
	$(OC_VENV_PY) $(OC_PY_DIR)/gen_proto.py --proto-dir $(OC_PROTO_DIR)

python-client-test: $(OC_PY_STAMP) python-client-gen
	@test -n '$(AFTERSALESD)' || { echo 'python-client-test: AFTERSALESD is not set' >&2; exit 1; }
	cd $(OC_PY_DIR) && AFTERSALESD='$(abspath $(AFTERSALESD))' $(OC_VENV_PY) -m pytest -v -p no:cacheprovider; \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo 'python-client-test: pytest ran no tests' >&2; exit 1; fi; exit $$rc

# --- C -----------------------------------------------------------------------------------

$(OC_C_GEN)/.stamp: $(OC_C_PROTOS)
	@mkdir -p $(OC_C_GEN)
	protoc-c -I$(OC_PROTO_DIR) -I$(OC_PB_INCLUDE) --c_out=$(OC_C_GEN) $(OC_C_PROTOS) google/protobuf/descriptor.proto
	@touch $@

$(OC_C_BIN): $(OC_C_DIR)/aftersales_c_client.c $(OC_C_GEN)/.stamp
	$(CC) $(OC_CFLAGS) $(OC_C_WARN) -I$(OC_C_GEN) $$(pkg-config --cflags $(OC_C_PKGS)) \
	  -o $@ $(OC_C_DIR)/aftersales_c_client.c $(OC_C_GEN_SRCS) $$(pkg-config --libs $(OC_C_PKGS))

c-client: $(OC_C_BIN)

c-client-test: $(OC_C_BIN)
	@test -n '$(AFTERSALESD)' || { echo 'c-client-test: AFTERSALESD is not set' >&2; exit 1; }
	$(OC_C_DIR)/run-test.sh '$(abspath $(AFTERSALESD))' $(OC_C_BIN)
