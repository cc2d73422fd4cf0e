# The two commands of the README: `make up` runs a dev stack, `make test` runs every check.
# Both install what is missing first (scripts/setup.sh).

CARGO ?= cargo
ARGS ?=

.PHONY: setup build up test lint images k8s-validate test-cluster redis-cluster-drill fuzz-smoke python-test

setup:
	@./scripts/setup.sh

## The `tessera` binary (what the image ships) and the dev tool `tessera-dev`.
build: setup
	$(CARGO) build --bin tessera --bin tessera-dev

## Run a development stack (nats-server, redis-server, broker, auth, demo plugin server).
up: build
	./target/debug/tessera-dev up $(ARGS)

## Formatting, lints, manifest validation, a short run of every fuzz target, then the whole
## test suite against real servers: in containers (testcontainers) when a container engine
## answers, else local processes.
test: setup lint k8s-validate fuzz-smoke
	CARGO=$(CARGO) ./scripts/with-containers.sh $(CARGO) test --workspace
	$(MAKE) python-test

## The Python package (clients/python), installed from the repository into a venv under
## .tools/py, tested against a `tessera-dev up` stack its test session starts (seconds).
PY_VENV ?= .tools/py
python-test: build
	test -x $(PY_VENV)/bin/python || python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install --quiet './clients/python[test]'
	cd clients/python && ../../$(PY_VENV)/bin/python -m pytest -q

## The three-node NATS cluster test alone (containers; also part of `make test`).
test-cluster: setup
	CARGO=$(CARGO) ./scripts/with-containers.sh $(CARGO) test -p tessera-tests --test e2e cluster:: -- --nocapture

## The Redis Cluster failover drill (docs/reliability.md, "Redis Cluster"): a master killed
## under load, local redis-server processes; about a minute. DRILL_ACKS replica acks (0: none).
DRILL_ACKS ?= 1
redis-cluster-drill: setup
	TESSERA_DRILL_ACKS=$(DRILL_ACKS) $(CARGO) test -p tessera-tests --test e2e redis_cluster_drill:: -- --ignored --nocapture

## Local images FROM scratch for hosts without a registry (see docker/README.md).
images: setup
	./docker/build-local-images.sh nats redis tessera

## Render the Kubernetes manifests offline and check them against the API schemas.
k8s-validate: setup
	./scripts/k8s-validate.sh

## Every fuzz target (fuzz/) for FUZZ_SECONDS each; installs cargo-fuzz the first time.
## A long run: ./scripts/fuzz.sh --seconds 600 (docs/reliability.md, "Bad input").
FUZZ_SECONDS ?= 10
fuzz-smoke:
	./scripts/fuzz.sh --seconds $(FUZZ_SECONDS)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
