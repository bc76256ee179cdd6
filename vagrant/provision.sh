#!/usr/bin/env bash
# Provision a Fedora machine (Vagrant box or any Fedora / CentOS Stream host with dnf) for the
# conformance suite with the local target, then run the suite.
#
#   provision.sh all      install, configure, check, run the suite (what `vagrant up` does)
#   provision.sh setup    install, configure and check only
#   provision.sh suite    run the suite only (after `vagrant rsync` brought new sources)
#
# Environment: SELINUX_HARNESS_SRC (default /vagrant) is the source tree.
set -euo pipefail

phase="${1:-all}"
src="${SELINUX_HARNESS_SRC:-/vagrant}"

if [[ "$(id -u)" -ne 0 ]]; then
  echo "provision.sh: run as root (the local target relabels files and restarts libvirtd)" >&2
  exit 1
fi

install_packages() {
  # CentOS Stream keeps libvirt-devel and some -devel packages in CodeReady Builder.
  if grep -qE '^ID="?(centos|rhel|almalinux|rocky)"?$' /etc/os-release; then
    dnf -y install dnf-plugins-core
    dnf config-manager --set-enabled crb
  fi
  # Fedora's own rust and cargo: new enough for the workspace's rust-version, and no download
  # from outside the distribution's repositories.
  dnf -y install \
    rust cargo gcc git rsync \
    libvirt libvirt-daemon libvirt-daemon-driver-qemu libvirt-daemon-config-network \
    libvirt-client libvirt-devel qemu-kvm \
    selinux-policy-devel policycoreutils libselinux-devel libselinux-utils \
    audit clang-devel pkgconf-pkg-config
}

# The harness applies qemu.conf settings by `systemctl restart libvirtd`. Fedora runs the modular
# daemons (virtqemud and friends) by default, which would never see that restart: switch to the
# monolithic libvirtd, as libvirt's documentation describes.
use_monolithic_libvirtd() {
  local drv unit
  for drv in qemu interface network nodedev nwfilter secret storage; do
    for unit in "virt${drv}d.service" "virt${drv}d.socket" "virt${drv}d-ro.socket" "virt${drv}d-admin.socket"; do
      if systemctl cat "$unit" >/dev/null 2>&1; then
        systemctl disable --now "$unit" || true
      fi
    done
  done
  systemctl enable libvirtd.service libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket
  systemctl restart libvirtd.service
}

start_services() {
  # auditd refuses `systemctl restart` by design; start is enough (and a no-op when running).
  systemctl enable --now auditd.service
  use_monolithic_libvirtd
  if ! virsh -c qemu:///system version >/dev/null; then
    echo "provision.sh: libvirtd does not answer on qemu:///system" >&2
    exit 1
  fi
}

check_selinux() {
  local mode
  mode="$(getenforce)"
  if [[ "$mode" != "Enforcing" ]]; then
    # A permissive host makes every verdict inconclusive: stop here rather than run for nothing.
    echo "provision.sh: SELinux is $mode, the suite needs Enforcing" >&2
    exit 1
  fi
  echo "SELinux: $mode, policy $(sestatus | sed -n 's/^Loaded policy name: *//p')"
  if [[ ! -e /dev/kvm ]]; then
    echo "provision.sh: no /dev/kvm (nested virtualisation off?): guests will run under TCG, slowly" >&2
  fi
}

run_suite() {
  cd "$src"
  # CI=true makes the suite fail when no trial executed, so a run that could not use the local
  # target is never mistaken for a pass.
  CI=true SELINUX_HARNESS_TARGET=local SELINUX_HARNESS_ALLOW_LOCAL=1 \
    cargo test --locked --test conformance -- --test-threads 1
  echo "reports: $src/target/conformance/report.json, $src/target/conformance/junit.xml"
}

case "$phase" in
  all)
    install_packages
    start_services
    check_selinux
    run_suite
    ;;
  setup)
    install_packages
    start_services
    check_selinux
    ;;
  suite)
    check_selinux
    run_suite
    ;;
  *)
    echo "usage: provision.sh [all|setup|suite]" >&2
    exit 2
    ;;
esac
