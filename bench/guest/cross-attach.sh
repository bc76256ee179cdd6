#!/bin/bash
# Hand-written equivalent of scenarios/seed/cross-attach.yaml, variant default, for the
# harness-overhead benchmark (bench/run.sh, harness/examples/guest_overhead.rs). Runs inside the
# guest as root (unconfined_t), with the same domain XML the harness generates
# (`selinux-harness explain scenarios/seed/cross-attach.yaml`) and the same steps:
#   1. start vm1, vm2; vm1's QEMU is svirt_t and not at vm2's level; each image carries its
#      domain's level
#   2. virsh attach-device vm2 (vm1.img as vdb) --live must fail with "already in use";
#      vm1.img keeps vm1's level (ls -Z after the step: no label timeline)
#   3. virsh reset vm1, wait 8 s, no AVC for svirt_t at vm1's level in the audit log since the
#      step began
#   4. destroy both; undefine, remove the images
# Prints one line per check and exits 0 if all held.
set -u
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
RUN=bench-$$
DIR=/var/lib/libvirt/images/selinux-harness-$RUN
LOG=/var/log/audit/audit.log
failed=0

check() { # what got want
    if [ "$2" = "$3" ]; then
        echo "ok   $1: $2"
    else
        echo "FAIL $1: got '$2', want '$3'"
        failed=1
    fi
}
level() { printf '%s' "${1#*:*:*:}"; }
ctype() { printf '%s' "$1" | cut -d: -f3; }
live_label() { virsh dumpxml "$RUN-$1" | sed -n 's|.*<label>\(.*\)</label>.*|\1|p' | head -n 1; }
# ls -Z is what the benchmark compares against (names here are fixed and plain).
# shellcheck disable=SC2012
file_label() { ls -Z "$1" | cut -d' ' -f1; }
qemu_label() { ps -o label= -p "$(cat "/run/libvirt/qemu/$RUN-$1.pid")"; }
audit_end() { stat -c %s "$LOG"; }

# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
    for d in vm1 vm2; do
        virsh -q destroy "$RUN-$d" >/dev/null 2>&1
        virsh -q undefine "$RUN-$d" >/dev/null 2>&1
    done
    rm -rf "$DIR"
}
trap cleanup EXIT

mkdir -p "$DIR"
for d in vm1 vm2; do
    truncate -s 16M "$DIR/$d.img"
    cat >"$DIR/$d.xml" <<XML
<domain type='qemu'>
  <name>$RUN-$d</name>
  <description>selinux-harness benchmark: hand-written cross-attach</description>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='raw'/>
      <source file='$DIR/$d.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <memballoon model='none'/>
  </devices>
  <seclabel type='dynamic' model='selinux' relabel='yes'/>
</domain>
XML
    virsh -q define "$DIR/$d.xml" >/dev/null || exit 2
done

# 1. start both
virsh -q start "$RUN-vm1" >/dev/null && virsh -q start "$RUN-vm2" >/dev/null || exit 2
vm1=$(level "$(live_label vm1)")
vm2=$(level "$(live_label vm2)")
p1=$(qemu_label vm1)
check "vm1 QEMU type" "$(ctype "$p1")" svirt_t
if [ "$(level "$p1")" != "$vm2" ]; then
    echo "ok   vm1 QEMU not at vm2's level $vm2"
else
    echo "FAIL vm1 QEMU at vm2's level $vm2"
    failed=1
fi
f1=$(file_label "$DIR/vm1.img")
f2=$(file_label "$DIR/vm2.img")
check "vm1.img type" "$(ctype "$f1")" svirt_image_t
check "vm1.img level" "$(level "$f1")" "$vm1"
check "vm2.img type" "$(ctype "$f2")" svirt_image_t
check "vm2.img level" "$(level "$f2")" "$vm2"

# 2. cross attach must be refused
cat >"$DIR/disk.xml" <<XML
<disk type='file' device='disk'>
  <driver name='qemu' type='raw'/>
  <source file='$DIR/vm1.img'/>
  <target dev='vdb' bus='virtio'/>
</disk>
XML
if out=$(virsh attach-device "$RUN-vm2" "$DIR/disk.xml" --live 2>&1); then
    echo "FAIL attach succeeded"
    failed=1
else
    case $out in
    *"Requested operation is not valid"*"already in use"*) echo "ok   attach refused: ${out#error: }" | head -n 1 ;;
    *) echo "FAIL attach error: $out"; failed=1 ;;
    esac
fi
f1=$(file_label "$DIR/vm1.img")
check "vm1.img level after attach" "$(level "$f1")" "$vm1"

# 3. reset vm1 (SeaBIOS rereads its disk), settle 8 s, no AVC for vm1's QEMU
off=$(audit_end)
virsh -q reset "$RUN-vm1" >/dev/null || { echo "FAIL reset"; failed=1; }
sleep 8
avcs=$(tail -c +"$((off + 1))" "$LOG" | grep -c "type=AVC .*scontext=[^ ]*:svirt_t:$vm1 ")
check "AVCs for svirt_t:$vm1 during reset" "$avcs" 0

# 4. destroy both
for d in vm1 vm2; do
    virsh -q destroy "$RUN-$d" >/dev/null || { echo "FAIL destroy $d"; failed=1; }
done
exit "$failed"
