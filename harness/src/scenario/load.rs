//! Reading scenario files: YAML syntax and types first (serde-saphyr, which reports where),
//! then the checks that need the whole file (see `validate`).

use std::fmt;
use std::path::{Path, PathBuf};

use super::model::Scenario;
use super::validate;

/// One problem in one file, with the place it is at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is with the file as a whole.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )
        }
    }
}

impl std::error::Error for Diagnostic {}

/// A scenario that loaded and validated, with the text it came from (the guest re-validates
/// the same text, so what runs is exactly what was checked).
#[derive(Debug, Clone)]
pub struct LoadedScenario {
    pub path: PathBuf,
    pub source: String,
    pub scenario: Scenario,
}

impl LoadedScenario {
    /// Variant names to run, in order; a scenario without variants runs once, unnamed.
    pub fn variants(&self) -> Vec<Option<String>> {
        if self.scenario.variants.is_empty() {
            vec![None]
        } else {
            self.scenario
                .variants
                .keys()
                .map(|k| Some(k.to_string()))
                .collect()
        }
    }
}

/// Scenario files are small; anything bigger is a mistake (a disk image passed by accident).
const MAX_SOURCE_BYTES: u64 = 1 << 20;

pub fn load_file(path: &Path) -> Result<LoadedScenario, Vec<Diagnostic>> {
    let whole = |message: String| {
        vec![Diagnostic {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            message,
        }]
    };
    let meta = std::fs::metadata(path).map_err(|e| whole(format!("cannot read: {e}")))?;
    if meta.len() > MAX_SOURCE_BYTES {
        return Err(whole(format!(
            "{} bytes is too large for a scenario (at most {MAX_SOURCE_BYTES})",
            meta.len()
        )));
    }
    let source = std::fs::read_to_string(path).map_err(|e| whole(format!("cannot read: {e}")))?;
    let scenario = load_str(path, &source)?;
    Ok(LoadedScenario {
        path: path.to_path_buf(),
        source,
        scenario,
    })
}

/// Parse and validate; `file` only names the source in diagnostics.
pub fn load_str(file: &Path, source: &str) -> Result<Scenario, Vec<Diagnostic>> {
    load_with_warnings(file, source).map(|(s, _)| s)
}

/// What in a scenario that loaded may check less than its author meant (`check` shows these).
pub fn warnings(file: &Path, scenario: &Scenario) -> Vec<Diagnostic> {
    validate::validate(scenario)
        .1
        .into_iter()
        .map(|p| Diagnostic {
            file: file.to_path_buf(),
            line: p.line,
            column: p.column,
            message: p.message,
        })
        .collect()
}

/// Parse and validate, keeping the warnings of a file that loads.
pub fn load_with_warnings(
    file: &Path,
    source: &str,
) -> Result<(Scenario, Vec<Diagnostic>), Vec<Diagnostic>> {
    let mut scenario: Scenario = serde_saphyr::from_str(source).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((0, 0));
        vec![Diagnostic {
            file: file.to_path_buf(),
            line,
            column,
            message: author_message(&e, (line, column), root_at(source) == Some(line)),
        }]
    })?;
    let located = |p: validate::Problem| Diagnostic {
        file: file.to_path_buf(),
        line: p.line,
        column: p.column,
        message: p.message,
    };
    let expanded = super::matrix::expand(&mut scenario);
    if !expanded.is_empty() {
        return Err(expanded.into_iter().map(located).collect());
    }
    let (problems, warnings) = validate::validate(&scenario);
    if problems.is_empty() {
        Ok((scenario, warnings.into_iter().map(located).collect()))
    } else {
        Err(problems.into_iter().map(located).collect())
    }
}

