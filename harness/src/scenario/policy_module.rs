//! A policy module's file name as a scenario or the command line gives it: what it may be
//! (checked when the scenario loads) and what semodule will make of it.

use serde::{Deserialize, Serialize};

/// How a module file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleKind {
    /// CIL text: semodule takes it as is.
    Cil,
    /// A policy package (semodule_package output): semodule takes it as is.
    Pp,
    /// Module source in the kernel policy language: built in the target with its own
    /// checkmodule (`-M -m -C`, straight to CIL; refpolicy interface macros are not expanded).
    Te,
}

/// What fixes a module path that is not one.
const FIX: &str = "give a file name such as my_module.cil (also .te, .pp, .cil.bz2, .pp.bz2; subfolders allowed) that lies in the scenario's folder or in policy-modules/";

/// Why a module file name is refused; the text is the scenario's diagnostic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModulePathError {
    #[error("policy module `{0}` is not a plain relative path: {FIX}")]
    NotPlain(String),
    #[error("policy module `{0}`: a .te source is built by checkmodule, which does not read bzip2: give it uncompressed")]
    CompressedSource(String),
    #[error("policy module `{0}` has no known extension: {FIX}")]
    NoExtension(String),
    #[error("policy module `{file}`: the module name `{name}` must start with a letter and hold only letters, digits, _ and -")]
    BadName { file: String, name: String },
}

/// A module file name as a scenario or the command line gives it: NAME.cil, NAME.pp, NAME.te,
/// or NAME.cil.bz2 / NAME.pp.bz2 (semodule reads bzip2 itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePath {
    /// The module's name: what semodule calls it (the file name without its extensions).
    pub name: String,
    pub kind: ModuleKind,
    pub compressed: bool,
}

impl ModulePath {
    /// A relative path checked like an image name: each part letters, digits, `_`, `.`, `-`,
    /// none empty, none starting with a dot (so no `..`), no leading `/`: nothing that could
    /// leave the folders modules are looked up in.
    pub fn parse(path: &str) -> Result<ModulePath, ModulePathError> {
        let parts: Vec<&str> = path.split('/').collect();
        let part_ok = |p: &&str| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        };
        if path.len() > 200 || !parts.iter().all(part_ok) || path.contains("..") {
            return Err(ModulePathError::NotPlain(path.to_string()));
        }
        let file = parts.last().copied().unwrap_or_default();
        let (rest, compressed) = match file.strip_suffix(".bz2") {
            Some(r) => (r, true),
            None => (file, false),
        };
        let (name, kind) = if let Some(n) = rest.strip_suffix(".cil") {
            (n, ModuleKind::Cil)
        } else if let Some(n) = rest.strip_suffix(".pp") {
            (n, ModuleKind::Pp)
        } else if let Some(n) = rest.strip_suffix(".te") {
            if compressed {
                return Err(ModulePathError::CompressedSource(file.to_string()));
            }
            (n, ModuleKind::Te)
        } else {
            return Err(ModulePathError::NoExtension(file.to_string()));
        };
        let ok = !name.is_empty()
            && name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_alphabetic())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !ok {
            return Err(ModulePathError::BadName {
                file: file.to_string(),
                name: name.to_string(),
            });
        }
        Ok(ModulePath {
            name: name.to_string(),
            kind,
            compressed,
        })
    }
}
