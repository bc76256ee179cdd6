//! The executor's side of the bookkeeping language: the actions that plant or remove a
//! remembered-owner record and restart libvirt's daemon, finding a guest's runtime directory,
//! and reading the files and processes a step's bookkeeping expectations name.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::evidence::{file_state, Evidence, Outcome};
use crate::host::cleanup::{Cleanup, Undo};
use crate::host::libvirt::Libvirt;
use crate::run::plan::Plan;
use crate::scenario::{FileRef, Name, RuntimePlace, XattrName};
use crate::selinux_ops;

/// Where the QEMU driver makes each running guest's private directory, domain-ID-SHORTNAME.
pub const QEMU_LIB_DIR: &str = "/var/lib/libvirt/qemu";

fn failed(message: String) -> Outcome {
    Outcome::Other { message }
}

/// Set `name` on a sandbox image; the previous value (or its absence) comes back on cleanup.
pub fn set_xattr(path: &Path, name: &XattrName, value: &str, cleanup: &mut Cleanup) -> Outcome {
    let full = name.full();
    let old = match selinux_ops::get_xattr(path, &full, false) {
        Ok(v) => v,
        Err(e) => return failed(format!("read {full} of {}: {e}", path.display())),
    };
    cleanup.push(Undo::RestoreXattr {
        path: path.to_path_buf(),
        name: full.clone(),
        value: old,
    });
    // libvirt writes its values with a trailing NUL (virFileSetXAttr of a C string).
    let mut bytes = value.as_bytes().to_vec();
    bytes.push(0);
    match selinux_ops::set_xattr(path, &full, &bytes) {
        Ok(()) => Outcome::Ok,
        Err(e) => failed(format!("setxattr {full} on {}: {e}", path.display())),
    }
}

/// Remove `name` from a sandbox image; put back on cleanup. Removing what is not there fails
/// (ENODATA): a scenario that plants nothing should hear so.
pub fn rm_xattr(path: &Path, name: &XattrName, cleanup: &mut Cleanup) -> Outcome {
    let full = name.full();
    let old = match selinux_ops::get_xattr(path, &full, false) {
        Ok(Some(v)) => v,
        Ok(None) => {
            return Outcome::Errno {
                errno: "ENODATA".into(),
            }
        }
        Err(e) => return failed(format!("read {full} of {}: {e}", path.display())),
    };
    cleanup.push(Undo::RestoreXattr {
        path: path.to_path_buf(),
        name: full.clone(),
        value: Some(old),
    });
    match selinux_ops::remove_xattr(path, &full) {
        Ok(()) => Outcome::Ok,
        Err(e) => failed(format!("removexattr {full} on {}: {e}", path.display())),
    }
}

/// Restart the daemon serving `uri` (libvirtd, or virtqemud on a modular systemd host; in the
/// harness VM through its init, as at boot) and connect again: the new connection, or how the
/// restart failed. Nothing to undo: the daemon runs as before, with the same configuration.
pub fn restart_daemon(uri: &str) -> (Outcome, Option<Libvirt>) {
    if let Err(e) = crate::host::config::restart_libvirtd() {
        return (failed(format!("restart: {e}")), None);
    }
    match crate::host::cleanup::connect_patiently(uri) {
        Ok(lv) => (Outcome::Ok, Some(lv)),
        Err(e) => (failed(e.to_string()), None),
    }
}

/// The `id` of a running domain's live XML.
pub fn domain_id(live_xml: &str) -> Option<u32> {
    let doc = roxmltree::Document::parse(live_xml).ok()?;
    doc.root_element().attribute("id")?.parse().ok()
}

/// The runtime directory of the domain with this id: `domain-ID-…` under `root` (libvirt
/// shortens the name, so the id is what identifies it).
pub fn libdir(root: &Path, id: u32) -> Option<PathBuf> {
    let prefix = format!("domain-{id}-");
    std::fs::read_dir(root)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
}

/// A file reference that stands for no host path yet.
#[derive(Debug, thiserror::Error)]
pub enum Unresolved {
    #[error("{domain} was never seen running with a runtime directory under {QEMU_LIB_DIR}")]
    Libdir { domain: Name },
    #[error("{domain} was never seen running with its {}", place.as_str())]
    Runtime { domain: Name, place: RuntimePlace },
}

/// The runtime paths of the run's domains, as last seen while each ran (kept after it stops, so
/// `absent:` can ask about them).
#[derive(Debug, Default)]
pub struct Found {
    pub libdirs: BTreeMap<Name, PathBuf>,
    pub places: BTreeMap<(Name, RuntimePlace), PathBuf>,
}

