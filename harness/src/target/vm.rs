//! The VM target: the embedded Debian guest, driven over the agent channel.

use std::path::PathBuf;

use super::{Target, TargetError};
use crate::event::{EventSink, TargetInfo};
use crate::scenario::LoadedScenario;
use crate::verdict::Verdict;

#[derive(Debug, Clone, Default)]
pub struct VmTargetOptions {
    /// Recipe name (default debian-12).
    pub distro: Option<String>,
    /// The harness binary to run in the guest (default: this executable).
    pub binary: Option<PathBuf>,
}

pub struct VmTarget {
    _private: (),
}

impl VmTarget {
    pub fn start(_options: &VmTargetOptions) -> Result<VmTarget, TargetError> {
        Err(TargetError::Unavailable(
            "the VM runner is not wired into this build yet".into(),
        ))
    }
}

impl Target for VmTarget {
    fn info(&mut self) -> Result<TargetInfo, TargetError> {
        Err(TargetError::Unavailable("no VM".into()))
    }

    fn run(
        &mut self,
        _scenario: &LoadedScenario,
        _variant: Option<&str>,
        _sink: &mut dyn EventSink,
    ) -> Result<Verdict, TargetError> {
        Err(TargetError::Unavailable("no VM".into()))
    }
}
