//! Host tools the image builder and the VM runner call, and the Debian packages providing them.

use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostTool {
    pub program: &'static str,
    pub package: &'static str,
}

pub const BUILD_TOOLS: &[HostTool] = &[
    HostTool {
        program: "mmdebstrap",
        package: "mmdebstrap",
    },
    HostTool {
        program: "mkfs.ext4",
        package: "e2fsprogs",
    },
    HostTool {
        program: "debugfs",
        package: "e2fsprogs",
    },
    HostTool {
        program: "chroot",
        package: "coreutils",
    },
    HostTool {
        program: "mount",
        package: "mount",
    },
    HostTool {
        program: "umount",
        package: "mount",
    },
];

pub const VM_TOOLS: &[HostTool] = &[
    HostTool {
        program: "qemu-system-x86_64",
        package: "qemu-system-x86",
    },
    HostTool {
        program: "qemu-img",
        package: "qemu-utils",
    },
];

#[derive(Debug, thiserror::Error)]
#[error("missing host tools: {}\nfix: apt-get install {}", .missing.iter().map(|t| t.program).collect::<Vec<_>>().join(", "), packages(.missing))]
pub struct MissingTools {
    pub missing: Vec<HostTool>,
}

fn packages(tools: &[HostTool]) -> String {
    let mut p: Vec<&str> = tools.iter().map(|t| t.package).collect();
    p.dedup();
    p.join(" ")
}

/// Finds `program` in PATH, then in the sbin directories a non-login root shell may lack.
pub fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Resolves every tool or names all the missing ones (and their packages) at once.
pub fn require(tools: &[HostTool]) -> Result<Vec<PathBuf>, MissingTools> {
    let found: Vec<Option<PathBuf>> = tools.iter().map(|t| which(t.program)).collect();
    let missing: Vec<HostTool> = tools
        .iter()
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(t, _)| *t)
        .collect();
    if missing.is_empty() {
        Ok(found.into_iter().flatten().collect())
    } else {
        Err(MissingTools { missing })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_tool_names_its_package() {
        let err = require(&[
            HostTool {
                program: "sh",
                package: "dash",
            },
            HostTool {
                program: "no-such-tool-xyz",
                package: "xyz-utils",
            },
        ])
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("no-such-tool-xyz") && msg.contains("apt-get install xyz-utils"),
            "{msg}"
        );
        assert!(!msg.contains("dash"));
    }
}
