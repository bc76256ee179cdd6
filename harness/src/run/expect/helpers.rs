//! Judging `helper_process` (the labels of the helper processes libvirt runs for a domain, such
//! as virtiofsd) against `HelperProcess` evidence. Pure, like the rest of `expect`.

use super::{check, context_matches, describe_match, missing, Captures};
use crate::evidence::Evidence;
use crate::run::verdict::Check;
use crate::scenario::{CheckKey, Expect};

/// Every helper check of a step, in the order `Expect::keys` lists them. A check needs at
/// least one such process and holds when every one of them matches (virtiofsd may run as a
/// parent and its sandboxed child).
pub fn checks(expect: &Expect, evidence: &[Evidence], caps: &Captures) -> Vec<Check> {
    let mut out = Vec::new();
    for (d, helpers) in &expect.helper_process {
        let d = d.value.as_str();
        for (h, m) in helpers {
            let h = h.value.as_str();
            let key = CheckKey::HelperProcess(d.to_string(), h.to_string());
            let what = format!("{h} of {d}");
            let found: Vec<_> = evidence
                .iter()
                .filter_map(|e| match e {
                    Evidence::HelperProcess {
                        domain,
                        helper,
                        pid,
                        context,
                        ..
                    } if domain == d && helper == h => Some((*pid, context.as_ref())),
                    _ => None,
                })
                .collect();
            if found.is_empty() {
                out.push(missing(
                    key,
                    what,
                    describe_match(m, caps),
                    format!("no {h} process of {d} (not running)"),
                ));
                continue;
            }
            let mut want = describe_match(m, caps);
            let mut passed = true;
            let mut seen = Vec::new();
            let mut unjudged = None;
            for (pid, c) in &found {
                let Some(c) = c else {
                    unjudged = Some(format!("pid {pid}: no label"));
                    continue;
                };
                match context_matches(m, c, caps) {
                    Ok((ok, w)) => {
                        passed &= ok;
                        want = w;
                    }
                    Err(why) => unjudged = Some(why.to_string()),
                }
                seen.push(format!("{c} (pid {pid})"));
            }
            out.push(match unjudged {
                Some(why) => missing(key, what, want, why),
                None => check(key, what, want, seen.join("; "), passed),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::context::Context;
    use crate::evidence::Evidence;
    use crate::run::expect::judge_started_vm1;
    use crate::scenario::{CheckKey, Expect};

    fn expect(yaml: &str) -> Expect {
        let src = format!(
            "name: t\ndescription: d\nimages: {{share: {{directory: true}}}}\ndomains: {{vm1: {{memory_backing: {{source: memfd}}, virtiofs: [{{dir: share}}]}}}}\nsteps:\n  - start: vm1\n    capture: {{vm1: vm1}}\n    expect:\n{yaml}"
        );
        crate::run::expect::first_step_expect(&src)
    }

    fn run(e: &Expect, evidence: &[Evidence]) -> Vec<(String, bool, bool, String)> {
        judge_started_vm1(e, evidence, |k| matches!(k, CheckKey::HelperProcess(..)))
    }

    fn helper(pid: u32, context: &str) -> Evidence {
        Evidence::HelperProcess {
            domain: "vm1".into(),
            helper: "virtiofsd".into(),
            pid,
            context: Some(context.parse::<Context>().unwrap()),
            ids: None,
        }
    }

    #[test]
    fn every_process_of_the_helper_must_match_and_one_must_run() {
        let e = expect("      helper_process: {vm1: {virtiofsd: {not_level: $vm1}}}\n");
        let daemon = "system_u:system_r:virtd_t:s0-s0:c0.c1023";
        let ok = run(&e, &[helper(7, daemon), helper(8, daemon)]);
        assert_eq!(ok.len(), 1);
        assert_eq!(
            (ok[0].0.as_str(), ok[0].1),
            ("helper_process.vm1.virtiofsd", true)
        );
        assert!(ok[0].3.contains("(pid 8)"), "{ok:?}");
        // One of two in the guest's label is enough to fail.
        let bad = run(
            &e,
            &[
                helper(7, daemon),
                helper(8, "system_u:system_r:svirt_t:s0:c1,c2"),
            ],
        );
        assert!(!bad[0].1 && !bad[0].2, "{bad:?}");
        let none = run(&e, &[]);
        assert!(none[0].2 && none[0].3.contains("no virtiofsd"), "{none:?}");
    }
}
