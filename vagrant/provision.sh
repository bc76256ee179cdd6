#!/usr/bin/env bash
# Set up a Fedora machine (Vagrant box or any Fedora / CentOS Stream host with dnf) for the
# conformance suite with the local target. Sets up only: the suite runs afterwards, by
# vagrant/run-suite.sh (`vagrant ssh -c`), or by the tmt test.
#
#   provision.sh setup     install packages, start auditd and libvirt, check SELinux
#                          (what `vagrant up` does)
#   provision.sh services  start auditd and libvirt, check SELinux; no packages (the tmt plan:
#                          its test's `require:` installed them)
#
set -euo pipefail

phase="${1:-setup}"

if [[ "$(id -u)" -ne 0 ]]; then
  echo "provision.sh: run as root (the local target relabels files and restarts the libvirt daemon)" >&2
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
    libvirt-client libvirt-devel qemu-kvm python3 \
    selinux-policy-devel policycoreutils libselinux-devel libselinux-utils libsepol-static \
    audit clang-devel pkgconf-pkg-config
}

# Fedora and CentOS Stream run libvirt's modular daemons (virtqemud for qemu:///system, with
# socket activation, and virtproxyd for clients of the old socket); a host someone switched to
# the monolithic libvirtd keeps it. The harness finds out which daemon serves qemu:///system the
# way libvirt's client does and restarts that one when a scenario changes qemu.conf.
start_libvirt() {
  local drv
  if systemctl is-enabled --quiet libvirtd.service 2>/dev/null ||
    systemctl is-enabled --quiet libvirtd.socket 2>/dev/null; then
    systemctl enable --now libvirtd.socket libvirtd-ro.socket libvirtd-admin.socket
    systemctl start libvirtd.service
    return
  fi
  for drv in qemu network storage nodedev secret; do
    if systemctl cat "virt${drv}d.socket" >/dev/null 2>&1; then
      systemctl enable --now "virt${drv}d.socket" "virt${drv}d-ro.socket" "virt${drv}d-admin.socket"
    fi
  done
  # virtproxyd (a package of its own on recent Fedora) only serves the old socket's clients.
  if systemctl cat virtproxyd.socket >/dev/null 2>&1; then
    systemctl enable --now virtproxyd.socket
  fi
}

start_services() {
  # auditd refuses `systemctl restart` by design; start is enough (and a no-op when running).
  systemctl enable --now auditd.service
  start_libvirt
  if ! virsh -c qemu:///system version >/dev/null; then
    echo "provision.sh: no libvirt daemon answers on qemu:///system" >&2
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

case "$phase" in
  setup)
    install_packages
    start_services
    check_selinux
    ;;
  services)
    start_services
    check_selinux
    ;;
  *)
    echo "usage: provision.sh [setup|services]" >&2
    exit 2
    ;;
esac
