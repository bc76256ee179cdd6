//! Scenarios: the YAML language, loading with located errors, and validation.

mod device_label;
pub mod devices;
pub mod files;
pub mod from_xml;
mod load;
mod matrix;
mod model;
pub mod mutate;
mod operations;
mod policy_module;
mod qemu_conf_keys;
mod restart_daemon;
mod roles;
mod settle;
mod storage;
mod validate;
mod value_error;

pub use device_label::DeviceLabel;
pub use files::*;
pub use load::{
    discover, load_file, load_str, load_with_warnings, warnings, Diagnostic, LoadedScenario,
};
pub use model::*;
pub use operations::*;
pub use policy_module::{ModuleKind, ModulePath, ModulePathError};
pub use restart_daemon::RestartDaemon;
pub use roles::{Role, RoleTypes, RolesParseError, VirtType};
pub use settle::{Settle, SettleUntil, Until};
pub use validate::default_target;
pub use value_error::ValueError;

/// The JSON Schema of the scenario language, for editors.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(Scenario);
    serde_json::to_value(schema).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    /// What `selinux-harness schema` prints (editors validate scenarios against it).
    #[test]
    fn schema_snapshot() {
        let schema = serde_json::to_string_pretty(&json_schema()).expect("a JSON value prints");
        insta::assert_snapshot!(schema);
    }

    #[test]
    fn every_shipped_scenario_loads() {
        let files = discover(&[repo().join("scenarios")]).unwrap();
        assert!(
            files.len() >= 4,
            "expected the seed scenarios, found {files:?}"
        );
        for f in files {
            if let Err(errs) = load_file(&f) {
                let all: Vec<_> = errs.iter().map(|e| e.to_string()).collect();
                panic!("{}", all.join("\n"));
            }
        }
    }

    /// Each file in tests/data/broken starts with `# error: LINE:COL: TEXT` lines naming every
    /// diagnostic it must produce (TEXT is a substring of the message).
    #[test]
    fn broken_scenarios_are_rejected_where_they_are_broken() {
        let dir = repo().join("harness/tests/data/broken");
        let files = discover(&[dir]).unwrap();
        assert!(
            files.len() >= 10,
            "found only {} broken scenarios",
            files.len()
        );
        for f in files {
            let source = std::fs::read_to_string(&f).unwrap();
            let wanted: Vec<(usize, usize, String)> = source
                .lines()
                .filter_map(|l| l.strip_prefix("# error: "))
                .map(|l| {
                    let mut it = l.splitn(3, ':');
                    let line = it.next().unwrap().trim().parse().unwrap();
                    let col = it.next().unwrap().trim().parse().unwrap();
                    (line, col, it.next().unwrap().trim().to_string())
                })
                .collect();
            assert!(!wanted.is_empty(), "{}: no `# error:` header", f.display());
            let errs = match load_file(&f) {
                Ok(_) => panic!("{} loaded but must be rejected", f.display()),
                Err(e) => e,
            };
            let got: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
            assert_eq!(errs.len(), wanted.len(), "{}: got {got:#?}", f.display());
            for ((line, col, text), e) in wanted.iter().zip(&errs) {
                assert_eq!(e.file, f);
                assert_eq!(
                    (e.line, e.column),
                    (*line, *col),
                    "{}: wrong place for {e}",
                    f.display()
                );
                assert!(
                    e.message.contains(text.as_str()),
                    "{}: {e} does not say {text:?}",
                    f.display()
                );
            }
        }
    }

    #[test]
    fn schema_names_the_actions() {
        let schema = json_schema().to_string();
        for action in ["attach_disk", "probe", "known_bug", "never_level"] {
            assert!(schema.contains(action), "schema lacks {action}");
        }
    }
}
