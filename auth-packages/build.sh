#!/usr/bin/env bash
# Builds the auth packages (wasm32-unknown-unknown, release) and refreshes dist/:
#   http-password.wasm, oauth2-code.wasm, misbehave.wasm (PKG_VERSION 1) and
#   misbehave-2.wasm (the same source with PKG_VERSION 2, for hot-swap tests).
# Prints each file's size and sha256, and checks each module's exports and imports.
# dist/ is committed: tests and CI use it and never run this script.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"

# Keep build machine paths out of the modules (panic locations embed source paths), so the
# same source gives the same bytes on another machine with the same toolchain.
cargo_home="${CARGO_HOME:-$HOME/.cargo}"
export RUSTFLAGS="${RUSTFLAGS:-} --remap-path-prefix=$cargo_home=/cargo --remap-path-prefix=$here=/src"
if [ -n "${RUSTUP_HOME:-}" ]; then RUSTFLAGS="$RUSTFLAGS --remap-path-prefix=$RUSTUP_HOME=/rustup"; fi
RUSTFLAGS="$RUSTFLAGS --remap-path-prefix=$HOME/.rustup=/rustup"
# Dependency sources live under a directory named after the registry; name them /deps
# instead (the last matching prefix wins, so these come after the general one).
for dir in "$cargo_home"/registry/src/*/; do
    RUSTFLAGS="$RUSTFLAGS --remap-path-prefix=${dir%/}=/deps"
done

target=wasm32-unknown-unknown
out="target/$target/release"
mkdir -p dist

build() { # $1 = PKG_VERSION, rest = cargo args
    local version="$1"; shift
    PKG_VERSION="$version" cargo build --locked --release --target "$target" "$@"
}

build 1 -p http-password -p oauth2-code -p misbehave
cp "$out/http_password.wasm" dist/http-password.wasm
cp "$out/oauth2_code.wasm" dist/oauth2-code.wasm
cp "$out/misbehave.wasm" dist/misbehave.wasm
build 2 -p misbehave
cp "$out/misbehave.wasm" dist/misbehave-2.wasm

if command -v python3 >/dev/null; then
    python3 - dist/*.wasm <<'PY'
import sys

def leb(b, i):
    n = shift = 0
    while True:
        x = b[i]; i += 1
        n |= (x & 0x7F) << shift; shift += 7
        if x < 0x80:
            return n, i

def name(b, i):
    n, i = leb(b, i)
    return b[i:i + n].decode(), i + n

bad = False
for path in sys.argv[1:]:
    b = open(path, "rb").read()
    assert b[:8] == b"\0asm\1\0\0\0", path
    i, exports, modules = 8, set(), set()
    while i < len(b):
        sid, i = b[i], i + 1
        size, i = leb(b, i)
        end = i + size
        if sid in (2, 7):  # import, export sections
            count, j = leb(b, i)
            for _ in range(count):
                if sid == 2:
                    mod, j = name(b, j); _, j = name(b, j)
                    modules.add(mod)
                    kind = b[j]; j += 1
                    if kind == 0: _, j = leb(b, j)
                    else: break  # only functions are expected; stop parsing
                else:
                    n, j = name(b, j); j += 1; _, j = leb(b, j)
                    exports.add(n)
        i = end
    missing = {"authenticate", "interface_version"} - exports
    # extism:host/env: the Extism kernel; extism:host/user: the node's own host functions
    # (tessera_http_request), the only other import a package may have.
    foreign = modules - {"extism:host/env", "extism:host/user"}
    if missing or foreign:
        bad = True
        print(f"{path}: missing exports {sorted(missing)} / foreign imports {sorted(foreign)}")
sys.exit(1 if bad else 0)
PY
fi

cd dist
for f in http-password.wasm oauth2-code.wasm misbehave.wasm misbehave-2.wasm; do
    printf '%-20s %8d bytes  sha256 %s\n' "$f" "$(wc -c <"$f")" "$(sha256sum "$f" | cut -d' ' -f1)"
done
