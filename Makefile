# The two commands of the README: `make up` runs a dev stack, `make test` runs every check.
# Both install what is missing first (scripts/setup.sh).

CARGO ?= cargo
ARGS ?=

.PHONY: setup build up test lint unit

setup:
	@./scripts/setup.sh

build: setup
	$(CARGO) build --bin tessera

## Run a development stack (nats-server, redis-server, broker, auth, demo plugin server).
up: build
	./target/debug/tessera up $(ARGS)

## Formatting, lints, then the whole test suite against real servers.
test: setup lint
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
