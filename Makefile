# Developer entry points. `make install` then `make test` on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUF := node_modules/.bin/buf
BASELINE := api/sayiir-persistence-v1.binpb
SERVE_LISTEN ?= 127.0.0.1:50051
PIP_INSTALL := $(BIN)/pip install --quiet --constraint constraints.txt

.PHONY: install proto proto-check proto-baseline buf-lint buf-breaking docker-lint lint typecheck test serve bench dist clean

install: $(BIN)/sayiir-server $(BUF)

# Both distributions editable, the client's console extra, the server's tracing extra and the development
# tools, every version from constraints.txt. Reinstalled when a version changes (the __init__.py files hold
# it). A .venv made before the split still registers the one old distribution, sayiir-persistence-grpc: it
# is removed.
$(BIN)/sayiir-server: client/pyproject.toml server/pyproject.toml constraints.txt requirements-dev.txt \
		client/sayiir_client/__init__.py server/sayiir_server/__init__.py
	$(PYTHON) -m venv $(VENV)
	$(PIP_INSTALL) --upgrade pip
	# First, so its removal cannot take the sayiir-server script the new server distribution installs.
	if $(BIN)/pip show --quiet sayiir-persistence-grpc 2>/dev/null; then $(BIN)/pip uninstall --quiet --yes sayiir-persistence-grpc; fi
	$(PIP_INSTALL) -e './client[console]' -e './server[tracing]' -r requirements-dev.txt
	$(BIN)/pip check
	touch $@

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

proto:
	$(BIN)/python scripts/proto_codegen.py

proto-check:
	$(BIN)/python scripts/proto_codegen.py --check

# Move the breaking-change baseline after a deliberate, reviewed API change.
proto-baseline:
	$(BUF) build -o $(BASELINE)

buf-lint:
	$(BUF) lint

buf-breaking:
	$(BUF) breaking --against $(BASELINE)

docker-lint:
	$(BIN)/hadolint --failure-threshold style Dockerfile

typecheck:
	$(BIN)/mypy client server tests examples benchmarks scripts

lint: buf-lint buf-breaking proto-check docker-lint typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test:
	$(BIN)/pytest

serve:
	$(BIN)/sayiir-server serve --listen $(SERVE_LISTEN)

bench:
	$(BIN)/python -m benchmarks --out build/bench

# The sdist and wheel of each distribution, in dist/.
dist:
	rm -rf dist
	$(BIN)/python -m build --outdir dist client
	$(BIN)/python -m build --outdir dist server

clean:
	rm -rf build dist client/build server/build .mypy_cache .ruff_cache
