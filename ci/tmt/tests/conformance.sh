#!/usr/bin/env bash
# tmt test: run the conformance suite from the repository root, keep its reports and turn its
# JUnit into one tmt result per trial (the test declares `result: custom`).
set -uo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root" || exit 2

echo "target: ${SELINUX_HARNESS_TARGET:-auto}, SELinux: $(getenforce 2>/dev/null || echo 'not available')"
rm -f target/conformance/junit.xml
cargo test --locked --test conformance -- --test-threads 1
rc=$?

# tmt keeps TMT_TEST_DATA with the run; Testing Farm publishes it with the results.
data="${TMT_TEST_DATA:-target/conformance/tmt}"
mkdir -p "$data"
for f in report.json junit.xml report.html; do
  if [[ -f "target/conformance/$f" ]]; then
    cp "target/conformance/$f" "$data/"
  fi
done
if [[ -f target/conformance/junit.xml ]]; then
  python3 ci/tmt/tests/junit-to-tmt.py target/conformance/junit.xml "$data" "$rc" || exit 2
else
  # No JUnit: the suite never got to run a trial. One result says so.
  printf '[{"name": "/", "result": "error", "note": ["no target/conformance/junit.xml; cargo exited %s"]}]\n' \
    "$rc" >"$data/results.yaml"
fi
exit "$rc"
