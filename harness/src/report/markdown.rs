//! A repro bundle for bug trackers: one scenario's run as Markdown, ready to paste into a
//! Bugzilla comment, a GitLab or GitHub issue or a mailing-list post.
//!
//! It holds what a maintainer needs to reproduce and judge the report without the harness:
//! the environment (with the harness version, the VM image and the policy package), the guests'
//! domain XML and the virsh commands of each step, every step with its evidence, the failed
//! checks, the guests' QEMU logs (command line first) and the scenario itself.
//! Text from the target (messages, audit lines, contexts) only ever appears inside code spans or
//! fenced blocks whose fences are longer than any backtick run in the text, so nothing it
//! contains can turn into markup in the tracker.

use std::fmt::Write as _;

use super::{ScenarioRecord, StepRecord};
use crate::context::Context;
use crate::evidence::{Evidence, Outcome};
use crate::host::environment::TargetInfo;
use crate::run::verdict::{Check, Verdict};

/// The scenario as libvirt commands, for a maintainer who reproduces by hand (what `explain`
/// prints): made from the scenario's plan by the caller.
#[derive(Debug, Clone, Default)]
pub struct ByHand {
    /// What to do before the first step: the sandbox, its images and their labels, host
    /// settings. Shell commands, or a sentence when there is no one command.
    pub setup: Vec<String>,
    /// Each guest: the scenario's name for it, the libvirt name, the domain XML.
    pub domains: Vec<(String, String, String)>,
    /// Each step: its title and the virsh commands that do the same.
    pub steps: Vec<(String, Vec<String>)>,
}

/// The longest run of backticks in `s`.
fn longest_backtick_run(s: &str) -> usize {
    let (mut best, mut run) = (0, 0);
    for ch in s.chars() {
        if ch == '`' {
            run += 1;
            best = best.max(run);
        } else {
            run = 0;
        }
    }
    best
}

/// A fenced block that `body` cannot close early.
pub fn fenced(lang: &str, body: &str) -> String {
    let fence = "`".repeat(longest_backtick_run(body).max(2) + 1);
    let body = body.trim_end_matches('\n');
    format!("{fence}{lang}\n{body}\n{fence}\n")
}

/// An inline code span holding `s` literally. Line breaks become spaces (a span cannot hold
/// them), and in tables the pipe is escaped, which GFM requires even inside code spans.
fn code_span(s: &str, in_table: bool) -> String {
    let mut s = s.replace(['\n', '\r'], " ");
    if in_table {
        s = s.replace('|', "\\|");
    }
    if s.is_empty() {
        return "(empty)".into();
    }
    let ticks = "`".repeat(longest_backtick_run(&s) + 1);
    // CommonMark strips one space on each side when both are there: pad when the content
    // starts or ends with a backtick, or would lose its own surrounding spaces.
    if s.starts_with('`') || s.ends_with('`') || (s.starts_with(' ') && s.ends_with(' ')) {
        format!("{ticks} {s} {ticks}")
    } else {
        format!("{ticks}{s}{ticks}")
    }
}

fn code(s: &str) -> String {
    code_span(s, false)
}

fn ctx_or(c: &Option<Context>, none: &str) -> String {
    c.as_ref().map(|c| c.to_string()).unwrap_or(none.into())
}

fn verdict_text(v: Option<&Verdict>) -> String {
    let Some(v) = v else {
        return "no verdict (the run ended before one was reached)".into();
    };
    let detail = match v {
        Verdict::Pass => String::new(),
        Verdict::Fail { failed } => format!(": {failed} expectation(s) failed"),
        Verdict::KnownBug { references } => {
            format!(": known bug reproduced ({})", references.join(", "))
        }
        Verdict::KnownBugGone { references } => format!(
            ": a known bug no longer reproduces ({})",
            references.join(", ")
        ),
        Verdict::Inconclusive { reason }
        | Verdict::Error { reason }
        | Verdict::Skipped { reason } => {
            format!(": {reason}")
        }
    };
    format!("{}{detail}", v.label())
}

