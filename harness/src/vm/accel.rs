//! Which accelerators a start tries, in order. KVM only when a probe shows that this QEMU runs
//! a guest with it here; the probe costs a QEMU launch (up to 0.4 s), so its answer is kept in
//! the harness cache per QEMU binary, machine type and kernel, and a warm start skips it.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::options::AccelChoice;
use super::qemu::{self, Accel, KvmProbe, NoKvm};

/// The accelerators to try for `choice`, best first, with a note when KVM is left out.
/// `usable_kvm` is only asked for [`AccelChoice::Auto`].
pub(super) fn candidates(
    choice: AccelChoice,
    usable_kvm: impl FnOnce() -> Result<(), NoKvm>,
    notes: &mut Vec<String>,
) -> Vec<Accel> {
    match choice {
        AccelChoice::Tcg => vec![Accel::Tcg],
        AccelChoice::Kvm => vec![Accel::Kvm],
        AccelChoice::Auto => match usable_kvm() {
            Ok(()) => vec![Accel::Kvm, Accel::Tcg],
            Err(why) => {
                notes.push(format!("kvm not used: {why}"));
                vec![Accel::Tcg]
            }
        },
    }
}

/// The KVM probe's answers, one file per (QEMU binary, machine, kernel) under
/// `<cache>/selinux-harness/kvm-probe/`.
#[derive(Debug, Clone)]
pub(super) struct ProbeCache {
    /// None: no cache to keep answers in (every start probes).
    dir: Option<PathBuf>,
}

impl ProbeCache {
    pub(super) fn in_cache_root(root: Option<&Path>) -> Self {
        Self {
            dir: root.map(|r| r.join("kvm-probe")),
        }
    }

    /// Whether KVM is usable with `qemu` for `machine`: /dev/kvm is checked every time (cheap,
    /// and permissions change), the QEMU launch only when no answer is cached for this binary,
    /// machine and kernel. A probe that could not be made is not cached.
    pub(super) fn usable_kvm(&self, qemu: &Path, machine: &str) -> Result<(), NoKvm> {
        qemu::open_kvm()?;
        let key = probe_key(qemu, machine, &kernel_release());
        let file = key.as_deref().and_then(|k| self.file_for(k));
        if let (Some(key), Some(file)) = (&key, &file) {
            if let Some(answer) = read_answer(file, key) {
                return match answer {
                    KvmProbe::Runs => Ok(()),
                    KvmProbe::Exits(why) => Err(NoKvm::CachedExits {
                        why,
                        file: file.clone(),
                    }),
                };
            }
        }
        let answer = qemu::probe_kvm(qemu, machine)?;
        if let (Some(key), Some(file)) = (&key, &file) {
            // A cache that cannot be written costs the next start a probe, nothing more.
            let _ = write_answer(file, key, &answer);
        }
        match answer {
            KvmProbe::Runs => Ok(()),
            KvmProbe::Exits(why) => Err(NoKvm::Exits(why)),
        }
    }

    /// Drops a cached "KVM runs" after a KVM boot failed, so the next start probes again.
    pub(super) fn forget(&self, qemu: &Path, machine: &str) {
        if let Some(file) =
            probe_key(qemu, machine, &kernel_release()).and_then(|key| self.file_for(&key))
        {
            let _ = fs::remove_file(file);
        }
    }

    fn file_for(&self, key: &str) -> Option<PathBuf> {
        let digest = Sha256::digest(key.as_bytes());
        let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Some(self.dir.as_ref()?.join(name))
    }
}

