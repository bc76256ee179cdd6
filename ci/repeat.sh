#!/usr/bin/env bash
# Flakiness check: runs the same scenarios N times in a row (one VM start each) and fails if
# any scenario's verdict differs between runs.
#
#   ci/repeat.sh [N] [PATHS...]      default: 20 runs of scenarios/seed
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-20}"
shift || true
paths=("${@:-scenarios/seed}")

cargo build --release --locked
out="target/repeat"
rm -rf "$out" && mkdir -p "$out"
for i in $(seq "$runs"); do
    start=$SECONDS
    # A failing verdict is what this script compares, not a reason to stop.
    ./target/release/selinux-harness run --format json -o "$out/run-$i.json" "${paths[@]}" \
        2>"$out/run-$i.log" || true
    python3 - "$out/run-$i.json" >"$out/verdicts-$i.txt" <<'PY'
import json, sys
for s in json.load(open(sys.argv[1]))["scenarios"]:
    name = s["scenario"] + (f"[{s['variant']}]" if s.get("variant") else "")
    print(name, (s.get("verdict") or {}).get("verdict", "none"))
PY
    echo "run $i/$runs ($((SECONDS - start)) s): $(tr '\n' ' ' <"$out/verdicts-$i.txt")"
done
status=0
for i in $(seq 2 "$runs"); do
    if ! diff -u "$out/verdicts-1.txt" "$out/verdicts-$i.txt"; then
        echo "repeat: run $i gave other verdicts than run 1 (logs in $out/)" >&2
        status=1
    fi
done
[ "$status" = 0 ] && echo "repeat: $runs runs, the same verdicts every time"
exit "$status"
