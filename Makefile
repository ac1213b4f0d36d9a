# One command for each job. `make run` and `make test` set up everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HTMX := static/vendor/htmx.min.js
IMAGE ?= localhost/movierec:test

.PHONY: run test container-image container-test lint bench install static clean

run: install static
	$(BIN)/movierec serve

test: install static
	$(BIN)/python -m pytest -m "not container" $(PYTEST_ARGS)

# The image built with Podman on a debootstrapped Debian base (see scripts/container-image).
container-image: static
	scripts/container-image $(IMAGE)

container-test: install container-image
	MOVIEREC_IMAGE=$(IMAGE) $(BIN)/python -m pytest -m container $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy

bench: install
	$(BIN)/python bench/recommend_latency.py

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

static: $(HTMX)

$(HTMX): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js $@

clean:
	rm -rf $(VENV) node_modules static/vendor
