//! The oracle: why the loaded policy decided an access as it did.
//!
//! For an AVC record of a step, or a probe's `access:` check, it asks libsepol - on the very
//! policy the kernel runs (/sys/fs/selinux/policy) - what audit2why asks: is there an allow
//! rule, would a boolean give one, did a constraint refuse (and on which levels), does a
//! `dontaudit` rule hide the denial, is the domain permissive. A probe's observed outcome is
//! also set beside the kernel's own access decision (security_compute_av), and a disagreement
//! is a finding in itself. The answers are typed data carried by `Event::Explained`.

pub mod cache;
pub mod sepol;

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::context::Context;
use crate::evidence::AvcRecord;

pub use sepol::Policy;

/// Where the kernel exposes the policy it runs.
pub const KERNEL_POLICY: &str = "/sys/fs/selinux/policy";

/// What an explanation is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "of", rename_all = "snake_case")]
pub enum Subject {
    /// An AVC record of the step's evidence (its line as the log has it).
    Avc { record: String },
    /// A probe step's access: the outcome observed, the kernel's prediction for it
    /// (security_compute_av on the live policy), and what it means when they differ.
    Access {
        observed: String,
        predicted: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        disagreement: Option<String>,
    },
    /// A denial the step expected (`check`, e.g. `avc.0`) that was not logged: what the
    /// policy decides for the access the pattern names.
    ExpectedDenial { check: String },
}

/// An MLS/MCS constraint (`mlsconstrain`) or another one (`constrain`: users, roles, types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstraintKind {
    Mls,
    Other,
}

/// One reason the policy gives for its decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// The policy allows the whole request (now): a denial came from elsewhere, or earlier.
    Allowed,
    /// No allow rule for the types: `perms` refused; `nearest` lists the rules near it that
    /// exist (same source and class on other types the run knows, or other sources on this
    /// target).
    NoAllowRule {
        perms: Vec<String>,
        nearest: Vec<String>,
    },
    /// An allow rule exists under a boolean: setting `name` to `value` grants the request.
    Boolean { name: String, value: bool },
    /// Type enforcement allows it; a constraint refuses. `text` is libsepol's account of the
    /// constraint (each term with its result); `levels` says it in the two levels.
    Constraint {
        kind: ConstraintKind,
        text: String,
        levels: String,
    },
    /// Refused by role-based access control (the role may not have the type).
    Rbac,
    /// Refused by a type bound.
    Bounds,
    /// The refused permissions a `dontaudit` rule keeps from the log.
    Dontaudit { perms: Vec<String> },
    /// The source domain is permissive in the loaded policy: the access goes through.
    Permissive { domain: String },
    /// The oracle could not answer (no policy readable, a context the policy lacks ...).
    Unavailable { why: String },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Allowed => f.write_str("the loaded policy allows it"),
            Reason::NoAllowRule { perms, nearest } => {
                write!(f, "no allow rule grants {{ {} }}", perms.join(" "))?;
                if !nearest.is_empty() {
                    write!(f, "; nearest rules that exist: {}", nearest.join("; "))?;
                }
                Ok(())
            }
            Reason::Boolean { name, value } => {
                write!(f, "allowed if boolean {name} were {}", on_off(*value))
            }
            Reason::Constraint { kind, text, levels } => {
                let kind = match kind {
                    ConstraintKind::Mls => "an MLS/MCS constraint",
                    ConstraintKind::Other => "a constraint",
                };
                write!(
                    f,
                    "allowed by type enforcement, refused by {kind}: {levels}"
                )?;
                if !text.is_empty() {
                    write!(f, " [{}]", one_line(text))?;
                }
                Ok(())
            }
            Reason::Rbac => f.write_str("refused by role-based access control"),
            Reason::Bounds => f.write_str("refused by a type bound"),
            Reason::Dontaudit { perms } => write!(
                f,
                "a dontaudit rule keeps the denial of {{ {} }} from the log",
                perms.join(" ")
            ),
            Reason::Permissive { domain } => {
                write!(f, "{domain} is permissive in the loaded policy")
            }
            Reason::Unavailable { why } => write!(f, "oracle unavailable: {why}"),
        }
    }
}

