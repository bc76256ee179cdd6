//! The documented exit statuses (`--help` of each command, README "Exit statuses") that can be
//! produced without a VM or changes to this host, asserted on the built binary. 1 of `run` and
//! `repro` and 130 need a target; `repro`'s mapping is unit-tested in main.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const VALID: &str = "scenarios/seed/mcs-probe.yaml";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness crate sits in the workspace")
        .to_path_buf()
}

/// Runs the binary from the repository root with a cache and target selection of its own, so
/// that nothing reaches the shared image cache or this host's libvirt.
fn harness(args: &[&str], cache: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_selinux-harness"))
        .args(args)
        .current_dir(repo())
        .env("XDG_CACHE_HOME", cache)
        .env_remove("SELINUX_HARNESS_TARGET")
        .env_remove("SELINUX_HARNESS_ALLOW_LOCAL")
        .env_remove("SELINUX_HARNESS_DISTRO")
        .output()
        .expect("the built binary runs")
}

fn status(args: &[&str]) -> (i32, String) {
    let cache = tempfile::tempdir().unwrap();
    let out = harness(args, cache.path());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().expect("exited, not killed"), text)
}

/// A directory with one valid and one invalid scenario file.
fn mixed_dir() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::copy(repo().join(VALID), d.path().join("good.yaml")).unwrap();
    std::fs::write(d.path().join("bad.yaml"), "name: bad\nsteps: 3\n").unwrap();
    d
}

fn assert_status(args: &[&str], want: i32, says: &str) {
    let (got, text) = status(args);
    assert_eq!(got, want, "selinux-harness {args:?} printed:\n{text}");
    assert!(
        text.contains(says),
        "selinux-harness {args:?} should say {says:?}:\n{text}"
    );
}

#[test]
fn check_statuses() {
    assert_status(&["check", VALID], 0, "1 scenario file(s) valid");
    let d = mixed_dir();
    let dir = d.path().to_str().unwrap();
    assert_status(&["check", dir], 1, "bad.yaml:");
    let empty = tempfile::tempdir().unwrap();
    assert_status(
        &["check", empty.path().to_str().unwrap()],
        2,
        "no scenario files",
    );
    assert_status(&["check", "/nonexistent/scenarios"], 2, "cannot read");
}

#[test]
fn list_statuses() {
    let d = mixed_dir();
    let (got, text) = status(&["list", d.path().to_str().unwrap()]);
    assert_eq!(got, 1, "{text}");
    assert!(
        text.contains("mcs-probe"),
        "valid ones are still listed:\n{text}"
    );
    let empty = tempfile::tempdir().unwrap();
    assert_status(
        &["list", empty.path().to_str().unwrap()],
        2,
        "no scenario files",
    );
}

#[test]
fn explain_statuses() {
    assert_status(&["explain", VALID], 0, "mcs-probe");
    let d = mixed_dir();
    let bad = d.path().join("bad.yaml");
    assert_status(&["explain", bad.to_str().unwrap()], 2, "bad.yaml:");
}

#[test]
fn run_and_repro_refuse_invalid_scenarios_before_any_target() {
    let d = mixed_dir();
    let dir = d.path().to_str().unwrap();
    assert_status(&["run", "--target", "vm", dir], 2, "nothing was run");
    assert_status(
        &[
            "run",
            "--target",
            "vm",
            "--filter",
            "no-such-scenario",
            VALID,
        ],
        2,
        "no scenario matches",
    );
    let bad = d.path().join("bad.yaml");
    assert_status(
        &["repro", "--target", "vm", bad.to_str().unwrap()],
        2,
        "bad.yaml:",
    );
}

#[test]
fn run_and_compare_refuse_a_bad_policy_under_test_before_any_target() {
    assert_status(
        &[
            "run",
            "--target",
            "vm",
            "--policy-module",
            "/nonexistent/x.cil",
            VALID,
        ],
        2,
        "cannot read it",
    );
    assert_status(
        &[
            "run",
            "--target",
            "vm",
            "--policy-module",
            "/tmp/x.txt",
            VALID,
        ],
        2,
        "no known extension",
    );
    assert_status(
        &[
            "run",
            "--target",
            "vm",
            "--boolean",
            "virt_use_nfs=maybe",
            VALID,
        ],
        2,
        "on or off",
    );
    assert_status(
        &[
            "compare",
            "--target",
            "vm",
            "--permissive",
            "svirt_t:s0",
            VALID,
        ],
        2,
        "not a type name",
    );
    // Nothing to compare: no VM is started for it.
    assert_status(
        &["compare", "--target", "vm", VALID],
        2,
        "nothing to compare",
    );
    let d = tempfile::tempdir().unwrap();
    let scenario = d.path().join("m.yaml");
    std::fs::write(
        &scenario,
        std::fs::read_to_string(repo().join(VALID))
            .unwrap()
            .replace("requires:", "host: {modules: [gone.cil]}\nrequires:"),
    )
    .unwrap();
    assert_status(
        &["run", "--target", "vm", scenario.to_str().unwrap()],
        2,
        "policy module `gone.cil` not found",
    );
}

#[test]
fn image_and_env_statuses() {
    assert_status(
        &["image", "build", "--distro", "no-such-distro"],
        2,
        "no-such-distro",
    );
    assert_status(
        &["env", "--target", "vm", "--distro", "no-such-distro"],
        2,
        "no-such-distro",
    );
}

#[test]
fn new_writes_what_check_accepts_and_refuses_the_rest() {
    let d = tempfile::tempdir().unwrap();
    let xml = d.path().join("vm1.xml");
    std::fs::write(
        &xml,
        "<domain type='kvm'><name>vm1</name><seclabel type='dynamic' model='selinux'/>\
         <devices><disk type='file' device='disk'><source file='/var/lib/libvirt/images/a.img'/>\
         <target dev='vda'/></disk><graphics type='vnc'/></devices></domain>",
    )
    .unwrap();
    let out = d.path().join("from-report.yaml");
    let (xml, out_s) = (xml.to_str().unwrap(), out.to_str().unwrap());
    assert_status(&["new", "--from-xml", xml, "-o", out_s], 0, "not mapped: ");
    assert_status(&["check", out_s], 0, "1 scenario file(s) valid");
    assert_status(
        &["new", "--from-xml", xml, "-o", out_s],
        2,
        "never overwritten",
    );
    let net = d.path().join("net.xml");
    std::fs::write(&net, "<network><name>default</name></network>").unwrap();
    assert_status(
        &["new", "--from-xml", net.to_str().unwrap()],
        2,
        "not <domain>",
    );
    assert_status(&["new"], 2, "--from-xml");
}

#[test]
fn usage_errors_are_2() {
    assert_status(&["run", "--no-such-flag"], 2, "--no-such-flag");
    assert_status(&["no-such-command"], 2, "no-such-command");
}

#[test]
fn every_command_documents_its_exit_status() {
    for cmd in [
        "check", "list", "explain", "new", "schema", "run", "repro", "doctor", "image", "env",
        "compare",
    ] {
        let (got, text) = status(&[cmd, "--help"]);
        assert_eq!(got, 0, "{cmd} --help:\n{text}");
        assert!(
            text.contains("Exit status:"),
            "{cmd} --help has no exit status:\n{text}"
        );
    }
}

#[test]
fn an_unknown_distro_is_refused_before_any_image_is_built() {
    for cmd in ["run", "repro", "mutants"] {
        assert_status(
            &[cmd, "--target", "vm", "--distro", "bogus", VALID],
            2,
            "unknown recipe `bogus`; built-in recipes: debian-12, debian-13",
        );
    }
}
