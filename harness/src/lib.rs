//! selinux-harness: a conformance harness for SELinux labelling and policy.
//!
//! Data flows one way: scenario -> plan -> executor on a target -> evidence -> verdict -> report.

pub mod agent;
pub mod cli_vm;
pub mod context;
pub mod environment;
pub mod event;
pub mod evidence;
pub mod image;
pub mod interrupt;
pub mod protocol;
pub mod verdict;
pub mod vm;
