#!/bin/bash
# Regression test for ci/setup-host.sh's package decisions (issue: the README's first command
# failed on a fresh Debian 12 machine that came with bookworm-backports' qemu-utils 10.0:
# installing qemu-system-x86 7.2 *removed* it, and qemu-img was gone).
#
# It plans (apt-get -s, nothing is installed) against fake dpkg databases that reproduce the
# machine states the set-up must handle, and fails if any plan would leave a needed package
# out or QEMU's two packages at two versions:
#   fresh               no QEMU at all
#   debian-utils        Debian 12's qemu-utils alone
#   debian-both         Debian 12's qemu-utils and qemu-system-x86
#   backport-utils      bookworm-backports' qemu-utils 10.0 alone: its real dpkg record, taken
#                       from a fresh machine (ci/fixtures/qemu-utils-10.0-bpo12.status)
#   backport-system     a backport qemu-system-x86 without qemu-utils: Debian 12's records
#                       relabelled with the backport's version, since no backport archive is
#                       configured here to take real ones from
# A control shows the test can fail: the old decision (ask only for what is missing) on
# backport-utils must plan to remove qemu-utils.
#
# Every fake database is the real one less QEMU, plus packages whose records apt-cache gives,
# so apt's view of everything else is this machine's. Needs up-to-date package lists
# (setup-host.sh runs apt-get update when it installs; run it first).
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0

# A dpkg status record for PKG=VERSION from the archive's record, marked installed.
record() {
    apt-cache show "$1=$2" 2>/dev/null | awk -v ver="$2" '
        /^$/ { exit }
        /^(Filename|Size|MD5sum|SHA1|SHA256|SHA512|Description-md5):/ { skip = 1; next }
        /^[^ ]/ { skip = 0 }
        skip { next }
        /^Package:/ { print; print "Status: install ok installed"; next }
        /^Version:/ { print "Version: " ver; next }
        { print }'
    echo
}

# Records for everything `apt-get -s install ARGS` on database DIR would install.
closure() {
    local dir=$1
    shift
    apt-get -o "Dir::State::status=$dir/status" -s -q install "$@" |
        awk '$1 == "Inst" { v = ($3 ~ /^\[/) ? $4 : $3; gsub(/[()]/, "", v); print $2 "\t" v }' |
        while IFS=$'\t' read -r p v; do record "$p" "$v"; done
}

new_db() {
    mkdir -p "$work/$1/updates" "$work/$1/info"
    cp "$work/base/status" "$work/$1/status"
}

# base: this machine's database less every qemu package.
mkdir -p "$work/base/updates" "$work/base/info"
awk -v RS= -v ORS='\n\n' '!/^Package: qemu-/' /var/lib/dpkg/status >"$work/base/status"
if ! apt-get -o "Dir::State::status=$work/base/status" -s -q check >/dev/null 2>&1; then
    echo "test-setup-host: this machine's dpkg database less QEMU is inconsistent; cannot build states" >&2
    exit 1
fi
debian=$(apt-cache madison qemu-system-x86 | awk -F' [|] ' 'NR == 1 { print $2 }')
backport=$(awk '/^Version:/ { print $2 }' ci/fixtures/qemu-utils-10.0-bpo12.status)
[ -n "$debian" ] || { echo "test-setup-host: no qemu-system-x86 in the package lists (apt-get update?)" >&2; exit 1; }

new_db fresh
new_db debian-utils
closure "$work/base" "qemu-utils=$debian" >>"$work/debian-utils/status"
new_db debian-both
closure "$work/base" "qemu-utils=$debian" "qemu-system-x86=$debian" >>"$work/debian-both/status"
new_db backport-utils
# qemu-utils' own dependencies from the archive, then its real backport record.
{
    closure "$work/base" "qemu-utils=$debian" | awk -v RS= -v ORS='\n\n' '!/^Package: qemu-/'
    cat ci/fixtures/qemu-utils-10.0-bpo12.status
    echo
} >>"$work/backport-utils/status"
new_db backport-system
closure "$work/base" "qemu-system-x86=$debian" |
    awk -v RS= -v ORS='\n\n' '!/^Package: qemu-utils\n/' |
    awk -v d="$debian" -v b="$backport" '
        /^Package: qemu-/ { q = 1 } /^$/ { q = 0 }
        q && /^Version:/ { print "Version: " b; next }
        { s = "= " d ")"; while ((i = index($0, s)) > 0) $0 = substr($0, 1, i - 1) "= " b ")" substr($0, i + length(s)); print }' \
    >>"$work/backport-system/status"

for state in fresh debian-utils debian-both backport-utils backport-system; do
    if ! apt-get -o "Dir::State::status=$work/$state/status" -s -q check >/dev/null 2>&1; then
        echo "FAIL $state: the fake database is inconsistent (test bug)"
        fail=1
        continue
    fi
    if out=$(SETUP_HOST_DPKG_ADMINDIR="$work/$state" ./ci/setup-host.sh --plan 2>&1); then
        echo "ok   $state: $(grep -E 'about to change|all packages present' <<<"$out" | sed 's/^setup-host: //')"
        grep -E 'DOWNGRADED|REMOVED' <<<"$out" | sed 's/^/       /' || true
    else
        echo "FAIL $state:"
        while IFS= read -r line; do echo "       $line"; done <<<"$out"
        fail=1
    fi
done

# Control: the old set-up asked apt only for the packages that were missing. On backport-utils
# that plan removes qemu-utils; if it no longer does, the fixture stopped reproducing the bug
# and the checks above prove nothing.
old=$(apt-get -o "Dir::State::status=$work/backport-utils/status" -s -q install mmdebstrap qemu-system-x86 2>&1 || true)
if grep -q '^Remv qemu-utils ' <<<"$old"; then
    echo "ok   control: the old decision on backport-utils removes qemu-utils, as on the fresh machine"
else
    echo "FAIL control: the old decision no longer removes qemu-utils on backport-utils: the fixture does not reproduce the bug"
    fail=1
fi

if [ "$fail" = 0 ]; then
    echo "test-setup-host: 6 passed, 0 failed"
else
    echo "test-setup-host: failed" >&2
fi
exit "$fail"
