//! selinux-harness: a conformance harness for SELinux labelling and policy.
//!
//! Data flows one way: scenario -> plan -> executor on a target -> evidence -> verdict -> report.

pub mod agent;
pub mod audit;
pub mod cleanup;
pub mod cli_vm;
pub mod context;
pub mod doctor;
pub mod environment;
pub mod event;
pub mod evidence;
pub mod executor;
pub mod expect;
pub mod fault;
pub mod guest;
pub mod hostconfig;
pub mod hoststate;
pub mod image;
pub mod interrupt;
pub mod libvirt;
pub mod parallel;
pub mod plan;
pub mod probe;
pub mod protocol;
pub mod report;
pub mod sandbox;
pub mod scenario;
pub mod selinux_ops;
pub mod target;
pub mod timeline;
pub mod verdict;
pub mod vm;
pub mod wait;
