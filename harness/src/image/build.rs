//! Builds a guest image from a recipe: mmdebstrap, fixes, harness init, policy changes and
//! labelling with the guest's own tools in a chroot, then an ext4 image with the labels as xattrs.

use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::cache::{self, image_hash, Cache, CacheError, Image, ImageHash, Manifest};
use super::command::{display, run_capture, run_logged, tail_lines, RunError};
use super::guest::{AGENT_DIR, GUEST_FILES};
use super::progress::Progress;
use super::recipe::{modules_for, RecipeError, RecipeSource};
use super::tools::{self, MissingTools, BUILD_TOOLS};
use crate::host::layout::QEMU_CONF;
use crate::interrupt::Interrupt;

#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// Build even when the cache has this image (the old one is replaced only on success).
    pub rebuild: bool,
}

#[derive(Debug, Clone)]
pub struct Built {
    pub image: Image,
    /// Found in the cache, nothing was built.
    pub cached: bool,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Recipe(#[from] RecipeError),
    #[error(transparent)]
    Tools(#[from] MissingTools),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("building an image needs root (mmdebstrap root mode, chroot, security.* xattrs)\nfix: run as root")]
    NotRoot,
    #[error(transparent)]
    Step(Box<StepFailure>),
    #[error("{step}: {what} {path}: {source}")]
    Io {
        step: &'static str,
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{step}: {problem}\nfix: {fix}")]
    Check {
        step: &'static str,
        problem: String,
        fix: &'static str,
    },
    #[error("image build interrupted; the partial build was removed")]
    Interrupted,
}

/// A build step's tool failed; carries the command, the log and its tail, and the fix.
#[derive(Debug, thiserror::Error)]
#[error("{step} failed: `{command}` {outcome}\n--- last lines of {log}:\n{tail}\nfix: {fix}")]
pub struct StepFailure {
    pub step: &'static str,
    pub command: String,
    pub outcome: String,
    pub log: PathBuf,
    pub tail: String,
    pub fix: &'static str,
}

/// Where the image for this recipe lives (whether or not it is built yet).
pub fn key_of(source: &RecipeSource) -> Result<ImageHash, RecipeError> {
    Ok(image_hash(
        source.text,
        &modules_for(&source.recipe)?,
        GUEST_FILES,
    ))
}

/// Returns the cached image for the recipe, building it first when needed.
pub fn build(
    cache: &Cache,
    source: &RecipeSource,
    options: &BuildOptions,
    progress: &Progress,
    interrupt: &Interrupt,
) -> Result<Built, BuildError> {
    let started = Instant::now();
    let recipe = &source.recipe;
    let hash = key_of(source)?;
    if !options.rebuild {
        if let Some(image) = cache.lookup(&recipe.name, &hash) {
            return Ok(Built {
                image,
                cached: true,
                elapsed: started.elapsed(),
            });
        }
    }
    if !nix::unistd::geteuid().is_root() {
        return Err(BuildError::NotRoot);
    }
    let [mmdebstrap, mkfs, debugfs, chroot, mount, _umount] =
        <[PathBuf; 6]>::try_from(tools::require(BUILD_TOOLS)?).map_err(|_| BuildError::Check {
            step: "host tools",
            problem: "tool list changed without the builder".into(),
            fix: "report a bug",
        })?;

    let final_dir = cache.dir_for(&recipe.name, &hash);
    for orphan in cache.sweep_orphans()? {
        progress.note(format!("removed {orphan}, left by a build that died"));
    }
    fs::create_dir_all(cache.root()).map_err(io_err("prepare", "cannot create", cache.root()))?;
    let tmp = TempBuildDir::create(&final_dir)?;
    let b = Builder {
        root: tmp.path.join("rootfs"),
        log: tmp.path.join(cache::BUILD_LOG_FILE),
        dir: tmp.path.clone(),
        chroot,
        mount,
        interrupt,
        progress,
    };
    progress.note(format!(
        "building {} ({}) into {}; log: {}",
        recipe.name,
        recipe.suite,
        final_dir.display(),
        b.log.display()
    ));

    let t = Instant::now();
    progress.phase(format!(
        "mmdebstrap {} ({} packages, ~2 min)",
        recipe.suite,
        recipe.packages.len()
    ));
    b.run(
        "mmdebstrap",
        Command::new(&mmdebstrap)
            .arg("--variant=minbase")
            .arg(format!("--include={}", recipe.packages.join(",")))
            .arg(&recipe.suite)
            .arg(&b.root),
        "check that `apt-get update` reaches the Debian archive and that every package exists in the suite",
    )?;
    progress.note(format!("mmdebstrap: {:.1} s", t.elapsed().as_secs_f64()));

    let t = Instant::now();
    progress.phase("configuring the guest (fixes, harness init)");
    b.configure(source)?;
    progress.phase("installing policy modules and booleans (guest's semodule)");
    b.install_policy(source)?;
    progress.phase("labelling the rootfs (guest's setfiles)");
    let policy_file = b.label(source)?;
    progress.note(format!(
        "configured, policy changed and labelled: {:.1} s",
        t.elapsed().as_secs_f64()
    ));

    let t = Instant::now();
    progress.phase("mkfs.ext4 -d (rootfs with xattrs -> raw image)");
    let disk = b.dir.join(cache::DISK_FILE);
    b.run(
        "mkfs.ext4",
        Command::new(&mkfs)
            .args(["-q", "-F", "-L", "harness-root", "-d"])
            .arg(&b.root)
            .arg(&disk)
            .arg(format!("{}M", recipe.disk_size_mib)),
        "raise disk_size_mib in the recipe if the rootfs does not fit",
    )?;
    let kernel_release = b.copy_boot_files()?;
    b.verify_labels(&debugfs, &disk)?;
    progress.note(format!(
        "image written and labels verified: {:.1} s",
        t.elapsed().as_secs_f64()
    ));

    progress.phase("finishing");
    cache::remove_tree(&b.root)?;
    // The raw image is the read-only base of every run: nothing may write it after this.
    let _ = fs::set_permissions(&disk, fs::Permissions::from_mode(0o444));
    let manifest = Manifest {
        format: cache::FORMAT_VERSION,
        recipe: recipe.name.clone(),
        suite: recipe.suite.clone(),
        hash: hash.clone(),
        created_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        build_seconds: started.elapsed().as_secs_f64(),
        kernel_release,
        policy_file,
        kernel_cmdline_extra: recipe.kernel_cmdline_extra.clone(),
    };
    let manifest_path = b.dir.join(cache::MANIFEST_FILE);
    let json = serde_json::to_string_pretty(&manifest).map_err(|e| BuildError::Check {
        step: "manifest",
        problem: e.to_string(),
        fix: "report a bug",
    })?;
    fs::write(&manifest_path, json).map_err(io_err("manifest", "cannot write", &manifest_path))?;

    if options.rebuild && final_dir.exists() {
        cache::remove_tree(&final_dir)?;
    }
    match fs::rename(&tmp.path, &final_dir) {
        Ok(()) => tmp.disarm(),
        // Another build of the same inputs finished first: the images are equivalent, keep that one.
        Err(e) if final_dir.join(cache::MANIFEST_FILE).exists() => {
            progress.note(format!("another build finished first ({e}); using it"));
        }
        Err(e) => return Err(io_err("finish", "cannot rename to", &final_dir)(e)),
    }
    Ok(Built {
        image: Image::open(&final_dir)?,
        cached: false,
        elapsed: started.elapsed(),
    })
}

fn io_err<'a>(
    step: &'static str,
    what: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> BuildError + 'a {
    move |source| BuildError::Io {
        step,
        what,
        path: path.to_owned(),
        source,
    }
}

/// `<final>.tmp-<pid>`, removed on drop unless the build finished and renamed it.
struct TempBuildDir {
    path: PathBuf,
    armed: bool,
}

impl TempBuildDir {
    fn create(final_dir: &Path) -> Result<Self, BuildError> {
        let mut name = final_dir.as_os_str().to_owned();
        name.push(format!(".tmp-{}", std::process::id()));
        let path = PathBuf::from(name);
        cache::remove_tree(&path)?;
        fs::create_dir(&path).map_err(io_err("prepare", "cannot create", &path))?;
        Ok(Self { path, armed: true })
    }

    fn disarm(mut self) {
        self.armed = false;
    }
}

impl Drop for TempBuildDir {
    fn drop(&mut self) {
        if self.armed {
            if let Err(e) = cache::remove_tree(&self.path) {
                eprintln!("selinux-harness: could not remove the partial build: {e}");
            }
        }
    }
}

/// /proc mounted inside the rootfs for the duration of one step.
struct ProcMount {
    target: PathBuf,
}

impl ProcMount {
    fn mount(b: &Builder<'_>) -> Result<Self, BuildError> {
        let target = b.path("/proc");
        b.run(
            "mount /proc",
            Command::new(&b.mount)
                .args(["-t", "proc", "proc"])
                .arg(&target),
            "the build needs to mount proc inside the rootfs (root, no restrictive container)",
        )?;
        Ok(Self { target })
    }
}

impl Drop for ProcMount {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(&self.target)
            .stderr(std::process::Stdio::null())
            .status();
    }
}

struct Builder<'a> {
    dir: PathBuf,
    root: PathBuf,
    log: PathBuf,
    chroot: PathBuf,
    mount: PathBuf,
    interrupt: &'a Interrupt,
    progress: &'a Progress,
}

