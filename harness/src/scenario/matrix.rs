//! `matrix:` - variants as a cross product of axes. Expanded into `variants` when the file
//! loads, before validation, so a plan, a known bug's `when` and the reports see ordinary
//! named variants; only the names (`dc0-rc1`) and the `when: {variant: [dc0]}` shorthand are
//! the matrix's own.

use std::collections::{BTreeMap, BTreeSet};

use super::model::*;
use super::validate::Problem;

/// A matrix bigger than this is a suite-time mistake: each variant is a trial that restarts
/// libvirtd when it changes qemu.conf (2-5 s under TCG) before it starts any guest.
pub const MAX_VARIANTS: usize = 32;

fn problem<T>(at: &At<T>, message: String) -> Problem {
    Problem {
        line: at.line,
        column: at.column,
        message,
    }
}

/// Adds the matrix's variants to `s.variants` (and records each one's values in
/// `s.matrix_cells`), then rewrites every `when: {variant: [VALUE]}` naming an axis value into
/// the variants that have it. What cannot be expanded is returned, and nothing is added.
pub(super) fn expand(s: &mut Scenario) -> Vec<Problem> {
    let mut problems = Vec::new();
    if s.matrix.is_empty() {
        return problems;
    }
    let mut seen_values: BTreeMap<Name, ()> = BTreeMap::new();
    let mut keys_of_axis: Vec<BTreeSet<String>> = Vec::new();
    for axis in &s.matrix {
        if axis.value.len() < 2 {
            problems.push(problem(
                axis,
                "a matrix axis needs at least two values (`{a: {...}, b: {...}}`); a setting every variant shares goes under `host:`".into(),
            ));
        }
        let mut keys = BTreeSet::new();
        for (value, settings) in &axis.value {
            if seen_values.insert(value.value.clone(), ()).is_some() {
                problems.push(problem(
                    value,
                    format!(
                        "matrix value `{}` is named twice: give each value of every axis its own name, so `when: {{variant: [{}]}}` means one thing",
                        value.value, value.value
                    ),
                ));
            }
            if s.variants.contains_key(&value.value) {
                problems.push(problem(
                    value,
                    format!(
                        "matrix value `{}` is also a variant under `variants:`: rename one of them",
                        value.value
                    ),
                ));
            }
            keys.extend(
                settings
                    .qemu_conf
                    .keys()
                    .map(|k| format!("qemu_conf {}", k.value)),
            );
            keys.extend(
                settings
                    .booleans
                    .keys()
                    .map(|k| format!("boolean {}", k.value)),
            );
        }
        for (earlier, other) in keys_of_axis.iter().enumerate() {
            if let Some(k) = keys.intersection(other).next() {
                problems.push(problem(
                    axis,
                    format!(
                        "this axis and axis {} both set {k}: let one axis set each key (the variant would not say which value wins)",
                        earlier + 1
                    ),
                ));
            }
        }
        keys_of_axis.push(keys);
    }
    // Saturating: a file with many axes must get the error, not an overflow.
    let count = s
        .matrix
        .iter()
        .fold(1usize, |n, a| n.saturating_mul(a.value.len()));
    if count > MAX_VARIANTS {
        problems.push(problem(
            &s.matrix[0],
            format!(
                "the matrix makes {count} variants, more than {MAX_VARIANTS}: each is a trial of its own; split the scenario or drop combinations that show nothing new"
            ),
        ));
    }
    if !problems.is_empty() {
        return problems;
    }

    let mut cells: Vec<(Vec<&At<Name>>, HostSettings)> =
        vec![(Vec::new(), HostSettings::default())];
    for axis in &s.matrix {
        let mut next = Vec::new();
        for (values, settings) in &cells {
            for (value, more) in &axis.value {
                let mut values = values.clone();
                values.push(value);
                let mut settings = settings.clone();
                settings.qemu_conf.extend(more.qemu_conf.clone());
                settings.booleans.extend(more.booleans.clone());
                next.push((values, settings));
            }
        }
        cells = next;
    }
    let mut added = Vec::new();
    for (values, settings) in cells {
        let joined: Vec<&str> = values.iter().map(|v| v.value.as_str()).collect();
        let text = joined.join("-");
        let name = match text.parse::<Name>() {
            Ok(n) => n,
            Err(why) => {
                problems.push(problem(
                    values[0],
                    format!("matrix variant `{text}`: {why}; shorten the value names"),
                ));
                continue;
            }
        };
        if s.variants.contains_key(&name) {
            problems.push(problem(
                values[0],
                format!("matrix variant `{name}` is also written under `variants:`: rename one"),
            ));
            continue;
        }
        added.push((
            name,
            settings,
            values.iter().map(|v| v.value.clone()).collect(),
        ));
    }
    if !problems.is_empty() {
        return problems;
    }
    for (name, settings, values) in added {
        s.variants.insert(name.clone(), settings);
        s.matrix_cells.insert(name, values);
    }
    let cells = s.matrix_cells.clone();
    let widen = |list: &mut Vec<At<Name>>| {
        let mut out = Vec::new();
        for entry in list.drain(..) {
            let having: Vec<&Name> = cells
                .iter()
                .filter(|(_, values)| values.contains(&entry.value))
                .map(|(name, _)| name)
                .collect();
            if having.is_empty() {
                out.push(entry);
            } else {
                out.extend(having.into_iter().map(|n| At {
                    value: n.clone(),
                    line: entry.line,
                    column: entry.column,
                }));
            }
        }
        out.dedup_by(|a, b| a.value == b.value);
        *list = out;
    };
    for step in &mut s.steps {
        if let Some(when) = &mut step.options.when {
            widen(&mut when.value.variant);
        }
        for kb in &mut step.options.known_bug {
            widen(&mut kb.value.when.variant);
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use crate::scenario::load_str;
    use std::path::Path;

    const HEAD: &str = "name: m\ndescription: d\ndomains: {vm1: {}}\n";

    fn load(rest: &str) -> Result<crate::scenario::Scenario, Vec<String>> {
        load_str(Path::new("m.yaml"), &format!("{HEAD}{rest}"))
            .map_err(|ds| ds.iter().map(|d| d.to_string()).collect())
    }

    #[test]
    fn the_product_of_the_axes_becomes_named_variants_with_every_value_s_settings() {
        let s = load(
            "matrix:\n  - {dc0: {qemu_conf: {security_default_confined: 0}}, dc1: {qemu_conf: {security_default_confined: 1}}}\n  - {rc0: {qemu_conf: {security_require_confined: 0}}, rc1: {qemu_conf: {security_require_confined: 1}, booleans: {virt_use_nfs: true}}}\nsteps: [{define: vm1}]\n",
        )
        .unwrap();
        let names: Vec<String> = s.variants.keys().map(|n| n.to_string()).collect();
        assert_eq!(names, ["dc0-rc0", "dc0-rc1", "dc1-rc0", "dc1-rc1"]);
        let v = &s.variants[&"dc1-rc1".parse().unwrap()];
        let conf: Vec<(String, String)> = v
            .qemu_conf
            .iter()
            .map(|(k, v)| (k.value.clone(), v.to_string()))
            .collect();
        assert_eq!(
            conf,
            [
                ("security_default_confined".to_string(), "1".to_string()),
                ("security_require_confined".to_string(), "1".to_string())
            ]
        );
        assert_eq!(v.booleans.len(), 1);
        assert!(s.variants[&"dc0-rc0".parse().unwrap()].booleans.is_empty());
    }

    #[test]
    fn a_when_naming_one_value_means_every_variant_that_has_it() {
        let s = load(
            "matrix:\n  - {dc0: {qemu_conf: {a: 0}}, dc1: {qemu_conf: {a: 1}}}\n  - {rc0: {qemu_conf: {b: 0}}, rc1: {qemu_conf: {b: 1}}}\nsteps:\n  - define: vm1\n    when: {variant: [rc1, dc0-rc0]}\n    known_bug: [{reference: r, when: {variant: [dc1]}, expects: [succeeds]}]\n",
        )
        .unwrap();
        let o = &s.steps[0].options;
        let when: Vec<String> = o
            .when
            .as_ref()
            .unwrap()
            .value
            .variant
            .iter()
            .map(|n| n.value.to_string())
            .collect();
        assert_eq!(when, ["dc0-rc1", "dc1-rc1", "dc0-rc0"]);
        let kb: Vec<String> = o.known_bug[0]
            .value
            .when
            .variant
            .iter()
            .map(|n| n.value.to_string())
            .collect();
        assert_eq!(kb, ["dc1-rc0", "dc1-rc1"]);
    }

    #[test]
    fn matrix_and_plain_variants_live_side_by_side() {
        let s = load(
            "variants: {plain: {}}\nmatrix: [{x0: {qemu_conf: {a: 0}}, x1: {qemu_conf: {a: 1}}}]\nsteps: [{define: vm1}]\n",
        )
        .unwrap();
        let names: Vec<String> = s.variants.keys().map(|n| n.to_string()).collect();
        assert_eq!(names, ["plain", "x0", "x1"]);
        assert!(!s.matrix_cells.contains_key(&"plain".parse().unwrap()));
    }

    #[rstest::rstest]
    #[case::one_value(
        "matrix:\n  - {only: {}}\n",
        "5:5: a matrix axis needs at least two values"
    )]
    #[case::value_twice(
        "matrix:\n  - {a: {}, b: {}}\n  - {a: {}, c: {}}\n",
        "6:6: matrix value `a` is named twice"
    )]
    #[case::value_is_a_variant(
        "variants: {a: {}}\nmatrix:\n  - {a: {}, b: {}}\n",
        "6:6: matrix value `a` is also a variant"
    )]
    #[case::key_on_two_axes(
        "matrix:\n  - {a: {qemu_conf: {k: 0}}, b: {}}\n  - {c: {qemu_conf: {k: 1}}, d: {}}\n",
        "6:5: this axis and axis 1 both set qemu_conf k"
    )]
    #[case::too_long(
        "matrix:\n  - {aaaaaaaaaaaaaaaaaaaaaaaaa: {}, b: {}}\n  - {ccccccccccccccccccccccccc: {}, d: {}}\n",
        "5:6: matrix variant `aaaaaaaaaaaaaaaaaaaaaaaaa-ccccccccccccccccccccccccc`"
    )]
    #[case::too_many(
        "matrix:\n  - {a0: {}, a1: {}}\n  - {b0: {}, b1: {}}\n  - {c0: {}, c1: {}}\n  - {d0: {}, d1: {}}\n  - {e0: {}, e1: {}}\n  - {f0: {}, f1: {}}\n",
        "5:5: the matrix makes 64 variants"
    )]
    #[case::when_unknown(
        "matrix: [{a: {}, b: {}}]\nsteps:\n  - define: vm1\n    when: {variant: [c]}\n",
        "unknown variant `c`"
    )]
    fn a_bad_matrix_is_rejected_where_it_is_wrong(#[case] rest: &str, #[case] wanted: &str) {
        let src = if rest.contains("steps:") {
            rest.to_string()
        } else {
            format!("{rest}steps: [{{define: vm1}}]\n")
        };
        let errs = load(&src).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains(wanted)),
            "wanted {wanted:?} among {errs:#?}"
        );
    }

    /// 70 axes of two values is more variants than a usize holds: an error, not an overflow.
    #[test]
    fn a_product_too_big_to_count_is_an_error() {
        let axes: String = (0..70)
            .map(|i| format!("  - {{a{i}: {{}}, b{i}: {{}}}}\n"))
            .collect();
        let errs = load(&format!("matrix:\n{axes}steps: [{{define: vm1}}]\n")).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains(&format!("the matrix makes {} variants", usize::MAX))),
            "{errs:#?}"
        );
    }
}
