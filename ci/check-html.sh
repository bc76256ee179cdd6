#!/usr/bin/env bash
# Opens the HTML report in a real headless browser (Debian's chromium) at laptop width and
# checks that people can read it: it renders, every scenario and step is there, the label
# timeline and the evidence sections have a size on screen, and the page does not scroll
# sideways at 1366 px. The reports are the pinned snapshots of two recorded VM runs (the seed
# suite, and a failing scenario), so a change to the report's HTML or CSS is checked here.
# Screenshots and the rendered DOM stay in target/html-check/ (CI keeps them as artifacts).
#
#   ci/check-html.sh            installs chromium when missing (apt), then checks
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null; then
    echo "installing chromium (Debian package) for the HTML report check"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi

out=target/html-check
rm -rf "$out"
mkdir -p "$out"
# The browser's own profile and caches go to a directory of ours, removed at exit.
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT

chrome() {
    chromium --headless --no-sandbox --disable-gpu --hide-scrollbars \
        --user-data-dir="$profile" --window-size=1366,768 "$@" 2>>"$out/chromium.log"
}

# Measurements made by the page itself after layout, written into an element the check reads
# back from the DOM chromium dumps. Only the copy in target/ gets this script.
probe='<script>
addEventListener("load", () => {
  const seen = (sel) => [...document.querySelectorAll(sel)].filter(e => e.getBoundingClientRect().height > 0).length;
  const r = {
    overflow_px: document.documentElement.scrollWidth - innerWidth,
    h1: seen("h1"),
    scenarios: seen(".scenario"),
    steps: seen(".step"),
    evidence: seen(".evidence"),
    timelines: seen(".lanes"),
    font_px: parseFloat(getComputedStyle(document.body).fontSize),
  };
  const pre = document.createElement("pre");
  pre.id = "harness-check";
  pre.textContent = JSON.stringify(r);
  document.body.appendChild(pre);
});
</script>'

failed=0
check() { # name snapshot min_scenarios min_timelines
    local name=$1 snap=$2 min_scenarios=$3 min_timelines=$4
    # An insta snapshot is a YAML header between two `---` lines, then the report.
    awk 'n >= 2 { print } /^---$/ && n < 2 { n++ }' "$snap" >"$out/$name.html"
    { cat "$out/$name.html"; echo "$probe"; } >"$out/$name.probe.html"
    chrome --screenshot="$PWD/$out/$name.png" --window-size=1366,2400 "file://$PWD/$out/$name.html" >/dev/null
    chrome --virtual-time-budget=3000 --dump-dom "file://$PWD/$out/$name.probe.html" >"$out/$name.dom.html"
    local got
    got=$(sed -n 's/.*<pre id="harness-check">\(.*\)<\/pre>.*/\1/p' "$out/$name.dom.html")
    if [ -z "$got" ]; then
        echo "FAIL $name: the page did not finish loading in chromium (see $out/chromium.log)"
        failed=1
        return
    fi
    local verdict
    verdict=$(python3 - "$got" "$min_scenarios" "$min_timelines" <<'EOF'
import json, sys
r = json.loads(sys.argv[1]); min_sc = int(sys.argv[2]); min_tl = int(sys.argv[3])
problems = []
if r["overflow_px"] > 0: problems.append(f"scrolls sideways by {r['overflow_px']} px at 1366 px")
if r["h1"] != 1: problems.append("no visible title")
if r["scenarios"] < min_sc: problems.append(f"{r['scenarios']} scenarios visible, want {min_sc}")
if r["steps"] < 1: problems.append("no step visible")
if r["evidence"] < 1: problems.append("no evidence section visible")
if r["timelines"] < min_tl: problems.append(f"{r['timelines']} label timelines visible, want {min_tl}")
if r["font_px"] < 12: problems.append(f"body text {r['font_px']} px")
print("; ".join(problems) or "ok")
EOF
)
    if [ "$verdict" = ok ]; then
        echo "ok   $name: $got (screenshot $out/$name.png)"
    else
        echo "FAIL $name: $verdict ($got)"
        failed=1
    fi
}

check vm-seed harness/src/cli/snapshots/selinux_harness__cli__run__tests__vm-seed-html.snap 5 2
check vm-wrong-image-level harness/src/cli/snapshots/selinux_harness__cli__run__tests__vm-wrong-image-level-html.snap 1 0
exit "$failed"
