//! The kernel's policy, read and parsed once for a run and again only when the kernel's changed
//! (a policy module or a boolean set mid-run): the binary policy is megabytes, and reading and
//! parsing it for every step that has something to explain was most of the oracle's time.
//!
//! What tells a change is the kernel's policy seqno on the SELinux status page, which every
//! policy load and every boolean commit bumps; where the page cannot be read, the policy's own
//! size and hash (read, but not parsed again).

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use super::{Policy, KERNEL_POLICY};
use crate::error::IoError;

/// The SELinux status page (`struct selinux_kernel_status`).
pub const KERNEL_STATUS: &str = "/sys/fs/selinux/status";

/// Which policy the kernel runs, as far as can be told without parsing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Generation {
    /// The status page's `policyload` seqno.
    Seqno(u32),
    /// No status page: the policy file's size and a hash of its bytes.
    Contents { size: u64, hash: u64 },
}

impl Generation {
    fn of_contents(bytes: &[u8]) -> Self {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut h);
        Generation::Contents {
            size: bytes.len() as u64,
            hash: h.finish(),
        }
    }
}

/// Whether the policy held (parsed when the kernel's was at `held`, still `as_loaded` or with a
/// boolean it could not put back) must be parsed again, the kernel's now being at `now`.
pub fn must_reload(held: Option<Generation>, as_loaded: bool, now: Generation) -> bool {
    match held {
        Some(h) => !as_loaded || h != now,
        None => true,
    }
}

/// The policy seqno of a status page as read(2) gives it: `version`, `sequence`, `enforcing`,
/// `policyload`, `deny_unknown`, native-endian u32 each. None while the kernel is writing the
/// page (an odd `sequence`) or when it is too short.
pub fn seqno_of(page: &[u8]) -> Option<u32> {
    let word = |i: usize| -> Option<u32> {
        Some(u32::from_ne_bytes(
            page.get(i * 4..i * 4 + 4)?.try_into().ok()?,
        ))
    };
    let sequence = word(1)?;
    (sequence % 2 == 0).then_some(())?;
    word(3)
}

/// Why the kernel's policy could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] IoError),
    #[error(transparent)]
    Parse(#[from] super::sepol::SepolError),
}

/// The kernel's policy for one run: parsed on the first question, kept while the kernel's seqno
/// (or the policy's contents) stays the same.
pub struct KernelPolicy {
    status: PathBuf,
    policy: PathBuf,
    held: Option<(Generation, Policy)>,
}

impl Default for KernelPolicy {
    fn default() -> Self {
        Self::at(Path::new(KERNEL_STATUS), Path::new(KERNEL_POLICY))
    }
}

impl KernelPolicy {
    /// The policy at `policy`, its seqno on the status page at `status`.
    pub fn at(status: &Path, policy: &Path) -> Self {
        Self {
            status: status.to_path_buf(),
            policy: policy.to_path_buf(),
            held: None,
        }
    }

    /// The policy the kernel runs now, parsed again only when it changed since the last call.
    pub fn get(&mut self) -> Result<&Policy, LoadError> {
        // The generation is read before the policy: a load in between makes the next call
        // parse again, never keeps an old policy under a new seqno.
        let (now, bytes) = match self.seqno() {
            Some(seqno) => (Generation::Seqno(seqno), None),
            None => {
                let bytes = self.read_policy()?;
                (Generation::of_contents(&bytes), Some(bytes))
            }
        };
        let kept = match self.held.take() {
            Some((g, p)) if !must_reload(Some(g), p.is_as_loaded(), now) => (g, p),
            old => {
                // Gone before the new one is parsed: two policies are never in memory at once.
                drop(old);
                let bytes = match bytes {
                    Some(b) => b,
                    None => self.read_policy()?,
                };
                (now, Policy::load(&bytes)?)
            }
        };
        Ok(&self.held.insert(kept).1)
    }

    /// The status page's seqno; None when there is no readable page (then the contents tell).
    fn seqno(&self) -> Option<u32> {
        // The kernel writes the page between two bumps of `sequence`; a read that met one is
        // read again.
        (0..8).find_map(|_| seqno_of(&std::fs::read(&self.status).ok()?))
    }

    fn read_policy(&self) -> Result<Vec<u8>, LoadError> {
        Ok(std::fs::read(&self.policy).map_err(IoError::at("cannot read", &self.policy))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oracle::{
        dom_reads_other, sepol::compile_cil, test_policy_with_module, TEST_POLICY,
    };

    const SEQ: Generation = Generation::Seqno(7);

    #[test]
    fn the_same_seqno_keeps_the_policy() {
        assert!(!must_reload(Some(SEQ), true, SEQ));
    }

    #[test]
    fn a_new_seqno_nothing_held_or_an_altered_copy_reloads() {
        assert!(must_reload(Some(SEQ), true, Generation::Seqno(8)));
        assert!(must_reload(None, true, SEQ));
        assert!(must_reload(Some(SEQ), false, SEQ));
    }

    #[test]
    fn contents_tell_a_change_by_size_or_hash_and_never_equal_a_seqno() {
        let a = Generation::of_contents(b"policy a");
        let b = Generation::of_contents(b"policy b");
        assert!(!must_reload(
            Some(a),
            true,
            Generation::of_contents(b"policy a")
        ));
        assert!(must_reload(Some(a), true, b));
        assert!(must_reload(Some(a), true, SEQ));
        assert!(must_reload(Some(SEQ), true, a));
    }

    fn page(sequence: u32, policyload: u32) -> Vec<u8> {
        [1, sequence, 1, policyload, 0]
            .iter()
            .flat_map(|w: &u32| w.to_ne_bytes())
            .collect()
    }

    #[test]
    fn the_status_page_gives_policyload_unless_mid_update() {
        assert_eq!(seqno_of(&page(4, 12)), Some(12));
        assert_eq!(seqno_of(&page(5, 12)), None);
        assert_eq!(seqno_of(&page(4, 12)[..12]), None);
    }

    fn reads_other(k: &mut KernelPolicy) -> bool {
        dom_reads_other(k.get().unwrap())
    }

    #[test]
    fn a_policy_loaded_mid_run_is_seen_through_the_seqno_or_the_contents() {
        let dir = tempfile::tempdir().unwrap();
        let (status, policy) = (dir.path().join("status"), dir.path().join("policy"));
        let base = compile_cil(TEST_POLICY).unwrap();
        let module = compile_cil(&test_policy_with_module()).unwrap();
        std::fs::write(&status, page(2, 1)).unwrap();
        std::fs::write(&policy, &base).unwrap();
        let mut k = KernelPolicy::at(&status, &policy);
        assert!(!reads_other(&mut k));
        // The file changes but the seqno does not: the parsed policy is kept (never reread).
        std::fs::write(&policy, &module).unwrap();
        assert!(!reads_other(&mut k));
        // The kernel's seqno moves, as a module load moves it.
        std::fs::write(&status, page(2, 2)).unwrap();
        assert!(reads_other(&mut k));
        // No status page: the contents tell.
        std::fs::remove_file(&status).unwrap();
        std::fs::write(&policy, &base).unwrap();
        assert!(!reads_other(&mut k));
        std::fs::write(&policy, &module).unwrap();
        assert!(reads_other(&mut k));
    }

    #[test]
    fn no_policy_says_which_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut k = KernelPolicy::at(&dir.path().join("status"), &dir.path().join("policy"));
        let e = k.get().err().unwrap().to_string();
        assert!(
            e.starts_with(&format!(
                "cannot read {}",
                dir.path().join("policy").display()
            )),
            "{e}"
        );
    }
}
