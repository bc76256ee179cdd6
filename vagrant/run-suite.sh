#!/usr/bin/env bash
# Run the conformance suite with the local target inside the Vagrant box (as selinux-testsuite
# does: provisioning sets up, the suite runs by `vagrant ssh -c`), from the host:
#
#   vagrant ssh -c 'sudo /vagrant/vagrant/run-suite.sh'
#
# The reports land in /vagrant/target/conformance; the synced folder is rsync (host to box
# only), so bring them back with
#
#   vagrant ssh -c 'sudo tar -C /vagrant/target -c conformance' | tar -x -C ../target
#
# (docs/integrations.md). Exit status: cargo test's (0 all trials as expected, 101 a failure).
# Environment: SELINUX_HARNESS_SRC (default /vagrant) is the source tree.
set -euo pipefail

src="${SELINUX_HARNESS_SRC:-/vagrant}"
if [[ "$(id -u)" -ne 0 ]]; then
  echo "run-suite.sh: run as root (sudo): the local target relabels files and restarts libvirt" >&2
  exit 1
fi
if [[ "$(getenforce)" != "Enforcing" ]]; then
  # A permissive host makes every verdict inconclusive: stop rather than run for nothing.
  echo "run-suite.sh: SELinux is $(getenforce), the suite needs Enforcing" >&2
  exit 1
fi

cd "$src"
# CI=true makes the suite fail when no trial executed, so a run that could not use the local
# target is never mistaken for a pass.
rc=0
CI=true SELINUX_HARNESS_TARGET=local SELINUX_HARNESS_ALLOW_LOCAL=1 \
  cargo test --locked --test conformance -- --test-threads 1 || rc=$?
echo "reports: $src/target/conformance/ (report.json, junit.xml)"
echo "on the host: vagrant ssh -c 'sudo tar -C $src/target -c conformance' | tar -x -C ../target"
exit "$rc"
