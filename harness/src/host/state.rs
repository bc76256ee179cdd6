//! A comparable snapshot of everything a scenario may change on the target, so "the host after
//! a run equals the host before it" is a check with a readable diff, not a hope.
//!
//! What is captured and why:
//! - libvirt domains (all names, running or defined): scenarios define and start domains;
//! - the images root, walked without following symlinks: names, kinds, sizes, modes, owners, and
//!   the `security.selinux` and `trusted.libvirt.*` xattrs (libvirt's remembered owners: a
//!   leftover there makes the *next* run's relabel refuse or misbehave);
//! - `semodule -l`: the probe module must be gone unless it was there before;
//! - /sys/fs/selinux/booleans/*: current and pending value of every boolean;
//! - qemu.conf bytes (kept as text for a line diff).
//!
//! Plan for the VM (the lead wires it): `snapshot` before the first scenario, run each scenario,
//! `snapshot` again, and fail the suite on a non-empty `diff` (also once more after an
//! interrupted run plus `doctor`, which must bring the diff back to empty). Things that
//! legitimately change between the two snapshots (the audit log, libvirtd's pid) are not captured.
//! Something that cannot be read is recorded in `errors` and so shows in the diff too.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::host::layout::Layout;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostState {
    pub domains: Vec<String>,
    /// Keyed by path relative to the images root.
    pub images: BTreeMap<String, FileState>,
    pub modules: Vec<String>,
    /// Name -> the file's text, "current pending" (e.g. "1 1").
    pub booleans: BTreeMap<String, String>,
    /// None: the file does not exist.
    pub qemu_conf: Option<String>,
    pub errors: Vec<String>,
    /// The watched domain types ([`PERMISSIVE_WATCH`]) the loaded policy makes permissive.
    #[serde(default)]
    pub permissive: Vec<String>,
    /// The policy store's flag that the loaded policy was built without its `dontaudit` rules
    /// (`semodule -DB`; `semodule -B` builds them in again). Read with the modules.
    #[serde(default)]
    pub dontaudit_disabled: bool,
}

/// Domain types whose permissive bit the snapshot records: those a run's verdicts rest on. A
/// policy under test that made one permissive and was not removed shows in the proof even if
/// its module were somehow listed as before.
pub const PERMISSIVE_WATCH: [&str; 5] = [
    "svirt_t",
    "svirt_tcg_t",
    "virtd_t",
    "qemu_t",
    "unconfined_t",
];

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    pub kind: FileKind,
    pub size: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Only the names the harness and libvirt change; values as text without the trailing NUL.
    pub xattrs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    Symlink,
    Other,
}

/// The images tree is a handful of entries; a deeper tree is not ours and not worth walking.
const MAX_DEPTH: usize = 8;

/// The state of the host `paths` describes (no libvirt domains when `libvirt_uri` is None).
/// `modules`: also list the policy modules (`semodule -l`: slow inside the TCG guest, ~1 s, and
/// absent off SELinux).
pub fn snapshot(paths: &Layout, modules: bool) -> HostState {
    let mut s = HostState::default();
    if let Some(uri) = &paths.libvirt_uri {
        match crate::host::libvirt::Libvirt::connect(uri).and_then(|lv| lv.domain_names()) {
            Ok(names) => s.domains = names,
            Err(e) => s.errors.push(format!("libvirt domains: {}", e.message)),
        }
    }
    walk(&paths.images_root, &paths.images_root, 0, &mut s);
    if modules {
        // With priorities: a module under test overrides an installed one of the same name at
        // priority 400, which a list of names alone would not show.
        match crate::policy::install::installed_with_priority() {
            Ok(m) => {
                let mut m: Vec<String> = m.into_iter().map(|(p, n)| format!("{n}@{p}")).collect();
                m.sort();
                s.modules = m;
            }
            Err(e) => s.errors.push(format!("semodule --list-modules=full: {e}")),
        }
        for t in PERMISSIVE_WATCH {
            match crate::evidence::liveness::permissive_type(t) {
                Ok(true) => s.permissive.push(t.to_string()),
                Ok(false) => {}
                Err(e) => s.errors.push(e.to_string()),
            }
        }
    }
    if modules {
        s.dontaudit_disabled = crate::host::dontaudit::disabled(&paths.selinux_store);
    }
    read_booleans(&paths.booleans_dir, &mut s);
    match std::fs::read(&paths.qemu_conf) {
        Ok(b) => s.qemu_conf = Some(String::from_utf8_lossy(&b).into_owned()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => s.errors.push(format!("{}: {e}", paths.qemu_conf.display())),
    }
    s
}

impl HostState {
    /// This state without what is named after the runs with these markers
    /// (`selinux-harness-RUNID`): their domains, their sandbox directories and everything in
    /// them, and errors about those paths (a file another run removes while this walk reads it).
    /// For a run among concurrent ones: the others come and go, its own leftovers still show.
    pub fn without_runs(&self, markers: &[String]) -> HostState {
        let owned = |name: &str| {
            markers.iter().any(|m| {
                name.strip_prefix(m.as_str())
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with(['-', '/']))
            })
        };
        let in_text = |text: &str| {
            markers.iter().any(|m| {
                text.match_indices(m.as_str()).any(|(i, _)| {
                    text[i + m.len()..]
                        .chars()
                        .next()
                        .is_none_or(|c| !c.is_ascii_alphanumeric())
                })
            })
        };
        HostState {
            domains: self.domains.iter().filter(|d| !owned(d)).cloned().collect(),
            images: self
                .images
                .iter()
                .filter(|(path, _)| !owned(path))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            errors: self
                .errors
                .iter()
                .filter(|e| !in_text(e))
                .cloned()
                .collect(),
            ..self.clone()
        }
    }
}

