#!/bin/bash
# The suite's cost model, measured: every scenario in scenarios/ (each variant a run) as one
# `run --jobs J` batch in one warm guest - the batching the conformance suite uses - for each J
# in BENCH_JOBS, alternating the order per rep; then bench/cost_model.py fits suite time as a
# function of scenario runs and jobs and draws BENCHMARKS-suite-cost.svg.
# Needs root, the debian-12 image, jq and python3; hold the VM lock around it:
#   flock /tmp/selinux-harness-vm.lock bench/suite-scaling.sh
# BENCH_FIXED_S: the conformance suite's part that does not grow with scenarios (its fault
# trials, each in a VM of its own; measured from the suite's own log, see BENCHMARKS.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${BENCH_OUT:-target/bench/scaling}
JOBS=${BENCH_JOBS:-"1 2 4"}
REPS=${BENCH_REPS:-1}
BIN=${BENCH_BIN:-./target/release/selinux-harness}
mkdir -p "$OUT"
CSV=$OUT/runs.csv
echo "jobs,rep,runs,wall_s,ready_s,sum_millis_s,verdicts" >"$CSV"
now() { date +%s.%N; }
for rep in $(seq "$REPS"); do
    order=$JOBS
    # Every other rep the other way round, so neither always runs first on a fresh guest.
    # shellcheck disable=SC2086 # JOBS is a list of words
    if [ $((rep % 2)) = 0 ]; then order=$(printf '%s\n' $JOBS | tac | paste -sd' '); fi
    for j in $order; do
        name=jobs-$j-rep-$rep
        t0=$(now)
        "$BIN" run --format human -o "$OUT/$name.txt" --json "$OUT/$name.json" --jobs "$j" scenarios 2>"$OUT/$name.err" || true
        t1=$(now)
        ready=$(sed -n 's/.*agent ready after \([0-9.]*\) s.*/\1/p' "$OUT/$name.err" | head -n 1)
        runs=$(jq '.scenarios | length' "$OUT/$name.json")
        sum=$(jq '[.scenarios[].millis] | add / 1000' "$OUT/$name.json")
        verdicts=$(jq -r '[.scenarios[].verdict.verdict] | group_by(.) | map("\(length) \(.[0])") | join(" ")' "$OUT/$name.json")
        wall=$(awk "BEGIN { printf \"%.2f\", $t1 - $t0 }")
        echo "$j,$rep,$runs,$wall,${ready:-0},$sum,$verdicts" | tee -a "$CSV"
    done
done
python3 bench/cost_model.py "$CSV" --fixed "${BENCH_FIXED_S:-0}" --svg "$OUT/suite-cost.svg" --md "$OUT/suite-cost.md"
echo "results in $OUT"
