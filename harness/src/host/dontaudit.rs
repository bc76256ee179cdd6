//! The policy's `dontaudit` rules switched off for a run and back on after it.
//!
//! A denial a `dontaudit` rule covers is not logged, so `avc: none` cannot see it. `semodule
//! -DB` rebuilds and reloads the policy without those rules (~35 s in the TCG guest), `semodule
//! -B` with them again. libsemanage marks the store built without them with a flag file,
//! `TYPE/active/disable_dontaudit`, which the host-state snapshot reads: a run that left the
//! rules off differs from the host before it.

use std::path::Path;

use crate::host::cleanup::{Cleanup, Undo};
use crate::host::config::{run, HostError};

/// Whether any policy store under `store` (libsemanage's, one directory per policy type) was
/// last built without its dontaudit rules.
pub fn disabled(store: &Path) -> bool {
    std::fs::read_dir(store).is_ok_and(|dirs| {
        dirs.flatten()
            .any(|d| d.path().join("active/disable_dontaudit").exists())
    })
}

/// Rebuild the policy without its dontaudit rules; the undo (`semodule -B`) is registered
/// first, so a rebuild that fails half-way is still undone.
pub fn disable(cleanup: &mut Cleanup) -> Result<(), HostError> {
    cleanup.push(Undo::EnableDontaudit);
    run("semodule", &["-DB"]).map(|_| ())
}

/// Rebuild the policy with its dontaudit rules.
pub fn enable() -> Result<(), HostError> {
    run("semodule", &["-B"]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_flag_says_whether_the_rules_are_off() {
        let t = tempfile::tempdir().unwrap();
        assert!(!disabled(t.path()));
        std::fs::create_dir_all(t.path().join("default/active")).unwrap();
        assert!(!disabled(t.path()));
        std::fs::write(t.path().join("default/active/disable_dontaudit"), "").unwrap();
        assert!(disabled(t.path()));
        assert!(!disabled(&t.path().join("nonexistent")));
    }
}
