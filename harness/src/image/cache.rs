//! The image cache: one directory per built image, named `<recipe>-<hash16>`, where the hash
//! covers everything that goes into the image. A directory exists only once its build finished
//! (builds run in `<dir>.tmp-<pid>` and are renamed at the end).

use crate::error::IoError;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::guest::GuestFile;
use super::recipe::PolicyModule;
use crate::wait::{wait_until, Waited};

/// Bumped whenever the builder changes what it puts into an image.
pub const FORMAT_VERSION: u32 = 1;

pub const DISK_FILE: &str = "disk.raw";
pub const KERNEL_FILE: &str = "vmlinuz";
pub const INITRD_FILE: &str = "initrd.img";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const BUILD_LOG_FILE: &str = "build.log";
/// Warm snapshots of this image (one per QEMU launch fingerprint), frozen with the image.
pub const WARM_DIR: &str = "warm";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("no cache directory: neither XDG_CACHE_HOME nor HOME is set\nfix: set XDG_CACHE_HOME")]
    NoHome,
    #[error(transparent)]
    Io(#[from] IoError),
    #[error(
        "refusing to delete {path}: {mounts} is still mounted inside it\nfix: umount -R {mounts}"
    )]
    StillMounted { path: PathBuf, mounts: String },
    #[error("no cached image matches `{0}`; see `image list`")]
    NoMatch(String),
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |source| {
        CacheError::Io(IoError {
            what,
            path: path.to_owned(),
            source,
        })
    }
}

/// The 16-hex-digit content key of an image.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ImageHash(pub String);

impl std::fmt::Display for ImageHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Hash of everything an image is built from. Each part is length-prefixed so moving bytes from
/// one part to the next changes the hash.
pub fn image_hash(recipe_text: &str, modules: &[PolicyModule], guest: &[GuestFile]) -> ImageHash {
    let mut h = Sha256::new();
    let mut part = |tag: &str, bytes: &[u8]| {
        h.update(tag.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    part("format", &FORMAT_VERSION.to_le_bytes());
    part("recipe", recipe_text.as_bytes());
    for m in modules {
        part("module-name", m.file_stem.as_bytes());
        part("module-source", m.source.as_bytes());
    }
    for g in guest {
        part("guest-path", g.path.as_bytes());
        part("guest-mode", &g.mode.to_le_bytes());
        part("guest-source", g.source.as_bytes());
    }
    let digest = h.finalize();
    ImageHash(digest.iter().take(8).map(|b| format!("{b:02x}")).collect())
}

/// What a finished build records about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: u32,
    pub recipe: String,
    pub suite: String,
    pub hash: ImageHash,
    pub created_unix: u64,
    pub build_seconds: f64,
    /// e.g. "6.1.0-41-amd64", from the kernel file name in /boot.
    pub kernel_release: String,
    /// e.g. "policy.33".
    pub policy_file: String,
    pub kernel_cmdline_extra: Vec<String>,
}

/// A finished image in the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl Image {
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let path = dir.join(MANIFEST_FILE);
        let text = fs::read_to_string(&path).map_err(io_err("cannot read", &path))?;
        let manifest = serde_json::from_str(&text).map_err(|e| {
            CacheError::Io(IoError {
                what: "corrupt manifest",
                path: path.clone(),
                source: io::Error::new(io::ErrorKind::InvalidData, e),
            })
        })?;
        Ok(Self {
            dir: dir.to_owned(),
            manifest,
        })
    }
    pub fn disk(&self) -> PathBuf {
        self.dir.join(DISK_FILE)
    }
    pub fn kernel(&self) -> PathBuf {
        self.dir.join(KERNEL_FILE)
    }
    pub fn initrd(&self) -> PathBuf {
        self.dir.join(INITRD_FILE)
    }
    pub fn warm_dir(&self) -> PathBuf {
        self.dir.join(WARM_DIR)
    }
}

