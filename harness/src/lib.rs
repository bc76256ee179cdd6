//! selinux-harness: a conformance harness for SELinux labelling and policy.
//!
//! Data flows one way: scenario -> plan -> executor on a target -> evidence -> verdict -> report.

pub mod context;
pub mod event;
pub mod evidence;
pub mod expect;
pub mod plan;
pub mod protocol;
pub mod report;
pub mod scenario;
pub mod verdict;
