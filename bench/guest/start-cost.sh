#!/bin/bash
# Per-guest start cost under TCG, measured inside the harness's guest (the bench-only example
# harness/examples/guest_overhead.rs runs it with --start-cost): what of `virsh start` is QEMU,
# what libvirt, how long the firmware takes to reach its disk, and one-after-the-other against
# at-once starts of two guests. Same domain XML shape as the scenarios (64 MiB, one vCPU, one
# virtio disk, dynamic seclabel). Prints one line per measure, median (min-max) of REPS.
set -u
export LC_ALL=C PATH=/usr/sbin:/usr/bin:/sbin:/bin
REPS=${REPS:-5}
RUN=bench-start-$$
DIR=/var/lib/libvirt/images/selinux-harness-$RUN

now() { date +%s%N; }
since() { echo $((($(now) - $1) / 1000000)); }
stat_line() { # name values...
    local name=$1
    shift
    printf '%s\n' "$@" | sort -n | awk -v n="$name" '{a[NR]=$1} END {printf "start-cost: %-58s %6d ms (%d-%d)\n", n, a[int((NR+1)/2)], a[1], a[NR]}'
}
rd_req() { virsh domblkstat "$RUN-$1" vda 2>/dev/null | awk '$2 == "rd_req" {print $3}'; }
quiet() { "$@" >/dev/null 2>&1; }

# shellcheck disable=SC2317 # called through the EXIT trap
cleanup() {
    for d in a b; do
        quiet virsh -q destroy "$RUN-$d"
        quiet virsh -q undefine "$RUN-$d"
    done
    rm -rf "$DIR"
}
trap cleanup EXIT

mkdir -p "$DIR"
for d in a b; do
    truncate -s 16M "$DIR/$d.img"
    cat >"$DIR/$d.xml" <<XML
<domain type='qemu'>
  <name>$RUN-$d</name>
  <description>selinux-harness benchmark: start cost</description>
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

client=() qemu=() paused=() firmware=() destroy=() running=() two_seq=() two_par=()
for _ in $(seq "$REPS"); do
    # virsh's own start-up and one round trip to libvirtd: in every virsh figure below.
    t=$(now); quiet virsh -q version; client+=("$(since "$t")")
    # QEMU alone: process start to QMP's answer and quit; no libvirt, no firmware (-S).
    t=$(now)
    printf '{"execute":"qmp_capabilities"}\n{"execute":"quit"}\n' |
        quiet qemu-system-x86_64 -S -machine pc -accel tcg -m 64 -nodefaults -display none -qmp stdio
    qemu+=("$(since "$t")")
    # libvirt + QEMU, vCPUs stopped: labelling, cgroups, QEMU, QMP set-up; no firmware.
    t=$(now); quiet virsh -q start --paused "$RUN-a"; paused+=("$(since "$t")")
    # The firmware, from resume to its first read of the disk (what a reset waits for too).
    t=$(now)
    quiet virsh -q resume "$RUN-a"
    until [ "$(rd_req a)" -gt 0 ] 2>/dev/null; do sleep 0.02; done
    firmware+=("$(since "$t")")
    t=$(now); quiet virsh -q destroy "$RUN-a"; destroy+=("$(since "$t")")
    # What a scenario's `start:` does: start running.
    t=$(now); quiet virsh -q start "$RUN-a"; running+=("$(since "$t")")
    quiet virsh -q destroy "$RUN-a"
    # Two guests: one after the other, then at once.
    t=$(now); quiet virsh -q start "$RUN-a"; quiet virsh -q start "$RUN-b"; two_seq+=("$(since "$t")")
    quiet virsh -q destroy "$RUN-a"; quiet virsh -q destroy "$RUN-b"
    t=$(now)
    quiet virsh -q start "$RUN-a" & quiet virsh -q start "$RUN-b" & wait
    two_par+=("$(since "$t")")
    quiet virsh -q destroy "$RUN-a"; quiet virsh -q destroy "$RUN-b"
done
echo "start-cost: $REPS reps, $(qemu-system-x86_64 --version | head -n 1), libvirt $(virsh -q version --daemon 2>/dev/null | awk '/daemon/ {print $NF}')"
stat_line "virsh alone (client start + one round trip)" "${client[@]}"
stat_line "QEMU alone (-S, QMP answered, quit)" "${qemu[@]}"
stat_line "virsh start --paused (libvirt + QEMU, no firmware)" "${paused[@]}"
stat_line "resume to the firmware's first disk read" "${firmware[@]}"
stat_line "virsh destroy" "${destroy[@]}"
stat_line "virsh start (running; what start: does)" "${running[@]}"
stat_line "two guests, one after the other" "${two_seq[@]}"
stat_line "two guests at once" "${two_par[@]}"