impl Builder<'_> {
    fn step_error(
        &self,
        step: &'static str,
        cmd: &Command,
        outcome: String,
        fix: &'static str,
    ) -> BuildError {
        BuildError::Step(Box::new(StepFailure {
            step,
            command: display(cmd),
            outcome,
            log: self.log.clone(),
            tail: tail_lines(&self.log, 30),
            fix,
        }))
    }

    fn map_run(
        &self,
        step: &'static str,
        cmd: &Command,
        e: RunError,
        fix: &'static str,
    ) -> BuildError {
        match e {
            RunError::Interrupted => BuildError::Interrupted,
            RunError::Spawn(e) => self.step_error(step, cmd, format!("could not start: {e}"), fix),
            RunError::Failed(status) => {
                self.step_error(step, cmd, format!("ended with {status}"), fix)
            }
        }
    }

    fn run(
        &self,
        step: &'static str,
        cmd: &mut Command,
        fix: &'static str,
    ) -> Result<(), BuildError> {
        if self.interrupt.is_set() {
            return Err(BuildError::Interrupted);
        }
        run_logged(cmd, &self.log, self.interrupt).map_err(|e| self.map_run(step, cmd, e, fix))
    }

    /// A command run inside the rootfs with the guest's own binaries.
    fn in_guest(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.chroot);
        c.arg(&self.root)
            .args(args)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("LC_ALL", "C");
        c
    }

    fn path(&self, guest_path: &str) -> PathBuf {
        self.root.join(guest_path.trim_start_matches('/'))
    }

    fn write(&self, guest_path: &str, text: &str, mode: u32) -> Result<(), BuildError> {
        let p = self.path(guest_path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).map_err(io_err("configure", "cannot create", parent))?;
        }
        fs::write(&p, text).map_err(io_err("configure", "cannot write", &p))?;
        fs::set_permissions(&p, fs::Permissions::from_mode(mode)).map_err(io_err(
            "configure",
            "cannot chmod",
            &p,
        ))
    }

    fn configure(&self, source: &RecipeSource) -> Result<(), BuildError> {
        let r = &source.recipe;
        self.write("/etc/hostname", "selinux-harness\n", 0o644)?;
        self.write("/etc/fstab", "/dev/vda / ext4 rw,relatime 0 1\n", 0o644)?;
        self.write(
            "/etc/selinux/config",
            &format!("SELINUX=enforcing\nSELINUXTYPE={}\n", r.selinux_type),
            0o644,
        )?;
        // The default network needs dnsmasq and iptables rules nothing here uses.
        let net = self.path("/etc/libvirt/qemu/networks/autostart/default.xml");
        match fs::remove_file(&net) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err("configure", "cannot remove", &net)(e)),
        }
        if !r.fixes.qemu_conf.is_empty() {
            let conf = self.path(QEMU_CONF);
            let mut text =
                fs::read_to_string(&conf).map_err(io_err("configure", "cannot read", &conf))?;
            text.push_str("\n# selinux-harness recipe fixes\n");
            for line in &r.fixes.qemu_conf {
                text.push_str(line);
                text.push('\n');
            }
            fs::write(&conf, text).map_err(io_err("configure", "cannot write", &conf))?;
        }
        if r.fixes.mask_machined {
            let unit = self.path("/etc/systemd/system/systemd-machined.service");
            let _ = fs::remove_file(&unit);
            symlink("/dev/null", &unit).map_err(io_err("configure", "cannot mask", &unit))?;
            let service = "/usr/share/dbus-1/system-services/org.freedesktop.machine1.service";
            let diverted = format!("{service}.disabled");
            self.run(
                "dpkg-divert machined",
                &mut self.in_guest(&[
                    "dpkg-divert",
                    "--local",
                    "--rename",
                    "--divert",
                    &diverted,
                    "--add",
                    service,
                ]),
                "check that the suite still ships org.freedesktop.machine1.service",
            )?;
        }
        for f in GUEST_FILES {
            self.write(f.path, f.source, f.mode)?;
        }
        let agent_dir = self.path(AGENT_DIR);
        fs::create_dir_all(&agent_dir).map_err(io_err("configure", "cannot create", &agent_dir))
    }

    fn install_policy(&self, source: &RecipeSource) -> Result<(), BuildError> {
        let r = &source.recipe;
        let store = format!("/var/lib/selinux/{}/active", r.selinux_type);
        if !self.path(&store).is_dir() {
            return Err(BuildError::Check {
                step: "policy",
                problem: format!("no policy store {store} in the rootfs"),
                fix: "the recipe must install selinux-policy-<selinux_type>",
            });
        }
        // Read by semodule when it rebuilds the policy below, so values persist like setsebool -P.
        let booleans: String = r
            .booleans
            .iter()
            .map(|(name, on)| format!("{name}={}\n", u8::from(*on)))
            .collect();
        self.write(&format!("{store}/booleans.local"), &booleans, 0o644)?;

        let staging = "/tmp/selinux-harness-modules";
        let mut args = vec!["semodule".to_owned(), "-s".into(), r.selinux_type.clone()];
        let modules = modules_for(r)?;
        for m in &modules {
            let guest_path = format!("{staging}/{}.cil", m.module_name());
            self.write(&guest_path, m.source, 0o644)?;
            args.push("-i".into());
            args.push(guest_path);
        }
        if modules.is_empty() {
            args.push("-B".into());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(
            "semodule",
            &mut self.in_guest(&args),
            "a module in policy-modules/ does not compile against this policy: fix the CIL",
        )?;
        let staged = self.path(staging);
        cache::remove_tree(&staged)?;

        let mut list = self.in_guest(&["semodule", "-s", &r.selinux_type, "-l"]);
        let listed = run_capture(&mut list, &self.log, self.interrupt)
            .map_err(|e| self.map_run("semodule -l", &list, e, "see the log"))?;
        for m in &modules {
            let name = m.module_name();
            if !listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name.as_str()))
            {
                return Err(BuildError::Check {
                    step: "policy",
                    problem: format!("module {name} is not in `semodule -l` after installing it"),
                    fix: "see the build log",
                });
            }
        }
        Ok(())
    }

    /// Labels every file with the guest's setfiles and its newest policy; returns the policy file.
    fn label(&self, source: &RecipeSource) -> Result<String, BuildError> {
        let ty = &source.recipe.selinux_type;
        let policy_dir = format!("/etc/selinux/{ty}/policy");
        let host_dir = self.path(&policy_dir);
        let newest = fs::read_dir(&host_dir)
            .map_err(io_err("label", "cannot list", &host_dir))?
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let v: u32 = name.strip_prefix("policy.")?.parse().ok()?;
                Some((v, name))
            })
            .max()
            .map(|(_, name)| name)
            .ok_or_else(|| BuildError::Check {
                step: "label",
                problem: format!("no policy.N in {policy_dir}"),
                fix: "semodule did not build a policy: see the build log",
            })?;
        let policy = format!("{policy_dir}/{newest}");
        let contexts = format!("/etc/selinux/{ty}/contexts/files/file_contexts");
        // setfiles sets labels through /proc/self/fd: without /proc every file fails with ENOENT.
        let _proc = ProcMount::mount(self)?;
        self.run(
            "setfiles",
            &mut self.in_guest(&[
                "setfiles", "-F", "-e", "/proc", "-c", &policy, &contexts, "/",
            ]),
            "see the build log; the file_contexts must match the policy",
        )?;
        Ok(newest)
    }

    /// Copies the (single) kernel and its initrd next to the image; returns the kernel release.
    fn copy_boot_files(&self) -> Result<String, BuildError> {
        let boot = self.path("/boot");
        let mut releases: Vec<String> = fs::read_dir(&boot)
            .map_err(io_err("boot files", "cannot list", &boot))?
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_prefix("vmlinuz-")
                    .map(str::to_owned)
            })
            .collect();
        releases.sort();
        let release = releases.pop().ok_or_else(|| BuildError::Check {
            step: "boot files",
            problem: "no /boot/vmlinuz-* in the rootfs".into(),
            fix: "the recipe must install linux-image-amd64 and initramfs-tools",
        })?;
        for (from, to) in [
            (format!("vmlinuz-{release}"), cache::KERNEL_FILE),
            (format!("initrd.img-{release}"), cache::INITRD_FILE),
        ] {
            let src = boot.join(&from);
            fs::copy(&src, self.dir.join(to)).map_err(io_err("boot files", "cannot copy", &src))?;
        }
        Ok(release)
    }

    /// Reads labels back from the finished image: proves setfiles ran and mkfs kept the xattrs.
    fn verify_labels(&self, debugfs: &Path, disk: &Path) -> Result<(), BuildError> {
        for (path, ty) in [
            ("/usr/local/sbin/harness-init2", "init_exec_t"),
            ("/usr/sbin/libvirtd", "virtd_exec_t"),
            (AGENT_DIR, "bin_t"),
        ] {
            let request = format!("ea_get {path} security.selinux");
            let mut cmd = Command::new(debugfs);
            cmd.arg("-R").arg(&request).arg(disk);
            let out = run_capture(&mut cmd, &self.log, self.interrupt)
                .map_err(|e| self.map_run("debugfs", &cmd, e, "see the build log"))?;
            if !out.contains(&format!(":{ty}:")) {
                return Err(BuildError::Check {
                    step: "verify labels",
                    problem: format!(
                        "{path} is labelled `{}` in the image, expected {ty}",
                        out.trim()
                    ),
                    fix: "setfiles or mkfs.ext4 -d lost the label: see the build log",
                });
            }
        }
        self.progress.note("labels in the image: harness-init2 init_exec_t, libvirtd virtd_exec_t, agent dir bin_t");
        Ok(())
    }
}
