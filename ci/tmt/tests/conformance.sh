#!/usr/bin/env bash
# tmt test: run the conformance suite from the repository root and keep its reports.
set -uo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
cd "$root" || exit 2

echo "target: ${SELINUX_HARNESS_TARGET:-auto}, SELinux: $(getenforce 2>/dev/null || echo 'not available')"
cargo test --locked --test conformance -- --test-threads 1
rc=$?

# tmt keeps TMT_TEST_DATA with the run; Testing Farm publishes it with the results.
if [[ -n "${TMT_TEST_DATA:-}" ]]; then
  for f in report.json junit.xml; do
    if [[ -f "target/conformance/$f" ]]; then
      cp "target/conformance/$f" "$TMT_TEST_DATA/"
    fi
  done
fi
exit "$rc"
