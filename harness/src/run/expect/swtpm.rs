//! Judging `swtpm_process` and `swtpm_owner` (the label and the user of a domain's swtpm)
//! against `SwtpmProcess` evidence. Pure, like the rest of `expect`.

use super::bookkeeping::{owner_verdict, NoEvidence};
use super::{context_check, missing, Captures};
use crate::evidence::Evidence;
use crate::run::verdict::Check;
use crate::scenario::{CheckKey, Expect, Name};

fn found<'e>(domain: &Name, evidence: &'e [Evidence]) -> Option<&'e Evidence> {
    evidence
        .iter()
        .find(|e| matches!(e, Evidence::SwtpmProcess { domain: d, .. } if d == domain.as_str()))
}

/// Every swtpm check of a step, in the order `Expect::keys` lists them.
pub fn checks(expect: &Expect, evidence: &[Evidence], caps: &Captures) -> Vec<Check> {
    let mut out = Vec::new();
    for (d, m) in &expect.swtpm_process {
        let d = &d.value;
        let key = CheckKey::SwtpmProcess(d.to_string());
        let what = format!("swtpm of {d}");
        out.push(match found(d, evidence) {
            Some(Evidence::SwtpmProcess { context, .. }) => {
                context_check(key, what, m, context.as_ref(), caps)
            }
            _ => missing(
                key,
                what,
                super::describe_match(m, caps),
                NoEvidence::NoSwtpm.to_string(),
            ),
        });
    }
    for (d, o) in &expect.swtpm_owner {
        let d = &d.value;
        let ids = match found(d, evidence) {
            Some(Evidence::SwtpmProcess { ids: Some(ids), .. }) => Ok(ids.clone()),
            Some(_) => Err(NoEvidence::Unreadable),
            None => Err(NoEvidence::NoSwtpm),
        };
        out.push(owner_verdict(
            CheckKey::SwtpmOwner(d.to_string()),
            format!("user of {d}'s swtpm"),
            o,
            ids,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::context::Context;
    use crate::evidence::file_state::Ids;
    use crate::evidence::Evidence;
    use crate::run::expect::judge_started_vm1;
    use crate::scenario::{CheckKey, Expect};

    fn expect(yaml: &str) -> Expect {
        let src = format!(
            "name: t\ndescription: d\ndomains: {{vm1: {{tpm: {{}}}}}}\nsteps:\n  - start: vm1\n    capture: {{vm1: vm1}}\n    expect:\n{yaml}"
        );
        crate::run::expect::first_step_expect(&src)
    }

    fn run(e: &Expect, evidence: &[Evidence]) -> Vec<(String, bool, bool, String)> {
        judge_started_vm1(e, evidence, |k| {
            matches!(k, CheckKey::SwtpmProcess(_) | CheckKey::SwtpmOwner(_))
        })
    }

    fn swtpm(context: &str, uid: u32, user: &str) -> Evidence {
        Evidence::SwtpmProcess {
            domain: "vm1".into(),
            pid: 7,
            context: Some(context.parse::<Context>().unwrap()),
            ids: Some(Ids {
                uid,
                gid: uid,
                user: Some(user.into()),
                group: Some(user.into()),
            }),
        }
    }

    #[test]
    fn swtpm_runs_with_the_guests_label_as_its_user() {
        let e = expect("      swtpm_process: {vm1: {context: $vm1}}\n      swtpm_owner: {vm1: 'swtpm:swtpm'}\n");
        let ok = run(
            &e,
            &[swtpm("system_u:system_r:svirt_t:s0:c1,c2", 110, "swtpm")],
        );
        assert_eq!(
            ok.iter().map(|c| (c.0.as_str(), c.1)).collect::<Vec<_>>(),
            [("swtpm_process.vm1", true), ("swtpm_owner.vm1", true)]
        );
        let bad = run(&e, &[swtpm("system_u:system_r:swtpm_t:s0", 0, "root")]);
        assert!(!bad[0].1 && !bad[0].2, "{bad:?}");
        assert_eq!((bad[1].1, bad[1].3.as_str()), (false, "root:root (0:0)"));
        // No swtpm at all: the checks fail for want of evidence and say so.
        let none = run(&e, &[]);
        assert!(
            none.iter().all(|c| !c.1 && c.2 && c.3.contains("no swtpm")),
            "{none:?}"
        );
    }
}
