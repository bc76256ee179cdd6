#!/usr/bin/env bash
# Runs every fuzz target for a fixed budget each; exits non-zero on the first crash, hang
# (an input slower than PER_INPUT_TIMEOUT) or out-of-memory.
#
#   ci/fuzz.sh [SECONDS]          default 30 s per target
#   FUZZ_TARGETS="audit_parse" ci/fuzz.sh 10
#   FUZZ_SANITIZER=none ci/fuzz.sh   (faster build, catches panics/hangs but not memory errors)
#
# Toolchain: only stable Rust is available here. cargo-fuzz passes -Z flags (-Zsanitizer=...,
# and the sanitizer-coverage options), so the stable compiler is told to accept them with
# RUSTC_BOOTSTRAP=1. That is the documented escape hatch the Rust project uses to build itself;
# it is fine for a test-only build, never for a release. The harness's own code is safe Rust
# except the libvirt/xattr FFI, which these targets do not reach, but address sanitizer also
# covers the C parsers underneath (none today), so it stays the default.
#
# New inputs libFuzzer finds go to a scratch directory, not fuzz/corpus/: the repo keeps its
# small hand-picked seeds. A crash leaves its input in fuzz/artifacts/<target>/ (git-ignored);
# reproduce with `RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/crash-...`.
set -euo pipefail

SECONDS_PER_TARGET="${1:-30}"
PER_INPUT_TIMEOUT="${FUZZ_INPUT_TIMEOUT:-10}"
SANITIZER="${FUZZ_SANITIZER:-address}"
TARGETS="${FUZZ_TARGETS:-scenario_load audit_parse context_parse}"

cd "$(dirname "$0")/.."
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cargo fuzz build --sanitizer "$SANITIZER"

# libFuzzer's output (every new input, the recommended dictionary: hundreds of lines per target)
# goes to a log per target; CI shows one line per target, and the log's end when one fails.
status=0
for t in $TARGETS; do
    mkdir -p "$scratch/$t"
    log="$scratch/$t.log"
    if cargo fuzz run --sanitizer "$SANITIZER" "$t" "$scratch/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECONDS_PER_TARGET" \
        -timeout="$PER_INPUT_TIMEOUT" \
        -rss_limit_mb=2048 \
        -max_len=65536 \
        -print_funcs=0 \
        -print_final_stats=1 >"$log" 2>&1; then
        runs=$(awk '/^stat::number_of_executed_units:/ { print $2 }' "$log")
        cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n 1)
        echo "fuzz: $t ok: ${runs:-?} inputs in ${SECONDS_PER_TARGET}s, ${cov:-cov: ?}" >&2
    else
        echo "fuzz: $t FAILED; input in fuzz/artifacts/$t/; the end of libFuzzer's output:" >&2
        grep -vE '^#[0-9]+\s+(NEW|REDUCE|pulse)|^"' "$log" | tail -n 60 >&2
        status=1
    fi
done
exit "$status"
