# Developer entry points. `make install` then `make test` on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUF := node_modules/.bin/buf
BASELINE := api/sayiir-persistence-v1.binpb
SERVE_LISTEN ?= 127.0.0.1:50051

.PHONY: install proto proto-check proto-baseline buf-lint buf-breaking lint typecheck test serve bench clean

install: $(BIN)/sayiir-server $(BUF)

$(BIN)/sayiir-server: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==26.3
	$(BIN)/pip install --quiet -e ".[dev,tracing]"
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

typecheck:
	$(BIN)/mypy client server tests examples benchmarks scripts

lint: buf-lint buf-breaking proto-check typecheck
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test:
	$(BIN)/pytest

serve:
	$(BIN)/sayiir-server serve --listen $(SERVE_LISTEN)

bench:
	$(BIN)/python -m benchmarks --out build/bench

clean:
	rm -rf build .mypy_cache .ruff_cache
