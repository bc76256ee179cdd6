//! selinux-harness: a conformance harness for SELinux labelling and policy.
//!
//! Data flows one way: scenario -> plan -> executor on a target -> evidence -> verdict -> report.

pub mod agent;
pub mod context;
pub mod dispatch;
pub mod error;
pub mod evidence;
pub mod host;
pub mod image;
pub mod interrupt;
pub mod oracle;
pub mod policy;
pub mod report;
pub mod run;
pub mod scenario;
pub mod selinux_ops;
pub mod target;
pub mod vm;
pub mod wait;
