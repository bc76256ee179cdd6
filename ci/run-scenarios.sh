#!/usr/bin/env bash
# The README's main command: install what the host needs, build the harness, then run the
# scenarios (default: all of scenarios/) on the best target: this host if it enforces SELinux
# and SELINUX_HARNESS_ALLOW_LOCAL=1, else the embedded VM (built on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
./ci/setup-host.sh
cargo build --release --locked
mkdir -p target/reports
exec ./target/release/selinux-harness run --json target/reports/report.json \
  --junit target/reports/junit.xml "${@:-scenarios/}"