/// One row of `image list`.
#[derive(Debug, Clone)]
pub struct CacheEntry {
    pub dir_name: String,
    pub recipe: String,
    pub hash: String,
    pub size_bytes: u64,
    pub age: Duration,
    /// Built from the recipes and modules of this binary.
    pub current: bool,
    pub warm_snapshots: usize,
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// `$XDG_CACHE_HOME/selinux-harness/images`, else `~/.cache/selinux-harness/images`.
    pub fn default_location() -> Result<Self, CacheError> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .filter(|v| !v.is_empty())
                    .map(|h| PathBuf::from(h).join(".cache"))
            })
            .ok_or(CacheError::NoHome)?;
        Ok(Self::at(base.join("selinux-harness").join("images")))
    }

    pub fn at(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir_for(&self, recipe: &str, hash: &ImageHash) -> PathBuf {
        self.root.join(format!("{recipe}-{hash}"))
    }

    /// The finished image for this key, if there is one.
    pub fn lookup(&self, recipe: &str, hash: &ImageHash) -> Option<Image> {
        Image::open(&self.dir_for(recipe, hash)).ok()
    }

    /// Finished images; `current` is decided by `is_current(recipe, hash)`.
    pub fn list(
        &self,
        is_current: impl Fn(&str, &str) -> bool,
    ) -> Result<Vec<CacheEntry>, CacheError> {
        let mut out = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io_err("cannot list", &self.root)(e)),
        };
        for entry in entries.flatten() {
            let dir_name = entry.file_name().to_string_lossy().into_owned();
            if dir_name.contains(".tmp-") {
                continue;
            }
            let Ok(image) = Image::open(&entry.path()) else {
                continue;
            };
            let m = &image.manifest;
            let created = UNIX_EPOCH + Duration::from_secs(m.created_unix);
            out.push(CacheEntry {
                current: is_current(&m.recipe, &m.hash.0),
                recipe: m.recipe.clone(),
                hash: m.hash.0.clone(),
                size_bytes: disk_usage(&entry.path()),
                age: SystemTime::now()
                    .duration_since(created)
                    .unwrap_or_default(),
                warm_snapshots: fs::read_dir(image.warm_dir())
                    .map(|d| {
                        d.flatten()
                            .filter(|e| e.file_name().to_string_lossy().ends_with(".qcow2"))
                            .count()
                    })
                    .unwrap_or(0),
                dir_name,
            });
        }
        out.sort_by(|a, b| a.dir_name.cmp(&b.dir_name));
        Ok(out)
    }

    /// Removes what builds left behind when their process died (temp dirs of dead pids).
    pub fn sweep_orphans(&self) -> Result<Vec<String>, CacheError> {
        let mut removed = Vec::new();
        let Ok(entries) = fs::read_dir(&self.root) else {
            return Ok(removed);
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name
                .rsplit_once(".tmp-")
                .is_some_and(|(_, pid)| !pid_alive(pid))
            {
                remove_tree(&entry.path())?;
                removed.push(name);
            }
        }
        Ok(removed)
    }

    /// Removes images whose directory name or recipe name is `selector` (all when `None`), and
    /// leftovers of builds whose process is gone. Returns the removed directory names.
    pub fn remove(&self, selector: Option<&str>) -> Result<Vec<String>, CacheError> {
        let mut removed = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(removed),
            Err(e) => return Err(io_err("cannot list", &self.root)(e)),
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            let (base, orphan) = match name.rsplit_once(".tmp-") {
                // A build in progress owns its temp dir; only orphans go.
                Some((base, pid)) => (base, Some(!pid_alive(pid))),
                None => (name.as_str(), None),
            };
            let selected = match selector {
                None => true,
                Some(s) => {
                    base == s
                        || base.rsplit_once('-').is_some_and(|(r, _)| r == s)
                        || Image::open(&path).is_ok_and(|i| i.manifest.recipe == s)
                }
            };
            let hit = selected && orphan.unwrap_or(true);
            if hit {
                remove_tree(&path)?;
                removed.push(name);
            }
        }
        if let (Some(s), true) = (selector, removed.is_empty()) {
            return Err(CacheError::NoMatch(s.to_owned()));
        }
        Ok(removed)
    }
}

fn pid_alive(pid: &str) -> bool {
    pid.parse::<u32>()
        .is_ok_and(|p| Path::new(&format!("/proc/{p}")).exists())
}

/// Bytes allocated on disk (images are sparse: the apparent size says little).
pub fn disk_usage(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    let own = meta.blocks() * 512;
    if !meta.is_dir() {
        return own;
    }
    own + fs::read_dir(path)
        .map(|d| d.flatten().map(|e| disk_usage(&e.path())).sum())
        .unwrap_or(0)
}

