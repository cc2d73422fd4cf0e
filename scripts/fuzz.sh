#!/usr/bin/env bash
# Runs the fuzz targets in fuzz/ (cargo-fuzz, libFuzzer), each for a bounded time.
#
#   scripts/fuzz.sh [--seconds N] [--list] [target...]
#
# Default: every target, 15 s each (`make fuzz-smoke`, part of `make test`, passes 10). A
# long run: `scripts/fuzz.sh --seconds 600`. Each target starts from its checked-in seeds
# (fuzz/seeds/<target>, real encoded messages) plus what earlier runs on this machine found
# (fuzz/corpus/<target>, not committed). A crash fails the run (non-zero status, once the
# other targets have run too) and leaves the input in fuzz/artifacts/<target>/; replay it:
#   RUSTC_BOOTSTRAP=1 .tools/cargo-fuzz/bin/cargo-fuzz fuzz run -s none -a <target> <file>
#
# Why RUSTC_BOOTSTRAP=1: cargo-fuzz builds with code-coverage instrumentation flags
# (`-Zsanitizer`-style `-Z` options, `-Cpasses=sancov-module`) that rustc accepts only on a
# nightly toolchain; we have the stable one. RUSTC_BOOTSTRAP=1 lets this stable rustc accept
# them. It is set for the fuzz build alone (its own workspace and target dir, fuzz/target),
# never for the product's build.
#
# Why `-s none` (no AddressSanitizer): the code under test is safe Rust (our crates forbid
# `unsafe`), so ASan would find nothing the Rust checks do not, and it makes the build and
# every run several times slower. Debug assertions and overflow checks stay on (`-a`).
#
# cargo-fuzz is installed pinned into .tools/cargo-fuzz the first time (compiled from its
# crate: a few minutes, once per machine).
set -euo pipefail
cd "$(dirname "$0")/.."

CARGO_FUZZ_VERSION=0.13.2
TOOLS=.tools/cargo-fuzz
CARGO_FUZZ="$TOOLS/bin/cargo-fuzz"
SECONDS_EACH=15
targets=()

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_EACH="$2"; shift 2 ;;
    --seconds=*) SECONDS_EACH="${1#*=}"; shift ;;
    --list) sed -n 's/^name = "\([a-z_]*\)"$/\1/p' fuzz/Cargo.toml | grep -v '^tessera' ; exit 0 ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <("$0" --list)
fi

if [ ! -x "$CARGO_FUZZ" ] || ! "$CARGO_FUZZ" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS"
  cargo install --quiet --locked --version "$CARGO_FUZZ_VERSION" --root "$TOOLS" cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
# cargo-fuzz is a cargo subcommand: called directly, its first argument is `fuzz`.
fuzz() { "$CARGO_FUZZ" fuzz "$@"; }

started=$(date +%s)
failed=()
fuzz build -s none -a
echo "fuzz: built ${#targets[@]} targets in $(( $(date +%s) - started )) s"

for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  echo "fuzz: $t for ${SECONDS_EACH} s"
  # The first corpus directory receives new inputs; the seeds stay as committed.
  # -rss_limit_mb: a run whose memory passes 512 MB fails (an unbounded allocation).
  log="fuzz/artifacts/$t.log"
  mkdir -p fuzz/artifacts
  if ! fuzz run -s none -a "$t" "fuzz/corpus/$t" "fuzz/seeds/$t" -- \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=512 -timeout=10 -print_final_stats=1 \
      2>"$log"; then
    echo "fuzz: $t FAILED (full log: $log)" >&2
    grep -A12 -E "panicked at|ERROR: libFuzzer" "$log" | head -n 40 >&2 || tail -n 40 "$log" >&2
    failed+=("$t")
    continue
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log")
  echo "fuzz: $t ok: ${runs:-?} runs, peak RSS ${rss:-?} MB, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs"
done
echo "fuzz: done in $(( $(date +%s) - started )) s"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/)" >&2
  exit 1
fi
