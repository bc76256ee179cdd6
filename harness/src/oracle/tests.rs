use super::*;

fn ctx(s: &str) -> Context {
    s.parse().unwrap()
}

fn why(s: &str, t: &str, perms: &[&str]) -> Vec<Reason> {
    let bytes = sepol::compile_cil(TEST_POLICY).unwrap();
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
    let bytes = sepol::compile_cil(TEST_POLICY).unwrap();
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
    let bytes = sepol::compile_cil(TEST_POLICY).unwrap();
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

#[test]
fn two_policies_alive_at_once_each_answer_for_themselves() {
    // libsepol computes on globals: each call must point them at its own policy (a run keeps
    // its policy for all its steps while the batch's other runs keep theirs).
    let base = Policy::load(&sepol::compile_cil(TEST_POLICY).unwrap()).unwrap();
    let more = Policy::load(&sepol::compile_cil(&test_policy_with_module()).unwrap()).unwrap();
    let reads = dom_reads_other;
    for _ in 0..3 {
        assert!(!reads(&base));
        assert!(reads(&more));
    }
    // Threads too: the lock keeps one question at a time.
    std::thread::scope(|s| {
        let a = s.spawn(|| {
            let p = Policy::load(&sepol::compile_cil(TEST_POLICY).unwrap()).unwrap();
            (0..20).all(|_| !reads(&p))
        });
        assert!((0..20).all(|_| reads(&more)));
        assert!(a.join().unwrap());
    });
}