pub fn repro(record: &ScenarioRecord, scenario_source: &str, by_hand: &ByHand) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "## selinux-harness: {} - {}\n",
        code(&record.id()),
        record
            .verdict
            .as_ref()
            .map(Verdict::label)
            .unwrap_or("no verdict")
    );
    let _ = writeln!(
        out,
        "**Verdict:** {}  \n**Scenario file:** {}  \n**Duration:** {:.1} s\n",
        code(&verdict_text(record.verdict.as_ref())),
        code(&record.file),
        record.millis as f64 / 1000.0
    );
    environment(&mut out, &record.target);
    reproduce(&mut out, record);
    without_the_harness(&mut out, by_hand);
    failed_checks(&mut out, record);
    out.push_str("### Steps and evidence\n\n");
    for st in &record.steps {
        step(&mut out, st);
    }
    if !record.notes.is_empty() {
        out.push_str("### Notes from the run\n\n");
        for n in &record.notes {
            let _ = writeln!(out, "- {}", code(n));
        }
        out.push('\n');
    }
    if !record.guest_logs.is_empty() {
        out.push_str("### Guest logs (QEMU command line and messages)\n\n");
        for g in &record.guest_logs {
            let _ = writeln!(out, "{} ({}):\n", code(&g.domain), code(&g.path));
            out.push_str(&fenced("text", &g.text));
            out.push('\n');
        }
    }
    out.push_str("### Scenario\n\n");
    out.push_str(&fenced("yaml", scenario_source));
    out
}

fn without_the_harness(out: &mut String, h: &ByHand) {
    if h.domains.is_empty() && h.steps.is_empty() {
        return;
    }
    out.push_str(
        "### Without the harness\n\nThe same scenario with libvirt's own tools, as root on an \
         SELinux-enforcing host. RUN stands for any short id (the harness picks one per run).\n\n",
    );
    if !h.setup.is_empty() {
        out.push_str(&fenced("sh", &h.setup.join("\n")));
        out.push('\n');
    }
    for (name, libvirt_name, xml) in &h.domains {
        let _ = writeln!(
            out,
            "Guest {} as {} (`virsh define {libvirt_name}.xml`):\n",
            code(name),
            code(libvirt_name)
        );
        out.push_str(&fenced("xml", xml));
        out.push('\n');
    }
    for (i, (title, cmds)) in h.steps.iter().enumerate() {
        let _ = writeln!(out, "Step {}: {}\n", i + 1, code(title));
        if cmds.is_empty() {
            out.push_str("(no virsh equivalent)\n\n");
        } else {
            out.push_str(&fenced("sh", &cmds.join("\n")));
            out.push('\n');
        }
    }
}

