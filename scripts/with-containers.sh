#!/usr/bin/env bash
# Runs a command (the test suite) with the harness's servers in containers when a container
# engine answers, else as it is (the harness then runs local processes):
#   - builds the local nats and redis images FROM scratch (docker/build-local-images.sh; no
#     registry is needed) unless TESSERA_NATS_IMAGE / TESSERA_REDIS_IMAGE name others,
#   - sets TESSERA_TEST_BACKEND=containers (unless set), so a broken engine fails the run
#     instead of quietly falling back,
#   - when the engine speaks an older Docker API than testcontainers (Docker 20.10 speaks
#     1.41, testcontainers 0.28 sends 1.53), puts the docker-api-shim (tests/docker-api-shim) in between
#     and points DOCKER_HOST at it for the command.
# TESSERA_TEST_BACKEND=local skips all of this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Keep in step with TESTCONTAINERS_API in tests/src/docker.rs.
TESTCONTAINERS_API=1.53

if [ "${TESSERA_TEST_BACKEND:-}" = local ] || [ "${TESSERA_TEST_BACKEND:-}" = external ]; then
  exec "$@"
fi
if ! command -v docker >/dev/null 2>&1 || ! api=$(docker version -f '{{.Server.APIVersion}}' 2>/dev/null); then
  echo "with-containers: no container engine answers; the suite runs its servers as local processes"
  exec "$@"
fi

if [ -z "${TESSERA_NATS_IMAGE:-}" ] || [ -z "${TESSERA_REDIS_IMAGE:-}" ]; then
  docker/build-local-images.sh nats redis
fi
export TESSERA_NATS_IMAGE=${TESSERA_NATS_IMAGE:-localhost/tessera-nats:local}
export TESSERA_REDIS_IMAGE=${TESSERA_REDIS_IMAGE:-localhost/tessera-redis:local}
export TESSERA_TEST_BACKEND=${TESSERA_TEST_BACKEND:-containers}

older() { [ "$(printf '%s\n%s\n' "$1" "$2" | sort -t. -k1,1n -k2,2n | head -1)" = "$1" ] && [ "$1" != "$2" ]; }
if older "$api" "$TESTCONTAINERS_API"; then
  case ${DOCKER_HOST:-unix://} in
  unix://*) ;;
  *)
    echo "with-containers: engine API $api < $TESTCONTAINERS_API and DOCKER_HOST=$DOCKER_HOST is not a unix socket: the shim cannot sit in between; running on local processes" >&2
    export TESSERA_TEST_BACKEND=local
    exec "$@"
    ;;
  esac
  ${CARGO:-cargo} build --quiet -p docker-api-shim
  dir=$(mktemp -d)
  "${CARGO_TARGET_DIR:-target}/debug/docker-api-shim" "$dir/docker.sock" 2>"$dir/shim.log" &
  shim=$!
  trap 'kill "$shim" 2>/dev/null || true; rm -rf "$dir"' EXIT
  for _ in $(seq 50); do [ -S "$dir/docker.sock" ] && break; sleep 0.1; done
  [ -S "$dir/docker.sock" ] || { cat "$dir/shim.log" >&2; exit 1; }
  export DOCKER_HOST=unix://$dir/docker.sock
  echo "with-containers: engine API $api < $TESTCONTAINERS_API: testcontainers goes through the docker-api-shim"
fi
echo "with-containers: servers in containers ($TESSERA_NATS_IMAGE, $TESSERA_REDIS_IMAGE)"
# Not exec: the trap stops the shim when the command ends.
"$@"
