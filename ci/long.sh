#!/usr/bin/env bash
# The longer stages: what `ci/test.sh` (and so `.ci/run`) leaves out to stay near 20 minutes.
# Run before a release, or on a machine with time to spare; each stage is named as it starts.
#
#   ci/long.sh                    every stage below
#   LONG_STAGES="fuzz policy" ci/long.sh
#
# Stages:
#   fuzz     ci/fuzz.sh, 60 s per target with address sanitizer (its build alone takes ~4 min)
#   policy   the conformance suite's trials that rebuild the guest's policy: policy_fault::
#            (a module loaded, `virt` overridden, dontaudit off; ~5 min) and policy_under_test::
#            (each loads and removes a module: ~77 s each under TCG)
#   mutants  ci/mutants.sh scenarios/ (every scenario's mutants, not only the seed's)
#   debian13 the whole conformance suite on the Debian 13 image
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s (%ss)\n' "$*" "$SECONDS"; }
stages="${LONG_STAGES:-fuzz policy mutants debian13}"

./ci/setup-host.sh
for s in $stages; do
    case "$s" in
    fuzz)
        step "fuzzing, ${FUZZ_SECONDS:-60} s per target"
        ./ci/fuzz.sh "${FUZZ_SECONDS:-60}"
        ;;
    policy)
        step "conformance: policy_fault trials"
        cargo test --locked --test conformance -- --test-threads 1 policy_fault
        step "conformance: policy_under_test trials"
        cargo test --locked --test conformance -- --test-threads 1 policy_under_test
        ;;
    mutants)
        step "mutants of every scenario"
        ./ci/mutants.sh scenarios/
        ;;
    debian13)
        step "conformance suite on Debian 13"
        SELINUX_HARNESS_DISTRO=debian-13 cargo test --locked --test conformance -- --test-threads 1
        ;;
    *)
        echo "ci/long.sh: unknown stage '$s' (fuzz, policy, mutants, debian13)" >&2
        exit 2
        ;;
    esac
done
step "done"
