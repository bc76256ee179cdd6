#!/usr/bin/env bash
# The README's test command: installs what the host needs, then formatting, lints, unit tests
# and the conformance suite (every scenario in scenarios/, in the embedded SELinux VM when this
# host does not enforce SELinux itself).
set -euo pipefail
cd "$(dirname "$0")/.."

./ci/setup-host.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy (warnings denied)"
cargo clippy --all-targets --locked -- -D warnings
echo "== unit tests"
cargo test --locked --lib --bins
echo "== conformance suite"
# The suite builds the VM image on first use (cached under ~/.cache/selinux-harness) and boots
# it once; under CI=true it fails when no trial executed.
cargo test --locked --test conformance -- --test-threads 1
