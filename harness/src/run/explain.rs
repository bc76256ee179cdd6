//! The oracle's answers for one step: why the loaded policy decided each AVC record of the
//! step's evidence as it did, and, for a probe, the kernel's prediction beside the observed
//! outcome. Runs on the SELinux host, after the step's evidence is closed (its own reads of
//! the policy can never be part of the step), and never changes a verdict: it explains it.

use crate::context::Context;
use crate::evidence::AvcRecord;
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

/// Explanations for a step: one per distinct denied access among `records`, and one for the
/// probe. `candidates` are the types the run knows (for the nearest rules). The policy is
/// loaded once per step, and only when there is something to explain.
pub fn explain_step(
    records: &[AvcRecord],
    probe: Option<&ProbeAccess>,
    candidates: &[String],
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
    if wanted.is_empty() && probe.is_none() {
        return Vec::new();
    }
    let policy = oracle::kernel_policy();
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
    out
}

fn reasons(
    policy: &Result<Policy, String>,
    s: &Context,
    t: &Context,
    class: &str,
    perms: &[String],
    candidates: &[String],
    permissive: bool,
) -> Vec<Reason> {
    match policy {
        Ok(p) => oracle::explain(p, s, t, class, perms, candidates, permissive),
        Err(why) => vec![Reason::Unavailable { why: why.clone() }],
    }
}

fn explain_probe(
    policy: &Result<Policy, String>,
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