fn tracked_xattr(name: &str) -> bool {
    name == "security.selinux" || name.starts_with("trusted.libvirt.")
}

fn xattrs_of(path: &Path, errors: &mut Vec<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let names = match crate::selinux_ops::list_xattrs(path) {
        Ok(n) => n,
        // Filesystems without xattr support have nothing to compare.
        Err(e) if e.raw_os_error() == Some(nix::libc::ENOTSUP) => return out,
        Err(e) => {
            errors.push(format!("xattrs of {}: {e}", path.display()));
            return out;
        }
    };
    for name in names.into_iter().filter(|n| tracked_xattr(n)) {
        match crate::selinux_ops::get_xattr(path, &name, false) {
            Ok(Some(v)) => {
                let text = String::from_utf8_lossy(&v);
                out.insert(name, text.trim_end_matches('\0').to_string());
            }
            Ok(None) => {}
            Err(e) => errors.push(format!("xattr {name} of {}: {e}", path.display())),
        }
    }
    out
}

fn walk(root: &Path, dir: &Path, depth: usize, s: &mut HostState) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && dir == root => return,
        Err(e) => {
            s.errors.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                s.errors.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        let path = entry.path();
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            // Gone between listing and stat: it is not part of the state either way.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                s.errors.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let ft = meta.file_type();
        let kind = if ft.is_symlink() {
            FileKind::Symlink
        } else if ft.is_dir() {
            FileKind::Dir
        } else if ft.is_file() {
            FileKind::File
        } else {
            FileKind::Other
        };
        let rel = path
            .strip_prefix(root)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| path.to_string_lossy().into_owned());
        let xattrs = xattrs_of(&path, &mut s.errors);
        s.images.insert(
            rel,
            FileState {
                kind,
                // A directory's size depends on the filesystem's bookkeeping, not on us.
                size: if kind == FileKind::Dir { 0 } else { meta.len() },
                mode: meta.mode(),
                uid: meta.uid(),
                gid: meta.gid(),
                xattrs,
            },
        );
        if kind == FileKind::Dir {
            if depth + 1 >= MAX_DEPTH {
                s.errors.push(format!(
                    "{}: deeper than {MAX_DEPTH} levels",
                    path.display()
                ));
            } else {
                walk(root, &path, depth + 1, s);
            }
        }
    }
}

fn read_booleans(dir: &Path, s: &mut HostState) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            s.errors.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        match std::fs::read_to_string(entry.path()) {
            Ok(v) => {
                s.booleans.insert(name, v.trim().to_string());
            }
            Err(e) => s.errors.push(format!("boolean {name}: {e}")),
        }
    }
}

fn set_diff(what: &str, a: &[String], b: &[String], out: &mut Vec<String>) {
    for x in a.iter().filter(|x| !b.contains(x)) {
        out.push(format!("- {what} {x}"));
    }
    for x in b.iter().filter(|x| !a.contains(x)) {
        out.push(format!("+ {what} {x}"));
    }
}

fn describe_file(f: &FileState) -> String {
    let mut s = format!(
        "{:?} {} bytes mode {:o} owner {}:{}",
        f.kind, f.size, f.mode, f.uid, f.gid
    );
    for (k, v) in &f.xattrs {
        s.push_str(&format!(" {k}={v}"));
    }
    s
}

