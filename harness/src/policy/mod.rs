//! Policy under test: the policy modules, permissive types and booleans a scenario (`host:`) or
//! a whole run (`run --policy-module/--permissive/--boolean`) brings to the target.
//!
//! Data flows one way: the host resolves every run's policy into a [`PolicyUnderTest`] (module
//! files read from the scenario's folder or policy-modules/, never from anywhere a scenario could
//! point), which travels with the run to the target; there `install` loads it once for every run
//! that brings the same policy (`run::policy_batch`), and its undo removes it again.

pub mod install;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::scenario::{At, Diagnostic, LoadedScenario, ModuleSpec};
pub use crate::scenario::{ModuleKind, ModulePath};

/// The folder next to `scenarios/` that holds the repository's policy modules.
pub const MODULES_DIR: &str = "policy-modules";

/// One module file with its content, as it travels to the target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleFile {
    /// The path as the scenario names it (see [`ModulePath`]).
    pub file: String,
    /// Where the host read it, for reports.
    pub origin: String,
    pub bytes: Vec<u8>,
    /// Distributions the module is for; empty: every one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub distro: Vec<String>,
}

impl ModuleFile {
    pub fn path(&self) -> Result<ModulePath, crate::scenario::ModulePathError> {
        ModulePath::parse(&self.file)
    }

    /// Whether the module is for a target running `distro`.
    pub fn applies_to(&self, distro: &str) -> bool {
        self.distro.is_empty() || self.distro.iter().any(|d| d == distro)
    }

    /// The name of the file as written on the target (the last part of the path).
    pub fn file_name(&self) -> &str {
        self.file.rsplit('/').next().unwrap_or(&self.file)
    }
}

/// Everything one run brings to the target's policy. Empty for a run under the shipped policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyUnderTest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modules: Vec<ModuleFile>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub permissive: Vec<String>,
    /// Booleans for the whole run (`run --boolean`); a scenario's own `booleans:` are set by
    /// its executor, as before.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub booleans: Vec<(String, bool)>,
}

/// The generated module that makes the `permissive:` types permissive.
pub const PERMISSIVE_MODULE: &str = "selinux_harness_permissive";

impl PolicyUnderTest {
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty() && self.permissive.is_empty() && self.booleans.is_empty()
    }

    /// Equal for two runs exactly when they bring the same policy (module contents included):
    /// such runs share one load.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        for m in &self.modules {
            h.update(m.file.as_bytes());
            h.update([0]);
            h.update(Sha256::digest(&m.bytes));
        }
        h.update(b"permissive");
        for t in &self.permissive {
            h.update(t.as_bytes());
            h.update([0]);
        }
        h.update(b"booleans");
        for (b, v) in &self.booleans {
            h.update(b.as_bytes());
            h.update([u8::from(*v)]);
        }
        format!("{:x}", h.finalize())
    }

    /// One line for notes and reports, e.g. "modules mcs_cross.cil; permissive svirt_t".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.modules.is_empty() {
            let names: Vec<String> = self
                .modules
                .iter()
                .map(|m| match m.distro.is_empty() {
                    true => m.file.clone(),
                    false => format!("{} ({})", m.file, m.distro.join(", ")),
                })
                .collect();
            parts.push(format!("modules {}", names.join(", ")));
        }
        if !self.permissive.is_empty() {
            parts.push(format!("permissive {}", self.permissive.join(", ")));
        }
        if !self.booleans.is_empty() {
            let b: Vec<String> = self
                .booleans
                .iter()
                .map(|(n, v)| format!("{n}={}", if *v { "on" } else { "off" }))
                .collect();
            parts.push(format!("booleans {}", b.join(", ")));
        }
        if parts.is_empty() {
            "the shipped policy".into()
        } else {
            parts.join("; ")
        }
    }

    /// This policy plus `more` (the run-wide one); a module or type named twice counts once,
    /// a boolean named twice takes `more`'s value.
    pub fn with(mut self, more: &PolicyUnderTest) -> PolicyUnderTest {
        for m in &more.modules {
            if !self.modules.iter().any(|x| x.file == m.file) {
                self.modules.push(m.clone());
            }
        }
        for t in &more.permissive {
            if !self.permissive.contains(t) {
                self.permissive.push(t.clone());
            }
        }
        for (b, v) in &more.booleans {
            self.booleans.retain(|(x, _)| x != b);
            self.booleans.push((b.clone(), *v));
        }
        self
    }

    /// Two files that make modules of one name for one distribution: semodule would keep only
    /// one of them.
    pub fn duplicate_name(&self) -> Option<String> {
        let overlap = |a: &ModuleFile, b: &ModuleFile| {
            a.distro.is_empty()
                || b.distro.is_empty()
                || a.distro.iter().any(|d| b.distro.contains(d))
        };
        for (i, a) in self.modules.iter().enumerate() {
            for b in &self.modules[i + 1..] {
                match (a.path(), b.path()) {
                    (Ok(x), Ok(y)) if x.name == y.name && overlap(a, b) => return Some(x.name),
                    _ => {}
                }
            }
        }
        None
    }

    /// The part of this policy a target running `distro` gets.
    pub fn for_distro(&self, distro: &str) -> PolicyUnderTest {
        PolicyUnderTest {
            modules: self
                .modules
                .iter()
                .filter(|m| m.applies_to(distro))
                .cloned()
                .collect(),
            ..self.clone()
        }
    }
}

