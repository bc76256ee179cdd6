//! JUnit XML, as CI systems read it: one test case per scenario and variant.

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use super::{Record, ScenarioRecord};
use crate::evidence::Evidence;
use crate::run::expect::avc_line;
use crate::run::verdict::Verdict;

fn details(s: &ScenarioRecord) -> String {
    let mut out = String::new();
    for st in &s.steps {
        out.push_str(&format!("step {}: {}\n", st.step, st.title));
        for c in &st.checks {
            let mark = match (c.passed, &c.known_bug) {
                (true, _) => "ok",
                (false, Some(_)) => "KNOWN BUG",
                (false, None) => "FAILED",
            };
            out.push_str(&format!(
                "  [{mark}] {}\n    expected: {}\n    observed: {}\n",
                c.expectation, c.expected, c.observed
            ));
        }
        for e in &st.evidence {
            if let Evidence::Avcs { records, .. } = e {
                for r in records {
                    out.push_str(&format!("  avc: {}\n", avc_line(r)));
                }
            }
        }
        for x in &st.explanations {
            out.push_str(&format!("  {}\n", x.summary()));
        }
    }
    out
}

pub fn render(record: &Record) -> String {
    let mut suite = TestSuite::new("selinux-harness");
    for s in &record.scenarios {
        let verdict = s.verdict.clone().unwrap_or(Verdict::Error {
            reason: "no verdict was reached".into(),
        });
        let status = match &verdict {
            Verdict::Pass | Verdict::KnownBug { .. } => TestCaseStatus::success(),
            Verdict::Skipped { reason } => {
                let mut st = TestCaseStatus::skipped();
                st.set_message(reason.clone());
                st
            }
            Verdict::Fail { failed } => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!("{failed} expectation(s) failed"));
                st.set_description(details(s));
                st
            }
            Verdict::KnownBugGone { references } => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                st.set_message(format!(
                    "known bug no longer reproduces: {}; update the scenario",
                    references.join(", ")
                ));
                st.set_description(details(s));
                st
            }
            Verdict::Inconclusive { reason } | Verdict::Error { reason } => {
                let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
                st.set_message(format!("{}: {reason}", verdict.label()));
                st.set_description(details(s));
                st
            }
        };
        let mut case = TestCase::new(s.id(), status);
        case.set_classname(format!("selinux-harness.{}", s.file));
        case.set_time(std::time::Duration::from_millis(s.millis));
        if let Verdict::KnownBug { references } = &verdict {
            case.set_system_out(format!(
                "known bug reproduced: {}\n{}",
                references.join(", "),
                details(s)
            ));
        }
        suite.add_test_case(case);
    }
    let mut report = Report::new("selinux-harness");
    report.add_test_suite(suite);
    report
        .to_string()
        .unwrap_or_else(|e| format!("<!-- cannot render JUnit: {e} -->"))
}