fn on_off(v: bool) -> &'static str {
    if v {
        "on"
    } else {
        "off"
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why the loaded policy decided one access as it did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Explanation {
    #[serde(flatten)]
    pub subject: Subject,
    pub scontext: String,
    pub tcontext: String,
    pub tclass: String,
    pub perms: Vec<String>,
    pub reasons: Vec<Reason>,
}

impl Explanation {
    /// One line for a report.
    pub fn summary(&self) -> String {
        let why = self
            .reasons
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        let access = format!(
            "{{ {} }} {} -> {} {}",
            self.perms.join(" "),
            self.scontext,
            self.tcontext,
            self.tclass
        );
        match &self.subject {
            Subject::Avc { .. } => format!("why: {access}: {why}"),
            Subject::ExpectedDenial { check } => {
                format!("why no denial for {check}: {access}: {why}")
            }
            Subject::Access {
                observed,
                predicted,
                disagreement,
            } => {
                let mut s = format!(
                    "policy predicts: {predicted} (observed: {observed}) for {access}: {why}"
                );
                if let Some(d) = disagreement {
                    s.push_str(&format!("; DISAGREEMENT: {d}"));
                }
                s
            }
        }
    }
}

/// The access a record denies, as the oracle asks about it; None for a record without both
/// contexts, a class or permissions (a SELINUX_ERR line, a printk fragment).
pub fn access_of(r: &AvcRecord) -> Option<(Context, Context, String, Vec<String>)> {
    Some((
        r.scontext.clone()?,
        r.tcontext.clone()?,
        r.tclass.clone()?,
        (!r.perms.is_empty()).then(|| r.perms.clone())?,
    ))
}

/// The two levels as the MCS/MLS constraints compare them.
pub fn levels(s: &Context, t: &Context) -> String {
    match (&s.range, &t.range) {
        (Some(sr), Some(tr)) => {
            let dom = if sr.high.dominates(&tr.high) {
                "dominates"
            } else {
                "does not dominate"
            };
            format!(
                "source {} (high {}) {dom} target {} (high {})",
                s.kind, sr.high, t.kind, tr.high
            )
        }
        _ => "the contexts carry no MLS levels".into(),
    }
}

/// `like` with another type, as an object (object_r goes with every type), for asking about
/// the rules between types; constraints aside, since only the TE answer is read.
fn with_type(like: &Context, kind: &str) -> String {
    Context {
        role: "object_r".into(),
        kind: kind.into(),
        ..like.clone()
    }
    .to_string()
}

/// Ask the policy why `perms` of `tclass` from `s` to `t` are decided as they are.
/// `candidates` are types the run knows, for the nearest rules; `permissive` whether the kernel
/// says the source domain is permissive.
pub fn explain(
    policy: &Policy,
    s: &Context,
    t: &Context,
    tclass: &str,
    perms: &[String],
    candidates: &[String],
    permissive: bool,
) -> Vec<Reason> {
    let d = match policy.compute(&s.to_string(), &t.to_string(), tclass, perms) {
        Ok(d) => d,
        Err(e) => return vec![Reason::Unavailable { why: e.to_string() }],
    };
    let mut out = Vec::new();
    if permissive {
        out.push(Reason::Permissive {
            domain: s.kind.clone(),
        });
    }
    if d.refused.is_empty() {
        out.push(Reason::Allowed);
        return out;
    }
    if d.te {
        let flips = booleans_that_allow(policy, s, t, tclass, perms);
        if flips.is_empty() {
            out.push(Reason::NoAllowRule {
                perms: d.refused.clone(),
                nearest: nearest(policy, s, t, tclass, &d.refused, candidates),
            });
        } else {
            out.extend(flips);
        }
    }
    if d.constraint {
        let kind = if d.text.contains("mlsconstrain") || d.text.contains("mlsvalidatetrans") {
            ConstraintKind::Mls
        } else {
            ConstraintKind::Other
        };
        out.push(Reason::Constraint {
            kind,
            text: d.text.clone(),
            levels: levels(s, t),
        });
    }
    if d.rbac {
        out.push(Reason::Rbac);
    }
    if d.bounds {
        out.push(Reason::Bounds);
    }
    if !d.dontaudited.is_empty() {
        out.push(Reason::Dontaudit {
            perms: d.dontaudited,
        });
    }
    out
}

/// The booleans whose other value would give the missing allow rule (as audit2why finds
/// them: flip one, recompute, put it back).
fn booleans_that_allow(
    policy: &Policy,
    s: &Context,
    t: &Context,
    tclass: &str,
    perms: &[String],
) -> Vec<Reason> {
    let mut out = Vec::new();
    for (name, value) in policy.booleans() {
        let flipped = policy.with_flipped(&name, value, |p| {
            p.compute(&s.to_string(), &t.to_string(), tclass, perms)
                .is_ok_and(|d| !d.te)
        });
        let te_allows = match flipped {
            Ok(allows) => allows,
            // The copy is no longer the kernel's policy: no further answer from it.
            Err(_) if !policy.is_as_loaded() => {
                out.push(Reason::Unavailable {
                    why: format!("cannot restore boolean {name} in the policy copy"),
                });
                return out;
            }
            Err(_) => continue,
        };
        if te_allows {
            out.push(Reason::Boolean {
                name,
                value: !value,
            });
        }
    }
    out
}

/// Rules near the missing one that exist: the source's rule for these permissions on other
/// types the run knows, and other sources' on this target (type enforcement only).
fn nearest(
    policy: &Policy,
    s: &Context,
    t: &Context,
    tclass: &str,
    refused: &[String],
    candidates: &[String],
) -> Vec<String> {
    let te_allows = |src: &str, tgt: &str| {
        policy
            .compute(&with_type(s, src), &with_type(t, tgt), tclass, refused)
            .is_ok_and(|d| !d.te)
    };
    let perms = refused.join(" ");
    let mut out = Vec::new();
    // A domain's rules on its own type (its /proc files) are no near miss for an object.
    for c in candidates {
        if *c != t.kind && *c != s.kind && te_allows(&s.kind, c) {
            out.push(format!("allow {} {c}:{tclass} {{ {perms} }}", s.kind));
        }
    }
    for c in candidates {
        if *c != s.kind && *c != t.kind && te_allows(c, &t.kind) {
            out.push(format!("allow {c} {}:{tclass} {{ {perms} }}", t.kind));
        }
    }
    out
}

/// Why the kernel could not be asked for its decision.
#[derive(Debug, thiserror::Error)]
pub enum DecisionError {
    #[error(transparent)]
    Nul(#[from] std::ffi::NulError),
    #[error("class {class}: {source}")]
    Class {
        class: String,
        #[source]
        source: selinux::errors::Error,
    },
    #[error("permission {perm} of {class}: {source}")]
    Permission {
        perm: String,
        class: String,
        #[source]
        source: selinux::errors::Error,
    },
    /// `access`: "SCONTEXT -> TCONTEXT CLASS".
    #[error("security_compute_av {access}: {source}")]
    Compute {
        access: String,
        #[source]
        source: selinux::errors::Error,
    },
}

/// The kernel's own decision (security_compute_av_flags through libselinux) on `perms`:
/// (allowed, permissive).
pub fn kernel_decision(
    s: &Context,
    t: &Context,
    tclass: &str,
    perms: &[String],
) -> Result<(bool, bool), DecisionError> {
    use selinux::{SecurityClass, SecurityContext};
    let cs = std::ffi::CString::new(s.to_string())?;
    let ct = std::ffi::CString::new(t.to_string())?;
    let sc = SecurityContext::from_c_str(&cs, true);
    let tc = SecurityContext::from_c_str(&ct, true);
    let class = SecurityClass::from_name(tclass).map_err(|source| DecisionError::Class {
        class: tclass.into(),
        source,
    })?;
    let mut requested = 0;
    for p in perms {
        requested |= class
            .access_vector_bit(p)
            .map_err(|source| DecisionError::Permission {
                perm: p.clone(),
                class: tclass.into(),
                source,
            })?;
    }
    let avd = sc
        .query_access_decision(&tc, class, requested)
        .map_err(|source| DecisionError::Compute {
            access: format!("{s} -> {t} {tclass}"),
            source,
        })?;
    // AVD_FLAGS_PERMISSIVE
    Ok((avd.allowed & requested == requested, avd.flags & 1 != 0))
}

/// What it means when the observed outcome of an access differs from the kernel's decision.
pub fn disagreement(
    observed_allowed: bool,
    predicted_allowed: bool,
    permissive: bool,
) -> Option<String> {
    match (observed_allowed, predicted_allowed) {
        (true, true) | (false, false) => None,
        (false, true) => Some(
            "the policy allows it, yet it was refused: DAC (mode, owner) or another check came first, or the process did not run in the expected context".into(),
        ),
        (true, false) if permissive => Some(
            "the policy denies it, yet it went through: the domain is permissive".into(),
        ),
        (true, false) => Some(
            "the policy denies it, yet it went through: the process did not run in the expected context, or the file's label differs".into(),
        ),
    }
}

#[cfg(test)]
/// A policy small enough to read: one domain, an image type it may read (MCS-constrained),
/// a type it may only getattr, one behind a boolean, one whose read is dontaudit'ed.
pub(crate) const TEST_POLICY: &str = r#"
(handleunknown deny)
(mls true)
(class file (read write open getattr))
(class process (transition))
(classorder (file process))
(sid kernel)
(sidorder (kernel))
(level low (s0))
(levelrange lowlow (low low))
(context kctx (u object_r kernel_t lowlow))
(sidcontext kernel kctx)
(sensitivity s0)
(sensitivityorder (s0))
(category c0)
(category c1)
(category c2)
(category c3)
(categoryorder (c0 c1 c2 c3))
(sensitivitycategory s0 (range c0 c3))
(user u)
(role r)
(role object_r)
(userrole u r)
(userrole u object_r)
(userlevel u (s0))
(userrange u ((s0) (s0 (range c0 c3))))
(type kernel_t)
(type dom_t)
(type img_t)
(type other_t)
(type bool_t)
(type hidden_t)
(roletype r dom_t)
(typeattribute objects)
(typeattributeset objects (kernel_t dom_t img_t other_t bool_t hidden_t))
(roletype object_r objects)
(allow dom_t img_t (file (read open getattr)))
(allow dom_t other_t (file (getattr)))
(dontaudit dom_t hidden_t (file (read)))
(boolean dom_reads_bool false)
(booleanif dom_reads_bool (true (allow dom_t bool_t (file (read open)))))
(mlsconstrain (file (read write)) (dom h1 h2))
"#;

/// TEST_POLICY with the rule a module loaded mid-run would add: dom_t may read other_t.
#[cfg(test)]
pub(crate) fn test_policy_with_module() -> String {
    format!("{TEST_POLICY}(allow dom_t other_t (file (read)))")
}

/// Whether `policy` lets dom_t read other_t: TEST_POLICY does not, its module does.
#[cfg(test)]
pub(crate) fn dom_reads_other(policy: &Policy) -> bool {
    let ctx = |s: &str| s.parse::<Context>().expect("a test context");
    explain(
        policy,
        &ctx("u:r:dom_t:s0"),
        &ctx("u:object_r:other_t:s0"),
        "file",
        &["read".into()],
        &[],
        false,
    ) == [Reason::Allowed]
}

#[cfg(test)]
mod tests;
