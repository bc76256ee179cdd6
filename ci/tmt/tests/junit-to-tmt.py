#!/usr/bin/env python3
"""Turn the conformance suite's JUnit report into tmt custom results (results.yaml), one result
per trial, so that Testing Farm and Packit show each scenario and variant instead of one
verdict for the whole cargo run.

    junit-to-tmt.py JUNIT_XML OUT_DIR [EXIT_STATUS]

Writes OUT_DIR/results.yaml and one log per trial under OUT_DIR/trials/ (tmt reads log paths
relative to TMT_TEST_DATA, which OUT_DIR is under tmt). The result named "/" is the test itself:
it fails when cargo exited non-zero (EXIT_STATUS) even if every trial passed, e.g. when the
suite could not start. JSON is YAML, so the standard library is enough: no PyYAML on the guest.
"""
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


def trial_name(case: ET.Element) -> str:
    """classname 'selinux-harness.[/abs/path/]scenarios/seed/a.yaml' + name 'a[default]' ->
    '/scenarios/seed/a/default': unique across directories, and a path as tmt names are."""
    path = case.get("classname", "").removeprefix("selinux-harness.").removesuffix(".yaml")
    # The suite names files by where it found them (an absolute path under tmt): keep the
    # part from the scenarios directory on, so names do not depend on the checkout's place.
    at = path.rfind("scenarios/")
    path = path[at:] if at >= 0 else path
    name = case.get("name", "unnamed")
    variant = re.search(r"\[([^\]]*)\]$", name)
    base = path if path else name.split("[")[0]
    return "/" + base.strip("/") + (f"/{variant.group(1)}" if variant else "")


def outcome(case: ET.Element) -> tuple[str, str | None]:
    for tag, result in (("error", "error"), ("failure", "fail"), ("skipped", "skip")):
        el = case.find(tag)
        if el is not None:
            return result, el.get("message")
    return "pass", None


def convert(junit: Path, out: Path, status: int) -> list[dict]:
    logs = out / "trials"
    logs.mkdir(parents=True, exist_ok=True)
    results = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = trial_name(case)
        result, message = outcome(case)
        log = logs / (re.sub(r"[^A-Za-z0-9._-]+", "_", name.strip("/")) + ".txt")
        text = "\n".join(
            t for t in ((el.get("message") or "") + "\n" + (el.text or "")
                        for el in case if el.tag in ("failure", "error", "skipped", "system-out",
                                                     "system-err")) if t.strip())
        log.write_text(text + "\n")
        entry = {"name": name, "result": result, "log": [str(log.relative_to(out))]}
        if message:
            entry["note"] = [message]
        results.append(entry)
    whole = "pass" if status == 0 else "fail"
    note = [] if status == 0 else [f"cargo test exited with status {status}"]
    if not results:
        whole, note = "error", note + ["the JUnit report has no trial"]
    results.insert(0, {"name": "/", "result": whole, "note": note})
    (out / "results.yaml").write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    rs = convert(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) == 4 else 0)
    print(f"junit-to-tmt: {len(rs) - 1} trial result(s) in {sys.argv[2]}/results.yaml")
