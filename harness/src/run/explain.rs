//! The oracle's answers for one step: why the loaded policy decided each AVC record of the
//! step's evidence as it did, and, for a probe, the kernel's prediction beside the observed
//! outcome. Runs on the SELinux host, after the step's evidence is closed (its own reads of
//! the policy can never be part of the step), and never changes a verdict: it explains it.

use crate::context::Context;
use crate::evidence::AvcRecord;
use crate::oracle::cache::{KernelPolicy, LoadError};
use crate::oracle::{self, Explanation, Policy, Reason, Subject};
use crate::scenario::Access;

/// A probe's access, as the step observed it.
pub struct ProbeAccess {
    pub context: Context,
    /// The image's label when the step ended (what the open was checked against).
    pub target: Option<Context>,
    pub access: Access,
    /// The open (or stat) went through.
    pub allowed: bool,
    /// The outcome as the report shows it.
    pub observed: String,
}

/// The file permissions a probe's open or stat asks for.
pub fn probe_perms(access: Access) -> Vec<String> {
    match access {
        Access::Read => vec!["read".into(), "open".into()],
        Access::Write => vec!["write".into(), "open".into()],
        Access::Getattr => vec!["getattr".into()],
    }
}

/// A denial the step expected that was not logged, with the whole access its pattern names
/// (None when the pattern gives no whole contexts, class and permissions).
pub struct MissingDenial {
    pub check: String,
    pub access: Option<(Context, Context, String, Vec<String>)>,
}

/// The whole access an expected denial's pattern names: both contexts given whole
/// (`context:`), a class and permissions.
pub fn pattern_access(
    m: &crate::scenario::AvcMatch,
    caps: &crate::run::expect::Captures,
) -> Option<(Context, Context, String, Vec<String>)> {
    let s = crate::run::expect::whole_context(m.scontext.as_ref()?, caps)?;
    let t = crate::run::expect::whole_context(m.tcontext.as_ref()?, caps)?;
    let class = m.tclass.clone()?;
    (!m.perms.is_empty()).then(|| (s, t, class, m.perms.clone()))
}

/// Explanations for a step: one per distinct denied access among `records`, one for the
/// probe, one per expected denial that was not logged. `candidates` are the types the run knows (for the nearest rules). The
/// kernel's policy is asked for only when there is something to explain, and parsed again only
/// when the kernel's changed since the run's last step asked (`oracle::cache`).
pub fn explain_step(
    records: &[AvcRecord],
    probe: Option<&ProbeAccess>,
    missing: &[MissingDenial],
    candidates: &[String],
    kernel: &mut KernelPolicy,
) -> Vec<Explanation> {
    explain_step_with(records, probe, missing, candidates, || kernel.get())
}

/// [`explain_step`] on the policy `load` gives (the kernel's, or a test's).
fn explain_step_with<'p>(
    records: &[AvcRecord],
    probe: Option<&ProbeAccess>,
    missing: &[MissingDenial],
    candidates: &[String],
    load: impl FnOnce() -> Result<&'p Policy, LoadError>,
) -> Vec<Explanation> {
    let mut wanted: Vec<(String, Context, Context, String, Vec<String>)> = Vec::new();
    for r in records.iter().filter(|r| r.denied) {
        if let Some((s, t, class, perms)) = oracle::access_of(r) {
            // The same denial logged twice (getattr after read, a retry) is one question.
            if !wanted
                .iter()
                .any(|(_, ws, wt, wc, wp)| *ws == s && *wt == t && *wc == class && *wp == perms)
            {
                wanted.push((r.raw.clone(), s, t, class, perms));
            }
        }
    }
    if wanted.is_empty() && probe.is_none() && missing.is_empty() {
        return Vec::new();
    }
    let policy = load();
    let mut out = Vec::new();
    for (raw, s, t, class, perms) in wanted {
        let permissive = crate::evidence::liveness::permissive_type(&s.kind).unwrap_or(false);
        let reasons = reasons(&policy, &s, &t, &class, &perms, candidates, permissive);
        out.push(Explanation {
            subject: Subject::Avc { record: raw },
            scontext: s.to_string(),
            tcontext: t.to_string(),
            tclass: class,
            perms,
            reasons,
        });
    }
    if let Some(p) = probe {
        out.push(explain_probe(&policy, p, candidates));
    }
    for m in missing {
        let subject = Subject::ExpectedDenial {
            check: m.check.clone(),
        };
        out.push(match &m.access {
            Some((s, t, class, perms)) => {
                let permissive =
                    crate::evidence::liveness::permissive_type(&s.kind).unwrap_or(false);
                Explanation {
                    subject,
                    scontext: s.to_string(),
                    tcontext: t.to_string(),
                    tclass: class.clone(),
                    perms: perms.clone(),
                    reasons: reasons(&policy, s, t, class, perms, candidates, permissive),
                }
            }
            None => Explanation {
                subject,
                scontext: "?".into(),
                tcontext: "?".into(),
                tclass: "?".into(),
                perms: Vec::new(),
                reasons: vec![Reason::Unavailable {
                    why: "the expected denial's pattern names no whole access (scontext and tcontext `context:`, tclass, perms), so there is no exact question to ask the policy".into(),
                }],
            },
        });
    }
    out
}