/// Mount points at or below `dir` (from /proc/self/mountinfo), deepest first.
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let Ok(info) = fs::read_to_string("/proc/self/mountinfo") else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

fn unescape_mountinfo(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 4);
        match code.and_then(|c| u8::from_str_radix(c, 8).ok()) {
            Some(b) => {
                out.push(b as char);
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Deletes a cache directory, never through a mount point: a rootfs left with /proc or /dev
/// mounted (an interrupted chroot step) would otherwise take the host's files with it.
pub fn remove_tree(path: &Path) -> Result<(), CacheError> {
    let mounts = mounts_under(path);
    for m in &mounts {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(m)
            .stderr(std::process::Stdio::null())
            .status();
    }
    let still = mounts_under(path);
    if !still.is_empty() {
        return Err(CacheError::StillMounted {
            path: path.to_owned(),
            mounts: still
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(" "),
        });
    }
    // A process that was just killed may still be closing files in the tree: retry briefly
    // (ten retries 0.3 s apart).
    let mut last = None;
    let removed = wait_until(
        Some(Instant::now() + Duration::from_secs(3)),
        Duration::from_millis(300),
        None,
        || match fs::remove_dir_all(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                last = Some(e);
                false
            }
            _ => true,
        },
    );
    match (removed, last) {
        (Waited::Met(()), _) | (_, None) => Ok(()),
        (_, Some(e)) => Err(io_err("cannot remove", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::guest::GUEST_FILES;
    use crate::image::recipe::{builtin, modules_for};

    fn key(name: &str) -> ImageHash {
        let src = builtin(name).unwrap();
        image_hash(src.text, &modules_for(&src.recipe).unwrap(), GUEST_FILES)
    }

    #[test]
    fn hash_is_stable_and_16_hex_digits() {
        let a = key("debian-12");
        assert_eq!(a, key("debian-12"));
        assert_eq!(a.0.len(), 16);
        assert!(a.0.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, key("debian-13"));
    }

    #[test]
    fn hash_covers_every_input() {
        let src = builtin("debian-12").unwrap();
        let mods = modules_for(&src.recipe).unwrap();
        let base = image_hash(src.text, &mods, GUEST_FILES);
        assert_ne!(
            base,
            image_hash(&format!("{} ", src.text), &mods, GUEST_FILES)
        );
        let mut changed = mods.clone();
        changed[0].source = "(allow a b (c (d)))";
        assert_ne!(base, image_hash(src.text, &changed, GUEST_FILES));
        let mut guest = GUEST_FILES.to_vec();
        guest[0].mode = 0o700;
        assert_ne!(base, image_hash(src.text, &mods, &guest));
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b\\c"), r"/a b\\c");
        assert_eq!(unescape_mountinfo(r"/x\134y"), r"/x\y");
    }

    #[test]
    fn list_and_remove_in_a_scratch_cache() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = Cache::at(tmp.path());
        let hash = key("debian-12");
        let dir = cache.dir_for("debian-12", &hash);
        fs::create_dir_all(&dir).unwrap();
        let manifest = Manifest {
            format: FORMAT_VERSION,
            recipe: "debian-12".into(),
            suite: "bookworm".into(),
            hash: hash.clone(),
            created_unix: 0,
            build_seconds: 1.0,
            kernel_release: "6.1.0".into(),
            policy_file: "policy.33".into(),
            kernel_cmdline_extra: vec![],
        };
        fs::write(
            dir.join(MANIFEST_FILE),
            serde_json::to_string(&manifest).unwrap(),
        )
        .unwrap();
        fs::create_dir_all(tmp.path().join("debian-12-0000.tmp-999999999")).unwrap();
        let list = cache.list(|_, h| h == hash.0).unwrap();
        assert_eq!(list.len(), 1);
        assert!(list[0].current);
        assert!(cache.lookup("debian-12", &hash).is_some());
        assert!(matches!(
            cache.remove(Some("debian-13")),
            Err(CacheError::NoMatch(_))
        ));
        let removed = cache.remove(Some("debian-12")).unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(cache.lookup("debian-12", &hash).is_none());
    }
}
