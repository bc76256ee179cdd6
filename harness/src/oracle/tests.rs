use super::*;

/// A policy small enough to read: one domain, an image type it may read (MCS-constrained),
/// a type it may only getattr, one behind a boolean, one whose read is dontaudit'ed.
const POLICY: &str = r#"
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

fn ctx(s: &str) -> Context {
    s.parse().unwrap()
}

fn why(s: &str, t: &str, perms: &[&str]) -> Vec<Reason> {
    let bytes = sepol::compile_cil(POLICY).unwrap();
    let policy = Policy::load(&bytes).unwrap();
    let perms: Vec<String> = perms.iter().map(|p| p.to_string()).collect();
    let candidates = ["img_t", "other_t", "dom_t"].map(String::from);
    explain(
        &policy,
        &ctx(s),
        &ctx(t),
        "file",
        &perms,
        &candidates,
        false,
    )
}

#[test]
fn an_allowed_access_is_allowed() {
    assert_eq!(
        why(
            "u:r:dom_t:s0:c0",
            "u:object_r:img_t:s0:c0",
            &["read", "open"]
        ),
        vec![Reason::Allowed]
    );
}

#[test]
fn a_refusal_by_the_mcs_constraint_names_it_and_the_levels() {
    let r = why("u:r:dom_t:s0:c1", "u:object_r:img_t:s0:c0", &["read"]);
    assert_eq!(r.len(), 1, "{r:?}");
    let Reason::Constraint { kind, text, levels } = &r[0] else {
        panic!("{r:?}")
    };
    assert_eq!(*kind, ConstraintKind::Mls);
    assert!(text.contains("mlsconstrain"), "{text}");
    assert_eq!(
        levels,
        "source dom_t (high s0:c1) does not dominate target img_t (high s0:c0)"
    );
}

#[test]
fn no_allow_rule_shows_the_nearest_rules() {
    let r = why("u:r:dom_t:s0", "u:object_r:other_t:s0", &["read"]);
    assert_eq!(
        r,
        vec![Reason::NoAllowRule {
            perms: vec!["read".into()],
            nearest: vec!["allow dom_t img_t:file { read }".into()],
        }]
    );
    assert_eq!(
        r[0].to_string(),
        "no allow rule grants { read }; nearest rules that exist: allow dom_t img_t:file { read }"
    );
}

#[test]
fn a_boolean_that_would_allow_is_named() {
    let r = why("u:r:dom_t:s0", "u:object_r:bool_t:s0", &["read", "open"]);
    assert_eq!(
        r,
        vec![Reason::Boolean {
            name: "dom_reads_bool".into(),
            value: true
        }]
    );
    // The copy of the policy is put back: the boolean is still off.
    let bytes = sepol::compile_cil(POLICY).unwrap();
    let policy = Policy::load(&bytes).unwrap();
    assert_eq!(
        policy.booleans(),
        vec![("dom_reads_bool".to_string(), false)]
    );
}

#[test]
fn a_dontaudit_rule_is_reported() {
    let r = why("u:r:dom_t:s0", "u:object_r:hidden_t:s0", &["read"]);
    assert!(
        r.contains(&Reason::Dontaudit {
            perms: vec!["read".into()]
        }),
        "{r:?}"
    );
    assert!(matches!(r[0], Reason::NoAllowRule { .. }), "{r:?}");
}

#[test]
fn a_context_the_policy_lacks_is_unavailable_not_allowed() {
    let r = why("u:r:nosuch_t:s0", "u:object_r:img_t:s0", &["read"]);
    assert!(matches!(&r[..], [Reason::Unavailable { .. }]), "{r:?}");
}

#[test]
fn permissive_is_said_first() {
    let bytes = sepol::compile_cil(POLICY).unwrap();
    let policy = Policy::load(&bytes).unwrap();
    let r = explain(
        &policy,
        &ctx("u:r:dom_t:s0:c1"),
        &ctx("u:object_r:img_t:s0:c0"),
        "file",
        &["read".to_string()],
        &[],
        true,
    );
    assert_eq!(
        r[0],
        Reason::Permissive {
            domain: "dom_t".into()
        }
    );
}

#[test]
fn disagreements_say_what_they_mean() {
    assert_eq!(disagreement(true, true, false), None);
    assert!(disagreement(false, true, false).unwrap().contains("DAC"));
    assert!(disagreement(true, false, true)
        .unwrap()
        .contains("permissive"));
}

#[test]
fn a_record_without_contexts_is_not_asked_about() {
    let r = crate::evidence::audit::parse_record(
        r#"type=AVC msg=audit(1795653826.616:86): avc:  denied  { read } for  pid=518 comm="qemu-system-x86" name="mcs.img" dev="vda" ino=23181 scontext=system_u:system_r:svirt_t:s0:c3,c4 tcontext=system_u:object_r:svirt_image_t:s0:c1,c2 tclass=file permissive=0"#,
    )
    .unwrap();
    let (s, t, class, perms) = access_of(&r).unwrap();
    assert_eq!(
        (s.kind.as_str(), t.kind.as_str()),
        ("svirt_t", "svirt_image_t")
    );
    assert_eq!((class.as_str(), perms), ("file", vec!["read".to_string()]));
    let mut no_tclass = r.clone();
    no_tclass.tclass = None;
    assert!(access_of(&no_tclass).is_none());
}