fn reasons(
    policy: &Result<&Policy, LoadError>,
    s: &Context,
    t: &Context,
    class: &str,
    perms: &[String],
    candidates: &[String],
    permissive: bool,
) -> Vec<Reason> {
    match policy {
        Ok(p) => oracle::explain(p, s, t, class, perms, candidates, permissive),
        Err(why) => vec![Reason::Unavailable {
            why: why.to_string(),
        }],
    }
}

fn explain_probe(
    policy: &Result<&Policy, LoadError>,
    p: &ProbeAccess,
    candidates: &[String],
) -> Explanation {
    let perms = probe_perms(p.access);
    let Some(t) = &p.target else {
        return Explanation {
            subject: Subject::Access {
                observed: p.observed.clone(),
                predicted: "unknown".into(),
                disagreement: None,
            },
            scontext: p.context.to_string(),
            tcontext: "(no label)".into(),
            tclass: "file".into(),
            perms,
            reasons: vec![Reason::Unavailable {
                why: "the image had no label to ask about".into(),
            }],
        };
    };
    let (predicted, disagreement, permissive) =
        match oracle::kernel_decision(&p.context, t, "file", &perms) {
            Ok((allowed, permissive)) => (
                if allowed { "allowed" } else { "denied" }.to_string(),
                oracle::disagreement(p.allowed, allowed, permissive),
                permissive,
            ),
            Err(e) => (format!("unknown ({e})"), None, false),
        };
    Explanation {
        subject: Subject::Access {
            observed: p.observed.clone(),
            predicted,
            disagreement,
        },
        scontext: p.context.to_string(),
        tcontext: t.to_string(),
        tclass: "file".into(),
        reasons: reasons(
            policy, &p.context, t, "file", &perms, candidates, permissive,
        ),
        perms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::audit::parse_record;

    const DENIED: &str = r#"type=AVC msg=audit(1795653826.616:86): avc:  denied  { read } for  pid=518 comm="qemu-system-x86" name="a.img" dev="vda" ino=2 scontext=u:r:dom_t:s0 tcontext=u:object_r:other_t:s0 tclass=file permissive=0"#;

    fn test_policy() -> Result<Policy, LoadError> {
        Ok(Policy::load(
            &oracle::sepol::compile_cil(oracle::TEST_POLICY).unwrap(),
        )?)
    }

    #[test]
    fn nothing_to_explain_reads_no_policy() {
        let out = explain_step_with(&[], None, &[], &[], || panic!("no policy is needed"));
        assert!(out.is_empty());
    }

    #[test]
    fn a_denial_logged_twice_is_asked_about_once() {
        let r = parse_record(DENIED).unwrap();
        let policy = test_policy();
        let out = explain_step_with(&[r.clone(), r], None, &[], &["img_t".into()], || {
            policy
                .as_ref()
                .map_err(|e| panic!("the test policy does not load: {e}"))
        });
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(
            out[0].summary(),
            "why: { read } u:r:dom_t:s0 -> u:object_r:other_t:s0 file: no allow rule grants { read }; nearest rules that exist: allow dom_t img_t:file { read }"
        );
    }

    #[test]
    fn an_oracle_without_a_policy_says_so() {
        let r = parse_record(DENIED).unwrap();
        let missing = [MissingDenial {
            check: "avc.0".into(),
            access: None,
        }];
        let out = explain_step_with(&[r], None, &missing, &[], || {
            Err(
                crate::error::IoError::at("cannot read", "/sys/fs/selinux/policy")(
                    std::io::Error::from_raw_os_error(nix::libc::ENOENT),
                )
                .into(),
            )
        });
        assert_eq!(out.len(), 2);
        assert!(
            out[0].summary().ends_with(
                "oracle unavailable: cannot read /sys/fs/selinux/policy: No such file or directory (os error 2)"
            ),
            "{}",
            out[0].summary()
        );
        assert!(
            out[1].summary().starts_with("why no denial for avc.0"),
            "{}",
            out[1].summary()
        );
        assert!(out[1]
            .summary()
            .contains("oracle unavailable: the expected denial's pattern names no whole access"));
    }

    #[test]
    fn a_probe_asks_for_what_its_open_checks() {
        assert_eq!(probe_perms(Access::Read), ["read", "open"]);
        assert_eq!(probe_perms(Access::Write), ["write", "open"]);
        assert_eq!(probe_perms(Access::Getattr), ["getattr"]);
    }
}