/// A command-line policy argument that is not one (`--boolean`, `--permissive`,
/// `--policy-module`), with the fix.
#[derive(Debug, thiserror::Error)]
pub enum ArgError {
    #[error("--boolean {0}: write NAME=on or NAME=off")]
    BooleanForm(String),
    #[error("--boolean {0}: the value must be on or off (or 1/0, true/false)")]
    BooleanValue(String),
    #[error("--boolean {arg}: `{name}` is not a boolean name (letters, digits and _)")]
    BooleanName { arg: String, name: String },
    #[error("--permissive {0}: not a type name (letters, digits and _)")]
    TypeName(String),
    #[error("--policy-module {}: not a file name", .0.display())]
    ModuleFileName(PathBuf),
    /// The file name names no module (`ModulePath::parse`'s why).
    #[error("--policy-module {}: {why}", path.display())]
    ModuleName {
        path: PathBuf,
        why: crate::scenario::ModulePathError,
    },
    /// Not a `#[source]`: the binary prints the chain, and the text already ends with it.
    #[error("--policy-module {}: cannot read it: {error}", path.display())]
    ModuleRead {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// A `--boolean NAME=VALUE` argument: on/off, 1/0, true/false.
pub fn parse_boolean_arg(arg: &str) -> Result<(String, bool), ArgError> {
    let (name, value) = arg
        .split_once('=')
        .ok_or_else(|| ArgError::BooleanForm(arg.into()))?;
    let v = match value {
        "on" | "1" | "true" => true,
        "off" | "0" | "false" => false,
        _ => return Err(ArgError::BooleanValue(arg.into())),
    };
    if !is_type_or_boolean(name) {
        return Err(ArgError::BooleanName {
            arg: arg.into(),
            name: name.into(),
        });
    }
    Ok((name.to_string(), v))
}

/// A `--permissive TYPE` argument.
pub fn parse_type_arg(arg: &str) -> Result<String, ArgError> {
    if is_type_or_boolean(arg) {
        Ok(arg.to_string())
    } else {
        Err(ArgError::TypeName(arg.into()))
    }
}

fn is_type_or_boolean(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic())
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Read a module file named on the command line (any path the user gives; its file name is
/// checked like a scenario's).
pub fn read_cli_module(path: &Path) -> Result<ModuleFile, ArgError> {
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .ok_or_else(|| ArgError::ModuleFileName(path.to_path_buf()))?;
    ModulePath::parse(file).map_err(|why| ArgError::ModuleName {
        path: path.to_path_buf(),
        why,
    })?;
    let bytes = std::fs::read(path).map_err(|error| ArgError::ModuleRead {
        path: path.to_path_buf(),
        error,
    })?;
    Ok(ModuleFile {
        file: file.to_string(),
        origin: path.display().to_string(),
        bytes,
        distro: Vec::new(),
    })
}

/// Where a scenario's module files are looked up: its own folder, then the first
/// policy-modules/ found walking up from it.
pub fn module_dirs(scenario_file: &Path) -> Vec<PathBuf> {
    let dir = scenario_file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut out = vec![dir.to_path_buf()];
    let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    if let Some(d) = abs
        .ancestors()
        .map(|a| a.join(MODULES_DIR))
        .find(|d| d.is_dir())
    {
        out.push(d);
    }
    out
}

/// The policy one run of `loaded` (under `variant`) brings, module files read from the
/// scenario's folder or policy-modules/; a file that is not there (or is not a plain file) is
/// an error at the place the scenario names it.
pub fn for_run(
    loaded: &LoadedScenario,
    variant: Option<&str>,
) -> Result<PolicyUnderTest, Diagnostic> {
    let s = &loaded.scenario;
    let mut settings = vec![&s.host];
    if let Some(v) = variant {
        if let Some((_, h)) = s.variants.iter().find(|(k, _)| k.as_str() == v) {
            settings.push(h);
        }
    }
    let dirs = module_dirs(&loaded.path);
    let mut out = PolicyUnderTest::default();
    for h in settings {
        for m in &h.modules {
            if out.modules.iter().any(|x| x.file == m.value.file()) {
                continue;
            }
            out.modules.push(read_module(&loaded.path, &dirs, m)?);
        }
        for t in &h.permissive {
            if !out.permissive.contains(&t.value) {
                out.permissive.push(t.value.clone());
            }
        }
    }
    if let Some(name) = out.duplicate_name() {
        return Err(Diagnostic {
            file: loaded.path.clone(),
            line: 0,
            column: 0,
            message: format!("two module files make the policy module `{name}`: keep one"),
        });
    }
    Ok(out)
}

fn read_module(
    scenario: &Path,
    dirs: &[PathBuf],
    spec: &At<ModuleSpec>,
) -> Result<ModuleFile, Diagnostic> {
    let m = At {
        value: spec.value.file().to_string(),
        line: spec.line,
        column: spec.column,
    };
    let m = &m;
    let at = |message: String| Diagnostic {
        file: scenario.to_path_buf(),
        line: m.line,
        column: m.column,
        message,
    };
    ModulePath::parse(&m.value).map_err(|e| at(e.to_string()))?;
    for d in dirs {
        let p = d.join(&m.value);
        match std::fs::symlink_metadata(&p) {
            Ok(md) if md.file_type().is_file() => {
                let bytes = std::fs::read(&p)
                    .map_err(|e| at(format!("cannot read policy module {}: {e}", p.display())))?;
                return Ok(ModuleFile {
                    file: m.value.clone(),
                    origin: p.display().to_string(),
                    bytes,
                    distro: spec.value.distro().to_vec(),
                });
            }
            Ok(_) => {
                return Err(at(format!(
                    "policy module {} is not a regular file (a symlink or directory is not followed): put the file itself there",
                    p.display()
                )))
            }
            Err(_) => continue,
        }
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    Err(at(format!(
        "policy module `{}` not found (looked in {}): put it next to the scenario or in {MODULES_DIR}/",
        m.value,
        looked.join(", ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("mcs_cross.cil", "mcs_cross", ModuleKind::Cil, false)]
    #[case("virt.cil.bz2", "virt", ModuleKind::Cil, true)]
    #[case("my-mod.pp", "my-mod", ModuleKind::Pp, false)]
    #[case("local.te", "local", ModuleKind::Te, false)]
    #[case("debian-12/virt.cil.bz2", "virt", ModuleKind::Cil, true)]
    fn module_file_names(
        #[case] file: &str,
        #[case] name: &str,
        #[case] kind: ModuleKind,
        #[case] compressed: bool,
    ) {
        assert_eq!(
            ModulePath::parse(file).unwrap(),
            ModulePath {
                name: name.into(),
                kind,
                compressed
            }
        );
    }

    #[rstest]
    #[case("../etc/x.cil", "not a plain relative path")]
    #[case("/abs.cil", "not a plain relative path")]
    #[case("sub/../x.cil", "not a plain relative path")]
    #[case("sub//x.cil", "not a plain relative path")]
    #[case(".hidden.cil", "not a plain relative path")]
    #[case("a b.cil", "not a plain relative path")]
    #[case("x.txt", "no known extension")]
    #[case("x.te.bz2", "uncompressed")]
    #[case("1x.cil", "must start with a letter")]
    #[case("a.b.cil", "must start with a letter")]
    fn bad_module_file_names(#[case] file: &str, #[case] why: &str) {
        let e = ModulePath::parse(file).unwrap_err();
        assert!(e.to_string().contains(why), "{e}");
    }

    #[test]
    fn booleans_and_types_from_the_command_line() {
        assert_eq!(
            parse_boolean_arg("virt_use_nfs=on").unwrap(),
            ("virt_use_nfs".into(), true)
        );
        assert_eq!(parse_boolean_arg("x=0").unwrap(), ("x".into(), false));
        assert!(parse_boolean_arg("x")
            .unwrap_err()
            .to_string()
            .contains("NAME=on"));
        assert!(parse_boolean_arg("x=maybe")
            .unwrap_err()
            .to_string()
            .contains("on or off"));
        assert!(parse_boolean_arg("a;b=1")
            .unwrap_err()
            .to_string()
            .contains("not a boolean"));
        assert_eq!(parse_type_arg("svirt_t").unwrap(), "svirt_t");
        assert!(parse_type_arg("svirt_t:s0").is_err());
    }

    fn file(name: &str, bytes: &[u8]) -> ModuleFile {
        ModuleFile {
            file: name.into(),
            origin: name.into(),
            bytes: bytes.to_vec(),
            distro: Vec::new(),
        }
    }

    #[test]
    fn the_key_changes_with_content_and_merging_dedups() {
        let a = PolicyUnderTest {
            modules: vec![file("a.cil", b"(x)")],
            ..Default::default()
        };
        let b = PolicyUnderTest {
            modules: vec![file("a.cil", b"(y)")],
            ..Default::default()
        };
        assert_ne!(a.key(), b.key());
        assert_eq!(a.key(), a.clone().key());
        assert_ne!(a.key(), PolicyUnderTest::default().key());
        let wide = PolicyUnderTest {
            modules: vec![file("a.cil", b"(x)"), file("b.te", b"module b 1.0;")],
            permissive: vec!["svirt_t".into()],
            booleans: vec![("virt_use_nfs".into(), true)],
        };
        let merged = a.clone().with(&wide);
        assert_eq!(merged.modules.len(), 2);
        assert_eq!(
            merged.describe(),
            "modules a.cil, b.te; permissive svirt_t; booleans virt_use_nfs=on"
        );
        assert_eq!(PolicyUnderTest::default().describe(), "the shipped policy");
        let twice = PolicyUnderTest {
            modules: vec![file("a.cil", b""), file("a.te", b"")],
            ..Default::default()
        };
        assert_eq!(twice.duplicate_name().as_deref(), Some("a"));
        // One override per distribution is no duplicate; each target gets its own.
        let per = |d: &str| ModuleFile {
            distro: vec![d.into()],
            ..file(&format!("{d}/virt.cil"), d.as_bytes())
        };
        let both = PolicyUnderTest {
            modules: vec![per("debian-12"), per("debian-13")],
            ..Default::default()
        };
        assert_eq!(both.duplicate_name(), None);
        let d13 = both.for_distro("debian-13");
        assert_eq!(d13.modules.len(), 1);
        assert_eq!(d13.modules[0].file_name(), "virt.cil");
        assert_eq!(d13.modules[0].bytes, b"debian-13");
        assert!(both.for_distro("fedora-41").modules.is_empty());
    }

    #[test]
    fn scenario_modules_are_read_from_its_folder_or_policy_modules() {
        let root = tempfile::tempdir().unwrap();
        let scen = root.path().join("scenarios/policy");
        std::fs::create_dir_all(&scen).unwrap();
        std::fs::create_dir_all(root.path().join(MODULES_DIR)).unwrap();
        std::fs::write(scen.join("here.cil"), "(here)").unwrap();
        std::fs::write(root.path().join(MODULES_DIR).join("shared.cil"), "(shared)").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", scen.join("link.cil")).unwrap();
        let src = |mods: &str| {
            format!("name: x\ndescription: d\nhost: {{modules: [{mods}], permissive: [svirt_t]}}\nsteps: [{{probe: {{context: 'unconfined_u:unconfined_r:svirt_t:s0', image: i, access: read}}, expect: {{access: allowed}}}}]\nimages: {{i: {{size: 1M}}}}\nrequires: [probe_module]\n")
        };
        let load = |mods: &str| {
            let path = scen.join("x.yaml");
            let scenario = crate::scenario::load_str(&path, &src(mods)).unwrap();
            LoadedScenario {
                path,
                source: src(mods),
                scenario,
            }
        };
        let p = for_run(&load("here.cil, shared.cil"), None).unwrap();
        assert_eq!(p.modules[0].bytes, b"(here)");
        assert_eq!(p.modules[1].bytes, b"(shared)");
        assert_eq!(p.permissive, ["svirt_t"]);
        let e = for_run(&load("gone.cil"), None).unwrap_err();
        assert!(
            e.to_string().contains("x.yaml:3:") && e.message.contains("not found"),
            "{e}"
        );
        let e = for_run(&load("link.cil"), None).unwrap_err();
        assert!(e.message.contains("not a regular file"), "{e}");
    }
}