fn environment(out: &mut String, t: &TargetInfo) {
    out.push_str("### Environment\n\n| | |\n|---|---|\n");
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let qemu_conf = t
        .qemu_conf
        .iter()
        .map(|(k, v)| format!("{k} = {v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let rows: [(&str, String); 15] = [
        ("target", t.kind.clone()),
        ("distribution", t.distro.clone()),
        ("kernel", t.kernel.clone()),
        ("SELinux mode", t.selinux_mode.clone()),
        (
            "policy",
            format!("{} {}", t.policy_name, t.policy_version)
                .trim()
                .to_string(),
        ),
        ("policy package", t.policy_package.clone()),
        ("MLS/MCS", yes_no(t.mls).to_string()),
        ("libvirt", t.libvirt_version.clone()),
        ("QEMU", t.qemu_version.clone()),
        ("security model", t.secmodel.clone()),
        ("accelerator", t.accelerator.clone()),
        ("boot", t.boot.clone()),
        ("VM image", t.image.clone()),
        ("selinux-harness", t.harness_version.clone()),
        ("qemu.conf", qemu_conf),
    ];
    for (k, v) in rows {
        let v = if v.is_empty() {
            "(not reported)".to_string()
        } else {
            code_span(&v, true)
        };
        let _ = writeln!(out, "| {k} | {v} |");
    }
    out.push('\n');
}

fn reproduce(out: &mut String, r: &ScenarioRecord) {
    out.push_str("### How to reproduce\n\n");
    out.push_str(
        "Save the scenario below (it is self-contained) and run it with selinux-harness on an \
         SELinux-enforcing host, or in the harness's VM on any other host:\n\n",
    );
    let mut cmd = "selinux-harness run".to_string();
    if let Some(v) = &r.variant {
        let _ = write!(cmd, " --variant {}", shell_word(v));
    }
    let _ = write!(cmd, " {}", shell_word(&r.file));
    out.push_str(&fenced("sh", &cmd));
    out.push('\n');
}

/// A path as one shell word: left as it is when plainly safe, else single-quoted.
fn shell_word(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn failed_checks(out: &mut String, r: &ScenarioRecord) {
    let failed: Vec<(&StepRecord, &Check)> = r
        .steps
        .iter()
        .flat_map(|st| st.checks.iter().filter(|c| !c.passed).map(move |c| (st, c)))
        .collect();
    if failed.is_empty() {
        out.push_str("### Failed checks\n\nNone.\n\n");
        return;
    }
    out.push_str("### Failed checks\n\n");
    for (st, c) in failed {
        let mark = if c.known_bug.is_some() {
            "known bug"
        } else {
            "FAILED"
        };
        let _ = writeln!(
            out,
            "- **{mark}** (step {}) {}",
            st.step,
            code(&c.expectation)
        );
        if let Some(reference) = &c.known_bug {
            let _ = writeln!(out, "  - reference: {}", code(reference));
        }
        let _ = writeln!(out, "  - expected: {}", code(&c.expected));
        let mut lines = c.observed.lines();
        if c.observed.lines().count() > 1 {
            out.push_str("  - observed:\n\n");
            for l in fenced("text", &c.observed).lines() {
                let _ = writeln!(out, "    {l}");
            }
            out.push('\n');
        } else {
            let _ = writeln!(out, "  - observed: {}", code(lines.next().unwrap_or("")));
        }
    }
    out.push('\n');
}

fn step(out: &mut String, st: &StepRecord) {
    let _ = writeln!(
        out,
        "#### Step {}: {} ({} ms)\n",
        st.step,
        code(&st.title),
        st.millis
    );
    let mut avcs: Vec<String> = Vec::new();
    for e in &st.evidence {
        match e {
            Evidence::Action { action, outcome } => {
                let how = match outcome {
                    Outcome::Ok => "ok".to_string(),
                    Outcome::Libvirt(l) => format!(
                        "libvirt error {} (domain {}, number {}): {}",
                        code(&l.code),
                        code(&l.domain),
                        l.number,
                        code(&l.message)
                    ),
                    Outcome::Errno { errno } => format!("failed with {}", code(errno)),
                    Outcome::DaemonFailed { message } => {
                        format!("daemon did not come up: {}", code(message))
                    }
                    Outcome::Other { message } => format!("failed: {}", code(message)),
                };
                let _ = writeln!(out, "- action {}: {how}", code(action));
            }
            Evidence::FileContext {
                file,
                path,
                context,
            } => {
                let _ = writeln!(
                    out,
                    "- {} ({}) after the step: {}",
                    code(file),
                    code(path),
                    code(&ctx_or(context, "no label"))
                );
            }
            Evidence::ProcessLabel {
                domain,
                pid,
                context,
            } => {
                let _ = writeln!(
                    out,
                    "- {} QEMU process (pid {pid}): {}",
                    code(domain),
                    code(&context.to_string())
                );
            }
            Evidence::DomainSeclabel {
                domain,
                label,
                imagelabel,
                ..
            } => {
                let _ = writeln!(
                    out,
                    "- {} live seclabel: label {}, imagelabel {}",
                    code(domain),
                    code(&ctx_or(label, "-")),
                    code(&ctx_or(imagelabel, "-"))
                );
            }
            Evidence::Timeline { file, changes, .. } => {
                let _ = writeln!(out, "- label timeline of {}:\n", code(file));
                let mut lines = Vec::new();
                for (k, c) in changes.iter().enumerate() {
                    let held = match changes.get(k + 1) {
                        Some(next) => format!(
                            "(held {:.3} s)",
                            next.at_us.saturating_sub(c.at_us) as f64 / 1e6
                        ),
                        None => "(until the step ended)".into(),
                    };
                    let at = format!("+{:.3} s", c.at_us as f64 / 1e6);
                    lines.push(format!("{at:>10}  {}  {held}", c.shown()));
                }
                for l in fenced("text", &lines.join("\n")).lines() {
                    let _ = writeln!(out, "  {l}");
                }
                out.push('\n');
            }
            Evidence::Avcs { records, filtered } => {
                let _ = writeln!(
                    out,
                    "- {} audit record(s) while the step ran, {filtered} filtered as noise",
                    records.len()
                );
                avcs.extend(records.iter().map(|r| r.raw.clone()));
            }
            Evidence::RememberedOwner { file, xattrs } => {
                let kv = xattrs
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                let _ = writeln!(out, "- {} remembered owner: {}", code(file), code(&kv));
            }
            Evidence::FileState {
                file,
                path,
                facts,
                why,
            } => {
                let line = crate::evidence::file_state::describe(
                    file,
                    path.as_deref(),
                    facts.as_ref(),
                    why.as_deref(),
                );
                let _ = writeln!(out, "- {}", code(&line));
            }
            Evidence::ProcessOwner { domain, pid, ids } => {
                let _ = writeln!(
                    out,
                    "- {} QEMU (pid {pid}) runs as {}",
                    code(domain),
                    code(&ids.describe())
                );
            }
            Evidence::SwtpmProcess {
                domain,
                pid,
                context,
                ids,
            } => {
                let line =
                    crate::evidence::describe_swtpm(domain, *pid, context.as_ref(), ids.as_ref());
                let _ = writeln!(out, "- {}", code(&line));
            }
            Evidence::HelperProcess {
                domain,
                helper,
                pid,
                context,
                ids,
            } => {
                let line = crate::evidence::describe_helper(
                    domain,
                    helper,
                    *pid,
                    context.as_ref(),
                    ids.as_ref(),
                );
                let _ = writeln!(out, "- {}", code(&line));
            }
        }
    }
    if !avcs.is_empty() {
        out.push_str("\nAudit records:\n\n");
        out.push_str(&fenced("text", &avcs.join("\n")));
    }
    if !st.explanations.is_empty() {
        out.push_str(
            "\nWhy the loaded policy decided so (libsepol on /sys/fs/selinux/policy):\n\n",
        );
        for x in &st.explanations {
            let _ = writeln!(out, "- {}", code(&x.summary()));
        }
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::html::tests::cross_attach_record;

    const SOURCE: &str = include_str!("../../../scenarios/seed/cross-attach.yaml");

    /// What main.rs makes of the snapshot's scenario (one step, one guest shown).
    fn by_hand() -> ByHand {
        ByHand {
            setup: vec![
                "mkdir -p /var/lib/libvirt/images/selinux-harness-RUN".into(),
                "truncate -s 16777216 /var/lib/libvirt/images/selinux-harness-RUN/vm1.img".into(),
            ],
            domains: vec![(
                "vm2".into(),
                "selinux-harness-RUN-vm2".into(),
                "<domain type='qemu'>\n  <name>selinux-harness-RUN-vm2</name>\n</domain>\n".into(),
            )],
            steps: vec![(
                "attach_disk".into(),
                vec!["virsh attach-device selinux-harness-RUN-vm2 disk.xml --live".into()],
            )],
        }
    }

    #[test]
    fn bundle_has_every_part() {
        let md = repro(&cross_attach_record(), SOURCE, &by_hand());
        for part in [
            "### Environment",
            "| libvirt | `9.0.0` |",
            "### Failed checks",
            "### Steps and evidence",
            "type=AVC msg=audit(1764150000.512:812)",
            "system_u:object_r:svirt_image_t:s0:c161,c423  (held 0.230 s)",
            "VIR_ERR_INTERNAL_ERROR",
            "```yaml\nname: cross-attach\n",
            "| policy package | `selinux-policy-default 2:2.20221101-11` |",
            "| VM image | `debian-12 3f2a14b07c9e` |",
            "### Without the harness",
            "```xml\n<domain type='qemu'>",
            "virsh attach-device selinux-harness-RUN-vm2 disk.xml --live",
            "### Guest logs (QEMU command line and messages)",
            "-name guest=selinux-harness-f0e5e10-vm2",
        ] {
            assert!(md.contains(part), "{part:?} missing from\n{md}");
        }
    }

    #[test]
    fn fences_outlast_backticks_in_the_text() {
        let f = fenced("yaml", "a: \"```\"\nb: \"````\"\n");
        assert!(f.starts_with("`````yaml\n"), "{f}");
        assert!(f.ends_with("\n`````\n"), "{f}");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(code_span("a|b", true), "`a\\|b`");
    }

    #[test]
    fn target_text_stays_inside_code() {
        let mut s = cross_attach_record();
        s.notes.push("<b>bold</b> ` **x**".into());
        let md = repro(&s, SOURCE, &ByHand::default());
        assert!(md.contains("- ``<b>bold</b> ` **x**``"), "{md}");
    }

    #[test]
    fn paths_are_quoted_for_the_shell() {
        assert_eq!(shell_word("scenarios/seed/a.yaml"), "scenarios/seed/a.yaml");
        assert_eq!(shell_word("my dir/it's.yaml"), r"'my dir/it'\''s.yaml'");
    }

    /// The snapshot pins its own copy of the YAML, so editing the seed scenario does not
    /// invalidate it.
    #[test]
    fn snapshot() {
        let source = "name: cross-attach\ndescription: Hot-adding a running guest's image to a second guest must be refused.\nvariants:\n  remember_owner_0:\n    qemu_conf: {remember_owner: 0}\nsteps:\n  - attach_disk: {domain: vm2, image: vm1.img, target: vdb}\n    watch: [vm1.img]\n";
        insta::assert_snapshot!(repro(&cross_attach_record(), source, &by_hand()));
    }
}
