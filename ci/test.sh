#!/usr/bin/env bash
# The README's test command: installs what the host needs, then formatting, lints, unit tests,
# the integration lints, and the conformance suite (every scenario in scenarios/, in the
# embedded SELinux VM when this host does not enforce SELinux itself). Fuzzing, the trials that
# rebuild the policy, the mutants (the seed's too: 4-7 minutes) and Debian 13 are ci/long.sh's
# stages, to keep this near 20 minutes.
#
#   FUZZ_SECONDS=20 ci/test.sh    fuzz here too (default: not here; ci/long.sh does it)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s (%ss)\n' "$*" "$SECONDS"; }

step "host set-up"
./ci/setup-host.sh
step "set-up regression test (package decisions on recorded machine states)"
./ci/test-setup-host.sh

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (warnings denied)"
cargo clippy --all-targets --locked -- -D warnings
step "unit and bad-input tests"
cargo test --locked --lib --bins --test bad_input --test cli_exit
step "integration lints (shellcheck, actionlint, tmt, packit, vagrant validate)"
./ci/lint-integrations.sh
step "HTML report in headless chromium at laptop width (screenshots in target/html-check/)"
./ci/check-html.sh
if [ "${FUZZ_SECONDS:-0}" != 0 ]; then
    step "fuzzing, ${FUZZ_SECONDS} s per target"
    ./ci/fuzz.sh "${FUZZ_SECONDS}"
fi
step "conformance suite"
# Builds the VM image on first use (cached under ~/.cache/selinux-harness), boots it once and
# runs every scenario as a trial; a scenario trial that cannot run fails (unless the scenario
# is `not_applicable` to the target), with or without CI=true. Trials that rebuild the guest's
# policy (~40 s per load and per removal under TCG) are ci/long.sh's: the policy_under_test::
# ones (~5 min) and the policy faults made by a module or `semodule -DB` (~5 min); the boolean
# fault stays here. Its clean-image check is the scenario trials' own pass on the same image.
cargo test --locked --test conformance -- --test-threads 1 --skip policy_under_test \
    --skip policy_fault::clean-image --skip policy_fault::svirt_t --skip policy_fault::dontaudit-off
step "done"
