//! The SELinux host the executor runs on (the VM's guest, or this machine): where things are
//! on it, the changes a run makes there and their undo, a snapshot to prove the undo complete,
//! and `doctor` for what an interrupted run left behind.

pub(crate) mod change;
pub(crate) mod cleanup;
pub mod config;
pub mod doctor;
pub(crate) mod dontaudit;
pub mod environment;
pub mod init;
pub mod journal;
pub mod layout;
pub mod libvirt;
pub mod probe;
pub mod sandbox;
pub(crate) mod state;
pub mod virt_contexts;
