//! Where libvirt keeps what a running guest's devices need outside the sandbox (swtpm's state
//! and log, the file-backed RAM's directory) and which process is the guest's swtpm: found from
//! the guest's live XML and the host, only ever read; and a domain's helper processes
//! (virtiofsd) by their executable's name.

use std::path::{Path, PathBuf};

use crate::scenario::RuntimePlace;

/// libvirt's swtpm state root (qemu_conf.c swtpmStorageDir): one directory per domain UUID.
pub const SWTPM_STORAGE_DIR: &str = "/var/lib/libvirt/swtpm";
pub use crate::host::layout::SWTPM_LOG_DIR;
/// libvirt's QEMU state directory (qemu_conf.c stateDir): pid files of guests and helpers.
pub const QEMU_STATE_DIR: &str = crate::host::layout::QEMU_PID_DIR;
/// qemu.conf's `memory_backing_dir` when a run does not set it.
pub const MEMORY_BACKING_DIR: &str = "/var/lib/libvirt/qemu/ram";

/// What a defined domain is to libvirt: enough to find its device paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveDomain {
    /// None while it does not run.
    pub id: Option<u32>,
    pub uuid: String,
}

/// The id (if it runs) and UUID of a domain's XML.
pub fn live_domain(xml: &str) -> Option<LiveDomain> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let root = doc.root_element();
    let id = root.attribute("id").and_then(|i| i.parse().ok());
    let uuid = root
        .children()
        .find(|n| n.has_tag_name("uuid"))?
        .text()?
        .trim()
        .to_string();
    // A UUID is hex and dashes: nothing in it can leave the swtpm root.
    if uuid.is_empty() || !uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return None;
    }
    Some(LiveDomain { id, uuid })
}

/// The run's `memory_backing_dir`: qemu.conf's value as the plan writes it (a quoted string),
/// or libvirt's default.
pub fn memory_backing_dir(qemu_conf: &[(String, String)]) -> PathBuf {
    qemu_conf
        .iter()
        .rev()
        .find(|(k, _)| k == "memory_backing_dir")
        .map(|(_, v)| PathBuf::from(v.trim().trim_matches('"')))
        .unwrap_or_else(|| MEMORY_BACKING_DIR.into())
}

/// The first entry of `dir` named `ID-…` (libvirt's short name of the domain).
fn by_id(dir: &Path, id: u32) -> Option<PathBuf> {
    let prefix = format!("{id}-");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
}

/// The first entry of `dir` named `ID-…SUFFIX`.
fn by_id_ending(dir: &Path, id: u32, suffix: &str) -> Option<PathBuf> {
    let prefix = format!("{id}-");
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .find(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.starts_with(&prefix) && n.ends_with(suffix)
        })
        .map(|e| e.path())
}

/// Where `place` is for this running domain, if it exists now. The RAM directory is
/// `memory_backing_dir/ID-NAME` (libvirt 6 and later) or, in older releases,
/// `memory_backing_dir/libvirt/qemu/ID-NAME`.
pub fn find(
    place: RuntimePlace,
    live: &LiveDomain,
    libvirt_name: &str,
    memory_backing_dir: &Path,
) -> Option<PathBuf> {
    let p = match place {
        RuntimePlace::Swtpmdir => Path::new(SWTPM_STORAGE_DIR).join(&live.uuid),
        RuntimePlace::Swtpmlog => {
            Path::new(SWTPM_LOG_DIR).join(format!("{libvirt_name}-swtpm.log"))
        }
        RuntimePlace::Fspid => {
            // ID-NAME-fs0-fs.pid, NAME cut to 20 characters (virDomainDefGetShortName).
            by_id_ending(Path::new(QEMU_STATE_DIR), live.id?, "-fs0-fs.pid")?
        }
        RuntimePlace::Ramdir => {
            let id = live.id?;
            by_id(memory_backing_dir, id)
                .or_else(|| by_id(&memory_backing_dir.join("libvirt/qemu"), id))?
        }
    };
    std::fs::symlink_metadata(&p).is_ok().then_some(p)
}

/// The swtpm process serving the domain with this UUID: a process named swtpm whose command
/// line names the domain's state directory (libvirt passes `--tpmstate dir=…/UUID/tpm2`).
pub fn swtpm_pid(proc_root: &Path, uuid: &str) -> Option<u32> {
    let needle = format!("{SWTPM_STORAGE_DIR}/{uuid}/");
    std::fs::read_dir(proc_root)
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            let dir = proc_root.join(pid.to_string());
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            comm.trim_end() == "swtpm"
                && String::from_utf8_lossy(&cmdline)
                    .split('\0')
                    .any(|arg| arg.contains(&needle))
        })
}

