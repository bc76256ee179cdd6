//! selinux-harness: a conformance harness for SELinux labelling and policy.
//!
//! Data flows one way: scenario -> plan -> executor on a target -> evidence -> verdict -> report.

pub mod audit;
pub mod cleanup;
pub mod context;
pub mod event;
pub mod evidence;
pub mod executor;
pub mod expect;
pub mod hostconfig;
pub mod libvirt;
pub mod plan;
pub mod probe;
pub mod protocol;
pub mod report;
pub mod scenario;
pub mod selinux_ops;
pub mod timeline;
pub mod verdict;
