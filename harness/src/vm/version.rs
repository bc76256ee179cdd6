//! Which QEMU this is: its version is part of a warm snapshot's fingerprint.

use std::path::Path;
use std::process::Command;

use super::error::VmError;

/// "7.2.22" from `qemu-system-x86_64 --version` (part of the warm snapshot's fingerprint).
pub(super) fn qemu_version(qemu: &Path) -> Result<String, VmError> {
    let out = Command::new(qemu)
        .arg("--version")
        .output()
        .map_err(|e| VmError::Tool {
            command: format!("{} --version", qemu.display()),
            message: e.to_string(),
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(parse_qemu_version(&text).unwrap_or_else(|| text.lines().next().unwrap_or("").to_owned()))
}

fn parse_qemu_version(text: &str) -> Option<String> {
    text.lines()
        .next()?
        .split_whitespace()
        .skip_while(|w| *w != "version")
        .nth(1)
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qemu_version_from_banner() {
        let banner = "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)\nCopyright (c) 2003-2022";
        assert_eq!(parse_qemu_version(banner).as_deref(), Some("7.2.22"));
        assert_eq!(parse_qemu_version("nonsense"), None);
    }

    #[test]
    fn qemu_version_of_a_self_built_qemu_and_of_nothing() {
        let banner = "QEMU emulator version 9.1.50 (v9.1.0-123-gabcdef)\n";
        assert_eq!(parse_qemu_version(banner).as_deref(), Some("9.1.50"));
        assert_eq!(parse_qemu_version("QEMU emulator version"), None);
        assert_eq!(parse_qemu_version(""), None);
    }
}