/// What the probe's answer depends on: the QEMU binary (path, size, modification time - an
/// upgrade replaces it), the machine type, the kernel (`uname -r`) and the kvm module's
/// `ignore_msrs` (the usual cure for the MSR abort). None when QEMU cannot be looked at.
fn probe_key(qemu: &Path, machine: &str, kernel: &str) -> Option<String> {
    let m = fs::metadata(qemu).ok()?;
    let ignore_msrs = fs::read_to_string("/sys/module/kvm/parameters/ignore_msrs")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    Some(format!(
        "qemu={} size={} mtime={}.{:09} machine={machine} kernel={kernel} ignore_msrs={ignore_msrs}",
        qemu.display(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

/// `uname -r` of the outer host, for the probe's cache key. Unreadable, the key is only less
/// specific: the probe's answer is still right for this host today.
fn kernel_release() -> String {
    crate::host::environment::kernel_release().unwrap_or_default()
}

/// The file holds the key (a digest collision or a hand-edited file is not trusted) and then
/// `runs` or `exits <why>`.
fn format_answer(key: &str, answer: &KvmProbe) -> String {
    match answer {
        KvmProbe::Runs => format!("{key}\nruns\n"),
        KvmProbe::Exits(why) => format!("{key}\nexits {}\n", why.replace('\n', " ")),
    }
}

fn parse_answer(text: &str, key: &str) -> Option<KvmProbe> {
    let (stored_key, rest) = text.split_once('\n')?;
    if stored_key != key {
        return None;
    }
    let answer = rest.lines().next()?;
    if answer == "runs" {
        return Some(KvmProbe::Runs);
    }
    answer
        .strip_prefix("exits ")
        .map(|why| KvmProbe::Exits(why.to_owned()))
}

fn read_answer(file: &Path, key: &str) -> Option<KvmProbe> {
    parse_answer(&fs::read_to_string(file).ok()?, key)
}

/// Written aside and renamed, so a concurrent start reads the old answer or the new one.
fn write_answer(file: &Path, key: &str, answer: &KvmProbe) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut partial = file.as_os_str().to_owned();
    partial.push(format!(".tmp-{}", std::process::id()));
    let partial = PathBuf::from(partial);
    fs::write(&partial, format_answer(key, answer))?;
    fs::rename(&partial, file).inspect_err(|_| {
        let _ = fs::remove_file(&partial);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_tries_kvm_first_only_when_it_is_usable() {
        let mut notes = Vec::new();
        let both = candidates(AccelChoice::Auto, || Ok(()), &mut notes);
        assert_eq!(both, [Accel::Kvm, Accel::Tcg]);
        assert!(notes.is_empty());
        let tcg = candidates(
            AccelChoice::Auto,
            || {
                Err(NoKvm::DevKvm(std::io::Error::from(
                    std::io::ErrorKind::PermissionDenied,
                )))
            },
            &mut notes,
        );
        assert_eq!(tcg, [Accel::Tcg]);
        assert_eq!(
            notes,
            ["kvm not used: cannot open /dev/kvm: permission denied"]
        );
    }

    #[test]
    fn an_explicit_choice_is_not_probed() {
        let mut notes = Vec::new();
        let never = || -> Result<(), NoKvm> { panic!("probed") };
        assert_eq!(
            candidates(AccelChoice::Tcg, never, &mut notes),
            [Accel::Tcg]
        );
        assert_eq!(
            candidates(AccelChoice::Kvm, never, &mut notes),
            [Accel::Kvm]
        );
        assert!(notes.is_empty());
    }

    #[test]
    fn answers_round_trip_under_their_own_key_only() {
        let key = "qemu=/usr/bin/qemu-system-x86_64 size=1 mtime=2.000000003 machine=pc kernel=6.1";
        for answer in [
            KvmProbe::Runs,
            KvmProbe::Exits(
                "QEMU with KVM exits at once (exit status: 1): failed to set MSR 0x10a".into(),
            ),
        ] {
            let text = format_answer(key, &answer);
            assert_eq!(parse_answer(&text, key), Some(answer));
            assert_eq!(parse_answer(&text, &key.replace("6.1", "6.2")), None);
        }
        assert_eq!(parse_answer(&format!("{key}\nmaybe\n"), key), None);
        assert_eq!(parse_answer("", key), None);
    }

    #[test]
    fn the_key_changes_with_the_binary_the_machine_and_the_kernel() {
        let tmp = tempfile::tempdir().unwrap();
        let qemu = tmp.path().join("qemu-system-x86_64");
        fs::write(&qemu, b"v1").unwrap();
        let key = probe_key(&qemu, "pc-i440fx-7.2", "6.1.0-1").unwrap();
        assert_eq!(key, probe_key(&qemu, "pc-i440fx-7.2", "6.1.0-1").unwrap());
        assert_ne!(key, probe_key(&qemu, "pc-i440fx-8.2", "6.1.0-1").unwrap());
        assert_ne!(key, probe_key(&qemu, "pc-i440fx-7.2", "6.1.0-2").unwrap());
        fs::write(&qemu, b"version 2").unwrap();
        assert_ne!(key, probe_key(&qemu, "pc-i440fx-7.2", "6.1.0-1").unwrap());
        assert_eq!(probe_key(&tmp.path().join("absent"), "pc", "6.1"), None);
    }

    #[test]
    fn a_stored_answer_is_found_again_and_can_be_forgotten() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = ProbeCache::in_cache_root(Some(tmp.path()));
        let qemu = tmp.path().join("qemu");
        fs::write(&qemu, b"binary").unwrap();
        let key = probe_key(&qemu, "pc", &kernel_release()).unwrap();
        let file = cache.file_for(&key).unwrap();
        let answer = KvmProbe::Exits("aborts".into());
        write_answer(&file, &key, &answer).unwrap();
        assert_eq!(read_answer(&file, &key), Some(answer));
        cache.forget(&qemu, "pc");
        assert_eq!(read_answer(&file, &key), None);
        let dir = tmp.path().join("kvm-probe");
        assert_eq!(
            fs::read_dir(dir).unwrap().count(),
            0,
            "no partial file left"
        );
    }
}
