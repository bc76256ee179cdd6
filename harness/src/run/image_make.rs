//! Making a run's images in its sandbox: sparse raw files, qcow2 layers with the target's
//! qemu-img (each over its backing file, which is made first), copies of the target's files.
//! Nothing goes through a shell; every backing path is a file of the same sandbox.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use super::plan::{ImageSource, PlannedImage};
use crate::host::sandbox::{SandboxDir, SandboxError};
use crate::scenario::{ImageFormat, Name};

/// Why an image the plan names could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ImageMakeError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    #[error("cannot run qemu-img (package qemu-utils): {0}")]
    NoQemuImg(std::io::Error),
    #[error("qemu-img create {} failed ({status}): {stderr}", path.display())]
    QemuImg {
        path: std::path::PathBuf,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("cannot open the target's {what} {}: {source}", from.display())]
    OpenTargetFile {
        what: &'static str,
        from: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot copy {} to {}: {source}", from.display(), to.display())]
    Copy {
        from: std::path::PathBuf,
        to: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the running kernel's release: {0}")]
    KernelRelease(std::io::Error),
}

/// Image names in an order where every backing file comes before the images over it.
pub(super) fn creation_order(images: &BTreeMap<Name, PlannedImage>) -> Vec<&Name> {
    let mut done: BTreeSet<&Name> = BTreeSet::new();
    let mut out = Vec::new();
    // Validation refuses cycles; the bound keeps a bad plan from looping all the same.
    for _ in 0..=images.len() {
        for (name, img) in images {
            if done.contains(name) {
                continue;
            }
            let waits_for_backing = match &img.source {
                ImageSource::New {
                    backing: Some((path, _)),
                    ..
                } => images
                    .iter()
                    .any(|(n, i)| &i.path == path && !done.contains(n)),
                _ => false,
            };
            let waits_for_dir = img
                .within
                .as_ref()
                .is_some_and(|d| images.contains_key(d) && !done.contains(d));
            let waits = waits_for_backing || waits_for_dir;
            if !waits {
                done.insert(name);
                out.push(name);
            }
        }
    }
    out
}

/// Make one image (a file a step creates is left alone) in `dir`, the sandbox or the directory
/// image it is `in`. `kernel_release` is `uname -r`. A directory image comes back open, for the
/// files made in it.
pub(super) fn make(
    dir: &SandboxDir,
    name: &Name,
    img: &PlannedImage,
    kernel_release: &str,
) -> Result<Option<SandboxDir>, ImageMakeError> {
    if img.source == ImageSource::Directory {
        return Ok(Some(dir.create_dir(name.as_str(), 0o755)?));
    }
    make_file(dir, name, img, kernel_release).map(|()| None)
}

fn make_file(
    dir: &SandboxDir,
    name: &Name,
    img: &PlannedImage,
    kernel_release: &str,
) -> Result<(), ImageMakeError> {
    match &img.source {
        ImageSource::ByStep | ImageSource::Directory => Ok(()),
        ImageSource::New {
            format: ImageFormat::Raw,
            ..
        } => Ok(dir.create_image(name.as_str(), img.size).map(drop)?),
        ImageSource::New {
            format: ImageFormat::Qcow2,
            backing,
        } => {
            // Created empty first (O_EXCL, no symlink followed), then formatted in place.
            dir.create_file(name.as_str())?;
            let mut cmd = Command::new("qemu-img");
            cmd.args(["create", "-q", "-f", "qcow2"]);
            if let Some((path, format)) = backing {
                cmd.arg("-b").arg(path).args(["-F", format.as_str()]);
            }
            cmd.arg(&img.path);
            if img.size > 0 {
                cmd.arg(img.size.to_string());
            }
            let out = cmd.output().map_err(ImageMakeError::NoQemuImg)?;
            if out.status.success() {
                Ok(())
            } else {
                Err(ImageMakeError::QemuImg {
                    path: img.path.clone(),
                    status: out.status,
                    stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                })
            }
        }
        ImageSource::Copy(f) => {
            let from = f.path(kernel_release);
            let mut src =
                std::fs::File::open(&from).map_err(|source| ImageMakeError::OpenTargetFile {
                    what: f.as_str(),
                    from: from.clone(),
                    source,
                })?;
            let mut dst = dir.create_file(name.as_str())?;
            std::io::copy(&mut src, &mut dst)
                .map(drop)
                .map_err(|source| ImageMakeError::Copy {
                    from,
                    to: img.path.clone(),
                    source,
                })
        }
    }
}

/// The running kernel's release, for the paths of its files.
pub(super) fn kernel_release() -> Result<String, ImageMakeError> {
    crate::host::environment::kernel_release().map_err(ImageMakeError::KernelRelease)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::plan::Plan;

    fn plan(src: &str) -> Plan {
        crate::run::plan::tests::plan(src, None)
    }

    #[test]
    fn backing_files_are_made_before_their_overlays() {
        // Names sort against the chain (a.qcow2 over m.qcow2 over z.qcow2).
        let p = plan(
            "name: x\ndescription: d\nimages:\n  a.qcow2: {format: qcow2, backing: m.qcow2}\n  m.qcow2: {format: qcow2, backing: z.qcow2}\n  z.qcow2: {size: 1M, format: qcow2}\n  r.img: {size: 1M}\ndomains: {vm1: {disks: [a.qcow2]}}\nsteps: [{define: vm1}]\n",
        );
        let order: Vec<&str> = creation_order(&p.images)
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(order, ["r.img", "z.qcow2", "m.qcow2", "a.qcow2"]);
    }

    #[test]
    fn a_directory_comes_before_the_files_in_it() {
        let t = tempfile::tempdir().unwrap();
        let dir = SandboxDir::create(&t.path().join("box"), 0o755).unwrap();
        let p = plan(
            "name: x\ndescription: d\nimages:\n  a.txt: {size: 4K, in: z}\n  z: {directory: true}\nsteps: [{relabel: {image: a.txt, context: 'system_u:object_r:virt_image_t:s0'}}]\n",
        );
        let order: Vec<&str> = creation_order(&p.images)
            .iter()
            .map(|n| n.as_str())
            .collect();
        assert_eq!(order, ["z", "a.txt"]);
        let (z, a): (Name, Name) = ("z".parse().unwrap(), "a.txt".parse().unwrap());
        assert!(p.images[&a].path.ends_with("selinux-harness-r1/z/a.txt"));
        let sub = make(&dir, &z, &p.images[&z], "x").unwrap().unwrap();
        assert!(make(&sub, &a, &p.images[&a], "x").unwrap().is_none());
        let made = std::fs::metadata(t.path().join("box/z/a.txt")).unwrap();
        assert_eq!(made.len(), 4096);
    }

    #[test]
    fn a_copy_is_the_source_bytes_and_never_overwrites() {
        let t = tempfile::tempdir().unwrap();
        let dir = SandboxDir::create(&t.path().join("box"), 0o755).unwrap();
        let p = plan(
            "name: x\ndescription: d\nimages:\n  v: {copy_of: ovmf_vars}\nsteps: [{relabel: {image: v, context: 'system_u:object_r:virt_image_t:s0'}}]\n",
        );
        let n: Name = "v".parse().unwrap();
        let mut img = p.images[&n].clone();
        img.path = t.path().join("box/v");
        match make(&dir, &n, &img, "x") {
            // The host may lack OVMF: then the error names the file.
            Err(e) => assert!(e.to_string().contains(crate::scenario::OVMF_VARS), "{e}"),
            Ok(_) => {
                assert_eq!(
                    std::fs::read(&img.path).unwrap(),
                    std::fs::read(crate::scenario::OVMF_VARS).unwrap()
                );
                assert!(
                    make(&dir, &n, &img, "x").is_err(),
                    "a second copy over the first"
                );
            }
        }
    }
}