/// Changes from `before` to `after`, one line each: `- ` gone, `+ ` new, `~ ` changed. Empty
/// when the states are equal.
pub fn diff(before: &HostState, after: &HostState) -> Vec<String> {
    let mut out = Vec::new();
    set_diff("domain", &before.domains, &after.domains, &mut out);
    for (path, a) in &before.images {
        match after.images.get(path) {
            None => out.push(format!("- image {path} ({})", describe_file(a))),
            Some(b) if a != b => {
                let mut parts = Vec::new();
                if a.kind != b.kind {
                    parts.push(format!("kind {:?} -> {:?}", a.kind, b.kind));
                }
                if a.size != b.size {
                    parts.push(format!("size {} -> {}", a.size, b.size));
                }
                if a.mode != b.mode {
                    parts.push(format!("mode {:o} -> {:o}", a.mode, b.mode));
                }
                if (a.uid, a.gid) != (b.uid, b.gid) {
                    parts.push(format!("owner {}:{} -> {}:{}", a.uid, a.gid, b.uid, b.gid));
                }
                let names: std::collections::BTreeSet<&String> =
                    a.xattrs.keys().chain(b.xattrs.keys()).collect();
                for n in names {
                    let (x, y) = (a.xattrs.get(n), b.xattrs.get(n));
                    if x != y {
                        let show =
                            |v: Option<&String>| v.map_or("(none)".to_string(), Clone::clone);
                        parts.push(format!("{n} {} -> {}", show(x), show(y)));
                    }
                }
                out.push(format!("~ image {path}: {}", parts.join(", ")));
            }
            Some(_) => {}
        }
    }
    for (path, b) in &after.images {
        if !before.images.contains_key(path) {
            out.push(format!("+ image {path} ({})", describe_file(b)));
        }
    }
    set_diff("module", &before.modules, &after.modules, &mut out);
    set_diff(
        "permissive type",
        &before.permissive,
        &after.permissive,
        &mut out,
    );
    if before.dontaudit_disabled != after.dontaudit_disabled {
        let state = |off: bool| if off { "off (semodule -D)" } else { "on" };
        out.push(format!(
            "~ dontaudit rules: {} -> {}",
            state(before.dontaudit_disabled),
            state(after.dontaudit_disabled)
        ));
    }
    for (name, a) in &before.booleans {
        match after.booleans.get(name) {
            None => out.push(format!("- boolean {name}")),
            Some(b) if a != b => out.push(format!("~ boolean {name}: {a} -> {b}")),
            Some(_) => {}
        }
    }
    for name in after.booleans.keys() {
        if !before.booleans.contains_key(name) {
            out.push(format!("+ boolean {name}"));
        }
    }
    match (&before.qemu_conf, &after.qemu_conf) {
        (Some(a), Some(b)) if a != b => {
            let (la, lb): (Vec<String>, Vec<String>) = (
                a.lines().map(str::to_string).collect(),
                b.lines().map(str::to_string).collect(),
            );
            let mut lines = Vec::new();
            set_diff("line", &la, &lb, &mut lines);
            if lines.is_empty() {
                // Same lines, other order or whitespace at line ends.
                lines.push("same lines, different bytes".to_string());
            }
            out.push(format!("~ qemu.conf: {}", lines.join("; ")));
        }
        (Some(_), None) => out.push("- qemu.conf".to_string()),
        (None, Some(_)) => out.push("+ qemu.conf".to_string()),
        _ => {}
    }
    set_diff("error", &before.errors, &after.errors, &mut out);
    out
}

/// What the comparison of two snapshots proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Proof {
    /// Both snapshots were read whole and are equal: cleanup put the host back.
    Equal,
    /// The host differs (one line per change, as `diff`).
    Differs(Vec<String>),
    /// Part of the host could not be read in one snapshot or both: equal snapshots would say
    /// nothing about that part (libvirt unreachable before and after hides every domain left
    /// behind), so there is no proof either way.
    Unreadable(Vec<String>),
}

