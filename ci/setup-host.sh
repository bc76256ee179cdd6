#!/bin/bash
# Host set-up for selinux-harness (image builder + VM target), from Debian 12's packages.
#
#   ci/setup-host.sh           install what is missing, after saying what will change
#   ci/setup-host.sh --plan    say what would change and check that the result keeps every tool;
#                              changes nothing (exit 1 if the plan would lose a tool)
#
# Idempotent: installs only what is missing, runs apt-get update at most once.
#
# QEMU comes in two packages that must be of one version: qemu-utils (qemu-img) and
# qemu-system-x86 (whose qemu-system-common Breaks any other era's qemu-utils, and the other way
# round). A machine may start with a backport of either (bookworm-backports' qemu-utils 10.0 is
# common), so asking apt for the missing one alone lets it *remove* the other to satisfy the
# Breaks. Both are therefore always requested together at one chosen version: the version of the
# one already installed when the archive has its partner, else the highest version both share.
#
# SETUP_HOST_DPKG_ADMINDIR points dpkg and apt at another dpkg database (the regression test
# ci/test-setup-host.sh plans against recorded machine states this way; never used to install).
set -euo pipefail

MODE=install
case "${1:-}" in
    --plan) MODE=plan ;;
    "") ;;
    -h | --help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "setup-host: unknown argument '$1' (see --help)" >&2; exit 2 ;;
esac

# Packages other than QEMU's, and the tools that must work afterwards with their package.
PACKAGES=(
    mmdebstrap policycoreutils selinux-utils setools e2fsprogs attr
    libselinux1-dev libclang-dev libvirt-dev pkg-config
)
QEMU_PACKAGES=(qemu-system-x86 qemu-utils)
TOOLS=(
    mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs debugfs:e2fsprogs chroot:coreutils
    qemu-system-x86_64:qemu-system-x86 qemu-img:qemu-utils setfiles:policycoreutils
    pkg-config:pkg-config
)

ADMINDIR="${SETUP_HOST_DPKG_ADMINDIR:-/var/lib/dpkg}"
APT_OPTS=(-o "Dir::State::status=$ADMINDIR/status")
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup-host: $*"; }

if [ "$MODE" = install ] && [ "$(id -u)" -ne 0 ]; then
    echo "setup-host: run as root (apt-get install; image builds need root too)" >&2
    exit 1
fi

# Installed version of a package, or nothing.
installed_version() {
    dpkg-query --admindir="$ADMINDIR" -W -f '${Status}\t${Version}\n' "$1" 2>/dev/null |
        awk -F'\t' '$1 == "install ok installed" { print $2 }'
}

# Versions an archive offers (not the dpkg database's own), one a line.
archive_versions() {
    apt-cache "${APT_OPTS[@]}" madison "$1" 2>/dev/null | awk -F' [|] ' '{ print $2 }'
}

offers() { archive_versions "$1" | grep -qxF -- "$2"; }

highest() {
    local best="" v
    while read -r v; do
        [ -z "$v" ] && continue
        if [ -z "$best" ] || dpkg --compare-versions "$v" gt "$best"; then best=$v; fi
    done
    echo "$best"
}

# The version qemu-system-x86 and qemu-utils should both have, or nothing if none exists.
qemu_version() {
    local sys utl
    sys=$(installed_version qemu-system-x86)
    utl=$(installed_version qemu-utils)
    if [ -n "$sys" ] && { [ "$sys" = "$utl" ] || offers qemu-utils "$sys"; }; then
        echo "$sys"
    elif [ -n "$utl" ] && offers qemu-system-x86 "$utl"; then
        echo "$utl"
    else
        comm -12 <(archive_versions qemu-system-x86 | sort -u) <(archive_versions qemu-utils | sort -u) |
            highest
    fi
}

# Installed packages built from QEMU's source at a version no archive offers (a backport whose
# archive is not configured): apt does not downgrade them on its own to satisfy an exact-version
# dependency, so they are requested at the archive's version along with the pair.
stray_qemu_packages() {
    local p v
    dpkg-query --admindir="$ADMINDIR" -W -f '${Status}\t${Package}\t${Source}\t${Version}\n' 2>/dev/null |
        awk -F'\t' '$1 == "install ok installed" && $3 ~ /^qemu( |$)/ { print $2 "\t" $4 }' |
        while IFS=$'\t' read -r p v; do
            case " ${QEMU_PACKAGES[*]} " in *" $p "*) continue ;; esac
            offers "$p" "$v" || echo "$p=$(archive_versions "$p" | highest)"
        done
}

# What to ask apt for: missing packages, and the QEMU pair at one version.
request=()
compute_request() {
    request=()
    local p v
    for p in "${PACKAGES[@]}"; do
        [ -n "$(installed_version "$p")" ] || request+=("$p")
    done
    v=$(qemu_version)
    if [ -z "$v" ]; then
        say "no version of ${QEMU_PACKAGES[*]} is offered by both packages in the configured archives" >&2
        return 1
    fi
    for p in "${QEMU_PACKAGES[@]}"; do
        [ "$(installed_version "$p")" = "$v" ] || request+=("$p=$v")
    done
    local stray
    stray=$(stray_qemu_packages)
    [ -z "$stray" ] || mapfile -t -O "${#request[@]}" request <<<"$stray"
}

