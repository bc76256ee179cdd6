#!/usr/bin/env bash
# Mutation testing of the scenarios (issue 15): runs each scenario and every mutant of it - each
# expectation inverted or shifted, a known bug dropped - in one batch in the VM, and fails
# unless every mutant a scenario does not list under `mutants_survive` was killed.
#
#   ci/mutants.sh                    the seed scenarios (what ci/test.sh runs)
#   ci/mutants.sh scenarios/         the whole suite (the README's figures)
#   MUTANT_JOBS=2 ci/mutants.sh      fewer runs at once
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -eq 0 ]; then
    set -- scenarios/seed
fi
cargo build --locked --bin selinux-harness
# Like the conformance step of ci/test.sh, this takes no lock of its own: on a machine shared
# by several VM jobs, wrap the caller (flock /tmp/selinux-harness-vm.lock ci/test.sh).
exec target/debug/selinux-harness mutants --target "${SELINUX_HARNESS_TARGET:-auto}" \
    --jobs "${MUTANT_JOBS:-4}" "$@"