/// Compare the state before a run with the state after its cleanup. A read error is never
/// part of an equality: the same error on both sides proves nothing about what it hides.
pub fn prove(before: &HostState, after: &HostState) -> Proof {
    let changes = diff(before, after);
    if !changes.is_empty() {
        return Proof::Differs(changes);
    }
    let mut unread: Vec<String> = before
        .errors
        .iter()
        .map(|e| format!("before the run: {e}"))
        .chain(after.errors.iter().map(|e| format!("after cleanup: {e}")))
        .collect();
    unread.dedup();
    if unread.is_empty() {
        Proof::Equal
    } else {
        Proof::Unreadable(unread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(label: &str) -> FileState {
        FileState {
            kind: FileKind::File,
            size: 16 << 20,
            mode: 0o100600,
            uid: 0,
            gid: 0,
            xattrs: [("security.selinux".to_string(), label.to_string())].into(),
        }
    }

    fn base() -> HostState {
        HostState {
            domains: vec!["admin-guest".into()],
            images: [(
                "guest.qcow2".to_string(),
                file("system_u:object_r:virt_image_t:s0"),
            )]
            .into(),
            modules: vec!["base".into(), "virt".into()],
            booleans: [("virt_use_execmem".to_string(), "1 1".to_string())].into(),
            qemu_conf: Some("namespaces = [ ]\n".into()),
            errors: vec![],
            permissive: vec![],
            dontaudit_disabled: false,
        }
    }

    #[test]
    fn dontaudit_rules_left_off_are_a_difference() {
        let mut after = base();
        after.dontaudit_disabled = true;
        assert_eq!(
            prove(&base(), &after),
            Proof::Differs(vec!["~ dontaudit rules: on -> off (semodule -D)".into()])
        );
        assert_eq!(prove(&after, &after.clone()), Proof::Equal);
    }

    #[test]
    fn the_same_read_error_on_both_sides_proves_nothing() {
        let mut unreachable = base();
        unreachable.domains.clear();
        unreachable.errors = vec!["libvirt domains: Failed to connect socket".into()];
        // The diff is empty: that is the trap.
        assert!(diff(&unreachable, &unreachable).is_empty());
        match prove(&unreachable, &unreachable) {
            Proof::Unreadable(why) => {
                assert_eq!(why.len(), 2, "{why:?}");
                assert!(
                    why[0].starts_with("before the run: libvirt domains"),
                    "{why:?}"
                );
                assert!(
                    why[1].starts_with("after cleanup: libvirt domains"),
                    "{why:?}"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(prove(&base(), &base()), Proof::Equal);
        let mut left = base();
        left.domains.push("selinux-harness-1-vm1".into());
        assert!(matches!(prove(&base(), &left), Proof::Differs(_)));
    }

    #[test]
    fn equal_states_have_no_diff() {
        assert!(diff(&base(), &base()).is_empty());
        // And survive a trip through JSON (the guest sends them to the host).
        let json = serde_json::to_string(&base()).unwrap();
        let back: HostState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, base());
    }

    /// A run's sandbox directory as the snapshot records it.
    fn sandbox_dir() -> FileState {
        FileState {
            kind: FileKind::Dir,
            size: 0,
            mode: 0o40755,
            uid: 0,
            gid: 0,
            xattrs: BTreeMap::new(),
        }
    }

    #[test]
    fn every_kind_of_leftover_shows() {
        let before = base();
        let mut after = base();
        after.domains.push("selinux-harness-1a-vm1".into());
        after
            .images
            .insert("selinux-harness-1a".into(), sandbox_dir());
        let img = after.images.get_mut("guest.qcow2").unwrap();
        img.xattrs.insert(
            "security.selinux".into(),
            "system_u:object_r:svirt_image_t:s0:c1,c2".into(),
        );
        img.xattrs
            .insert("trusted.libvirt.security.ref_selinux".into(), "1".into());
        after.modules.push("harness_probe".into());
        after.modules.push("virt@400".into());
        after.permissive.push("svirt_t".into());
        after
            .booleans
            .insert("virt_use_execmem".into(), "0 0".into());
        after.qemu_conf = Some("namespaces = [ ]\nremember_owner = 0\n".into());
        after.errors.push("semodule -l: failed".into());
        let d = diff(&before, &after);
        let want = [
            "+ domain selinux-harness-1a-vm1",
            "~ image guest.qcow2: security.selinux system_u:object_r:virt_image_t:s0 -> system_u:object_r:svirt_image_t:s0:c1,c2, trusted.libvirt.security.ref_selinux (none) -> 1",
            "+ image selinux-harness-1a (Dir 0 bytes mode 40755 owner 0:0)",
            "+ module harness_probe",
            "+ module virt@400",
            "+ permissive type svirt_t",
            "~ boolean virt_use_execmem: 1 1 -> 0 0",
            "~ qemu.conf: + line remember_owner = 0",
            "+ error semodule -l: failed",
        ];
        assert_eq!(d, want);
        // The other direction reads as removals.
        let back = diff(&after, &before);
        assert!(
            back.contains(&"- domain selinux-harness-1a-vm1".to_string()),
            "{back:?}"
        );
        assert!(
            back.contains(&"- module harness_probe".to_string()),
            "{back:?}"
        );
    }

    #[test]
    fn other_runs_are_left_out_and_this_runs_leftovers_stay() {
        let before = base();
        let mut after = base();
        // Run 1a is this run; 1a0 and 2b are others (1a0 shares 1a's first characters).
        for id in ["1a", "1a0", "2b"] {
            after.domains.push(format!("selinux-harness-{id}-vm1"));
            after
                .images
                .insert(format!("selinux-harness-{id}"), sandbox_dir());
            after.images.insert(
                format!("selinux-harness-{id}/vm1.img"),
                file("system_u:object_r:virt_image_t:s0"),
            );
        }
        after.errors.push(
            "xattrs of /var/lib/libvirt/images/selinux-harness-2b/vm1.img: No such file or directory"
                .into(),
        );
        let others = [
            "selinux-harness-1a0".to_string(),
            "selinux-harness-2b".to_string(),
        ];
        let d = diff(&before.without_runs(&others), &after.without_runs(&others));
        assert_eq!(
            d,
            [
                "+ domain selinux-harness-1a-vm1",
                "+ image selinux-harness-1a (Dir 0 bytes mode 40755 owner 0:0)",
                "+ image selinux-harness-1a/vm1.img (File 16777216 bytes mode 100600 owner 0:0 security.selinux=system_u:object_r:virt_image_t:s0)",
            ]
        );
        // Whatever is not named after a run is never left out.
        let mut shared = base();
        shared.modules.push("harness_probe".into());
        shared.images.get_mut("guest.qcow2").unwrap().size = 1;
        assert_eq!(
            diff(&base().without_runs(&others), &shared.without_runs(&others)).len(),
            2
        );
    }

    #[test]
    fn qemu_conf_reordered_is_still_a_change() {
        let mut a = base();
        let mut b = base();
        a.qemu_conf = Some("a = 1\nb = 2\n".into());
        b.qemu_conf = Some("b = 2\na = 1\n".into());
        assert_eq!(diff(&a, &b), ["~ qemu.conf: same lines, different bytes"]);
        b.qemu_conf = None;
        assert_eq!(diff(&a, &b), ["- qemu.conf"]);
    }

    #[test]
    fn snapshot_of_a_temp_tree() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("images");
        std::fs::create_dir_all(root.join("selinux-harness-1")).unwrap();
        std::fs::write(root.join("selinux-harness-1/vm1.img"), vec![0u8; 4096]).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link")).unwrap();
        let bools = t.path().join("booleans");
        std::fs::create_dir(&bools).unwrap();
        std::fs::write(bools.join("virt_use_execmem"), "1 1").unwrap();
        let paths = Layout {
            libvirt_uri: None,
            images_root: root.clone(),
            booleans_dir: bools,
            qemu_conf: t.path().join("qemu.conf"),
            ..Layout::default()
        };
        let before = snapshot(&paths, false);
        assert!(before.errors.is_empty(), "{:?}", before.errors);
        assert_eq!(before.images["selinux-harness-1/vm1.img"].size, 4096);
        // The symlink is recorded, not followed into /etc.
        assert_eq!(before.images["link"].kind, FileKind::Symlink);
        assert!(!before.images.keys().any(|k| k.starts_with("link/")));
        assert_eq!(before.booleans["virt_use_execmem"], "1 1");
        assert_eq!(before.qemu_conf, None);
        std::fs::remove_dir_all(root.join("selinux-harness-1")).unwrap();
        let after = snapshot(&paths, false);
        let d = diff(&before, &after);
        assert_eq!(d.len(), 2, "{d:?}");
        // Modes and owners depend on the umask and user running the test.
        assert!(
            d[0].starts_with("- image selinux-harness-1 (Dir 0 bytes"),
            "{d:?}"
        );
        assert!(
            d[1].starts_with("- image selinux-harness-1/vm1.img (File 4096 bytes"),
            "{d:?}"
        );
    }

    #[test]
    fn domains_through_the_test_driver() {
        let Ok(lv) = crate::host::libvirt::Libvirt::connect("test:///default") else {
            eprintln!("libvirt test driver unavailable; skipped");
            return;
        };
        let t = tempfile::tempdir().unwrap();
        let paths = Layout {
            libvirt_uri: Some("test:///default".into()),
            images_root: t.path().join("none"),
            booleans_dir: t.path().join("none"),
            qemu_conf: t.path().join("none"),
            ..Layout::default()
        };
        let s = snapshot(&paths, false);
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        assert!(s.domains.contains(&"test".to_string()), "{:?}", s.domains);
        lv.close().unwrap();
    }
}
