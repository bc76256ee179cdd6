#!/bin/bash
# Host set-up for selinux-harness (image builder + VM target), Debian 12 only packages.
# Idempotent: installs only what is missing, runs apt-get update at most once.
# Note: qemu-system-x86 on Debian 12 brings QEMU 7.2 and its own qemu-utils; if a newer
# qemu-utils backport was installed, apt replaces it. Nothing in the harness needs the backport.
set -euo pipefail

PACKAGES=(
    mmdebstrap qemu-system-x86 qemu-utils
    policycoreutils selinux-utils setools e2fsprogs attr
    libselinux1-dev libclang-dev libvirt-dev pkg-config
)

if [ "$(id -u)" -ne 0 ]; then
    echo "setup-host: run as root (apt-get install; image builds need root too)" >&2
    exit 1
fi

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f '${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

if [ "${#missing[@]}" -eq 0 ]; then
    echo "setup-host: all packages present"
else
    echo "setup-host: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --allow-downgrades "${missing[@]}"
fi

for tool in mmdebstrap mkfs.ext4 debugfs qemu-system-x86_64 qemu-img chroot; do
    command -v "$tool" >/dev/null || PATH=$PATH:/usr/sbin:/sbin command -v "$tool" >/dev/null || {
        echo "setup-host: $tool still missing after install" >&2
        exit 1
    }
done
qemu-system-x86_64 --version | head -n 1
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    echo "setup-host: /dev/kvm present (the harness probes at run time whether a guest really runs with it)"
else
    echo "setup-host: no usable /dev/kvm: the VM target runs under TCG"
fi
