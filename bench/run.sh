#!/bin/bash
# Whole-run benchmarks on the VM target, side by side in one run (see BENCHMARKS.md):
#   1. boot: cold (`env --target vm --cold`: `run` has no cold switch) and warm
#   2. suites, warm: scenarios/seed and scenarios/, with the breakdown
#      (agent ready | scenarios, from the JSON report's millis | the rest)
#      and the cold suite estimated as cold boot + (warm suite - warm boot)
#   3. harness vs hand-written script (bench/guest/cross-attach.sh) in the same guest
#      (harness/examples/guest_overhead.rs)
#   4. scaling: N independent scenarios one after another in one guest
# Needs root, the debian-12 image (built on first use) and jq. Results: $BENCH_OUT
# (default target/bench), summary.md there and on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${BENCH_OUT:-target/bench}
REPS=${BENCH_REPS:-3}
SCALE=${BENCH_SCALE:-"1 2 4"}
SCALE_SCENARIO=${BENCH_SCALE_SCENARIO:-scenarios/seed/distinct-dynamic-labels.yaml}
BIN=./target/release/selinux-harness
mkdir -p "$OUT"
SUMMARY=$OUT/summary.md

cargo build --release --quiet
cargo build --release --quiet --example guest_overhead

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
say() { echo "$*" | tee -a "$SUMMARY"; }

: >"$SUMMARY"
say "# bench/run.sh, $(date -u '+%Y-%m-%d %H:%M UTC')"
say ""
say "- host: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), kernel $(uname -r), load at start: $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. Boot --------------------------------------------------------------------------------------
boot() { # name, extra env args
    local name=$1
    shift
    "$BIN" env --target vm "$@" >"$OUT/env-$name.txt" 2>"$OUT/env-$name.err"
    sed -n 's/^boot: *//p' "$OUT/env-$name.txt"
}
cold_line=$(boot cold --cold)
warm_line=$(boot warm)
accel=$(sed -n 's/^accelerator: *//p' "$OUT/env-warm.txt")
say "- guest: $(sed -n 's/^distro: *//p' "$OUT/env-warm.txt"), kernel $(sed -n 's/^kernel: *//p' "$OUT/env-warm.txt"), libvirt $(sed -n 's/^libvirt: *//p' "$OUT/env-warm.txt"), accelerator ${accel:-?}"
say ""
say "## Boot (selinux-harness env --target vm [--cold])"
say ""
say "- cold: $cold_line"
say "- warm: $warm_line"
cold_ready=$(sed -n 's/.*agent ready after \([0-9.]*\) s.*/\1/p' <<<"$cold_line")

# 2. Suites ------------------------------------------------------------------------------------
say ""
say "## Suites (warm; cold estimated = cold boot ready + warm total - warm ready)"
say ""
say "| suite | scenario runs | verdicts | total (s) | agent ready (s) | scenarios, sum of millis (s) | rest: load, image check, round trips, VM teardown (s) | cold estimate (s) |"
say "|---|---|---|---|---|---|---|---|"
suite() { # name, paths...
    local name=$1 t0 t1 total ready sum runs verdicts
    shift
    t0=$(now)
    "$BIN" run --format human -o "$OUT/$name.txt" --json "$OUT/$name.json" "$@" 2>"$OUT/$name.err" || true
    t1=$(now)
    total=$(calc "$t1 - $t0")
    ready=$(sed -n 's/.*agent ready after \([0-9.]*\) s.*/\1/p' "$OUT/$name.err" | head -n 1)
    sum=$(jq '[.scenarios[].millis] | add / 1000' "$OUT/$name.json")
    runs=$(jq '.scenarios | length' "$OUT/$name.json")
    verdicts=$(jq -r '[.scenarios[].verdict.verdict] | group_by(.) | map("\(length) \(.[0])") | join(", ")' "$OUT/$name.json")
    say "| $name | $runs | $verdicts | $total | ${ready:-?} | $(calc "$sum") | $(calc "$total - ${ready:-0} - $sum") | $(calc "${cold_ready:-0} + $total - ${ready:-0}") |"
    jq -r '.scenarios[] | "  \(.scenario)/\(.variant // "-"): \(.millis) ms"' "$OUT/$name.json" >>"$OUT/$name.per-scenario.txt"
}
suite seed scenarios/seed
suite all scenarios
say ""
say "Per scenario (ms, from the JSON reports):"
say '```'
for s in seed all; do
    say "$s:"
    say "$(cat "$OUT/$s.per-scenario.txt")"
    rm -f "$OUT/$s.per-scenario.txt"
done
say '```'

# 3. Harness vs script -------------------------------------------------------------------------
say ""
say "## Harness vs hand-written script (cross-attach, default variant, same guest, $REPS alternating reps)"
say ""
./target/release/examples/guest_overhead --reps "$REPS" >"$OUT/overhead.txt" 2>"$OUT/overhead.err"
say '```'
say "$(grep -v '^RESULT' "$OUT/overhead.txt")"
say '```'

# 4. Scaling -----------------------------------------------------------------------------------
say ""
say "## Scaling: N copies of $(basename "$SCALE_SCENARIO") one after another in one guest"
say ""
say "The executor runs one scenario at a time in a guest (one request at a time on the agent"
say "channel): parallel runs in one guest are not possible yet, only the sequential case is measured."
say ""
say "| N | total (s) | agent ready (s) | scenarios, sum (s) | per scenario, mean (s) | rest (s) |"
say "|---|---|---|---|---|---|"
base=$(basename "$SCALE_SCENARIO" .yaml)
for n in $SCALE; do
    dir=$OUT/scale-$n
    rm -rf "$dir"
    mkdir -p "$dir"
    for i in $(seq 1 "$n"); do
        sed "s/^name: .*/name: $base-$i/" "$SCALE_SCENARIO" >"$dir/$base-$i.yaml"
    done
    t0=$(now)
    "$BIN" run --format human -o "$dir/report.txt" --json "$dir/report.json" "$dir" 2>"$dir/stderr.txt" || true
    t1=$(now)
    total=$(calc "$t1 - $t0")
    ready=$(sed -n 's/.*agent ready after \([0-9.]*\) s.*/\1/p' "$dir/stderr.txt" | head -n 1)
    sum=$(jq '[.scenarios[].millis] | add / 1000' "$dir/report.json")
    say "| $n | $total | ${ready:-?} | $(calc "$sum") | $(calc "$sum / $n") | $(calc "$total - ${ready:-0} - $sum") |"
done
echo
echo "results in $OUT (summary: $SUMMARY)"