/// The host path a file reference stands for, or why it has none yet.
pub fn resolve(f: &FileRef, plan: &Plan, found: &Found) -> Result<PathBuf, Unresolved> {
    let (dir, rel) = match f {
        FileRef::Image(n) => return Ok(plan.file_path(n).to_path_buf()),
        FileRef::Libdir { domain, rel } => (
            found
                .libdirs
                .get(domain)
                .ok_or_else(|| Unresolved::Libdir {
                    domain: domain.clone(),
                })?,
            rel,
        ),
        FileRef::Runtime { domain, place, rel } => (
            found
                .places
                .get(&(domain.clone(), *place))
                .ok_or_else(|| Unresolved::Runtime {
                    domain: domain.clone(),
                    place: *place,
                })?,
            rel,
        ),
    };
    Ok(match rel {
        Some(r) => dir.join(r),
        None => dir.clone(),
    })
}

/// `FileState` evidence for each named file.
pub fn file_states(files: &[&FileRef], plan: &Plan, found: &Found) -> Vec<Evidence> {
    files
        .iter()
        .map(|f| {
            let file = f.to_string();
            match resolve(f, plan, found) {
                Err(why) => Evidence::FileState {
                    file,
                    path: None,
                    facts: None,
                    why: Some(why.to_string()),
                },
                Ok(path) => {
                    let shown = Some(path.display().to_string());
                    match file_state::read(&path) {
                        Ok(facts) => Evidence::FileState {
                            file,
                            path: shown,
                            facts,
                            why: None,
                        },
                        Err(why) => Evidence::FileState {
                            file,
                            path: None,
                            facts: None,
                            why: Some(why.to_string()),
                        },
                    }
                }
            }
        })
        .collect()
}

/// `ProcessOwner` evidence for each named domain that has a QEMU process.
pub fn process_owners(domains: &[&Name], plan: &Plan) -> Vec<Evidence> {
    domains
        .iter()
        .filter_map(|d| {
            let pid = crate::host::libvirt::qemu_pid(plan.domain_name(d))?;
            let ids = file_state::process_ids(pid).ok()?;
            Some(Evidence::ProcessOwner {
                domain: d.to_string(),
                pid,
                ids,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runtime_dir_is_found_by_the_domain_id() {
        let xml = "<domain type='qemu' id='7'><name>selinux-harness-abc-vm1</name></domain>";
        assert_eq!(domain_id(xml), Some(7));
        assert_eq!(
            domain_id("<domain type='qemu'><name>x</name></domain>"),
            None
        );
        let root = tempfile::tempdir().unwrap();
        for d in ["domain-17-selinux-harness-a", "domain-7-selinux-harness-a"] {
            std::fs::create_dir(root.path().join(d)).unwrap();
        }
        assert_eq!(
            libdir(root.path(), 7),
            Some(root.path().join("domain-7-selinux-harness-a"))
        );
        assert_eq!(libdir(root.path(), 1), None);
    }

    #[test]
    fn planted_xattrs_are_put_back_by_cleanup() {
        let Ok(dir) = tempfile::tempdir_in("/dev/shm").or_else(|_| tempfile::tempdir()) else {
            return;
        };
        let f = dir.path().join("img");
        std::fs::write(&f, b"").unwrap();
        let name: XattrName = "ref_selinux".parse().unwrap();
        let mut cleanup = Cleanup::new();
        // trusted.* needs CAP_SYS_ADMIN: without it the action must fail and say why.
        match set_xattr(&f, &name, "1", &mut cleanup) {
            Outcome::Ok => {
                assert_eq!(
                    selinux_ops::get_xattr(&f, &name.full(), false).unwrap(),
                    Some(b"1\0".to_vec())
                );
                assert_eq!(rm_xattr(&f, &name, &mut cleanup), Outcome::Ok);
                assert_eq!(
                    rm_xattr(&f, &name, &mut cleanup),
                    Outcome::Errno {
                        errno: "ENODATA".into()
                    }
                );
                let undone = cleanup.run();
                assert!(undone.iter().all(|u| u.succeeded()), "{undone:?}");
                assert_eq!(
                    selinux_ops::get_xattr(&f, &name.full(), false).unwrap(),
                    None
                );
            }
            Outcome::Other { message } => assert!(message.contains("setxattr"), "{message}"),
            other => panic!("{other:?}"),
        }
    }
}
