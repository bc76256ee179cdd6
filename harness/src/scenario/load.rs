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
    let scenario: Scenario = serde_saphyr::from_str(source).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line() as usize, l.column() as usize))
            .unwrap_or((0, 0));
        vec![Diagnostic {
            file: file.to_path_buf(),
            line,
            column,
            message: clean_message(&e.without_snippet().to_string()),
        }]
    })?;
    let problems = validate::validate(&scenario);
    if problems.is_empty() {
        Ok(scenario)
    } else {
        Err(problems
            .into_iter()
            .map(|p| Diagnostic {
                file: file.to_path_buf(),
                line: p.line,
                column: p.column,
                message: p.message,
            })
            .collect())
    }
}

/// serde-saphyr appends its own " at line X column Y"; ours is in front already.
fn clean_message(m: &str) -> String {
    let m = m.trim();
    match m.rfind(" at line ") {
        Some(i) if m[i..].contains("column") => m[..i].to_string(),
        _ => m.to_string(),
    }
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