/// serde-saphyr words its errors for the programmer who calls it ("set DuplicateKeyPolicy in
/// Options", "expected mapping start"); a scenario's author needs what is wrong in the file and
/// how to fix it. The place is given in front already, so its " at line X, column Y" goes.
fn author_message(e: &serde_saphyr::Error, at: (usize, usize), at_root: bool) -> String {
    use serde_saphyr::Error as E;
    let e = e.without_snippet();
    let e = match e {
        E::WithSnippet { error, .. } => error.as_ref(),
        other => other,
    };
    match e {
        E::DuplicateMappingKey { key: Some(k), .. } => {
            return format!("`{k}` is given twice in the same mapping: keep one of them")
        }
        E::DuplicateMappingKey { key: None, .. } => {
            return "a key is given twice in the same mapping: keep one of them".into()
        }
        E::Eof { .. } if at <= (1, 1) => {
            return "the file is empty: a scenario needs at least `name:`, `description:` and `steps:`".into()
        }
        E::Eof { .. } => {
            return "the file ends in the middle of a value: close the open bracket or quote".into()
        }
        E::MultipleDocuments { .. } => {
            return "a scenario file holds one YAML document: remove the `---` before this line and all that follows it, or move it into a file of its own".into()
        }
        E::Unexpected { expected, .. } => {
            return match *expected {
                "mapping start" if at_root && at.1 == 1 => {
                    "a scenario file is a mapping of keys (`name:`, `description:`, `steps:` ...), not a list or a single value".into()
                }
                "mapping start" => {
                    "a mapping is needed here (`key: value` lines, or `{key: value}`), not a list or a single value".into()
                }
                "sequence start" => {
                    "a list is needed here (`[a, b]`, or lines starting with `- `), not a single value or a mapping".into()
                }
                "string scalar" | "scalar" => {
                    "a single value is needed here (quote it if it holds `:`, `[` or `{`), not a list or a mapping".into()
                }
                other => format!("expected {other} here"),
            }
        }
        _ => {}
    }
    let text = e.render_with_formatter(&serde_saphyr::UserMessageFormatter);
    let m = text.trim();
    let m = match m.rfind(" at line ") {
        Some(i) if m[i..].contains("column") => &m[..i],
        _ => m,
    };
    if m.contains("found a tab") {
        return format!("{m}: indent with spaces, YAML does not allow tabs there");
    }
    if m.starts_with("invalid boolean") {
        return "invalid boolean: write true or false".into();
    }
    if let Some(rest) = m.strip_prefix("unknown field ") {
        return format!("unknown key {rest}");
    }
    if let Some(rest) = m.strip_prefix("missing field ") {
        return format!("missing key {rest}: add it here");
    }
    if let Some(rest) = m.strip_prefix("unknown variant ") {
        return format!("unknown value {rest}");
    }
    if let Some(kind) = m.strip_prefix("data did not match any variant of untagged enum ") {
        return match kind {
            "DiskSpec" => "a disk is an image name, or `{image: NAME, target: vdb, ...}`".into(),
            "QemuConfValue" => "a qemu.conf value is a number, true/false or a string".into(),
            other => format!("this value does not fit `{other}`: see `selinux-harness schema`"),
        };
    }
    m.to_string()
}

/// The line the file's top-level value starts on (after comments, blank lines and `---`).
fn root_at(source: &str) -> Option<usize> {
    source
        .lines()
        .position(|l| {
            let t = l.trim();
            !(t.is_empty() || t.starts_with('#') || t == "---")
        })
        .map(|i| i + 1)
}

/// Every scenario file named, or found below a named directory (*.yaml, *.yml), sorted.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut out = Vec::new();
    for p in paths {
        walk(p, &mut out)?;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn walk(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), Diagnostic> {
    let err = |e: std::io::Error| Diagnostic {
        file: p.to_path_buf(),
        line: 0,
        column: 0,
        message: format!("cannot read: {e}"),
    };
    let meta = std::fs::metadata(p).map_err(err)?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(p).map_err(err)? {
            let path = entry.map_err(err)?.path();
            let is_yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
            if path.is_dir() || is_yaml {
                walk(&path, out)?;
            }
        }
    } else {
        out.push(p.to_path_buf());
    }
    Ok(())
}