/// The processes named `comm` (the kernel's name of their executable) whose command line
/// has an argument containing one of `needles` (a domain's UUID, the path of one of its
/// virtiofs exports): a domain's helpers, however they were daemonized. Sorted by pid.
pub fn helper_pids(proc_root: &Path, comm: &str, needles: &[String]) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir(proc_root) else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let dir = proc_root.join(pid.to_string());
            let c = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
            c.trim_end() == comm
                && String::from_utf8_lossy(&cmdline)
                    .split('\0')
                    .any(|arg| needles.iter().any(|n| !n.is_empty() && arg.contains(n)))
        })
        .collect();
    pids.sort_unstable();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_are_found_by_name_and_by_what_their_command_line_names() {
        let proc_root = tempfile::tempdir().unwrap();
        let fake = |pid: &str, comm: &str, args: &[&str]| {
            let d = proc_root.path().join(pid);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(d.join("cmdline"), args.join("\0")).unwrap();
        };
        let export = "/var/lib/libvirt/images/selinux-harness-r1/share".to_string();
        let src = format!("source={export},cache=auto");
        fake("50", "virtiofsd", &["virtiofsd", "--fd=3", "-o", &src]);
        fake("9", "virtiofsd", &["virtiofsd", "--fd=3", "-o", &src]);
        fake("51", "qemu-system-x86", &["qemu", &src]);
        fake("52", "virtiofsd", &["virtiofsd", "-o", "source=/srv/other"]);
        let needles = [export, String::new()];
        assert_eq!(
            helper_pids(proc_root.path(), "virtiofsd", &needles),
            [9, 50]
        );
        assert!(helper_pids(proc_root.path(), "swtpm", &needles).is_empty());
        // An empty needle names nothing (it would match every argument).
        assert!(helper_pids(proc_root.path(), "virtiofsd", &[String::new()]).is_empty());
    }

    const XML: &str = "<domain type='qemu' id='12'><name>selinux-harness-r1-vm1</name>\
        <uuid>0b5b3c2e-4b7a-4e1f-9a57-3e2f1c0d9e8a</uuid></domain>";

    #[test]
    fn the_live_xml_gives_id_and_uuid() {
        assert_eq!(
            live_domain(XML),
            Some(LiveDomain {
                id: Some(12),
                uuid: "0b5b3c2e-4b7a-4e1f-9a57-3e2f1c0d9e8a".into()
            })
        );
        // An inactive domain has no id but its UUID; one that could be a path is refused.
        assert_eq!(
            live_domain("<domain><uuid>ab</uuid></domain>"),
            Some(LiveDomain {
                id: None,
                uuid: "ab".into()
            })
        );
        assert_eq!(live_domain("<domain><name>x</name></domain>"), None);
        assert_eq!(
            live_domain("<domain id='1'><uuid>../../etc</uuid></domain>"),
            None
        );
    }

    #[test]
    fn memory_backing_dir_is_the_runs_or_libvirts() {
        assert_eq!(memory_backing_dir(&[]), PathBuf::from(MEMORY_BACKING_DIR));
        let conf = [
            ("remember_owner".to_string(), "0".to_string()),
            (
                "memory_backing_dir".to_string(),
                "\"/var/lib/libvirt/images/selinux-harness-r1/ram\"".to_string(),
            ),
        ];
        assert_eq!(
            memory_backing_dir(&conf),
            PathBuf::from("/var/lib/libvirt/images/selinux-harness-r1/ram")
        );
    }

    #[test]
    fn virtiofsds_pid_file_is_found_by_id_and_alias() {
        let root = tempfile::tempdir().unwrap();
        let f = |n: &str| std::fs::write(root.path().join(n), "1").unwrap();
        f("12-selinux-harness-r1.pid");
        f("112-selinux-harness-r1-fs0-fs.pid");
        f("12-selinux-harness-r1-fs1-fs.pid");
        assert_eq!(by_id_ending(root.path(), 12, "-fs0-fs.pid"), None);
        f("12-selinux-harness-r1-fs0-fs.pid");
        assert_eq!(
            by_id_ending(root.path(), 12, "-fs0-fs.pid"),
            Some(root.path().join("12-selinux-harness-r1-fs0-fs.pid"))
        );
    }

    #[test]
    fn the_ram_dir_is_found_by_id_in_either_layout() {
        let root = tempfile::tempdir().unwrap();
        let live = live_domain(XML).unwrap();
        assert_eq!(find(RuntimePlace::Ramdir, &live, "x", root.path()), None);
        let old = root.path().join("libvirt/qemu/12-selinux-harness-r1");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::create_dir(root.path().join("112-other")).unwrap();
        assert_eq!(
            find(RuntimePlace::Ramdir, &live, "x", root.path()),
            Some(old)
        );
        let new = root.path().join("12-selinux-harness-r1");
        std::fs::create_dir(&new).unwrap();
        assert_eq!(
            find(RuntimePlace::Ramdir, &live, "x", root.path()),
            Some(new)
        );
    }

    #[test]
    fn swtpm_is_the_process_naming_the_domains_state() {
        let proc_root = tempfile::tempdir().unwrap();
        let uuid = "0b5b3c2e-4b7a-4e1f-9a57-3e2f1c0d9e8a";
        let fake = |pid: &str, comm: &str, args: &[&str]| {
            let d = proc_root.path().join(pid);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(d.join("cmdline"), args.join("\0")).unwrap();
        };
        let state = format!("dir={SWTPM_STORAGE_DIR}/{uuid}/tpm2,mode=0600");
        fake("40", "qemu-system-x86", &["qemu", &state]);
        fake(
            "41",
            "swtpm",
            &[
                "swtpm",
                "socket",
                "--tpmstate",
                "dir=/var/lib/libvirt/swtpm/other/tpm2",
            ],
        );
        assert_eq!(swtpm_pid(proc_root.path(), uuid), None);
        fake("42", "swtpm", &["swtpm", "socket", "--tpmstate", &state]);
        std::fs::create_dir(proc_root.path().join("self")).unwrap();
        assert_eq!(swtpm_pid(proc_root.path(), uuid), Some(42));
    }
}
