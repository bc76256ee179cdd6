#!/bin/bash
# Whole-run benchmarks on the VM target, side by side in one run (see BENCHMARKS.md):
#   1. boot: cold (`env --target vm --cold`: `run` has no cold switch) and warm
#   2. suites, warm: scenarios/seed and scenarios/, with the breakdown
#      (agent ready | scenarios, from the JSON report's millis | the rest)
#      and the cold suite estimated as cold boot + (warm suite - warm boot)
#   3. harness vs hand-written script (bench/guest/cross-attach.sh) in the same guest
#      (harness/examples/guest_overhead.rs)
#   4. scaling: the same N independent scenarios one by one and with --jobs N, each in one
#      guest; fails if a parallel verdict differs from the sequential one
# Needs root, the debian-12 image (built on first use) and jq. Results: $BENCH_OUT
# (default target/bench), summary.md there and on stdout.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=${BENCH_OUT:-target/bench}
REPS=${BENCH_REPS:-3}
SCALE=${BENCH_SCALE:-"1 2 4"}
SCALE_POOL=${BENCH_SCALE_POOL:-"scenarios/seed/distinct-dynamic-labels.yaml scenarios/seclabel/readonly-disk.yaml scenarios/seclabel/shareable-disk.yaml scenarios/seclabel/static-label.yaml"}
# Which sections to run (all by default; e.g. BENCH_SECTIONS=4 for the scaling alone).
SECTIONS=${BENCH_SECTIONS:-"1 2 3 4"}
want() { [[ " $SECTIONS " == *" $1 "* ]]; }
BIN=./target/release/selinux-harness
mkdir -p "$OUT"
SUMMARY=$OUT/summary.md

cargo build --release --quiet
want 3 && cargo build --release --quiet --example guest_overhead

now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.2f\", $1 }"; }
say() { echo "$*" | tee -a "$SUMMARY"; }

: >"$SUMMARY"
say "# bench/run.sh, $(date -u '+%Y-%m-%d %H:%M UTC')"
say ""
say "- host: $(nproc) cores, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), kernel $(uname -r), load at start: $(cut -d' ' -f1-3 /proc/loadavg)"

scale_failed=0
# 1. Boot --------------------------------------------------------------------------------------
if want 1; then
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
fi

# 2. Suites ------------------------------------------------------------------------------------
if want 2; then
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
fi

# 3. Harness vs script -------------------------------------------------------------------------
if want 3; then
say ""
say "## Harness vs hand-written script (cross-attach, default variant, same guest, $REPS alternating reps)"
say ""
./target/release/examples/guest_overhead --reps "$REPS" >"$OUT/overhead.txt" 2>"$OUT/overhead.err"
say '```'
say "$(grep -v '^RESULT' "$OUT/overhead.txt")"
say '```'
fi

# 4. Scaling ----------------------------------------------------------------------------------
if want 4; then
# The same N independent scenarios (no host settings, so none needs the host alone), renamed
# copies from a pool, run one by one and then with --jobs N: each in one guest, same script run.
say ""
say "## Scaling: N independent scenarios in one guest, one by one vs --jobs N"
say ""
say "Scenarios, in order, from: $(for f in $SCALE_POOL; do basename "$f" .yaml; done | paste -sd' ')"
say "(copy i of N is pool[i mod pool size], renamed). total = wall time of \`run\`; work = total - agent ready."
say ""
say "| N | sequential total (s) | parallel total (s) | total par/seq | sequential work (s) | parallel work (s) | work par/seq | scenarios, sum of millis seq / par (s) | verdicts (seq = par) |"
say "|---|---|---|---|---|---|---|---|---|"
timed_run() { # dir, name, extra args...
    local dir=$1 name=$2 t0 t1
    shift 2
    t0=$(now)
    "$BIN" run --format human -o "$dir/$name.txt" --json "$dir/$name.json" "$@" "$dir/scenarios" 2>"$dir/$name.err" || true
    t1=$(now)
    calc "$t1 - $t0"
}
for n in $SCALE; do
    dir=$OUT/scale-$n
    rm -rf "$dir"
    mkdir -p "$dir/scenarios"
    read -r -a pool <<<"$SCALE_POOL"
    for i in $(seq 1 "$n"); do
        src=${pool[$(((i - 1) % ${#pool[@]}))]}
        base=$(basename "$src" .yaml)
        sed "s/^name: .*/name: $base-$i/" "$src" >"$dir/scenarios/$base-$i.yaml"
    done
    seq_total=$(timed_run "$dir" seq)
    par_total=$(timed_run "$dir" par --jobs "$n")
    seq_ready=$(sed -n 's/.*agent ready after \([0-9.]*\) s.*/\1/p' "$dir/seq.err" | head -n 1)
    par_ready=$(sed -n 's/.*agent ready after \([0-9.]*\) s.*/\1/p' "$dir/par.err" | head -n 1)
    seq_sum=$(jq '[.scenarios[].millis] | add / 1000' "$dir/seq.json")
    par_sum=$(jq '[.scenarios[].millis] | add / 1000' "$dir/par.json")
    verdicts() { jq -r '.scenarios[] | "\(.scenario)/\(.variant // "-") \(.verdict.verdict)"' "$1" | sort; }
    if diff <(verdicts "$dir/seq.json") <(verdicts "$dir/par.json") >"$dir/verdicts.diff"; then
        same="yes: $(jq -r '[.scenarios[].verdict.verdict] | group_by(.) | map("\(length) \(.[0])") | join(", ")' "$dir/seq.json")"
    else
        same="**NO** (see $dir/verdicts.diff)"
        scale_failed=1
    fi
    seq_work=$(calc "$seq_total - ${seq_ready:-0}")
    par_work=$(calc "$par_total - ${par_ready:-0}")
    say "| $n | $seq_total | $par_total | $(calc "$par_total / $seq_total") | $seq_work | $par_work | $(calc "$par_work / $seq_work") | $(calc "$seq_sum") / $(calc "$par_sum") | $same |"
done
say ""
say "- guest: $(grep -m1 '^vm: ' "$OUT/scale-${SCALE%% *}/par.err" || echo '?')"
fi
say ""
say "- load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "results in $OUT (summary: $SUMMARY)"
if [ "$scale_failed" != 0 ]; then
    echo "FAILED: a parallel verdict differs from the sequential verdict of the same scenario:" >&2
    cat "$OUT"/scale-*/verdicts.diff >&2
    exit 1
fi