# Simulates the install; prints what changes and leaves the final package set in $final
# (package<TAB>version lines). Returns 1 if the result would lack a needed package or have
# two QEMU versions.
final=""
plan() {
    local sim
    sim=$(apt-get "${APT_OPTS[@]}" -s -q install --allow-downgrades "${request[@]}" 2>&1) || {
        echo "$sim" | grep -E '^(E|W):|broken|Depends:' >&2 || true
        say "apt cannot satisfy: ${request[*]}" >&2
        return 1
    }
    # Inst pkg [old] (new ...) / Remv pkg [old]
    local changes
    changes=$(echo "$sim" | awk '
        $1 == "Inst" { old = "-"; if ($3 ~ /^\[/) { old = $3; gsub(/[][]/, "", old); new = $4 } else new = $3
                       gsub(/[()]/, "", new); print "inst\t" $2 "\t" old "\t" new }
        $1 == "Remv" { old = $3; gsub(/[][]/, "", old); print "remv\t" $2 "\t" old "\t-" }')
    local added=() upgraded=() downgraded=() removed=() kind pkg old new
    while IFS=$'\t' read -r kind pkg old new; do
        [ -z "$kind" ] && continue
        if [ "$kind" = remv ]; then
            removed+=("$pkg $old")
        elif [ "$old" = - ]; then
            added+=("$pkg")
        elif dpkg --compare-versions "$new" lt "$old"; then
            downgraded+=("$pkg $old -> $new")
        else
            upgraded+=("$pkg $old -> $new")
        fi
    done <<<"$changes"
    say "about to change: ${#added[@]} added, ${#upgraded[@]} upgraded, ${#downgraded[@]} downgraded, ${#removed[@]} removed"
    local requested_new=() r
    for r in "${request[@]}"; do requested_new+=("${r%%=*}"); done
    say "  requested: ${request[*]}"
    [ "${#added[@]}" -eq 0 ] || say "  added (with dependencies): $(printf '%s\n' "${added[@]}" | head -n 12 | tr '\n' ' ')$([ "${#added[@]}" -le 12 ] || echo "... and $((${#added[@]} - 12)) more")"
    for r in "${upgraded[@]}"; do say "  upgraded:   $r"; done
    for r in "${downgraded[@]}"; do say "  DOWNGRADED: $r"; done
    for r in "${removed[@]}"; do say "  REMOVED:    $r"; done

    # The package set after the transaction.
    final=$(
        {
            dpkg-query --admindir="$ADMINDIR" -W -f '${Status}\t${Package}\t${Version}\n' 2>/dev/null |
                awk -F'\t' '$1 == "install ok installed" { print "have\t" $2 "\t" $3 }'
            echo "$changes"
        } | awk -F'\t' '
            $1 == "have" { v[$2] = $3 }
            $1 == "inst" { v[$2] = $4 }
            $1 == "remv" { delete v[$2] }
            END { for (p in v) print p "\t" v[p] }' | sort
    )
    local ok=0 p
    for p in "${PACKAGES[@]}" "${QEMU_PACKAGES[@]}"; do
        if ! grep -q "^$p"$'\t' <<<"$final"; then
            say "the plan leaves $p uninstalled" >&2
            ok=1
        fi
    done
    local vs vu
    vs=$(awk -F'\t' '$1 == "qemu-system-x86" { print $2 }' <<<"$final")
    vu=$(awk -F'\t' '$1 == "qemu-utils" { print $2 }' <<<"$final")
    if [ "$vs" != "$vu" ]; then
        say "the plan leaves qemu-system-x86 $vs beside qemu-utils $vu" >&2
        ok=1
    fi
    return "$ok"
}

lists_fresh=0
apt_update() {
    if [ "$lists_fresh" = 0 ]; then
        apt-get update -q
        lists_fresh=1
    fi
}

compute_request || { [ "$MODE" = install ] && apt_update && compute_request; }

if [ "${#request[@]}" -eq 0 ]; then
    say "all packages present"
    [ "$MODE" = plan ] && exit 0
else
    if [ "$MODE" = plan ]; then
        plan
        exit $?
    fi
    # Package lists may be stale or missing on a fresh machine: decide again after the update.
    apt_update
    compute_request
    # Every tool on the machine now, so nothing the transaction removes goes unnoticed.
    before=$(for t in "${TOOLS[@]}"; do command -v "${t%%:*}" >/dev/null 2>&1 && echo "${t%%:*}"; done || true)
    if ! plan; then
        say "refusing to install: the plan above would lose a tool (fix the apt state, or file a bug with this output)" >&2
        exit 1
    fi
    apt-get install -y -q --allow-downgrades "${request[@]}"
fi

# Whatever apt did, every tool must work now; reinstall the package of any that went missing.
export PATH="$PATH:/usr/sbin:/sbin"
lost=()
for t in "${TOOLS[@]}"; do
    tool=${t%%:*} pkg=${t#*:}
    if ! command -v "$tool" >/dev/null; then
        say "$tool missing after install: installing $pkg again"
        apt_update
        apt-get install -y -q --allow-downgrades "$pkg" || true
        command -v "$tool" >/dev/null || lost+=("$tool ($pkg)")
    fi
done
if [ "${#lost[@]}" -gt 0 ]; then
    say "still missing: ${lost[*]}" >&2
    [ -n "${before:-}" ] && say "present before set-up: $(echo "$before" | tr '\n' ' ')" >&2
    exit 1
fi
say "qemu-system-x86 $(installed_version qemu-system-x86), qemu-utils $(installed_version qemu-utils)"
if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
    say "/dev/kvm present (the harness probes at run time whether a guest really runs with it)"
else
    say "no usable /dev/kvm: the VM target runs under TCG"
fi
